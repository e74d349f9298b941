"""The files a run offers for download, written fresh for the threshold shown in the page.

segearth's own writers make them, so they match the CLI's: mask PNG (0/255), overlay PNG,
probability PNG and the JSON record; for georeferenced inputs also the mask GeoTIFF (source CRS)
and the GeoJSON polygons (EPSG:4326, with areas).
"""
from __future__ import annotations

import errno
import logging
import shutil
import tempfile
from pathlib import Path

from segearth.errors import SegEarthError
from segearth.geo import write_geojson, write_mask_geotiff
from segearth.outputs import write_prediction

from .runs import RunView


log = logging.getLogger("segearth.app")


class OutputError(SegEarthError):
    """The server could not write a run's files (its disk is full or failing)."""


def write_downloads(view: RunView) -> list[Path]:
    """Write the downloads into a new temporary folder (Gradio copies them into its cache).
    All or nothing: if any file fails (a full disk), the folder and what it holds are removed
    and the visitor is told; no partial set is ever offered."""
    folder = Path(tempfile.mkdtemp(prefix="segearth-run-"))
    try:
        return _write(view, folder)
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        log.exception("writing the downloads failed")
        reason = "its disk is full" if err.errno == errno.ENOSPC else "a write failed"
        raise OutputError(f"The server could not write this run's files ({reason}), so there is "
                          f"nothing to download. Try again in a while.") from None


def _write(view: RunView, folder: Path) -> list[Path]:
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
