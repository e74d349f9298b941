"""The authors' metric formulas on hand-made masks."""
from __future__ import annotations

import numpy as np
import pytest

from segearth.metrics import SegmentationMetrics, intersection_union, precision_at, sample_iou


def masks(pred_cells: list[int], target_cells: list[int], size: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Two 1 x size masks with the given cells set."""
    p, t = np.zeros((1, size), bool), np.zeros((1, size), bool)
    p[0, pred_cells], t[0, target_cells] = True, True
    return p, t


def test_iou_is_intersection_over_union_plus_epsilon():
    p, t = masks([0, 1, 2, 3], [2, 3, 4])  # I = 2, U = 5
    assert intersection_union(p, t) == (2, 5)
    assert SegmentationMetrics().add(p, t) == 2 / (5 + 1e-5)


def test_empty_prediction_on_empty_target_scores_one():
    p, t = masks([], [])
    assert SegmentationMetrics().add(p, t) == 1.0


def test_any_prediction_on_empty_target_scores_zero():
    p, t = masks([3], [])
    assert SegmentationMetrics().add(p, t) == 0.0
    p, t = masks([], [3])  # and a missed target
    assert SegmentationMetrics().add(p, t) == 0.0


def test_perfect_hit_is_just_below_one():
    """The authors' 1e-5 in the denominator: a perfect non-empty match is not exactly 1."""
    p, t = masks([1, 2], [1, 2])
    assert sample_iou(*intersection_union(p, t)) == pytest.approx(1 - 5e-6, abs=1e-9)


def test_giou_ciou_and_precision_over_samples():
    metrics = SegmentationMetrics()
    for pred, target in (([0, 1, 2, 3], [2, 3, 4]),  # 2/5
                         ([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7, 8]),  # 8/9
                         ([], []),  # empty on empty: 1, contributes 0/0 to cIoU
                         ([5], [])):  # 0/1
        metrics.add(*masks(pred, target))
    s = metrics.summary()
    ious = [2 / (5 + 1e-5), 8 / (9 + 1e-5), 1.0, 0.0]
    assert s["gIoU"] == pytest.approx(np.mean(ious), abs=1e-15)
    assert s["cIoU"] == pytest.approx((2 + 8 + 0 + 0) / (5 + 9 + 0 + 1 + 1e-10), abs=1e-15)
    assert s["P@0.5"] == 0.5 and s["P@0.8"] == 0.5 and s["P@0.9"] == 0.25
    assert s["count"] == 4


def test_precision_is_strictly_greater():
    assert precision_at(np.array([0.5, 0.7, 0.9]), 0.5) == pytest.approx(2 / 3)
    assert precision_at(np.array([0.5, 0.7, 0.9]), 0.9) == 0.0
    assert precision_at(np.array([0.5000001]), 0.5) == 1.0
    # half overlap (I = 1, U = 2) falls just under 0.5 because of the epsilon: not counted
    metrics = SegmentationMetrics()
    metrics.add(*masks([0, 1], [1]))
    assert metrics.summary()["P@0.5"] == 0.0


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        intersection_union(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
