"""The files a run offers for download, written for the threshold shown in the page (once per
threshold: a slider release that comes back to a threshold, or moves the opacity, reuses them).

segearth's one writer makes them (`segearth.write_result`), so they are the command line's:
mask PNG (0/255), overlay PNG, probability PNG and the JSON record; for georeferenced inputs also
the mask GeoTIFF (source CRS) and the GeoJSON regions (EPSG:4326, with areas and scores).
"""
from __future__ import annotations

import errno
import logging
import shutil
import tempfile
from pathlib import Path

from segearth import write_result
from segearth.errors import SegEarthError

from .runs import RunView


log = logging.getLogger("segearth.app")


class OutputError(SegEarthError):
    """The server could not write a run's files (its disk is full or failing)."""


def downloads_at(view: RunView) -> list[Path]:
    """The run's files at the view's threshold, written the first time that threshold is shown
    and reused after: an opacity release, or the threshold slider back at a value already
    shown, writes nothing."""
    written = view.run.downloads.get(view.threshold)
    if written is None:
        written = view.run.downloads[view.threshold] = write_downloads(view)
    return written


def write_downloads(view: RunView) -> list[Path]:
    """Write the downloads into a new temporary folder (Gradio copies them into its cache).
    All or nothing: if any file fails (a full disk), the folder and what it holds are removed
    and the visitor is told; no partial set is ever offered."""
    folder = Path(tempfile.mkdtemp(prefix="segearth-run-"))
    try:
        return list(write_result(view.result, folder, view.run.name,
                                 extra=view.record_extra()).values())
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        log.exception("writing the downloads failed")
        reason = "its disk is full" if err.errno == errno.ENOSPC else "a write failed"
        raise OutputError(f"The server could not write this run's files ({reason}), so there is "
                          f"nothing to download. Try again in a while.") from None
