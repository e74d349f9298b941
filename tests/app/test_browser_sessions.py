"""Two visitors in two browser pages on one server (`python app.py`, the trained demo model):
they ask at the same time about different images, one asks a follow-up and moves a slider, and
each page shows and offers for download only its own visitor's results - the same masks that
visitor would get alone (checked pixel for pixel against single-client API runs)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from app.config import DEMO_LABEL

from .test_api import files, run
from tests.browser import CHROMIUM_MARKS

from .test_browser import (app_url, ask, download, guarded_page, upload,  # noqa: F401 (fixture)
                           wait_for_answer)
from .test_public import DEMO, EXAMPLES

pytestmark = CHROMIUM_MARKS

RUNWAY, RIVER = EXAMPLES / "synthetic_runway.png", EXAMPLES / "synthetic_river.png"
FIRST = "Where could a plane land safely in this area?"
KAYAK = "Where could people go kayaking in this scene?"


@pytest.fixture(scope="module")
def app_environ(app_environ: dict[str, str]) -> dict[str, str]:
    """The shared test environment with the bundled (trained) demo model: its masks differ
    between scenes, so a mix-up would show."""
    return {**app_environ, "SEGEARTH_DEMO_CHECKPOINT": DEMO}


def alone(url: str, image, question: str) -> np.ndarray:
    """The mask one visitor gets for `question` about `image` with the server to themselves, at
    the demo model's own threshold (where the pages' sliders start)."""
    threshold = json.loads((Path(DEMO) / "config.json").read_text())["mask_threshold"]
    result = run(Client(url, verbose=False), DEMO_LABEL, source="upload", upload=image,
                 question=question, threshold=threshold)
    return np.asarray(Image.open(files(result)[f"{image.stem}_mask.png"]))


def shown(page, stem: str, folder) -> tuple[np.ndarray, dict]:
    """The mask and JSON record the page offers for download."""
    folder.mkdir(exist_ok=True)
    mask = np.asarray(Image.open(download(page, f"{stem}_mask.png", folder)))
    return mask, json.loads(download(page, f"{stem}.json", folder).read_text())


def test_two_pages_interleaving_each_see_their_own_image(browser, app_url, tmp_path):
    with guarded_page(browser, app_url) as a, guarded_page(browser, app_url) as b:
        upload(a, RUNWAY)
        upload(b, RIVER)
        ask(a, FIRST)
        ask(b, KAYAK)  # while A's run is queued or running
        wait_for_answer(a)
        wait_for_answer(b)
        a_first, a_first_record = shown(a, RUNWAY.stem, tmp_path / "a1")
        b_first, b_first_record = shown(b, RIVER.stem, tmp_path / "b1")

        ask(a, KAYAK)  # a follow-up; B's image was the last one encoded
        wait_for_answer(a)
        a_follow, a_follow_record = shown(a, RUNWAY.stem, tmp_path / "a2")

        # B moves the threshold slider: a re-render of B's own run, not A's newer one.
        link = f"#downloads a[download='{RIVER.stem}.json']"
        before = b.locator(link).get_attribute("href")
        slider = b.locator("#threshold input[type=range]")
        slider.fill("0.3")
        slider.dispatch_event("pointerup")
        b.wait_for_function("([link, before]) => { const a = document.querySelector(link);"
                            " return a && a.getAttribute('href') !== before; }",
                            arg=[link, before], timeout=30_000)  # the files were rewritten
        b_render, b_render_record = shown(b, RIVER.stem, tmp_path / "b2")

    assert (a_first_record["question"], a_follow_record["question"]) == (FIRST, KAYAK)
    assert b_first_record["question"] == b_render_record["question"] == KAYAK
    assert b_render_record["threshold"] == pytest.approx(0.3)
    assert b_render.shape == b_first.shape
    assert np.array_equal(a_first, alone(app_url, RUNWAY, FIRST))
    assert np.array_equal(b_first, alone(app_url, RIVER, KAYAK))
    assert np.array_equal(a_follow, alone(app_url, RUNWAY, KAYAK))
    assert a_first.any() and b_first.any()  # the runway and the river: real masks
    assert not np.array_equal(a_first, b_first) or a_first.shape != b_first.shape
