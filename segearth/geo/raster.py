"""Rasters in, RGB out: GeoTIFFs (any band count, 8/16-bit or float) become the 8-bit RGB the model
takes, keeping the georeferencing that the outputs need to land on the map.

A large raster is never read whole by the tiled mode: `RasterFile` reads one window at a time with
one band choice and one stretch shared by every window (so colours do not jump at window seams).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from pyproj.exceptions import CRSError, ProjError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from ..errors import GeoError

#: Long side of the overview read to compute the stretch percentiles: a constant-memory sample.
STATS_SIZE = 1024
#: The one WGS84 ellipsoid every geodesic distance and area in segearth.geo is measured on.
GEOD = Geod(ellps="WGS84")


@dataclass
class GeoImage:
    """An RGB image and where it lies on Earth (crs/transform None for a plain image)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    crs: CRS | None = None
    transform: Affine | None = None  # pixel (col, row) -> CRS (x, y), GDAL convention
    valid: np.ndarray | None = None  # (H, W) bool, False at nodata / outside a drawn polygon
    source: dict[str, Any] = field(default_factory=dict)  # provenance, free-form

    @property
    def is_georeferenced(self) -> bool:
        return self.crs is not None and self.transform is not None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.shape[0], self.image.shape[1]


def lonlat_transformer(crs: CRS, what: str = "the raster") -> Transformer:
    """CRS -> EPSG:4326 (lon, lat order), or a GeoError saying how to fix an unusable CRS."""
    try:
        return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    except (CRSError, ProjError) as exc:
        name = crs.to_string() if hasattr(crs, "to_string") else str(crs)
        raise GeoError(
            f"{what} has a coordinate reference system that cannot be related to "
            f"longitude/latitude ({name[:120]}). Reproject it to a known CRS first (for example "
            f"`gdalwarp -t_srs EPSG:4326 in.tif out.tif`), or remove its georeferencing to use it "
            f"as a plain image.") from exc


def ground_resolution(crs: CRS, transform: Affine, row: float, col: float) -> float:
    """Metres on the ground of one pixel step along x at (row, col): geodesic, so it is right in
    any CRS (Web-Mercator pixels shrink with cos(latitude), degree pixels too)."""
    to_lonlat = lonlat_transformer(crs)
    x0, y0 = transform @ (col, row)
    x1, y1 = transform @ (col + 1, row)
    (lon0, lon1), (lat0, lat1) = to_lonlat.transform([x0, x1], [y0, y1])
    return float(GEOD.inv(lon0, lat0, lon1, lat1)[2])


