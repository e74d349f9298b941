"""Running the predictor over more than one image: a GeoTIFF, a map area or a large raster,
single pass (one resize) or tiled (overlapping windows at native resolution), answered with
files a GIS opens (`write_result`): the mask as a GeoTIFF in the source CRS and its regions as
GeoJSON polygons, both carrying the question, the answer and where the imagery came from.

Tiled mode: the paper resizes the whole image to the model input, which erases targets a few
pixels wide in a large raster. Here each window is predicted at its own resolution; a raster
file is read one window at a time, so memory is the output map plus one window, whatever the
raster's size. Merging rule: the maximum over the windows that cover a pixel. A target cut by
one window's edge is usually seen whole by its neighbour, and the maximum keeps that full view
instead of diluting it with the cut one (an average would); it also needs no second
accumulator array. The merged probability then goes through the one mask rule like any other.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import numpy as np
from rasterio.windows import Window

from .config import threshold_or_default
from .geo.raster import GeoImage, RasterFile, iter_windows, read_raster
from .geo.tiles import Area, TileSource, fetch_area
from .geo.vectors import Georeferenced
from .outputs import write_result
from .regions import MIN_REGION_PX
from .result import Result

#: Long side to which the single-resize mode decimates a big raster on read: the model sees
#: 1024 px anyway, and this keeps a huge GeoTIFF from being loaded whole.
SINGLE_PASS_MAX_SIZE = 4096

#: rgb (h, w, 3) uint8 -> probability (h, w) float32 in [0, 1] at that image's size.
ProbabilityFn = Callable[[np.ndarray], np.ndarray]


class PredictorLike(Protocol):
    """What the pipelines need of segearth.predictor.Predictor."""

    def set_image(self, image: np.ndarray | GeoImage) -> None: ...

    def predict(self, question: str, threshold: float | None = None, answer: bool = True,
                min_region_px: int = 1) -> Result: ...

    def answer(self, result: Result) -> str | None: ...


# --- tiled mode: the window loop ------------------------------------------------------------------
def _merge_windows(predict_probability: ProbabilityFn, height: int, width: int,
                   read: Callable[[Window], GeoImage], window: int, overlap: int) -> np.ndarray:
    out = np.zeros((height, width), np.float32)
    for win in iter_windows(height, width, window, overlap):
        part = read(win)
        if part.valid is not None and not part.valid.any():
            continue  # all nodata: nothing to find, skip the model call
        prob = np.asarray(predict_probability(part.image), dtype=np.float32)
        if prob.shape != part.shape:
            raise ValueError(f"predict_probability returned {prob.shape} for a window of "
                             f"{part.shape}; it must return the window's own size")
        if part.valid is not None:
            prob = np.where(part.valid, prob, 0.0)
        rows, cols = win.toslices()
        np.maximum(out[rows, cols], prob, out=out[rows, cols])
    return out


def predict_tiled(predict_probability: ProbabilityFn,
                  path_or_geoimage: str | Path | GeoImage | RasterFile,
                  window: int = 1024, overlap: int = 128, *,
                  bands: tuple[int, ...] | None = None,
                  stretch: tuple[float, float] = (2, 98)) -> np.ndarray:
    """(H, W) float32 probability at native resolution, 0 at nodata.

    ``bands``/``stretch`` apply when a path is given (see read_raster); a RasterFile already has
    them. Windows are ``window`` px with ``overlap`` px shared between neighbours.
    """
    if isinstance(path_or_geoimage, (str, Path)):
        with RasterFile(path_or_geoimage, bands, stretch) as raster:
            return predict_tiled(predict_probability, raster, window, overlap)
    if isinstance(path_or_geoimage, RasterFile):
        raster = path_or_geoimage
        return _merge_windows(predict_probability, raster.height, raster.width,
                              raster.read_window, window, overlap)
    geo = path_or_geoimage

    def read(win: Window) -> GeoImage:
        rows, cols = win.toslices()
        return GeoImage(image=geo.image[rows, cols],
                        valid=None if geo.valid is None else geo.valid[rows, cols])

    return _merge_windows(predict_probability, *geo.shape, read, window, overlap)


class _MostConfidentWindow:
    """predict_probability for the tiled mode. Windows are predicted without generating an
    answer (the costly part per window); the one answer of the run is generated afterwards, for
    the merged mask, from the window that was most confident: the one that saw the target best."""

    def __init__(self, predictor: PredictorLike, question: str, threshold: float | None):
        self.predictor, self.question, self.threshold = predictor, question, threshold
        self.score, self.best = -1.0, None
        self.last: Result | None = None  # the last window's result: the checkpoint's settings

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        self.predictor.set_image(rgb)
        self.last = self.predictor.predict(self.question, threshold=self.threshold, answer=False)
        score = float(self.last.probability.max(initial=0.0))
        if score > self.score:
            self.score, self.best = score, (rgb, self.last.provenance)
        return self.last.probability

    def result(self, probability: np.ndarray, grid: Georeferenced, window: int, checkpoint: str | None,
               min_region_px: int) -> Result:
        """The merged Result, answered (see `Predictor.answer`) from the most confident window."""
        last = self.last
        if last is not None:
            threshold = last.threshold
        else:  # no window had data: the mask is empty at any threshold
            threshold = threshold_or_default(self.threshold, None)
        result = Result(self.question, probability, threshold, None, grid, tiled=True, min_region_px=min_region_px,
                        min_region_fraction=last.min_region_fraction if last else 0.0,
                        min_region_score=last.min_region_score if last else 0.0,
                        canvas_side_px=window)
        if self.best is not None:
            rgb, result.provenance = self.best
        if result.found:  # the answer continues the best window's question
            self.predictor.set_image(rgb)
            self.predictor.predict(self.question, threshold=result.threshold, answer=False)
        result.answer = self.predictor.answer(result)
        result.checkpoint = checkpoint or result.provenance.get("checkpoint")
        return result


# --- one run over a raster or an area -------------------------------------------------------------
def _segment(predictor: PredictorLike, grid: Georeferenced, question: str, threshold: float | None,
             tiled: bool, window: int, overlap: int, checkpoint: str | None,
             min_region_px: int) -> Result:
    """The Result at the grid's own size: one resize, or windows at native resolution."""
    if not tiled:
        predictor.set_image(grid)
        result = predictor.predict(question, threshold=threshold, min_region_px=min_region_px)
        result.checkpoint = checkpoint or result.checkpoint
        return result
    windows = _MostConfidentWindow(predictor, question, threshold)
    probability = predict_tiled(windows, grid, window, overlap)
    return windows.result(probability, grid, window, checkpoint, min_region_px)


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
