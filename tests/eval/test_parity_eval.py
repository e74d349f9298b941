"""`segearth eval` on the authors' mini EarthReason split reproduces their recorded evaluation."""
from __future__ import annotations

import json

import pytest

from segearth.cli import main
from segearth.evaluation import METRICS, read_run

from ..conftest import E2E

TOLERANCE = 1e-4


@pytest.mark.slow
def test_eval_reproduces_the_authors_metrics(parity_checkpoint, tmp_path, capsys):
    expected = json.loads((E2E / "metrics.json").read_text())
    assert main([
        "eval", "--checkpoint", str(parity_checkpoint), "--dataset", "earthreason",
        "--root", str(E2E / "dataset"), "--split", "val", "--precision", "fp32", "--device", "cpu",
        "--out", str(tmp_path), "--no-progress", "--gallery", "2",
    ]) == 0
    result = read_run(tmp_path)
    canvas = result.summary()["canvas"]
    for metric in METRICS:
        assert canvas[metric] == pytest.approx(expected[metric], abs=TOLERANCE), metric
    assert [i.id for i in result.items] == [i["stem"] for i in expected["items"]]
    for item, reference in zip(result.items, expected["items"]):
        assert item.iou_canvas == pytest.approx(reference["iou_fg_1024"], abs=TOLERANCE), item.id
        assert item.predicted_fraction == pytest.approx(reference["pred_positive_fraction"], abs=TOLERANCE)
        assert item.target_fraction == pytest.approx(reference["target_fraction"], abs=TOLERANCE)
        assert (item.width, item.height) == (reference["width"], reference["height"])
    assert result.summary()["empty_target"]["count"] == 1  # e2e_05
    assert "canvas" in capsys.readouterr().out
    assert (tmp_path / "report" / "index.html").is_file()
