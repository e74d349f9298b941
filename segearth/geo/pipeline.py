"""One question about a GeoTIFF or a map area, answered with files a GIS opens: the mask as a
GeoTIFF in the source CRS and its regions as GeoJSON polygons, both carrying the question, the
answer and where the imagery came from.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import SegEarthConfig
from ..regions import MIN_REGION_PX, min_region_pixels
from .raster import GeoImage, RasterFile, read_raster
from .result import Result, write_result
from .tiled import predict_tiled
from .tiles import Area, TileSource, fetch_area
from .vectors import Georeferenced

#: Long side to which the single-resize mode decimates a big raster on read: the model sees
#: 1024 px anyway, and this keeps a huge GeoTIFF from being loaded whole.
SINGLE_PASS_MAX_SIZE = 4096


class PredictorLike(Protocol):
    """What predict_geo needs of segearth.predictor.Predictor."""

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(self, question: str, threshold: float | None = None, answer: bool = True) -> Any: ...


class _MostConfidentWindow:
    """predict_probability for the tiled mode. Windows are predicted without generating an
    answer (the costly part per window); the one answer of the run is generated afterwards for
    the window that was most confident, the one that saw the target best."""

    def __init__(self, predictor: PredictorLike, question: str, threshold: float | None):
        self.predictor, self.question, self.threshold = predictor, question, threshold
        self.score, self.image = -1.0, None
        self.min_region_fraction = 0.0  # the checkpoint's noise floor, as its predictions say

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.predictor.set_image(rgb)
        prediction = self.predictor.predict(self.question, threshold=self.threshold, answer=False)
        probability = prediction.probability
        self.min_region_fraction, self.threshold = prediction.min_region_fraction, prediction.threshold
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


def _segment(predictor: PredictorLike, grid: Georeferenced, question: str, threshold: float | None,
             tiled: bool, window: int, overlap: int, checkpoint: str | None,
             min_region_px: int) -> Result:
    """The Result at the grid's own size: one resize, or windows at native resolution."""
    if not tiled:
        predictor.set_image(grid.image)
        return Result.from_prediction(predictor.predict(question, threshold=threshold), grid,
                                      question, checkpoint=checkpoint, min_region_px=min_region_px)
    windows = _MostConfidentWindow(predictor, question, threshold)
    probability = predict_tiled(windows, grid, window, overlap)
    answer, provenance = windows.answer()
    floor = min_region_pixels(windows.min_region_fraction, (window, window))  # per window's canvas
    if windows.threshold is None:  # no window had data: the mask is empty at any threshold
        windows.threshold = SegEarthConfig.mask_threshold
    return Result(question, probability, windows.threshold, answer, grid,
                  checkpoint=checkpoint or provenance.get("checkpoint"), provenance=provenance,
                  tiled=True, min_region_px=max(min_region_px, floor))


def predict_geo(predictor: PredictorLike, source: str | Path | Area | GeoImage, question: str,
                out_dir: str | Path, *, tiled: bool = False, tile_source: TileSource | None = None,
                checkpoint_name: str | None = None, threshold: float | None = None,
                bands: tuple[int, ...] | None = None, window: int = 1024, overlap: int = 128,
                max_tiles: int = 64, cache_dir: str | Path | None = None,
                name: str | None = None, min_region_px: int = MIN_REGION_PX) -> dict[str, Path]:
    """Segment ``question`` in a raster file, a GeoImage or a lon/lat area and write the outputs
    (`write_result`) at ``threshold`` (None: the checkpoint's own); regions under
    ``min_region_px`` pixels are dropped.

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
        result = _segment(predictor, grid, question, threshold, tiled, window, overlap,
                          checkpoint_name, min_region_px)
        return write_result(result, out_dir, stem, geotiff=True, imagery=fetched)
