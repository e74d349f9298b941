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
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import GeoError
from ..fileio import atomic_path
from ..regions import MIN_REGION_PX, Regions, find_regions
from .raster import GEOD, GeoImage, RasterFile, lonlat_transformer

#: Anything that says where pixels lie: a GeoImage, or an open RasterFile in the tiled mode.
Georeferenced = GeoImage | RasterFile


def _size(geo: Georeferenced) -> tuple[int, int]:
    return geo.shape if isinstance(geo, GeoImage) else (geo.height, geo.width)


def valid_mask(mask: np.ndarray, geo: Georeferenced) -> np.ndarray:
    """Boolean mask, False where the GeoImage is not valid (nodata, outside a drawn polygon)."""
    if mask.shape != _size(geo):
        raise ValueError(f"mask shape {mask.shape} does not match the image {_size(geo)}")
    mask = mask.astype(bool)
    if isinstance(geo, GeoImage) and geo.valid is not None:
        mask &= geo.valid
    return mask


def drawn_area(geo: Georeferenced) -> BaseGeometry | None:
    """The lon/lat area the imagery was fetched for (a drawn polygon or box), if it was."""
    source = geo.source
    if source.get("area") is not None:
        return shape(source["area"])
    if source.get("kind") == "tiles" and source.get("bbox") is not None:
        return box(*source["bbox"])
    return None


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    """The polygons of a geometry (an intersection can leave slivers of lines and points), one
    Polygon or MultiPolygon, oriented as RFC 7946 asks (counter-clockwise exteriors)."""
    parts, stack = [], [geometry]
    while stack:
        part = stack.pop()
        if part.geom_type == "Polygon" and not part.is_empty:
            parts.append(part)
        elif hasattr(part, "geoms"):
            stack.extend(part.geoms)
    if not parts:
        return None
    merged = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return shapely.orient_polygons(merged)


def region_features(found: Regions, geo: Georeferenced, properties: dict[str, Any]) -> dict:
    """GeoJSON FeatureCollection (EPSG:4326) of the regions, in rank order (largest first).

    Each region's outline is traced on its own labels, simplified by about one pixel (removes
    the staircase, keeps the shape), clipped to the raster's footprint in its own CRS and, for
    fetched imagery, to the drawn area in lon/lat (the fetched pixels overhang it by up to one
    pixel), so every vertex lies inside to floating-point precision. Each feature carries
    ``id`` and ``rank``, ``score``/``peak`` (mean/max probability), ``pixels``, ``area_m2``,
    ``area_ha``, ``perimeter_m`` (geodesic) and ``properties``; the collection's ``properties``
    repeat them with ``feature_count``, the totals and the dropped-region count.
    """
    if geo.crs is None or geo.transform is None:
        raise GeoError("This image has no georeferencing, so its mask cannot be placed on a map. "
                       "Use a GeoTIFF or a map area for GeoJSON output.")
    if found.labels.shape != _size(geo):
        raise ValueError(f"labels shape {found.labels.shape} does not match the image {_size(geo)}")
    to_lonlat = lonlat_transformer(geo.crs)
    height, width = _size(geo)
    footprint = shapely.Polygon([geo.transform @ corner for corner in
                                 ((0, 0), (width, 0), (width, height), (0, height))])
    area = drawn_area(geo)
    tolerance = float(np.hypot(geo.transform.a, geo.transform.d))
    features, total = [], 0.0
    for region in found.regions:
        col0, row0, col1, row1 = region.bbox
        inside = found.labels[row0:row1, col0:col1] == region.rank
        window = geo.transform @ Affine.translation(col0, row0)
        outline = shapely.union_all([shape(g) for g, _ in shapes(
            inside.view(np.uint8), mask=inside, transform=window)])
        outline = shapely.make_valid(outline.simplify(tolerance, preserve_topology=True))
        outline = shapely.intersection(outline, footprint)
        lonlat = shapely.make_valid(shapely.transform(
            outline, lambda x, y: to_lonlat.transform(x, y), interleaved=False))
        if area is not None:
            lonlat = shapely.intersection(lonlat, area)
        polygons = _polygonal(lonlat)
        square_m, perimeter = ((0.0, 0.0) if polygons is None
                               else GEOD.geometry_area_perimeter(polygons))
        square_m = abs(square_m)
        total += square_m
        features.append({
            "type": "Feature", "geometry": None if polygons is None else mapping(polygons),
            "properties": {"id": region.rank, "rank": region.rank,
                           "score": round(region.score, 4), "peak": round(region.peak, 4),
                           "pixels": region.pixels, "area_m2": round(square_m, 2),
                           "area_ha": round(square_m / 1e4, 6), "perimeter_m": round(perimeter, 2),
                           **properties}})
    return {"type": "FeatureCollection", "features": features,
            "properties": {**properties, "feature_count": len(features),
                           "total_area_m2": round(total, 2), "total_area_ha": round(total / 1e4, 6),
                           "min_region_px": found.min_px, "dropped_regions": found.dropped}}


def mask_to_features(mask: np.ndarray, geo: Georeferenced, properties: dict[str, Any],
                     probability: np.ndarray | None = None,
                     min_region_px: int = MIN_REGION_PX) -> dict:
    """`region_features` of a bare mask (clipped to the valid pixels); without ``probability``
    every region scores 1."""
    mask = valid_mask(mask, geo)
    probability = mask.astype(np.float32) if probability is None else probability
    return region_features(find_regions(mask, probability, min_region_px), geo, properties)


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
    mask = valid_mask(mask, geo)
    return _write_geotiff((mask.astype(np.uint8) * 255)[None], geo, path, tags, "minisblack")


def write_image_geotiff(geo: GeoImage, path: str | Path,
                        tags: dict[str, Any] | None = None) -> Path:
    """The RGB imagery itself (e.g. the fetched tiles), to lay under the mask in QGIS."""
    return _write_geotiff(np.moveaxis(geo.image, -1, 0), geo, path, tags, "rgb")
