"""Which pixels are the target: the one mask rule and the one result type (no I/O).

The rule (`mask_regions`): a pixel is in the mask when its probability is strictly above the
threshold and it is valid (inside a drawn polygon, not nodata); then every connected region
smaller than the smallest region is dropped, that size being the larger of the caller's
`min_region_px` and the checkpoint's noise floor (`SegEarthConfig.min_region_fraction` of the
model's canvas, in pixels of the map at hand: `smallest_region_px`), and so is every region
whose mean probability is under the checkpoint's confidence floor
(`SegEarthConfig.min_region_score`). Every mask of the package
comes from it: the page's, the files', the canvas mask evaluation scores, tiled runs' and every
re-thresholding; and so does `found`, which decides whether the predictor generates an answer or
says there is no target.

`Result` is what every run gives, a plain image (a `GeoImage` with crs None) or a georeferenced
one, single pass or tiled: the probability, the answer, the threshold and the smallest region,
from which the mask, the regions, the polygons and the JSON record (`Result.record()`) follow.
`segearth.outputs.write_result` writes its files.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import numpy as np

from .errors import InputError
from .geo.raster import GeoImage
from .geo.vectors import Georeferenced, region_features
from .regions import MIN_REGION_PX, Region, Regions, find_regions

# The result's sentences, one text each wherever a result is shown (record, page, map file,
# command line, notebook).
#: Why a result has no text answer: its checkpoint was never taught to write one.
NO_ANSWER_NOTE = "This checkpoint was trained without an answer loss: it gives masks only."
#: An empty mask: the model's explicit "nothing here" (`Result.found` False).
NO_TARGET = "No target found in this image."


def _now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the rule ------------------------------------------------------------------------------------
def check_threshold(threshold: float) -> None:
    """0 and 1 are refused: at either end the mask is everything or nothing whatever the image."""
    if not 0.0 < threshold < 1.0:
        raise InputError(f"The threshold is a probability strictly between 0 and 1, not {threshold}.")


def smallest_region_px(min_region_px: int, min_region_fraction: float, canvas_side_px: int) -> int:
    """The smallest region kept in a map where the model's square canvas spans ``canvas_side_px``
    pixels: ``min_region_px``, or the checkpoint's noise floor (``min_region_fraction`` of the
    canvas's area) when that is larger. The floor is a share of the canvas because the specks it
    removes are the model's, at the model's scale."""
    return max(min_region_px, round(min_region_fraction * canvas_side_px ** 2))


def mask_regions(probability: np.ndarray, threshold: float, min_px: int,
                 valid: np.ndarray | None = None, min_score: float = 0.0) -> Regions:
    """The one mask rule: probability > threshold (strictly), at valid pixels only, without the
    regions of fewer than ``min_px`` pixels or of a mean probability under ``min_score``; the kept
    regions are ranked (see `find_regions`)."""
    check_threshold(threshold)
    mask = probability > threshold
    if valid is not None:
        if valid.shape != probability.shape:
            raise ValueError(f"valid pixels {valid.shape} and probability {probability.shape} differ in shape")
        mask &= valid
    return find_regions(mask, probability, min_px, min_score)


@dataclass
class Result:
    """One question's answer about one image at one threshold, everything at the image's size.

    The model's output is ``probability`` (and ``canvas_probability``, the same on the authors'
    padded canvas) and ``answer``; the mask and all that follows from it are derived here, by
    `mask_regions`, at ``threshold`` with `smallest_region_px` as the smallest region.
    ``answer``, ``checkpoint`` and ``provenance`` may be filled in after the mask is known (the
    answer follows it), before `properties` or `features` are first read; everything the mask
    depends on is changed only through `at` or `dataclasses.replace`.
    """

    question: str
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # on the probability; 0.5 is the authors' "logit > 0"
    answer: str | None
    geo: Georeferenced  # GeoImage (crs None for a plain image), or an open RasterFile (tiled)
    checkpoint: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # the predictor's
    timings: dict[str, float] = field(default_factory=dict)  # the model's seconds per stage
    tiled: bool = False
    min_region_px: int = MIN_REGION_PX  # the caller's smallest region, before the noise floor
    time_utc: str = field(default_factory=_now_utc)
    min_region_fraction: float = 0.0  # the checkpoint's noise floor (SegEarthConfig)
    min_region_score: float = 0.0  # the checkpoint's confidence floor (SegEarthConfig)
    #: Pixels of this map the model's canvas spans (a tiled run's window); None: the longer side.
    canvas_side_px: int | None = None
    #: The authors' frame: the probability on the model's padded square canvas (None when tiled).
    canvas_probability: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if not isinstance(self.min_region_px, int) or self.min_region_px < 1:
            raise InputError(f"The smallest region is a whole number of pixels >= 1, not "
                             f"{self.min_region_px!r}.")

    def at(self, threshold: float) -> Result:
        """The same run re-thresholded, without the model."""
        return replace(self, threshold=threshold)

    # --- what the threshold gives ----------------------------------------------------------
    @property
    def smallest_region_px(self) -> int:
        """The smallest region kept in ``mask``: ``min_region_px`` or the noise floor."""
        side = self.canvas_side_px or max(self.probability.shape)
        return smallest_region_px(self.min_region_px, self.min_region_fraction, side)

    @cached_property
    def _regions(self) -> Regions:
        valid = self.geo.valid if isinstance(self.geo, GeoImage) else None  # tiled: 0 at nodata
        return mask_regions(self.probability, self.threshold, self.smallest_region_px, valid,
                            self.min_region_score)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: probability > threshold, valid pixels only, small or unsure regions
        dropped."""
        return self._regions.mask

    @property
    def canvas_mask(self) -> np.ndarray | None:
        """The authors' output: the mask on the padded canvas (what their metrics score), by the
        same rule at the canvas's scale; None for a tiled run, which has no one canvas."""
        if self.canvas_probability is None:
            return None
        side = self.canvas_probability.shape[0]
        min_px = smallest_region_px(self.min_region_px, self.min_region_fraction, side)
        return mask_regions(self.canvas_probability, self.threshold, min_px, min_score=self.min_region_score).mask

    @property
    def labels(self) -> np.ndarray:
        """(H, W) int32: the rank of the region each pixel belongs to, 0 outside the mask."""
        return self._regions.labels

    @property
    def regions(self) -> list[Region]:
        """Connected regions, largest first."""
        return self._regions.regions

    @property
    def dropped_regions(self) -> int:
        return self._regions.dropped

    @property
    def found(self) -> bool:
        """False is the explicit "no target in this image" result."""
        return bool(self.regions)

    @property
    def georeferenced(self) -> bool:
        return self.geo.crs is not None and self.geo.transform is not None

    @property
    def precision(self) -> str | None:
        return self.provenance.get("precision")

    @cached_property
    def properties(self) -> dict[str, Any]:
        """What travels with every georeferenced output (GeoJSON properties, GeoTIFF tags)."""
        source = self.geo.source
        resolution = source.get("ground_resolution_m")
        return {"question": self.question, "answer": self.answer, "checkpoint": self.checkpoint,
                "precision": self.precision, "imagery": source.get("path") or source.get("url"),
                "attribution": source.get("attribution"), "zoom": source.get("zoom"),
                "ground_resolution_m": None if resolution is None else round(float(resolution), 4),
                "mode": "tiled" if self.tiled else "single", "threshold": self.threshold,
                "time_utc": self.time_utc}

    @cached_property
    def features(self) -> dict | None:
        """GeoJSON FeatureCollection (lon/lat) of the regions; None without georeferencing."""
        return region_features(self._regions, self.geo, self.properties) if self.georeferenced else None

    @property
    def area(self) -> dict[str, float] | None:
        """Total geodesic area of the mask, None for an image without georeferencing."""
        if self.features is None:
            return None
        props = self.features["properties"]
        return {"m2": props["total_area_m2"], "ha": props["total_area_ha"]}

    def region_rows(self) -> list[dict[str, Any]]:
        """One dict per region for tables and the record: rank, pixels, score, peak, pixel box
        and, when georeferenced, its area and lon/lat bounds."""
        rows = [region.to_json() for region in self.regions]
        for row, feature in zip(rows, (self.features or {}).get("features", [])):
            props = feature["properties"]
            row |= {"area_m2": props["area_m2"], "area_ha": props["area_ha"]}
        return rows

    def record(self) -> dict[str, Any]:
        """The JSON run record: everything needed to know later what produced the mask."""
        geo, (height, width) = self.geo, self.mask.shape
        return {
            "question": self.question,
            "answer": self.answer,
            "answer_note": None if self.answer is not None or self.provenance.get("answers", True)
            else NO_ANSWER_NOTE,
            "found": self.found,
            "message": None if self.found else NO_TARGET,
            "threshold": self.threshold,
            "positive_fraction": float(self.mask.mean()),
            "size": [height, width],
            "checkpoint": self.checkpoint,
            "precision": self.precision,
            "mode": "tiled" if self.tiled else "single",
            "time_utc": self.time_utc,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "provenance": self.provenance,
            "image": {"size": [width, height], "source": geo.source,
                      "crs": geo.crs.to_string() if geo.crs else None,
                      "transform": list(geo.transform)[:6] if geo.transform else None},
            "area": self.area,
            "min_region_px": self.smallest_region_px,
            "min_region_score": self.min_region_score,
            "dropped_regions": self.dropped_regions,
            "regions": self.region_rows(),
            "geo": self.properties if self.georeferenced else None,
        }

