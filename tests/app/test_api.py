"""The app through its API (gradio_client), no browser: the same runs as the page, the files it
offers, and each error path's message."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import rasterio
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from .conftest import AREA, free_port, utm_bounds_lonlat

QUESTION = "If an earthquake struck, where could residents gather safely?"


class Result(NamedTuple):
    """The run endpoint's outputs, in order (state and layout updates are not part of the API)."""

    map: Any
    image: str | None
    answer: str
    summary: str
    downloads: list[str]
    compare_left: str | None
    compare_right: str | None
    compare_text: str
    regions: dict  # {"headers": [...], "data": [[rank, area, score, peak], ...]}
    questions: dict  # the question picker: its choices and which one the page shows


@pytest.fixture
def client(app_url: str) -> Client:
    """A fresh session (its own run state)."""
    return Client(app_url, verbose=False)


def run(client: Client, checkpoint: str, *, source: str = "map", area: str = AREA,
        upload: Path | None = None, question: str = QUESTION, precision: str = "fp32",
        compare: bool = False, checkpoint_b: str | None = None, precision_b: str = "fp32",
        threshold: float = 0.5, opacity: float = 0.5) -> Result:
    return Result(*client.predict(
        source, area, handle_file(str(upload)) if upload else None, question, checkpoint,
        precision, compare, checkpoint_b or checkpoint, precision_b, threshold, opacity,
        api_name="/run"))


def render(client: Client, threshold: float, opacity: float = 0.5) -> Result:
    return Result(*client.predict(threshold, opacity, api_name="/render"))


def files(result: Result) -> dict[str, Path]:
    return {Path(p).name: Path(p) for p in result.downloads}


def record(result: Result) -> dict:
    """The JSON record among the downloads."""
    (path,) = [p for p in map(Path, result.downloads) if p.suffix == ".json"]
    return json.loads(path.read_text())


def layers(result: Result) -> dict:
    return result.map["props"]["layers"]


def bbox(geometry: dict) -> tuple[float, float, float, float]:
    xs, ys = zip(*geometry["coordinates"][0])
    return min(xs), min(ys), max(xs), max(ys)


def assert_bounds_close(bounds: list, expected: tuple[float, float, float, float],
                        tol: float) -> None:
    """Leaflet bounds [[S, W], [N, E]] against (west, south, east, north)."""
    (south, west), (north, east) = bounds
    assert np.allclose([west, south, east, north], expected, atol=tol), (bounds, expected)


# --- runs ---------------------------------------------------------------------------------------
def test_run_on_drawn_area_shows_mask_answer_area_and_files(client, checkpoint):
    result = run(client, checkpoint, threshold=0.05)

    assert result.answer.strip()
    meta = record(result)
    width, height = meta["image"]["size"]
    # The overlay lies over the drawn area, to one pixel of the fetched tiles (in degrees).
    pixel = 360 / (256 * 2 ** meta["image"]["source"]["zoom"])
    assert_bounds_close(layers(result)["overlay"]["bounds"], bbox(json.loads(AREA)), tol=pixel)

    names = files(result)
    assert set(names) == {"area_mask.png", "area_overlay.png", "area_probability.png",
                          "area.json", "area_mask.tif", "area_mask.geojson", "area_map.html"}
    mask = np.asarray(Image.open(names["area_mask.png"]))
    assert mask.shape == (height, width) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(names["area_overlay.png"]).size == (width, height)
    with rasterio.open(names["area_mask.tif"]) as tif:
        assert tif.crs.to_epsg() == 3857 and (tif.width, tif.height) == (width, height)
        assert (tif.read(1) > 0).sum() == (mask > 0).sum()
    geojson = json.loads(names["area_mask.geojson"].read_text())
    assert geojson["properties"]["question"] == QUESTION
    assert meta["question"] == QUESTION and meta["checkpoint"] == checkpoint
    assert meta["answer"] == result.answer and meta["found"] == bool(mask.any())

    if mask.any():
        assert geojson["features"] and all(f["properties"]["area_m2"] > 0
                                           for f in geojson["features"])
        area_m2 = geojson["properties"]["total_area_m2"]
        assert f"{area_m2:,.1f} m²" in result.summary and " ha)" in result.summary
        assert layers(result)["outlines"]["features"]
    else:
        assert "No target found" in result.summary and not geojson["features"]


