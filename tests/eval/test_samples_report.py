"""End to end on real imagery: the shared samples with a tiny random checkpoint, the report in
headless Chromium, and the `eval` command with a run comparison."""
from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segearth.data.masks import load_label_mask
from segearth.data.types import Sample
from segearth.cli import main
from segearth.evaluation import evaluate, item_ids, read_run
from segearth.predictor import Predictor
from segearth.report import worst_and_best, write_report

from tests.browser import needs_chromium

from ..conftest import REPO, SHARED

SAMPLES = SHARED / "samples"
ARTIFACTS = REPO / "test-artifacts"
GALLERY = 4


@pytest.fixture(scope="module")
def manifest_samples() -> list[Sample]:
    """Every manifest row with a mask, the query as question, the source as category."""
    if not (SAMPLES / "manifest.jsonl").is_file():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines() if line]
    return [Sample(Path(r["mask"]).stem, SAMPLES / r["image"], [r["query"]], category=r["source"],
                   mask_loader=partial(load_label_mask, SAMPLES / r["mask"], SAMPLES / r["image"], "nonzero"))
            for r in rows if r["mask"]]


@needs_chromium
def test_samples_evaluation_report_opens_in_chromium(tiny_checkpoint, manifest_samples, tmp_path,
                                                      browser):
    predictor = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")
    result = evaluate(predictor, manifest_samples, progress=False, keep_masks=True)
    assert len(result.items) == len(manifest_samples) == 40
    summary = result.summary()
    assert summary["canvas"]["count"] == summary["image"]["count"] == 40
    assert all(0.0 <= i.iou_canvas <= 1.0 and 0.0 <= i.iou_image <= 1.0 for i in result.items)
    index = write_report(result, dict(zip(item_ids(manifest_samples), manifest_samples)),
                         tmp_path / "report", gallery=GALLERY)

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(ARTIFACTS / "eval-report.png"), full_page=True)
    charts = page.eval_on_selector_all("img.chart", "els => els.map(e => e.naturalWidth)")
    thumbs = page.eval_on_selector_all(".gallery-item img", "els => els.map(e => e.naturalWidth)")
    items = page.locator(".gallery-item").count()
    text = page.inner_text("body")
    page.close()
    assert len(charts) == 2 and all(w > 0 for w in charts)  # IoU histogram + per-category bars
    assert items == 2 * GALLERY
    assert len(thumbs) == 3 * items and all(w > 0 for w in thumbs)  # image, truth, prediction
    worst = worst_and_best(result.items, GALLERY)[0][0]
    assert "Worst cases" in text and "gIoU" in text and worst.question in text
    with Image.open(ARTIFACTS / "eval-report.png") as shot:
        assert shot.height > 1000


def _folder_dataset(root: Path) -> Path:
    """Three small real tiles in the `folder` layout, one of them an empty target."""
    source = SAMPLES / "detectree_swissimage" / "derived"
    for sub in ("images", "labels", "QAs"):
        (root / sub).mkdir(parents=True)
    for k, tile in enumerate(("1091-322_00", "1091-322_05", "1091-322_11")):
        shutil.copy(source / f"{tile}.png", root / "images" / f"tile_{k}.png")
        label = np.asarray(Image.open(source / f"{tile}_tree.png"))
        Image.fromarray(label if k else np.zeros_like(label)).save(root / "labels" / f"tile_{k}.png")
        answers = ["The trees."] if k else []
        (root / "QAs" / f"tile_{k}.json").write_text(json.dumps({"questions": ["the trees"], "answer": answers}))
    return root


def test_eval_command_writes_run_report_and_comparison(tiny_checkpoint, tmp_path, capsys):
    if not (SAMPLES / "detectree_swissimage").is_dir():
        pytest.skip("shared samples not found")
    data = _folder_dataset(tmp_path / "data")
    common = ["eval", "--checkpoint", str(tiny_checkpoint), "--dataset", "folder", "--root", str(data),
              "--device", "cpu", "--precision", "fp32", "--no-progress", "--gallery", "1"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--compare-to", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "empty_target" in out and "mean mask IoU 1.0000" in out
    run = read_run(tmp_path / "b")
    assert len(run.items) == 3 and run.summary()["empty_target"]["count"] == 1
    assert set(run.masks) == {"tile_0", "tile_1", "tile_2"}
    comparison = json.loads((tmp_path / "b" / "compare.json").read_text())
    assert comparison["deltas"]["canvas"]["gIoU"] == 0.0
    assert all(i["mask_iou"] == pytest.approx(1.0, abs=1e-6) for i in comparison["items"])
    for page in (tmp_path / "b" / "report" / "index.html", tmp_path / "b" / "compare" / "index.html"):
        assert "gallery-item" in page.read_text()
