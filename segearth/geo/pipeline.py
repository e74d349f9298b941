"""One question about a GeoTIFF or a map area, answered with files a GIS opens: the mask as a
GeoTIFF in the source CRS and its polygons as GeoJSON, both carrying the question, the answer and
where the imagery came from.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..fileio import atomic_path
from ..outputs import write_prediction
from .raster import GeoImage, RasterFile, read_raster
from .tiled import predict_tiled
from .tiles import Area, TileSource, fetch_area
from .vectors import (
    Georeferenced,
    mask_to_features,
    write_geojson,
    write_image_geotiff,
    write_mask_geotiff,
)

#: Long side to which the single-resize mode decimates a big raster on read: the model sees
#: 1024 px anyway, and this keeps a huge GeoTIFF from being loaded whole.
SINGLE_PASS_MAX_SIZE = 4096


class PredictorLike(Protocol):
    """What predict_geo needs of segearth.predictor.Predictor."""

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(self, question: str, threshold: float = 0.5, answer: bool = True) -> Any: ...


class _MostConfidentWindow:
    """predict_probability for the tiled mode. Windows are predicted without generating an
    answer (the costly part per window); the one answer of the run is generated afterwards for
    the window that was most confident, the one that saw the target best."""

    def __init__(self, predictor: PredictorLike, question: str, threshold: float):
        self.predictor, self.question, self.threshold = predictor, question, threshold
        self.score, self.image = -1.0, None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.predictor.set_image(rgb)
        probability = self.predictor.predict(self.question, threshold=self.threshold,
                                             answer=False).probability
        score = float(probability.max(initial=0.0))
        if score > self.score:
            self.score, self.image = score, rgb
        return probability

    def answer(self) -> tuple[str | None, dict[str, Any]]:
        """(answer, provenance) for the most confident window; (None, {}) if all were nodata."""
        if self.image is None:
            return None, {}
        self.predictor.set_image(self.image)
        prediction = self.predictor.predict(self.question, threshold=self.threshold)
        return prediction.answer, prediction.provenance


def _segment(predictor: PredictorLike, grid: Georeferenced, question: str, threshold: float,
             tiled: bool, window: int, overlap: int) -> tuple[np.ndarray, str | None, dict, Any]:
    """(mask, answer, provenance, the single-pass Prediction or None) at the grid's own size."""
    if tiled:
        windows = _MostConfidentWindow(predictor, question, threshold)
        probability = predict_tiled(windows, grid, window, overlap)
        return probability > threshold, *windows.answer(), None  # '>' as Predictor's mask
    predictor.set_image(grid.image)
    prediction = predictor.predict(question, threshold=threshold)
    return prediction.mask, prediction.answer, prediction.provenance, prediction


def run_properties(question: str, answer: str | None, checkpoint: str | None,
                   source: dict[str, Any], threshold: float, tiled: bool = False,
                   time_utc: str | None = None) -> dict[str, Any]:
    """What travels with every georeferenced output (GeoJSON properties, GeoTIFF tags)."""
    props: dict[str, Any] = {
        "question": question, "answer": answer, "checkpoint": checkpoint,
        "imagery": source.get("path") or source.get("url"),
        "attribution": source.get("attribution"), "zoom": source.get("zoom"),
        "ground_resolution_m": source.get("ground_resolution_m"),
        "mode": "tiled" if tiled else "single", "threshold": threshold,
        "time_utc": time_utc or datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if props["ground_resolution_m"] is not None:
        props["ground_resolution_m"] = round(float(props["ground_resolution_m"]), 4)
    return props


def predict_geo(predictor: PredictorLike, source: str | Path | Area | GeoImage, question: str,
                out_dir: str | Path, *, tiled: bool = False, tile_source: TileSource | None = None,
                checkpoint_name: str | None = None, threshold: float = 0.5,
                bands: tuple[int, ...] | None = None, window: int = 1024, overlap: int = 128,
                max_tiles: int = 64, cache_dir: str | Path | None = None,
                name: str | None = None) -> dict[str, Path]:
    """Segment ``question`` in a raster file, a GeoImage or a lon/lat area and write the outputs.

    Returns the written paths: ``mask_geotiff`` and the JSON run record always; ``geojson`` when
    the input is georeferenced; ``image_geotiff`` (the fetched imagery) for an area; the mask,
    overlay and probability PNGs in the single-pass mode. File names start with
    ``name`` (default: the raster's stem, or "area"). Everything is computed before anything is
    written, and each write is atomic, so a failure leaves no partial output.
    """
    is_path = isinstance(source, (str, Path))
    fetched = not is_path and not isinstance(source, GeoImage)
    stem = name or (Path(source).stem if is_path else "area")
    with ExitStack() as stack:
        grid: Georeferenced
        if is_path and tiled:
            grid = stack.enter_context(RasterFile(source, bands))  # read window by window
        elif is_path:
            grid = read_raster(source, bands, max_size=SINGLE_PASS_MAX_SIZE)
        elif fetched:
            grid = fetch_area(source, tile_source or TileSource.from_env(), max_tiles=max_tiles,
                              cache_dir=cache_dir)
        else:
            grid = source
        mask, answer, provenance, prediction = _segment(predictor, grid, question, threshold,
                                                        tiled, window, overlap)
        props = run_properties(question, answer, checkpoint_name or provenance.get("checkpoint"),
                               grid.source, threshold, tiled)
        georeferenced = grid.crs is not None and grid.transform is not None
        features = mask_to_features(mask, grid, props) if georeferenced else None

        out_dir = Path(out_dir)
        written = {"mask_geotiff": write_mask_geotiff(mask, grid, out_dir / f"{stem}_mask.tif",
                                                      tags=props)}
        if features is not None:
            written["geojson"] = write_geojson(features, out_dir / f"{stem}_mask.geojson")
        if fetched:
            written["image_geotiff"] = write_image_geotiff(
                grid, out_dir / f"{stem}_image.tif",
                tags={"attribution": grid.source["attribution"], "zoom": grid.source["zoom"]})
        extra = {"geo": props, "files": {k: p.name for k, p in written.items()}}
        if prediction is not None:  # the pictures and the run record, as for a plain image
            written |= write_prediction(prediction, grid.image, question, out_dir, stem, extra)
        else:
            with atomic_path(out_dir / f"{stem}.json") as tmp:
                tmp.write_text(json.dumps({"question": question, "answer": answer, **extra},
                                          indent=2, default=str))
            written["json"] = out_dir / f"{stem}.json"
        return written
