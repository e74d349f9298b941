"""End to end in Debian's headless Chromium: `python app.py` against the loopback tile server,
driven like a user (draw, type, click, download). Every request the page makes must stay on
127.0.0.1; screenshots go to test-artifacts/app/."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from segearth.visualize import HIGHLIGHT_COLOR, OUTLINE_COLOR, rgb_hex
from tests.browser import CHROMIUM_MARKS

from .conftest import ARTIFACTS
from .process import python_app

QUESTION = "If an earthquake struck, where could residents gather safely?"
FIRST_RUN_TIMEOUT_MS = 180_000  # the first run loads the model

pytestmark = CHROMIUM_MARKS


@pytest.fixture(scope="module")
def app_url(app_environ: dict[str, str], tmp_path_factory) -> Iterator[str]:
    """`python app.py` in a subprocess, configured only through its environment."""
    with python_app(app_environ, tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


@contextmanager
def guarded_page(browser, url: str) -> Iterator:
    """A page in its own browser context (its own visitor) that may only talk to 127.0.0.1:
    anything else is blocked and fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(".leaflet-draw-draw-rectangle", timeout=60_000)
    yield page
    context.close()
    assert not outside, f"the page tried to leave 127.0.0.1: {outside}"


@pytest.fixture
def page(browser, app_url):
    with guarded_page(browser, app_url) as page:
        yield page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


SAME_BOX = """([selector, other, tol]) => {
    const box = s => { const e = document.querySelector(s); return e && e.getBoundingClientRect(); };
    const a = box(selector), b = typeof other === "string" ? box(other) : other;
    return !!a && !!b && ["x", "y", "width", "height"].every(k => Math.abs(a[k] - b[k]) <= tol);
}"""


def assert_same_box(page, selector: str, other: str | dict, tol: float) -> None:
    """`selector`'s element covers `other` (a selector, or a box from `bounding_box()`) within
    `tol` px on screen. Both are measured in one step inside the page, retried until they agree
    or 30 s pass: the map re-renders its layers when an answer arrives, and a box measured
    before a re-render and another after it would compare two different moments."""
    try:
        page.wait_for_function(SAME_BOX, arg=[selector, other, tol], timeout=30_000)
    except PlaywrightTimeout:
        boxes = page.evaluate("""([s, o]) => [s, o].map(x => { if (typeof x !== "string")
            return x; const e = document.querySelector(x); return e && e.getBoundingClientRect(); })""",
                              [selector, other])
        raise AssertionError(f"{selector} does not cover {other} within {tol} px: {boxes}") from None


def run_and_wait(page, question: str = QUESTION) -> str:
    """Ask `question`, wait for the new summary, return it."""
    ask(page, question)
    return wait_for_answer(page)


#: The summary's text, without the progress Gradio writes over it while a run is under way.
SUMMARY = "#summary [data-testid='markdown']"


def ask(page, question: str) -> None:
    """Type `question` and press Run (without waiting: other visitors may ask meanwhile)."""
    page.locator("#question textarea").fill(question)
    page.evaluate("s => window.summaryBefore = document.querySelector(s).innerText", SUMMARY)
    page.click("#run")


def wait_for_answer(page) -> str:
    """Wait until the summary shows a new run with its timings (they come with the answer) and
    the run has ended (Gradio hides the summary's progress); return the summary."""
    page.wait_for_function(
        """s => { const text = document.querySelector(s).innerText;
            const progress = document.querySelector("#summary [data-testid='status-tracker']");
            return text.includes('Timings') && text !== window.summaryBefore
                && (!progress || progress.classList.contains('hide')); }""",
        arg=SUMMARY, timeout=FIRST_RUN_TIMEOUT_MS)
    return page.inner_text(SUMMARY)


def upload(page, path: Path) -> None:
    """Choose `path` in the upload box and wait until the page has it."""
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.locator("#upload", has_text=path.stem).wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#source input[value=upload]').checked")


