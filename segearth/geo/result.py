"""A run at one threshold, and the one function that writes a run's files.

`Result` is what the command line (`predict_geo`, `segearth predict`) and the app both build from
a prediction, so they show and write the same thing: the mask clipped once to the valid pixels
(inside a drawn polygon, not nodata) with the regions under `min_region_px` dropped, the
probability, the regions with their confidence, the georeferencing and the run's properties.
`write_result` writes its files; the JSON record is `Result.record()`.

It lives in `segearth.geo` because its georeferencing is a `GeoImage` (crs None for a plain
image) and its polygons are geo's; it needs nothing of the model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..fileio import atomic_path
from ..maps import render_map
from ..outputs import save_png
from ..regions import MIN_REGION_PX, Region, Regions, find_regions, min_region_pixels
from ..visualize import blend, probability_image
from .raster import GeoImage
from .vectors import (
    Georeferenced,
    region_features,
    valid_mask,
    write_geojson,
    write_image_geotiff,
    write_mask_geotiff,
)

if TYPE_CHECKING:
    from ..predictor import Prediction

NO_ANSWER_NOTE = "This checkpoint was trained without an answer loss: it gives masks only."
NO_TARGET = "No target in this image."


def _now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Result:
    """One question's answer about one image at one threshold, everything at the image's size."""

    question: str
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # on the probability; 0.5 is the authors' "logit > 0"
    answer: str | None
    geo: Georeferenced  # GeoImage (crs None for a plain image), or an open RasterFile (tiled)
    checkpoint: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # the predictor's
    timings: dict[str, float] = field(default_factory=dict)  # the model's seconds per stage
    tiled: bool = False
    min_region_px: int = MIN_REGION_PX
    time_utc: str = field(default_factory=_now_utc)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InputError(f"The threshold is a probability strictly between 0 and 1, not "
                             f"{self.threshold}.")
        if not isinstance(self.min_region_px, int) or self.min_region_px < 1:
            raise InputError(f"The smallest region is a whole number of pixels >= 1, not "
                             f"{self.min_region_px!r}.")

    @classmethod
    def from_prediction(cls, prediction: Prediction, geo: Georeferenced, question: str,
                        threshold: float | None = None, checkpoint: str | None = None,
                        **kwargs: Any) -> Result:
        """The Result of a `Prediction` for ``question`` about ``geo``, at the prediction's threshold unless
        another is given; ``checkpoint`` names the model (default: the predictor's). Regions
        under the checkpoint's own noise floor (`SegEarthConfig.min_region_fraction`) are dropped
        too, so the Result finds a target exactly when the prediction does."""
        floor = min_region_pixels(prediction.min_region_fraction, prediction.probability.shape)
        kwargs["min_region_px"] = max(kwargs.get("min_region_px", MIN_REGION_PX), floor)
        return cls(question=question,
                   probability=prediction.probability,
                   threshold=prediction.threshold if threshold is None else threshold,
                   answer=prediction.answer, geo=geo,
                   checkpoint=checkpoint or prediction.provenance.get("checkpoint"),
                   provenance=prediction.provenance, timings=prediction.timings, **kwargs)

    def at(self, threshold: float) -> Result:
        """The same run re-thresholded, without the model."""
        return replace(self, threshold=threshold)

    # --- what the threshold gives ----------------------------------------------------------
    @cached_property
    def _regions(self) -> Regions:
        mask = valid_mask(self.probability > self.threshold, self.geo)  # the one clip
        return find_regions(mask, self.probability, self.min_region_px)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: probability > threshold, valid pixels only, small regions dropped."""
        return self._regions.mask

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
            "min_region_px": self.min_region_px,
            "dropped_regions": self.dropped_regions,
            "regions": self.region_rows(),
            "geo": self.properties if self.georeferenced else None,
        }


def write_result(result: Result, out_dir: str | Path, stem: str, *, geotiff: bool | None = None,
                 imagery: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write a run's files into ``out_dir``, names starting with ``stem``, and return them.

    With the image in memory (a GeoImage): the mask (0/255), overlay and probability PNGs.
    ``geotiff`` (default: when georeferenced): the mask GeoTIFF in the source CRS and grid.
    Georeferenced: the GeoJSON regions and the map file anyone can open (`segearth.maps`). ``imagery``: the image itself as a GeoTIFF (fetched
    tiles). Always the JSON record (`Result.record()` plus ``extra`` and the file names), last.
    Everything is computed before the first write, and each write is atomic.
    """
    out_dir = Path(out_dir)
    mask, features = result.mask, result.features
    georeferenced = result.georeferenced
    page = render_map(result) if georeferenced else None
    written: dict[str, Path] = {}
    if isinstance(result.geo, GeoImage):
        image = result.geo.image
        written["mask_png"] = save_png(mask.astype(np.uint8) * 255, out_dir / f"{stem}_mask.png")
        written["overlay_png"] = save_png(blend(image, mask), out_dir / f"{stem}_overlay.png")
        written["probability_png"] = save_png(probability_image(result.probability),
                                              out_dir / f"{stem}_probability.png")
    if georeferenced if geotiff is None else geotiff:
        written["mask_geotiff"] = write_mask_geotiff(mask, result.geo, out_dir / f"{stem}_mask.tif",
                                                     tags=result.properties)
    if features is not None:
        written["geojson"] = write_geojson(features, out_dir / f"{stem}_mask.geojson")
    if page is not None:
        with atomic_path(out_dir / f"{stem}_map.html") as tmp:
            tmp.write_text(page, encoding="utf-8")
        written["map_html"] = out_dir / f"{stem}_map.html"
    if imagery and isinstance(result.geo, GeoImage):
        source = result.geo.source
        written["image_geotiff"] = write_image_geotiff(
            result.geo, out_dir / f"{stem}_image.tif",
            tags={"attribution": source.get("attribution"), "zoom": source.get("zoom")})
    written["json"] = write_record(result, out_dir / f"{stem}.json", written, extra)
    return written


def write_record(result: Result, path: Path, files: dict[str, Path], extra: dict[str, Any] | None = None) -> Path:
    """The JSON record (`Result.record()` plus ``extra`` and the names of ``files``), atomically:
    also how a streamed run's record gets its answer once the answer is complete."""
    record = result.record() | (extra or {})
    record["files"] = {kind: file.name for kind, file in files.items() if kind != "json"}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return path
