"""The files a run offers for download, written fresh for the threshold shown in the page.

segearth's own writers make them, so they match the CLI's: mask PNG (0/255), overlay PNG,
probability PNG and the JSON record; for georeferenced inputs also the mask GeoTIFF (source CRS)
and the GeoJSON polygons (EPSG:4326, with areas).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from segearth.geo import write_geojson, write_mask_geotiff
from segearth.outputs import write_prediction

from .runs import RunView


def write_downloads(view: RunView) -> list[Path]:
    """Write the downloads into a new temporary folder (Gradio copies them into its cache)."""
    folder = Path(tempfile.mkdtemp(prefix="segearth-run-"))
    run = view.run
    written = write_prediction(view.prediction, run.geo.image, run.question, folder, run.name,
                               extra=view.record_extra())
    paths = list(written.values())
    if view.features is not None:
        paths.append(write_mask_geotiff(view.prediction.mask, run.geo,
                                        folder / f"{run.name}_mask.tif",
                                        tags=run.properties(view.threshold)))
        paths.append(write_geojson(view.features, folder / f"{run.name}_mask.geojson"))
    return paths
