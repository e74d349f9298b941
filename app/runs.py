"""One run: a question about one image, answered by one checkpoint (two in compare mode).

A `Run` keeps the predictions with their probabilities, so `Run.at(threshold)` re-thresholds
without the model; it is what the page's sliders and the downloads are computed from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from segearth.geo import GeoImage, mask_to_features
from segearth.geo.pipeline import run_properties
from segearth.metrics import intersection_union, sample_iou
from segearth.outputs import run_record
from segearth.predictor import Prediction


@dataclass
class Answer:
    """What one checkpoint at one precision said, and the app-side seconds it took."""

    checkpoint: str
    precision: str
    prediction: Prediction
    timings: dict[str, float | None]  # load / encode / predict; None = a cache answered


@dataclass
class Run:
    question: str
    geo: GeoImage
    name: str  # file-name stem of the downloads: the upload's stem, or "area"
    answers: list[Answer] = field(default_factory=list)  # 1, or 2 in compare mode
    timings: dict[str, float | None] = field(default_factory=dict)  # before the model
    backdrop: dict | None = None  # map layer of a georeferenced upload, shown under the mask
    time_utc: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def georeferenced(self) -> bool:
        return self.geo.is_georeferenced

    def at(self, threshold: float) -> "RunView":
        """The run re-thresholded, masks clipped to the valid pixels (inside a drawn polygon,
        not nodata), with polygons and areas for georeferenced images."""
        predictions = []
        for answer in self.answers:
            prediction = answer.prediction.with_threshold(threshold)
            if self.geo.valid is not None:
                prediction = replace(prediction, mask=prediction.mask & self.geo.valid)
            predictions.append(prediction)
        features = (mask_to_features(predictions[0].mask, self.geo, self.properties(threshold))
                    if self.georeferenced else None)
        return RunView(self, threshold, predictions, features)

    def properties(self, threshold: float) -> dict[str, Any]:
        """What travels with the geo outputs (GeoJSON properties, GeoTIFF tags)."""
        first = self.answers[0]
        return {**run_properties(self.question, first.prediction.answer, first.checkpoint,
                                 self.geo.source, threshold, time_utc=self.time_utc),
                "precision": first.precision}


@dataclass
class RunView:
    """A run at one threshold."""

    run: Run
    threshold: float
    predictions: list[Prediction]  # thresholded and clipped, one per answer
    features: dict | None  # GeoJSON (lon/lat) of the first mask; None without georeferencing

    @property
    def prediction(self) -> Prediction:
        return self.predictions[0]

    @property
    def area(self) -> dict[str, float] | None:
        """Total geodesic area of the first mask, None for an image without georeferencing."""
        if self.features is None:
            return None
        props = self.features["properties"]
        return {"m2": props["total_area_m2"], "ha": props["total_area_ha"]}

    @property
    def iou(self) -> float | None:
        """IoU between the two compared masks (compare mode only)."""
        if len(self.predictions) < 2:
            return None
        return sample_iou(*intersection_union(self.predictions[0].mask,
                                              self.predictions[1].mask))

    def record_extra(self) -> dict[str, Any]:
        """What the app adds to segearth's run record (`outputs.run_record`) of the first answer:
        where the image came from, the app's timings and, in compare mode, the second answer
        and the IoU."""
        run, first = self.run, self.run.answers[0]
        geo = run.geo
        extra: dict[str, Any] = {
            "checkpoint": first.checkpoint,
            "precision": first.precision,
            "time_utc": run.time_utc,
            "image": {"size": [geo.shape[1], geo.shape[0]], "source": geo.source,
                      "crs": geo.crs.to_string() if geo.crs else None,
                      "transform": list(geo.transform)[:6] if geo.transform else None},
            "app_timings_s": {**run.timings, **first.timings},
            "area": self.area,
            "feature_count": None if self.features is None else len(self.features["features"]),
        }
        if len(run.answers) > 1:
            second = run.answers[1]
            extra["compare"] = {**run_record(self.predictions[1], run.question),
                                "checkpoint": second.checkpoint, "precision": second.precision,
                                "app_timings_s": second.timings, "iou": self.iou}
        return extra
