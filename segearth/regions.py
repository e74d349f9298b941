"""Regions of a mask: its connected components, each with how sure the model is about it.

When the answer is several places (three tennis courts, two safe squares), a person wants each
one separately with its confidence, not one merged mask. A region is a 4-connected component of
the thresholded mask (the same connectivity `rasterio.features.shapes` uses for the polygons, so
one region is one polygon); its ``score`` is the mean probability inside it and ``peak`` its
maximum. Components smaller than ``min_px`` pixels are dropped (specks a few pixels wide are
threshold noise, not places) and counted, and so are those scoring under ``min_score`` (a
checkpoint's confidence floor, `SegEarthConfig.min_region_score`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

#: Default smallest region kept, in pixels.
MIN_REGION_PX = 4


@dataclass(frozen=True)
class Region:
    """One connected region of a mask; ``rank`` 1 is the largest."""

    rank: int
    pixels: int
    score: float  # mean probability inside
    peak: float  # max probability inside
    bbox: tuple[int, int, int, int]  # (col0, row0, col1, row1) in pixels, end-exclusive

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "pixels": self.pixels, "score": round(self.score, 4),
                "peak": round(self.peak, 4), "bbox_px": list(self.bbox)}


@dataclass(frozen=True)
class Regions:
    """The regions of a mask and the labels that locate them (label k = the region of rank k,
    0 = background or a dropped region)."""

    regions: list[Region]
    labels: np.ndarray  # (H, W) int32
    dropped: int  # components smaller than min_px or scoring under min_score, removed from the mask
    min_px: int

    @property
    def mask(self) -> np.ndarray:
        """The mask without the dropped components."""
        return self.labels > 0


def find_regions(mask: np.ndarray, probability: np.ndarray,
                 min_px: int = MIN_REGION_PX, min_score: float = 0.0) -> Regions:
    """Connected components of ``mask`` scored on ``probability``, largest first (ties: higher
    score, then top-left first), those under ``min_px`` pixels or scoring under ``min_score``
    dropped."""
    if mask.shape != probability.shape:
        raise ValueError(f"mask {mask.shape} and probability {probability.shape} differ in shape")
    if min_px < 1:
        raise ValueError(f"min_px must be at least 1, not {min_px}")
    labels, count = ndimage.label(mask)
    if count == 0:
        return Regions([], labels.astype(np.int32), 0, min_px)
    flat = labels.ravel()
    pixels = np.bincount(flat, minlength=count + 1)[1:]
    sums = np.bincount(flat, weights=probability.ravel().astype(np.float64),
                       minlength=count + 1)[1:]
    # each label's maximum over the mask's pixels alone: `ndimage.maximum` sorts the whole
    # image's pixels for it (51 ms at 768x768, against 1.5 ms here)
    inside = flat > 0
    peaks = np.full(count + 1, -np.inf)
    np.maximum.at(peaks, flat[inside], probability.ravel()[inside])
    peaks = peaks[1:]
    boxes = ndimage.find_objects(labels)
    scores = sums / pixels
    kept = [i for i in range(count) if pixels[i] >= min_px and scores[i] >= min_score]
    kept.sort(key=lambda i: (-pixels[i], -scores[i], boxes[i][0].start, boxes[i][1].start))
    remap = np.zeros(count + 1, np.int32)
    regions = []
    for rank, i in enumerate(kept, start=1):
        remap[i + 1] = rank
        rows, cols = boxes[i]
        regions.append(Region(rank, int(pixels[i]), float(scores[i]), float(peaks[i]),
                              (cols.start, rows.start, cols.stop, rows.stop)))
    return Regions(regions, remap[labels], count - len(kept), min_px)
