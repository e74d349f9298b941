"""What the map is sent: layers (an RGBA picture from segearth.maps, shrunk and reprojected to
the map's Web Mercator as in the map files, as a PNG data URL with its bounds) and a region's
bounds. No model, so the sliders re-render in milliseconds. (A plain image's close-up of a
region is the library's `segearth.visualize.region_view`.)
"""
from __future__ import annotations

import numpy as np
from shapely.geometry import shape

from segearth.geo import GeoImage
from segearth.maps import data_url, web_mercator

#: Longest side of images sent to the browser: enough for a sharp map overlay, small enough
#: that a slider move stays a small message.
MAX_DISPLAY_SIZE = 2048


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

