"""Map layers: bounds stay the raster's own when a big raster is shrunk for the browser."""
from __future__ import annotations

import base64
import io

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

from app.render import MAX_DISPLAY_SIZE, map_layer
from segearth.maps import mask_rgba
from segearth.geo import GeoImage
from segearth.geo.raster import lonlat_transformer


def test_a_large_mask_is_shrunk_but_keeps_its_place():
    height, width = 100, 3 * MAX_DISPLAY_SIZE // 2
    mask = np.zeros((height, width), bool)
    mask[:, : width // 2] = True
    transform = Affine(0.5, 0, 1_280_000.0, 0, -0.5, 6_130_000.0)  # EPSG:3857, 0.5 m pixels
    geo = GeoImage(np.zeros((height, width, 3), np.uint8), CRS.from_epsg(3857), transform)

    layer = map_layer(mask_rgba(mask), geo)

    png = Image.open(io.BytesIO(base64.b64decode(layer["url"].split(",", 1)[1])))
    assert png.size == (MAX_DISPLAY_SIZE, round(height * MAX_DISPLAY_SIZE / width))
    alpha = np.asarray(png)[..., 3]
    half = MAX_DISPLAY_SIZE // 2
    assert alpha[:, : half - 1].all() and not alpha[:, half + 1:].any()
    (west, east), (north, south) = lonlat_transformer(geo.crs).transform(
        [transform.c, transform.c + 0.5 * width], [transform.f, transform.f - 0.5 * height])
    np.testing.assert_allclose(layer["bounds"], [[south, west], [north, east]], atol=1e-9)