def test_follow_up_question_reuses_imagery_and_image_features(client, checkpoint):
    run(client, checkpoint, question="Where could a helicopter land?")
    second = run(client, checkpoint, question="Which area is paved?")
    assert "encode image reused (cached)" in second.summary
    assert "imagery reused (cached)" in second.summary
    assert record(second)["question"] == "Which area is paved?"
    # both questions are on the map, the earlier one as a layer of its own colour
    (earlier,) = layers(second)["others"]
    assert earlier["name"] == "Where could a helicopter land?"
    assert earlier["color"] != layers(second)["color"] and second.questions["value"] == 1


def test_sliders_rerender_from_the_cached_probability(client, checkpoint):
    low = run(client, checkpoint, threshold=0.05)
    high = render(client, threshold=0.95, opacity=0.8)
    low_meta, high_meta = record(low), record(high)

    assert (low_meta["threshold"], high_meta["threshold"]) == (0.05, 0.95)
    assert high_meta["time_utc"] == low_meta["time_utc"]  # the same run, not a new one
    assert high.answer == low.answer
    assert high.map["props"]["opacity"] == 0.8
    assert high_meta["positive_fraction"] <= low_meta["positive_fraction"]


def test_compare_mode_shows_both_masks_and_their_iou(client, checkpoint):
    result = run(client, checkpoint, compare=True, precision="fp32", precision_b="bf16",
                 threshold=0.05)
    match = re.search(r"IoU between the two masks: ([0-9.]+)", result.compare_text)
    assert match and 0.0 <= float(match.group(1)) <= 1.0
    assert Path(result.compare_left).is_file() and Path(result.compare_right).is_file()
    meta = record(result)
    assert (meta["precision"], meta["compare"]["precision"]) == ("fp32", "bf16")
    assert meta["compare"]["iou"] == pytest.approx(float(match.group(1)), abs=1e-3)


def test_plain_image_upload_shows_in_the_image_view(client, checkpoint, plain_image):
    preview = client.predict(handle_file(str(plain_image)), api_name="/preview")
    assert preview[0]["props"]["layers"].keys() == {"seq"}  # nothing to place on the map
    assert Image.open(preview[1]).size == (300, 200)

    result = run(client, checkpoint, source="upload", upload=plain_image)
    assert "no georeferencing" in result.summary or "No target found" in result.summary
    assert set(files(result)) == {"plain_mask.png", "plain_overlay.png", "plain_probability.png",
                                  "plain.json"}
    assert Image.open(files(result)["plain_mask.png"]).size == (300, 200)
    assert Image.open(result.image).size == (300, 200)


def test_geotiff_upload_is_placed_on_the_map(client, checkpoint, utm_geotiff):
    preview = client.predict(handle_file(str(utm_geotiff)), api_name="/preview")
    image_layer = preview[0]["props"]["layers"]["image"]
    # Reprojected from UTM to the map's Web Mercator: the bounds are the raster's lon/lat extent.
    assert_bounds_close(image_layer["bounds"], utm_bounds_lonlat(), tol=2e-5)

    result = run(client, checkpoint, source="upload", upload=utm_geotiff, threshold=0.05)
    assert_bounds_close(layers(result)["overlay"]["bounds"], utm_bounds_lonlat(), tol=2e-5)
    assert layers(result)["image"]["bounds"] == image_layer["bounds"]
    with rasterio.open(files(result)["utm_mask.tif"]) as tif:
        assert tif.crs.to_epsg() == 32632 and (tif.width, tif.height) == (256, 192)


# --- errors: each shows its message, and the app keeps serving -------------------------------
def test_no_area_drawn(client, checkpoint):
    with pytest.raises(AppError, match="No area drawn"):
        run(client, checkpoint, area="")
    with pytest.raises(AppError, match="not GeoJSON"):
        run(client, checkpoint, area='{"type": "Polygon", ')


def test_empty_question(client, checkpoint):
    with pytest.raises(AppError, match="Type a question"):
        run(client, checkpoint, question="   ")


def test_broken_upload(client, checkpoint, broken_upload):
    with pytest.raises(AppError, match="broken.tif"):
        client.predict(handle_file(str(broken_upload)), api_name="/preview")
    with pytest.raises(AppError, match="broken.tif"):
        run(client, checkpoint, source="upload", upload=broken_upload)


def test_missing_checkpoint_then_the_app_still_serves(client, checkpoint, tmp_path):
    with pytest.raises(AppError, match="checkpoint|config.json|folder"):
        run(client, str(tmp_path / "no-such-checkpoint"))
    assert run(client, checkpoint).answer.strip()