def download(page, name: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.locator(f"#downloads a[download='{name}']").click()
    path = folder / name
    info.value.save_as(path)
    return path


def test_draw_ask_see_overlay_answer_area_and_download(page, tmp_path):
    assert "Demo model" in page.inner_text("#demo-banner")  # offline: the bundled demo model
    map_box = page.locator("#map .segearth-map").bounding_box()
    cx, cy = map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2
    page.click(".leaflet-draw-draw-rectangle")
    page.mouse.move(cx - 120, cy - 90)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 90, steps=8)
    page.mouse.up()
    drawn = page.locator("path.segearth-area").bounding_box()

    summary = run_and_wait(page)
    assert_same_box(page, "img.segearth-overlay", drawn, tol=4)
    assert page.input_value("#answer textarea").strip()
    assert "No target found" in summary or ("m²" in summary and " ha)" in summary)
    screenshot(page, "map_run")

    record = json.loads(download(page, "area.json", tmp_path).read_text())
    width, height = record["image"]["size"]
    assert record["question"] == QUESTION
    mask = np.asarray(Image.open(download(page, "area_mask.png", tmp_path)))
    assert mask.shape == (height, width)
    assert Image.open(download(page, "area_overlay.png", tmp_path)).size == (width, height)
    assert Image.open(download(page, "area_probability.png", tmp_path)).size == (width, height)
    with rasterio.open(download(page, "area_mask.tif", tmp_path)) as tif:
        assert tif.crs.to_epsg() == 3857 and (tif.width, tif.height) == (width, height)
    geojson = json.loads(download(page, "area_mask.geojson", tmp_path).read_text())
    assert geojson["type"] == "FeatureCollection"
    assert bool(geojson["features"]) == bool(mask.any())
    assert all(f["properties"]["area_m2"] > 0 for f in geojson["features"])

    # Opacity acts on the shown overlay without a new run; the street basemap is one click away.
    slider = page.locator("#opacity input[type=range]")
    slider.fill("0.9")
    slider.dispatch_event("pointerup")  # what releasing the handle sends
    page.wait_for_function("() => document.querySelector('img.segearth-overlay')"
                           ".style.opacity === '0.9'", timeout=30_000)
    page.get_by_text("Street map", exact=True).click()
    page.wait_for_selector(".segearth-basemap-street img", timeout=30_000)


def test_examples_then_upload_plain_image_then_geotiff(page, plain_image, utm_geotiff):
    # An example fills the question and the upload, and shows its image; with the demo model
    # the gallery opens on a synthetic scene it was trained for.
    page.locator("#examples button.thumbnail-item").first.click()
    page.wait_for_selector("#image-view img", timeout=30_000)
    assert "plane land" in page.input_value("#question textarea")
    assert "synthetic_runway" in page.inner_text("#upload")
    page.locator("#upload button[aria-label='Clear']").click()

    upload(page, plain_image)
    assert page.locator("#source input[value=upload]").is_checked()
    summary = run_and_wait(page)
    assert "No target found" in summary or "no georeferencing" in summary
    assert page.locator("#downloads a[download='plain_mask.tif']").count() == 0
    assert page.locator("#downloads a[download='plain_mask.png']").count() == 1
    screenshot(page, "image_run")

    page.locator("#upload button[aria-label='Clear']").click()
    upload(page, utm_geotiff)
    image = page.locator("img.segearth-image")
    image.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(500)  # fitBounds animation
    box, map_box = image.bounding_box(), page.locator("#map .segearth-map").bounding_box()
    # The map zoomed to the GeoTIFF: it sits in the middle, most of the map's size.
    assert abs(box["x"] + box["width"] / 2 - (map_box["x"] + map_box["width"] / 2)) < 5
    assert abs(box["y"] + box["height"] / 2 - (map_box["y"] + map_box["height"] / 2)) < 5
    assert box["width"] > map_box["width"] / 4 or box["height"] > map_box["height"] / 4

    image.evaluate("e => e.dataset.shown = 'preview'")
    run_and_wait(page)
    assert_same_box(page, "img.segearth-overlay", "img.segearth-image", tol=3)
    # The run's updates re-render the results over the upload without reloading its imagery.
    assert image.get_attribute("data-shown") == "preview"
    assert page.locator("#downloads a[download='utm_mask.tif']").count() == 1
    screenshot(page, "geotiff_run")

    # Clicking a region's row zooms the map to it and highlights its outline.
    areas = page.locator("#regions [role=gridcell][data-col='1']")  # one cell per row
    assert areas.count() >= 2  # the tiny model finds several regions in this GeoTIFF at 0.5
    before = page.evaluate(  # measured in the page: a re-render cannot detach it meanwhile
        "() => document.querySelector('img.segearth-overlay').getBoundingClientRect().width")
    areas.last.click()
    highlight = page.locator("path.segearth-highlight")
    highlight.wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(800)  # fitBounds animation
    view = page.evaluate("""() => {
        const map = document.querySelector('#map .segearth-map').getBoundingClientRect();
        const region = document.querySelector('path.segearth-highlight').getBoundingClientRect();
        const overlay = document.querySelector('img.segearth-overlay').getBoundingClientRect();
        return {map: [map.x + map.width / 2, map.y + map.height / 2, map.width, map.height],
                region: [region.x + region.width / 2, region.y + region.height / 2,
                         region.width, region.height],
                overlay: overlay.width};
    }""")
    (mx, my, mw, mh), (rx, ry, rw, rh) = view["map"], view["region"]
    assert abs(rx - mx) < 0.05 * mw and abs(ry - my) < 0.05 * mh  # the region is the centre
    assert rw > 40 and rh > 40  # and is shown large (as far as the basemap's zoom allows)
    assert view["overlay"] > 1.5 * before  # the map zoomed in to get there
    assert page.locator("path.segearth-highlight").count() == 1
    # in the package's colours, as the files draw them
    assert highlight.get_attribute("stroke") == rgb_hex(HIGHLIGHT_COLOR)
    assert page.locator("path.segearth-outline").first.get_attribute("stroke") == rgb_hex(OUTLINE_COLOR)
    screenshot(page, "region_focus")


