"""What the browser is sent besides text: map layers (an RGBA picture from segearth.maps, shrunk
and reprojected to the map's Web Mercator as in the map files, as a PNG data URL with its bounds),
a region's bounds, and the image view zoomed to a region. No model, so the sliders re-render in
milliseconds.
"""
from __future__ import annotations

import numpy as np
from shapely.geometry import shape

from segearth import Result
from segearth.geo import GeoImage
from segearth.maps import data_url, web_mercator
from segearth.visualize import HIGHLIGHT_COLOR, MASK_COLOR, blend, outline

#: Longest side of images sent to the browser: enough for a sharp map overlay, small enough
#: that a slider move stays a small message.
MAX_DISPLAY_SIZE = 2048
#: Context kept around a region when the image view zooms to it, as a share of its size.
REGION_MARGIN = 0.5
#: Smallest side of the zoomed image view, in pixels of the image.
MIN_REGION_VIEW = 48


def map_layer(rgba: np.ndarray, geo: GeoImage) -> dict:
    """`rgba` (at `geo`'s grid) as a map image layer: {"url", "bounds": [[S, W], [N, E]]},
    placed as in the map files (`segearth.maps.web_mercator`)."""
    rgba, bounds = web_mercator(rgba, geo.crs, geo.transform, MAX_DISPLAY_SIZE)
    return {"url": data_url(rgba), "bounds": bounds}


def feature_bounds(features: dict, rank: int) -> list[list[float]] | None:
    """Leaflet bounds [[S, W], [N, E]] of the region of ``rank`` in a FeatureCollection."""
    geometry = features["features"][rank - 1]["geometry"]
    if geometry is None:
        return None
    west, south, east, north = shape(geometry).bounds
    return [[south, west], [north, east]]


def region_view(result: Result, rank: int, opacity: float,
                color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """The image view zoomed to one region: the blended image cropped around it, with its
    outline drawn in the highlight colour (the map's highlight, for plain images)."""
    col0, row0, col1, row1 = result.regions[rank - 1].bbox
    height, width = result.mask.shape
    pad_x = max(round((col1 - col0) * REGION_MARGIN), (MIN_REGION_VIEW - (col1 - col0)) // 2, 0)
    pad_y = max(round((row1 - row0) * REGION_MARGIN), (MIN_REGION_VIEW - (row1 - row0)) // 2, 0)
    rows = slice(max(0, row0 - pad_y), min(height, row1 + pad_y))
    cols = slice(max(0, col0 - pad_x), min(width, col1 + pad_x))
    image = blend(result.geo.image, result.mask, opacity, color)
    image[outline(result.labels == rank)] = HIGHLIGHT_COLOR
    return image[rows, cols]
