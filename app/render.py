"""Images for the browser: the mask as a map overlay, a georeferenced image as a map layer
(reprojected to the map's Web Mercator), PNG data URLs. No model, so the sliders re-render in
milliseconds. The blended image itself is segearth.visualize's, as in the CLI's files.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import shape

from segearth import Result
from segearth.geo import GeoImage, lonlat_transformer
from segearth.visualize import HIGHLIGHT_COLOR, MASK_COLOR, blend, outline

#: Longest side of images sent to the browser: enough for a sharp map overlay, small enough
#: that a slider move stays a small message.
MAX_DISPLAY_SIZE = 2048
WEB_MERCATOR = CRS.from_epsg(3857)
#: Context kept around a region when the image view zooms to it, as a share of its size.
REGION_MARGIN = 0.5
#: Smallest side of the zoomed image view, in pixels of the image.
MIN_REGION_VIEW = 48


def mask_rgba(mask: np.ndarray) -> np.ndarray:
    """The mask in segearth's mask colour, transparent elsewhere; the map sets its opacity."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = (*MASK_COLOR, 255)
    return rgba


def data_url(array: np.ndarray) -> str:
    """A PNG data URL: the map's overlays travel inside the component's props, no file route."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _shrink(rgba: np.ndarray, transform: Affine) -> tuple[np.ndarray, Affine]:
    """At most MAX_DISPLAY_SIZE on the long side (nearest: mask edges stay hard)."""
    height, width = rgba.shape[:2]
    scale = MAX_DISPLAY_SIZE / max(height, width)
    if scale >= 1:
        return rgba, transform
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(rgba).resize(size, Image.NEAREST))
    return small, transform @ Affine.scale(width / size[0], height / size[1])


def map_layer(rgba: np.ndarray, geo: GeoImage) -> dict:
    """`rgba` (at `geo`'s grid) as a map image layer: {"url", "bounds": [[S, W], [N, E]]}.

    The map is Web Mercator and stretches an image linearly between its corners, so a raster in
    another CRS (UTM GeoTIFFs) is reprojected first; fetched tiles already are EPSG:3857.
    """
    rgba, transform = _shrink(rgba, geo.transform)
    height, width = rgba.shape[:2]
    if geo.crs != WEB_MERCATOR:
        left, top = transform @ (0, 0)
        right, bottom = transform @ (width, height)
        dst_transform, dst_width, dst_height = calculate_default_transform(
            geo.crs, WEB_MERCATOR, width, height, left=min(left, right), bottom=min(top, bottom),
            right=max(left, right), top=max(top, bottom))
        warped = np.zeros((4, dst_height, dst_width), np.uint8)
        reproject(np.moveaxis(rgba, -1, 0), warped, src_transform=transform, src_crs=geo.crs,
                  dst_transform=dst_transform, dst_crs=WEB_MERCATOR,
                  resampling=Resampling.nearest)
        rgba, transform = np.moveaxis(warped, 0, -1), dst_transform
        height, width = dst_height, dst_width
    to_lonlat = lonlat_transformer(WEB_MERCATOR)
    (west, east), (north, south) = to_lonlat.transform(
        [transform.c, transform.c + transform.a * width],
        [transform.f, transform.f + transform.e * height])
    return {"url": data_url(np.ascontiguousarray(rgba)), "bounds": [[south, west], [north, east]]}


def image_rgba(geo: GeoImage) -> np.ndarray:
    """The image as RGBA, transparent where not valid (nodata, outside a drawn polygon)."""
    alpha = np.full(geo.shape, 255, np.uint8) if geo.valid is None else geo.valid * np.uint8(255)
    return np.dstack([geo.image, alpha])


def feature_bounds(features: dict, rank: int) -> list[list[float]] | None:
    """Leaflet bounds [[S, W], [N, E]] of the region of ``rank`` in a FeatureCollection."""
    geometry = features["features"][rank - 1]["geometry"]
    if geometry is None:
        return None
    west, south, east, north = shape(geometry).bounds
    return [[south, west], [north, east]]


def region_view(result: Result, rank: int, opacity: float) -> np.ndarray:
    """The image view zoomed to one region: the blended image cropped around it, with its
    outline drawn in the highlight colour (the map's highlight, for plain images)."""
    col0, row0, col1, row1 = result.regions[rank - 1].bbox
    height, width = result.mask.shape
    pad_x = max(round((col1 - col0) * REGION_MARGIN), (MIN_REGION_VIEW - (col1 - col0)) // 2, 0)
    pad_y = max(round((row1 - row0) * REGION_MARGIN), (MIN_REGION_VIEW - (row1 - row0)) // 2, 0)
    rows = slice(max(0, row0 - pad_y), min(height, row1 + pad_y))
    cols = slice(max(0, col0 - pad_x), min(width, col1 + pad_x))
    image = blend(result.geo.image, result.mask, opacity)
    image[outline(result.labels == rank)] = HIGHLIGHT_COLOR
    return image[rows, cols]