def test_questions_about_one_place_are_layers_and_the_page_follows_the_picked_one(
        page, utm_geotiff, tmp_path):
    upload(page, utm_geotiff)
    page.locator("img.segearth-image").wait_for(state="visible", timeout=30_000)
    first, second = "Where are the fields?", "Where could a helicopter land?"
    run_and_wait(page, first)
    assert not page.locator("#questions").is_visible()  # one question: nothing to pick
    run_and_wait(page, second)

    # The layer switch names both questions, each with its colour; both masks are on the map.
    labels = page.locator(".leaflet-control-layers-overlays label")
    page.wait_for_function("() => document.querySelectorAll("
                           "'.leaflet-control-layers-overlays label').length === 2", timeout=60_000)
    assert [labels.nth(i).inner_text().strip() for i in range(2)] == [first, second]
    swatches = page.locator(".leaflet-control-layers-overlays .segearth-swatch")
    colors = {swatches.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(2)}
    assert len(colors) == 2
    assert page.locator("img.segearth-overlay").count() == 1
    assert page.locator("img.segearth-question-overlay").count() == 1
    screenshot(page, "question_layers")

    # Switched off, the earlier question stays off when the threshold slider re-renders.
    labels.nth(0).locator("input").uncheck()
    assert page.locator("img.segearth-question-overlay").count() == 0
    json_link = "document.querySelector(\"#downloads a[download='utm.json']\").href"
    before = page.evaluate(f"() => {json_link}")
    slider = page.locator("#threshold input[type=range]")
    slider.fill("0.3")
    slider.dispatch_event("pointerup")
    page.wait_for_function(f"() => {json_link} !== {json.dumps(before)}", timeout=30_000)
    assert page.locator("img.segearth-question-overlay").count() == 0
    assert page.locator("img.segearth-overlay").count() == 1
    assert not labels.nth(0).locator("input").is_checked()

    # Picking the first question: it is drawn again (though switched off before), now on top,
    # and the downloads are its own.
    page.locator("#questions label", has_text=f"1. {first}").click()
    page.wait_for_function("() => document.querySelectorAll('img.segearth-question-overlay')"
                           ".length === 1", timeout=30_000)
    assert page.locator("img.segearth-overlay").count() == 1
    assert [labels.nth(i).inner_text().strip() for i in range(2)] == [first, second]
    assert labels.nth(0).locator("input").is_checked()
    record = json.loads(download(page, "utm.json", tmp_path).read_text())
    assert record["question"] == first and record["threshold"] == 0.3
