"""The files a run offers for download, written for the threshold shown in the page (once per
threshold: a slider release that comes back to a threshold, or moves the opacity, reuses them),
and the images the page shows. A run's downloads are written once its answer is complete, so
its JSON record holds the answer; a set written before (the threshold slider moved while the
answer was decoded) has its record written again, in place (`add_answer`), since nothing else
in the set depends on the answer.
Each set is a folder in Gradio's own file cache (`files_root`), where Gradio serves a file as
it is: a file outside it would be read whole to hash it and copied in, in every update that names
it (twice per run), on the server's event loop. The sets of a run the page can no longer show are
removed at once, and every set is removed after `DOWNLOADS_TTL_S`, as Gradio clears its cache
(`ui.build_app`'s `delete_cache`).

segearth's one writer makes them (`segearth.write_result`), so they are the command line's:
mask PNG (0/255), overlay PNG, probability PNG and the JSON record; for georeferenced inputs also
the mask GeoTIFF (source CRS) and the GeoJSON regions (EPSG:4326, with areas and scores).
"""
from __future__ import annotations

import errno
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gradio.utils import get_upload_folder

from segearth import write_result
from segearth.outputs import save_png, write_record
from segearth.errors import SegEarthError

from .runs import Run, RunView


log = logging.getLogger("segearth.app")
#: Seconds a set of download files is kept.
DOWNLOADS_TTL_S = 3600
#: Seconds between two sweeps for expired sets (a sweep lists the whole temporary directory).
SWEEP_EVERY_S = 60
#: Folder names: a set of downloads, and a run's page images (never taken for a set).
FOLDER_PREFIX = "segearth-run-"
IMAGES_PREFIX = "segearth-page-"
_last_sweep = float("-inf")  # time.monotonic() of the last sweep


class OutputError(SegEarthError):
    """The server could not write a run's files (its disk is full or failing)."""


def files_root() -> Path:
    """Gradio's file cache (`GRADIO_TEMP_DIR`, else its folder in the temporary directory), where
    the run folders go."""
    return Path(get_upload_folder())


def downloads_at(view: RunView) -> list[Path]:
    """The run's files at the view's threshold, written the first time that threshold is shown
    and reused after: an opacity release, or the threshold slider back at a value already
    shown, writes nothing."""
    written = view.run.downloads.get(view.threshold)
    if written is None or not all(path.exists() for path in written.values()):  # new, or swept
        written = view.run.downloads[view.threshold] = write_downloads(view)
    return list(written.values())


def add_answer(run: Run) -> None:
    """The run's answer is complete: write each of its sets' JSON record again, now with the
    answer and the answer's timings (the other files do not depend on the answer)."""
    for threshold, written in run.downloads.items():
        view = run.at(threshold)
        try:
            write_record(view.result, written["json"], written, extra=view.record_extra())
        except OSError as err:
            raise _output_error(err) from None


def page_image(view: RunView, name: str, pixels: Callable[[], np.ndarray]) -> str:
    """An image the page shows for `view`, as a PNG file in the run's folder, drawn and written
    the first time: an update that shows it again (the answer's, an opacity back at a value
    shown) hands Gradio the same file instead of an array it would encode again. `name` says
    what else the pixels depend on."""
    run = view.run
    if run.folder is None or not run.folder.exists():  # new, or swept
        run.folder = _new_folder(IMAGES_PREFIX)
    path = run.folder / f"{name}-{view.threshold:.3f}.png"
    if not path.exists():
        try:
            save_png(pixels(), path)
        except OSError as err:
            raise _output_error(err) from None
    return str(path)


def discard_downloads(run: Run) -> None:
    """Remove every set written for `run`, and its images (a question the page can no longer
    show)."""
    folders = {path.parent for written in run.downloads.values() for path in written.values()}
    for folder in folders | ({run.folder} if run.folder else set()):
        shutil.rmtree(folder, ignore_errors=True)
    run.downloads.clear()
    run.folder = None


def sweep(now: float | None = None) -> None:
    """Remove the sets and page images older than `DOWNLOADS_TTL_S`, so a long-running
    server's disk does not fill with files nobody can download any more."""
    limit = (time.time() if now is None else now) - DOWNLOADS_TTL_S
    root = files_root()
    for folder in [*root.glob(FOLDER_PREFIX + "*"), *root.glob(IMAGES_PREFIX + "*")]:
        try:
            if folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # removed meanwhile by another worker
            continue


def write_downloads(view: RunView) -> dict[str, Path]:
    """Write the downloads into a new folder of Gradio's cache. All or nothing: if any file
    fails (a full disk), the folder and what it holds are removed and the visitor is told; no
    partial set is ever offered."""
    global _last_sweep
    if time.monotonic() - _last_sweep >= SWEEP_EVERY_S:
        _last_sweep = time.monotonic()
        sweep()
    folder = _new_folder(FOLDER_PREFIX)
    try:
        return write_result(view.result, folder, view.run.name, extra=view.record_extra())
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise _output_error(err) from None


def _new_folder(prefix: str) -> Path:
    """A new folder in Gradio's cache."""
    try:
        root = files_root()
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError as err:
        raise _output_error(err) from None


def _output_error(err: OSError) -> OutputError:
    """What the visitor is told when a write failed (the traceback goes to the log)."""
    log.exception("writing the downloads failed")
    reason = "its disk is full" if err.errno == errno.ENOSPC else "a write failed"
    return OutputError(f"The server could not write this run's files ({reason}), so there is "
                       f"nothing to download. Try again in a while.")
