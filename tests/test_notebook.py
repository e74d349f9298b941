"""notebooks/segearth_map.ipynb end to end in a real Jupyter kernel (nbclient + ipykernel), with
the bundled demo model and the loopback tile server. The area is drawn the way a browser's
draw tool reports it: a draw:created message from the map's DrawControl, carrying a GeoJSON
Feature, which leafmap stores as `m.user_roi`."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient

from segearth.geo.tiles import TileSource, fetch_area
from segearth.predictor import Predictor
from segearth.regions import MIN_REGION_PX
from tests.geo.synthetic import RED_BOX

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "segearth_map.ipynb"
DEMO = REPO / "assets" / "demo-checkpoint"
#: A drawn rectangle around the tile server's red square, as Leaflet.draw sends it.
DRAWN = {"type": "Feature", "properties": {"style": {"color": "#3388ff", "weight": 4}},
         "geometry": {"type": "Polygon", "coordinates": [[
             [11.4995, 48.0995], [11.4995, 48.1018], [11.5025, 48.1018], [11.5025, 48.0995],
             [11.4995, 48.0995]]]}}
DRAW = f"""m.draw_control._handle_leaflet_event(m.draw_control, {{"event": "draw:created",
    "geo_json": {DRAWN!r}}}, [])"""
REPORT = """import json
print("STATE " + json.dumps({
    "layers": [layer.name for layer in m.layers], "questions": m.questions,
    "pixels": {q: int(r.mask.sum()) for q, r in m.results.items()},
    "answers": {q: r.answer for q, r in m.results.items()},
    "user_roi": m.user_roi}))"""


def outputs(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream")


def test_notebook_runs_end_to_end_in_a_kernel(tiles, tmp_path, monkeypatch):
    for name, value in {"SEGEARTH_TILE_URL": tiles.url("ok"),
                        "SEGEARTH_TILE_ATTRIBUTION": "Synthetic test tiles",
                        "SEGEARTH_CHECKPOINT": str(DEMO), "PYTHONPATH": str(REPO),
                        "SEGEARTH_MAP_VIEW": f"{RED_BOX[1]},{RED_BOX[0]},17"}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = notebook.cells
    first_ask = next(i for i, c in enumerate(cells) if "m.ask(" in c.source)
    cells.insert(first_ask, nbformat.v4.new_code_cell(DRAW))
    cells.append(nbformat.v4.new_code_cell(REPORT))
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in cells[1].outputs), "the map widget is displayed"
    state = json.loads(outputs(cells[-1]).split("STATE ", 1)[1])
    assert state["user_roi"]["geometry"] == DRAWN["geometry"]
    red, ground = "Which building is painted red?", "Where is the open ground?"
    assert list(state["questions"]) == [red, ground]
    assert state["questions"][red] != state["questions"][ground]  # a colour each
    assert state["layers"][0] == "127.0.0.1"  # the app's tiles (SEGEARTH_TILE_URL) as basemap
    assert {f"{red} (mask)", f"{ground} (mask)"} <= set(state["layers"])

    # The kernel's run is the Python API's: same pixels, same model, same mask and answer.
    geo = fetch_area(DRAWN, TileSource.from_env(), max_tiles=64)
    predictor = Predictor.from_pretrained(DEMO)
    predictor.set_image(geo)
    expected = predictor.predict(red, min_region_px=MIN_REGION_PX)
    assert state["pixels"][red] == int(expected.mask.sum())
    assert state["answers"][red] == expected.answer
    assert expected.answer in outputs(cells[first_ask + 1])  # ask() prints the answer
    if expected.found:
        assert f"{red} (regions)" in state["layers"]

    saved = (tmp_path / "segearth_map.html").read_text()
    assert red in saved and ground in saved and "jupyter-leaflet" in saved
    assert np.isfinite(expected.probability).all()
