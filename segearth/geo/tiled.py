"""Tiled mode: overlapping windows at native resolution, merged into one probability map.

The paper resizes the whole image to the model input, which erases targets a few pixels wide in a
large raster. Here each window is predicted at its own resolution; a raster file is read one
window at a time, so memory is the output map plus one window, whatever the raster's size.

Merging rule: the maximum over the windows that cover a pixel. A target cut by one window's edge
is usually seen whole by its neighbour, and the maximum keeps that full view instead of diluting
it with the cut one (an average would); it also needs no second accumulator array.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from .raster import GeoImage, RasterFile, iter_windows

#: rgb (h, w, 3) uint8 -> probability (h, w) float32 in [0, 1] at that image's size.
ProbabilityFn = Callable[[np.ndarray], np.ndarray]


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
