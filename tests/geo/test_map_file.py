"""The map file (`*_map.html`, segearth.maps) opened from disk in Debian's headless Chromium with
every request blocked except file:// and data: (and the optional online basemap): it must render
the run's overlays at their place, one polygon per region with its figures in a popup."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from affine import Affine
from pyproj import Transformer

from segearth.pipelines import predict_geo
from segearth.geo.tiles import TileSource
from tests.browser import CHROMIUM_MARKS

from .synthetic import RedPredictor, write_raster
from .test_tiles import AREA

QUESTION = "Which structures are painted red?"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "maps"
UTM_ORIGIN = (686_100.0, 5_330_600.0)  # top-left corner, EPSG:32632, 1 m pixels
#: The two red squares of the UTM GeoTIFF, (row0, row1, col0, col1).
SQUARES = ((40, 90, 30, 100), (120, 170, 180, 260))

pytestmark = CHROMIUM_MARKS


@contextmanager
def offline_page(browser, path: Path, basemap: str) -> Iterator[tuple]:
    """The file opened from disk; any request that is not file:, data: or the basemap's tiles
    fails the test. Basemap requests are answered only when the basemap is the loopback server
    (else they are aborted, as offline), and returned for the test to inspect."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    outside: list[str] = []
    tiles: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        elif url.startswith(basemap):
            tiles.append(url)
            route.continue_() if url.startswith("http://127.0.0.1:") else route.abort()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector(".leaflet-image-layer", timeout=30_000)
    page.wait_for_function("[...document.images].every(i => i.complete)")
    yield page, tiles
    context.close()
    assert not outside, f"the map file requested: {outside}"


def on_screen(page, bounds: tuple[float, float, float, float]) -> list[float]:
    """(left, top, right, bottom) in page pixels of lon/lat ``bounds``, by the map's own
    projection (folium names its map variable map_<id>)."""
    return page.evaluate("""([w, s, e, n]) => {
        const map = Object.keys(window).filter(k => k.startsWith('map_')).map(k => window[k])
            .find(v => v instanceof L.Map);
        const box = map.getContainer().getBoundingClientRect();
        const nw = map.latLngToContainerPoint([n, w]), se = map.latLngToContainerPoint([s, e]);
        return [nw.x + box.left, nw.y + box.top, se.x + box.left, se.y + box.top];
    }""", list(bounds))


def image_boxes(page) -> list[list[float]]:
    return page.evaluate("""[...document.querySelectorAll('img.leaflet-image-layer')].map(i => {
        const r = i.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })""")


def open_popup(page, rank: int) -> str:
    """Click region ``rank``'s polygon and read its popup."""
    polygons = page.locator(".leaflet-overlay-pane path.leaflet-interactive")
    polygons.nth(rank - 1).click(force=True)
    page.wait_for_selector(".leaflet-popup-content")
    return page.inner_text(".leaflet-popup-content")


def red_geotiff(folder: Path) -> Path:
    bands = np.full((3, 200, 300), 90, np.uint8)
    for row0, row1, col0, col1 in SQUARES:
        bands[:, row0:row1, col0:col1] = np.array([230, 20, 20], np.uint8)[:, None, None]
    return write_raster(folder / "two.tif", bands, crs="EPSG:32632",
                        transform=Affine(1.0, 0, UTM_ORIGIN[0], 0, -1.0, UTM_ORIGIN[1]))


