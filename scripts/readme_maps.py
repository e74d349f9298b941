"""The README's two map screenshots, offline, with the bundled demo model and Debian's Chromium:
assets/map_file.png (a `*_map.html` map file as a stakeholder opens it) and
assets/notebook_map.png (the notebook map's layers after two questions, drawn with the same
Leaflet, since the ipywidgets page itself loads its code from a CDN).

    PYTHONPATH=$PWD python scripts/readme_maps.py
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import ipyleaflet
import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from playwright.sync_api import sync_playwright

from segearth.geo import predict_geo
from segearth.notebook import Map
from segearth.predictor import Predictor
from segearth.vendor import LEAFLET_DIR

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SCENE = ASSETS / "examples" / "synthetic_runway.png"
QUESTIONS = ("Where could a small plane land?", "Which areas are covered by trees?")
#: Where the scene is placed: Web Mercator, 0.6 m pixels, near the app's default view.
ORIGIN, PIXEL = (12_733_000.0, 3_579_000.0), 0.6


def scene_geotiff(folder: Path) -> Path:
    rgb = np.asarray(Image.open(SCENE).convert("RGB"))
    path = folder / "runway.tif"
    with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0],
                       count=3, dtype="uint8", crs="EPSG:3857",
                       transform=Affine(PIXEL, 0, ORIGIN[0], 0, -PIXEL, ORIGIN[1])) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
    return path


def notebook_page(m: Map) -> str:
    """The notebook map's overlays, regions and legend as a plain Leaflet page."""
    layers = []
    for layer in m.layers:
        if isinstance(layer, ipyleaflet.ImageOverlay):
            layers.append({"name": layer.name, "image": layer.url, "bounds": layer.bounds,
                           "opacity": layer.opacity})
        elif isinstance(layer, ipyleaflet.GeoJSON):
            layers.append({"name": layer.name, "geojson": layer.data, "style": layer.style})
    legend = "".join(f'<div><span style="background:{c}"></span>{q}</div>'
                     for q, c in m.questions.items())
    return f"""<!doctype html><meta charset="utf-8">
<style>{(LEAFLET_DIR / 'leaflet.css').read_text()}
html, body, #map {{ margin: 0; height: 100%; }}
.legend {{ background: white; padding: 6px 10px; font: 13px sans-serif; border-radius: 4px; }}
.legend span {{ display: inline-block; width: 14px; height: 14px; margin-right: 6px; }}</style>
<script>{(LEAFLET_DIR / 'leaflet.js').read_text()}</script>
<div id="map"></div><script>
const map = L.map("map"), overlays = {{}};
for (const l of {json.dumps(layers)}) {{
  overlays[l.name] = (l.image ? L.imageOverlay(l.image, l.bounds, {{opacity: l.opacity}})
                      : L.geoJSON(l.geojson, {{style: () => l.style}})).addTo(map);
}}
L.control.layers(null, overlays, {{collapsed: false}}).addTo(map);
const legend = L.control({{position: "bottomright"}});
legend.onAdd = () => Object.assign(L.DomUtil.create("div", "legend"),
  {{innerHTML: "<b>Questions</b>" + {json.dumps(legend)}}});
legend.addTo(map);
map.fitBounds(Object.values(overlays)[0].getBounds());
</script>"""


def main() -> None:
    predictor = Predictor.from_pretrained(REPO / "assets" / "demo-checkpoint")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        tif = scene_geotiff(folder)
        out = predict_geo(predictor, tif, QUESTIONS[0], folder / "out",
                          checkpoint_name="bundled demo model")
        m = Map(predictor)
        for question in QUESTIONS:
            m.ask(question, image=tif)
        (folder / "notebook.html").write_text(notebook_page(m))
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            ("file:", "data:")) else route.abort())
        for html, png in ((out["map_html"], "map_file.png"),
                          (folder / "notebook.html", "notebook_map.png")):
            page.goto(html.as_uri())
            page.wait_for_function("[...document.images].every(i => i.complete)")
            page.screenshot(path=str(ASSETS / png))
            print(ASSETS / png)
        browser.close()


if __name__ == "__main__":
    main()
