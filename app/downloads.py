"""The files a run offers for download, written fresh for the threshold shown in the page.

mask PNG (0/255 at the image's size), overlay PNG (what the image view shows), and for
georeferenced inputs the mask GeoTIFF (source CRS) and GeoJSON polygons (EPSG:4326, with areas),
plus a JSON record of the run. The geo files are written by segearth.geo, like the CLI's.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from segearth.geo import write_geojson, write_mask_geotiff

from .render import blend, png_bytes
from .runs import RunView

MASK_PNG = "mask.png"
OVERLAY_PNG = "overlay.png"
MASK_GEOTIFF = "mask.tif"
MASK_GEOJSON = "mask.geojson"
RECORD_JSON = "run.json"


def write_downloads(view: RunView, opacity: float) -> list[Path]:
    """Write the downloads into a new temporary folder (Gradio moves them into its cache)."""
    folder = Path(tempfile.mkdtemp(prefix="segearth-run-"))
    geo = view.run.geo
    (folder / MASK_PNG).write_bytes(png_bytes(view.mask.astype(np.uint8) * 255))
    (folder / OVERLAY_PNG).write_bytes(png_bytes(blend(geo.image, view.mask, opacity)))
    paths = [folder / MASK_PNG, folder / OVERLAY_PNG]
    if view.features is not None:
        paths.append(write_mask_geotiff(view.mask, geo, folder / MASK_GEOTIFF,
                                        tags=view.run.properties(view.threshold)))
        paths.append(write_geojson(view.features, folder / MASK_GEOJSON))
    record = folder / RECORD_JSON
    record.write_text(json.dumps(view.record(), indent=2, default=str), encoding="utf-8")
    paths.append(record)
    return paths