def test_geotiff_map_file_opens_offline_with_regions_and_popups(browser, tmp_path):
    out = predict_geo(RedPredictor(), red_geotiff(tmp_path), QUESTION, tmp_path / "out")
    path = out["map_html"]
    assert path.name == "two_map.html" and path.stat().st_size < 10e6
    features = json.loads(out["geojson"].read_text())["features"]
    assert len(features) == 2

    basemap = TileSource.default().url.split("{")[0]  # the online layer, unreachable here
    with offline_page(browser, path, basemap) as (page, _):
        # one polygon per region, and each one's popup gives its own figures
        assert page.locator(".leaflet-overlay-pane path.leaflet-interactive").count() == 2
        for feature in features:
            props = feature["properties"]
            text = open_popup(page, props["rank"])
            assert text.startswith(f"Region\t{props['rank']}\n"), text
            assert f"{props['area_m2']:,.0f} m²" in text and f"{props['score']:.3f}" in text
            assert f"Peak probability\t{props['peak']:.3f}" in text
            page.keyboard.press("Escape")
        summary = page.inner_text(".segearth-summary")
        assert QUESTION in summary and "A red square." in summary and "2 region(s)" in summary
        # The overlays (imagery, mask) cover the raster's footprint in lon/lat, to a pixel.
        to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
        x0, y1 = UTM_ORIGIN
        lons, lats = to_lonlat.transform([x0, x0 + 300, x0, x0 + 300], [y1, y1, y1 - 200, y1 - 200])
        expected = on_screen(page, (min(lons), min(lats), max(lons), max(lats)))
        boxes = image_boxes(page)
        assert len(boxes) == 2
        for box in boxes:
            assert np.allclose(box, expected, atol=2.0), (box, expected)
        assert "Esri" in page.inner_text(".leaflet-control-attribution")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "geotiff_map.png"))


def test_area_map_file_shows_the_loopback_basemap_and_covers_the_drawn_area(browser, tile_server,
                                                                            tmp_path):
    source = TileSource(url=tile_server.url("ok"), attribution="Test tiles (c) nobody",
                        max_zoom=18)
    out = predict_geo(RedPredictor(), AREA, QUESTION, tmp_path, tile_source=source, max_tiles=20)
    record = json.loads(out["json"].read_text())
    pixel = 360 / (256 * 2 ** record["image"]["source"]["zoom"])  # a tile pixel, in degrees
    with offline_page(browser, out["map_html"], tile_server.url("ok").split("{")[0]) as (page,
                                                                                          tiles):
        assert tiles, "the online basemap layer is on and asks its server for tiles"
        page.wait_for_function("[...document.querySelectorAll('.leaflet-tile')]"
                               ".some(t => t.classList.contains('leaflet-tile-loaded'))")
        west, south, east, north = AREA
        grown = on_screen(page, (west - pixel, south - pixel, east + pixel, north + pixel))
        shrunk = on_screen(page, (west + pixel, south + pixel, east - pixel, north - pixel))
        for left, top, right, bottom in image_boxes(page):
            assert grown[0] - 1 <= left <= shrunk[0] + 1 and grown[1] - 1 <= top <= shrunk[1] + 1
            assert shrunk[2] - 1 <= right <= grown[2] + 1
            assert shrunk[3] - 1 <= bottom <= grown[3] + 1
        assert page.locator(".leaflet-overlay-pane path.leaflet-interactive").count() == 1
        assert "Test tiles (c) nobody" in page.inner_text(".leaflet-control-attribution")
        assert page.locator("img.leaflet-image-layer").count() == 2  # imagery and mask


def test_map_file_shows_a_hostile_question_as_text(browser, tmp_path):
    """The question is the visitor's: in the title and the summary box it stays text. Markup is
    escaped, and a template expression is not evaluated (folium compiles an element's HTML as a
    template, so the box is inserted verbatim)."""
    question = '<script>alert("x")</script> {{ 7*7 }} Which structures are painted red?'
    out = predict_geo(RedPredictor(), red_geotiff(tmp_path), question, tmp_path / "out")
    html = out["map_html"].read_text()
    assert "<script>alert" not in html and html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") == 2
    dialogs: list[str] = []
    basemap = TileSource.default().url.split("{")[0]
    with offline_page(browser, out["map_html"], basemap) as (page, _):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        assert page.title() == f"SegEarth-R1: {question}"
        assert f"Question: {question}" in page.inner_text(".segearth-summary")
    assert not dialogs
