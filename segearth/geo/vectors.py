"""Masks out to GIS: a GeoTIFF in the source CRS and GeoJSON polygons in EPSG:4326 with geodesic
areas, written atomically so a failed run never leaves a half-written file behind.

Areas are geodesic (pyproj.Geod on WGS84 over the lon/lat polygon), not planar in the source CRS:
Web-Mercator area is off by 1/cos^2(latitude) (x4 at 60 degrees), and even UTM drifts by the scale
factor away from its central meridian.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from pyproj import Geod
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from shapely.geometry import mapping, shape

from ..errors import GeoError
from ..fileio import atomic_path
from .raster import GeoImage, RasterFile, lonlat_transformer

#: Anything that says where pixels lie: a GeoImage, or an open RasterFile in the tiled mode.
Georeferenced = GeoImage | RasterFile
_GEOD = Geod(ellps="WGS84")


def _size(geo: Georeferenced) -> tuple[int, int]:
    return geo.shape if isinstance(geo, GeoImage) else (geo.height, geo.width)


def _clipped(mask: np.ndarray, geo: Georeferenced) -> np.ndarray:
    """Boolean mask, False where the GeoImage is not valid (nodata, outside a drawn polygon)."""
    if mask.shape != _size(geo):
        raise ValueError(f"mask shape {mask.shape} does not match the image {_size(geo)}")
    mask = mask.astype(bool)
    if isinstance(geo, GeoImage) and geo.valid is not None:
        mask &= geo.valid
    return mask


def mask_to_features(mask: np.ndarray, geo: Georeferenced, properties: dict[str, Any]) -> dict:
    """GeoJSON FeatureCollection (EPSG:4326) of the mask's connected regions, largest first.

    Each polygon is simplified by about one pixel (removes the staircase, keeps the shape) and
    carries ``id``, ``area_m2``, ``area_ha``, ``perimeter_m`` and ``properties``; the collection's
    ``properties`` repeat them with ``feature_count``, ``total_area_m2`` and ``total_area_ha``.
    """
    if geo.crs is None or geo.transform is None:
        raise GeoError("This image has no georeferencing, so its mask cannot be placed on a map. "
                       "Use a GeoTIFF or a map area for GeoJSON output.")
    to_lonlat = lonlat_transformer(geo.crs)
    mask = _clipped(mask, geo)
    tolerance = float(np.hypot(geo.transform.a, geo.transform.d))
    regions = []
    for geometry, _ in shapes(mask.view(np.uint8), mask=mask, transform=geo.transform):
        polygon = shape(geometry).simplify(tolerance, preserve_topology=True)
        lonlat = shapely.transform(polygon, lambda x, y: to_lonlat.transform(x, y),
                                   interleaved=False)
        lonlat = shapely.orient_polygons(shapely.make_valid(lonlat))  # RFC 7946: CCW exteriors
        area, perimeter = _GEOD.geometry_area_perimeter(lonlat)
        regions.append((abs(area), perimeter, lonlat))
    regions.sort(key=lambda r: -r[0])
    features = [{"type": "Feature", "geometry": mapping(geom),
                 "properties": {"id": i, "area_m2": round(area, 2), "area_ha": round(area / 1e4, 6),
                                "perimeter_m": round(perimeter, 2), **properties}}
                for i, (area, perimeter, geom) in enumerate(regions, start=1)]
    total = sum(r[0] for r in regions)
    return {"type": "FeatureCollection", "features": features,
            "properties": {**properties, "feature_count": len(features),
                           "total_area_m2": round(total, 2),
                           "total_area_ha": round(total / 1e4, 6)}}


def _json_value(value: Any) -> Any:
    """numpy scalars/arrays and paths in properties become plain JSON."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def write_geojson(fc: dict, path: str | Path) -> Path:
    """Write a FeatureCollection as UTF-8 GeoJSON, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(fc, fh, ensure_ascii=False, default=_json_value)
    return path


def _write_geotiff(bands: np.ndarray, geo: Georeferenced, path: str | Path,
                   tags: dict[str, Any] | None, photometric: str) -> Path:
    """(count, H, W) uint8 as a DEFLATE-compressed tiled GeoTIFF (plain TIFF if not georeferenced),
    with ``tags`` as TIFF metadata so the question and answer travel with the file."""
    path = Path(path)
    count, height, width = bands.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count,
               "dtype": "uint8", "compress": "deflate", "photometric": photometric}
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if geo.crs is not None and geo.transform is not None:
        profile.update(crs=geo.crs, transform=geo.transform)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(bands)
            if tags:
                dst.update_tags(**{k: json.dumps(v, default=_json_value) if not isinstance(v, str)
                                   else v for k, v in tags.items()})
    return path


def write_mask_geotiff(mask: np.ndarray, geo: Georeferenced, path: str | Path,
                       tags: dict[str, Any] | None = None) -> Path:
    """The mask as single-band uint8 0 (background) / 255 (target), in the source CRS and grid.

    0/255 rather than 0/1 so it is visible in any image viewer as well as in QGIS; pixels that
    were nodata or outside a drawn polygon are 0.
    """
    mask = _clipped(mask, geo)
    return _write_geotiff((mask.astype(np.uint8) * 255)[None], geo, path, tags, "minisblack")


def write_image_geotiff(geo: GeoImage, path: str | Path,
                        tags: dict[str, Any] | None = None) -> Path:
    """The RGB imagery itself (e.g. the fetched tiles), to lay under the mask in QGIS."""
    return _write_geotiff(np.moveaxis(geo.image, -1, 0), geo, path, tags, "rgb")