@pytest.fixture(scope="module")
def app_without_tiles(app_environ: dict[str, str]):
    """The app configured with a tile server that is down (a loopback port nobody listens on)."""
    from app.config import AppConfig
    from app.ui import build_app, launch_options

    down = f"http://127.0.0.1:{free_port()}/ok/{{z}}/{{x}}/{{y}}.png"
    config = AppConfig.from_env({**app_environ, "SEGEARTH_TILE_URL": down})
    demo = build_app(config)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(config))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_tile_server_down(app_without_tiles, checkpoint):
    client = Client(app_without_tiles, verbose=False)
    with pytest.raises(AppError, match="Tile server 127.0.0.1:[0-9]+ cannot be reached"):
        run(client, checkpoint)


# --- one result path: the app writes what the command line writes ---------------------------
#: Keys that differ between two runs of the same thing: clocks, durations and file locations,
#: and the checkpoint's name (the app shows its public label, never a server path).
RUN_SPECIFIC = {"time_utc", "timings_s", "app_timings_s", "path", "imagery", "files", "checkpoint"}


def comparable(record: Any) -> Any:
    """The record without RUN_SPECIFIC keys, at any depth."""
    if isinstance(record, dict):
        return {k: comparable(v) for k, v in record.items() if k not in RUN_SPECIFIC}
    if isinstance(record, list):
        return [comparable(v) for v in record]
    return record


def test_cli_and_app_write_the_same_record_for_the_same_run(client, checkpoint, utm_geotiff,
                                                            tiny_checkpoint, tmp_path):
    from segearth.cli import main

    assert main(["predict", str(utm_geotiff), "-q", QUESTION, "--checkpoint", str(tiny_checkpoint),
                 "--precision", "fp32", "--device", "cpu", "--threshold", "0.3",
                 "--out", str(tmp_path)]) == 0
    cli = json.loads((tmp_path / "utm.json").read_text())
    app = record(run(client, checkpoint, source="upload", upload=utm_geotiff, threshold=0.3))

    assert set(app) - set(cli) == {"app_timings_s"}
    assert comparable(app) == comparable(cli)
    assert cli["regions"] and cli["geo"]["question"] == QUESTION  # there is something to compare
    assert app["checkpoint"] == checkpoint and cli["checkpoint"] == str(tiny_checkpoint)
    geojson = json.loads(files_of(tmp_path)["utm_mask.geojson"].read_text())
    assert [f["properties"]["score"] for f in geojson["features"]] == [
        r["score"] for r in app["regions"]]


def files_of(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir()}


def table(result: Result) -> list[list]:
    return result.regions["data"]


def test_regions_table_lists_the_records_regions_and_follows_the_threshold(client, checkpoint):
    low = run(client, checkpoint, threshold=0.3)
    rows, regions = table(low), record(low)["regions"]
    assert low.regions["headers"] == ["#", "area", "score", "peak"]
    assert [int(row[0]) for row in rows] == [r["rank"] for r in regions] == list(
        range(1, len(regions) + 1))
    assert [row[1] for row in rows] == [f"{r['area_m2']:,.1f} m² ({r['area_ha']:,.4f} ha)"
                                        for r in regions]
    assert [float(row[2]) for row in rows] == pytest.approx([r["score"] for r in regions],
                                                             abs=1e-3)
    pixels = [r["pixels"] for r in regions]
    assert pixels == sorted(pixels, reverse=True) and min(pixels, default=4) >= 4

    high = render(client, threshold=0.7)
    assert [int(row[0]) for row in table(high)] == [r["rank"] for r in record(high)["regions"]]
    assert table(high) != rows


def test_every_endpoint_is_named_and_documented(app_url):
    """No anonymous endpoint (a `/lambda`): each is named and has its line in docs/server.md,
    or is private to the page."""
    api = Client(app_url, verbose=False).view_api(return_format="dict", print_info=False)
    assert not api["unnamed_endpoints"]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    documented = set(re.findall(r"^\| `(/\w+)` \|", docs, re.MULTILINE))
    assert set(api["named_endpoints"]) == documented == {"/run", "/render", "/preview", "/status"}
    status = Client(app_url, verbose=False).predict(api_name="/status")
    assert status.startswith(("Model ready", "Loading", "No model", "Could not load"))