def iter_windows(height: int, width: int, size: int, overlap: int) -> Iterator[Window]:
    """Windows of ``size`` px overlapping by ``overlap`` that cover the raster exactly. The last
    window of a row/column is shifted back to end at the edge (a full window, not a sliver)."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={size}, "
                         f"overlap={overlap}")

    def starts(n: int) -> list[int]:
        last = max(n - size, 0)
        offsets = list(range(0, last + 1, size - overlap))
        return offsets if offsets[-1] == last else offsets + [last]

    for row in starts(height):
        for col in starts(width):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def _choose_bands(count: int, colorinterp: tuple[ColorInterp, ...],
                  bands: tuple[int, ...] | None, path: Path) -> tuple[int, int, int]:
    """1-based band indexes for R, G, B. Default: the bands tagged red/green/blue, else 1-2-3,
    else the single band as grey."""
    if bands is None:
        tagged = [colorinterp.index(c) + 1 if c in colorinterp else None
                  for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)]
        if None not in tagged:
            return tuple(tagged)  # type: ignore[return-value]
        return (1, 2, 3) if count >= 3 else (1, 1, 1)
    bands = tuple(int(b) for b in bands)
    if len(bands) not in (1, 3):
        raise GeoError(f"bands={bands}: give 3 band numbers (R, G, B), e.g. (4, 3, 2) for false "
                       f"colour, or 1 for grey.")
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        raise GeoError(f"band {bad[0]} requested but {path.name} has {count} band(s), "
                       f"numbered 1..{count}.")
    return bands * 3 if len(bands) == 1 else bands  # type: ignore[return-value]


class RasterFile:
    """An open raster read as 8-bit RGB, whole (optionally decimated) or one window at a time.

    Non-8-bit data is stretched per band between the ``stretch`` percentiles of the valid pixels
    (QGIS' default cumulative cut), computed once on an overview of at most STATS_SIZE px so the
    cost and memory do not grow with the raster and every window gets the same mapping.
    """

    def __init__(self, path: str | Path, bands: tuple[int, ...] | None = None,
                 stretch: tuple[float, float] = (2, 98)):
        self.path = Path(path)
        lo, hi = stretch
        if not 0 <= lo < hi <= 100:
            raise GeoError(f"stretch={stretch}: give two percentiles 0 <= low < high <= 100.")
        self.stretch = (float(lo), float(hi))
        if not self.path.is_file():
            raise GeoError(f"{self.path}: no such file.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds = rasterio.open(self.path)
        except RasterioError as exc:
            raise GeoError(f"{self.path.name} cannot be read as a raster (corrupt, truncated or "
                           f"not a GeoTIFF/image): {exc}. Re-export or re-download it.") from exc
        try:
            self._setup(bands)
        except BaseException:
            self._ds.close()
            raise

    def _setup(self, bands: tuple[int, ...] | None) -> None:
        ds = self._ds
        self.width, self.height = ds.width, ds.height
        self.crs: CRS | None = ds.crs if ds.crs else None
        self.transform: Affine | None = ds.transform if self.crs is not None else None
        if self.crs is not None:
            lonlat_transformer(self.crs, self.path.name)
            if self.transform.is_degenerate or not all(map(np.isfinite, self.transform)):
                raise GeoError(
                    f"{self.path.name} has a coordinate system but a degenerate geotransform "
                    f"(pixel size {self.transform.a:g} x {self.transform.e:g}: a pixel covers no "
                    f"ground), so it cannot be placed on a map. Fix its georeferencing (for "
                    f"example `gdal_edit.py -a_ullr <west> <north> <east> <south> "
                    f"{self.path.name}`), or remove it (`gdal_edit.py -unsetgt -unsetsrs`) to use "
                    f"the file as a plain image.")
        self.bands = _choose_bands(ds.count, tuple(ds.colorinterp), bands, self.path)
        self._unique = sorted(set(self.bands))
        self._limits = None if ds.dtypes[0] == "uint8" else self._stretch_limits()
        self.source: dict[str, Any] = {
            "kind": "raster", "path": str(self.path), "bands": list(self.bands),
            "size": [self.width, self.height], "dtype": ds.dtypes[0]}
        if self._limits is not None:
            self.source["stretch_percentiles"] = list(self.stretch)
        if self.crs is not None:
            self.source["crs"] = self.crs.to_string()
            self.source["ground_resolution_m"] = ground_resolution(
                self.crs, self.transform, self.height / 2, self.width / 2)

    def _read_bands(self, window: Window | None, out_shape: tuple[int, int] | None,
                    resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
        """(unique bands, H, W) raw data and the (H, W) validity mask."""
        shape = None if out_shape is None else (len(self._unique), *out_shape)
        try:
            data = self._ds.read(self._unique, window=window, out_shape=shape,
                                 resampling=resampling)
            valid = self._ds.dataset_mask(window=window, out_shape=out_shape) > 0
        except RasterioError as exc:
            raise GeoError(f"{self.path.name} is damaged: reading its pixels failed ({exc}). "
                           f"Re-export or re-download it.") from exc
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        return data, valid

    def _stretch_limits(self) -> np.ndarray:
        """(unique bands, 2) low/high values per band from an overview sample."""
        scale = min(1.0, STATS_SIZE / max(self.width, self.height))
        shape = (max(1, round(self.height * scale)), max(1, round(self.width * scale)))
        data, valid = self._read_bands(None, shape, Resampling.nearest)
        if not valid.any():
            raise GeoError(f"{self.path.name} has no valid pixels (everything is nodata).")
        return np.stack([np.percentile(band[valid], self.stretch) for band in data])

    def _to_geoimage(self, data: np.ndarray, valid: np.ndarray,
                     transform: Affine | None) -> GeoImage:
        if self._limits is None:
            planes = data
        else:
            lo, hi = self._limits[:, 0, None, None], self._limits[:, 1, None, None]
            span = np.where(hi > lo, hi - lo, 1.0)
            planes = np.clip((data.astype(np.float32) - lo) / span * 255.0, 0, 255)
            planes = np.nan_to_num(planes).round().astype(np.uint8)
        rgb = np.stack([planes[self._unique.index(b)] for b in self.bands], axis=-1)
        rgb[~valid] = 0
        return GeoImage(image=rgb, crs=self.crs, transform=transform,
                        valid=None if valid.all() else valid, source=dict(self.source))

    def read(self, max_size: int | None = None) -> GeoImage:
        """The whole raster, decimated (area average) so its long side is at most ``max_size``;
        the transform is scaled to match, so outputs still land in the right place."""
        if max_size is None or max(self.width, self.height) <= max_size:
            data, valid = self._read_bands(None, None, Resampling.nearest)
            return self._to_geoimage(data, valid, self.transform)
        scale = max_size / max(self.width, self.height)
        shape = (max(1, round(self.height * scale)), max(1, round(self.width * scale)))
        data, valid = self._read_bands(None, shape, Resampling.average)
        transform = None if self.transform is None else self.transform @ Affine.scale(
            self.width / shape[1], self.height / shape[0])
        geo = self._to_geoimage(data, valid, transform)
        geo.source["decimated_to"] = [shape[1], shape[0]]
        if self.crs is not None:
            geo.source["ground_resolution_m"] = ground_resolution(
                self.crs, transform, shape[0] / 2, shape[1] / 2)
        return geo

    def read_window(self, window: Window) -> GeoImage:
        """One window at native resolution, with its own transform."""
        data, valid = self._read_bands(window, None, Resampling.nearest)
        transform = None if self.transform is None else self._ds.window_transform(window)
        geo = self._to_geoimage(data, valid, transform)
        geo.source["window"] = [int(window.col_off), int(window.row_off),
                                int(window.width), int(window.height)]
        return geo

    def close(self) -> None:
        self._ds.close()

    def __enter__(self) -> RasterFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_raster(path: str | Path, bands: tuple[int, ...] | None = None,
                stretch: tuple[float, float] = (2, 98), max_size: int | None = None) -> GeoImage:
    """Read a GeoTIFF (or any raster GDAL reads, georeferenced or not) as an RGB GeoImage.

    ``bands`` are 1-based: (4, 3, 2) is NIR-R-G false colour of an RGBN file, (1,) is grey.
    ``max_size`` bounds the long side by decimation (the single-resize mode never needs more than
    a few times the model input); None reads at native resolution.
    """
    with RasterFile(path, bands, stretch) as raster:
        return raster.read(max_size)

