"""One run: a question about one image, answered by one checkpoint (two in compare mode).

A `Run` keeps the probabilities, so `Run.at(threshold)` re-thresholds without the model; it is
what the page's sliders and the downloads are computed from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from segearth.geo import GeoImage, mask_to_features
from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Prediction


@dataclass
class Answer:
    """What one checkpoint at one precision said."""

    checkpoint: str
    precision: str
    prediction: Prediction
    timings: dict[str, float | None]  # seconds; None = skipped (cached)


@dataclass
class Run:
    question: str
    geo: GeoImage
    answers: list[Answer]  # 1, or 2 in compare mode
    timings: dict[str, float | None] = field(default_factory=dict)  # before the model
    backdrop: dict | None = None  # map layer of a georeferenced upload, shown under the mask
    time_utc: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def georeferenced(self) -> bool:
        return self.geo.is_georeferenced

    def at(self, threshold: float) -> "RunView":
        """The run re-thresholded: masks clipped to the valid pixels, areas and polygons."""
        masks = []
        for answer in self.answers:
            mask = answer.prediction.with_threshold(threshold).mask
            masks.append(mask if self.geo.valid is None else mask & self.geo.valid)
        features = (mask_to_features(masks[0], self.geo, self.properties(threshold))
                    if self.georeferenced else None)
        return RunView(self, threshold, masks, features)

    def properties(self, threshold: float) -> dict[str, Any]:
        """What travels with the outputs (GeoJSON properties, GeoTIFF tags)."""
        first = self.answers[0]
        return {"question": self.question, "answer": first.prediction.answer,
                "checkpoint": first.checkpoint, "precision": first.precision,
                "threshold": threshold, "imagery": self.geo.source.get("url")
                or self.geo.source.get("path"), "attribution": self.geo.source.get("attribution"),
                "time_utc": self.time_utc}


@dataclass
class RunView:
    """A run at one threshold."""

    run: Run
    threshold: float
    masks: list[np.ndarray]
    features: dict | None  # GeoJSON FeatureCollection (lon/lat) of masks[0]; None if not georeferenced

    @property
    def mask(self) -> np.ndarray:
        return self.masks[0]

    @property
    def found(self) -> bool:
        return bool(self.mask.any())

    @property
    def area(self) -> dict[str, float] | None:
        """Total geodesic area of the mask, None for an image without georeferencing."""
        if self.features is None:
            return None
        props = self.features["properties"]
        return {"m2": props["total_area_m2"], "ha": props["total_area_ha"]}

    @property
    def iou(self) -> float | None:
        """IoU between the two compared masks (compare mode only)."""
        if len(self.masks) < 2:
            return None
        return sample_iou(*intersection_union(self.masks[0], self.masks[1]))

    def record(self) -> dict[str, Any]:
        """The JSON record of the run: enough to reproduce and to cite it."""
        geo = self.run.geo
        return {
            "question": self.run.question,
            "threshold": self.threshold,
            "time_utc": self.run.time_utc,
            "image": {"size": [geo.shape[1], geo.shape[0]], "source": geo.source,
                      "crs": geo.crs.to_string() if geo.crs else None,
                      "transform": list(geo.transform)[:6] if geo.transform else None},
            "timings": self.run.timings,
            "answers": [{
                "checkpoint": a.checkpoint, "precision": a.precision,
                "answer": a.prediction.answer, "found": bool(mask.any()),
                "mask_pixels": int(mask.sum()), "timings": {**a.timings, **a.prediction.timings},
                "provenance": a.prediction.provenance,
            } for a, mask in zip(self.run.answers, self.masks)],
            "area": self.area,
            "feature_count": None if self.features is None else len(self.features["features"]),
            "iou_between_answers": self.iou,
        }
