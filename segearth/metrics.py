"""The authors' segmentation metrics: gIoU, cIoU and P@X.

Per sample, on whatever frame the caller chooses (the authors use the padded 1024 canvas):
IoU = I / (U + 1e-5), and 1.0 when the union is empty (an empty prediction on an empty target
is right). gIoU is the mean IoU, cIoU = sum I / (sum U + 1e-10), P@X the share of samples with
IoU strictly above X.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def intersection_union(prediction: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
    p, t = prediction.astype(bool), target.astype(bool)
    return int(np.logical_and(p, t).sum()), int(np.logical_or(p, t).sum())


def sample_iou(intersection: int, union: int) -> float:
    return 1.0 if union == 0 else intersection / (union + 1e-5)


def precision_at(ious: np.ndarray, threshold: float) -> float:
    """P@X: the share of IoUs strictly above ``threshold`` (an IoU equal to X does not count)."""
    return float((np.asarray(ious) > threshold).mean())


@dataclass
class SegmentationMetrics:
    """Accumulates samples; `summary()` gives the paper's numbers."""

    intersections: list[int] = field(default_factory=list)
    unions: list[int] = field(default_factory=list)

    def add(self, prediction: np.ndarray, target: np.ndarray) -> float:
        i, u = intersection_union(prediction, target)
        self.intersections.append(i)
        self.unions.append(u)
        return sample_iou(i, u)

    @property
    def ious(self) -> np.ndarray:
        return np.array([sample_iou(i, u) for i, u in zip(self.intersections, self.unions)])

    def summary(self) -> dict[str, float]:
        if not self.unions:
            return {}
        ious = self.ious
        out = {
            "gIoU": float(ious.mean()),
            "cIoU": float(sum(self.intersections) / (sum(self.unions) + 1e-10)),
        }
        for x in PRECISION_THRESHOLDS:
            out[f"P@{x}"] = precision_at(ious, x)
        out["count"] = len(ious)
        return out
