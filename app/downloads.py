"""The files a run offers for download, written fresh for the threshold shown in the page.

segearth's one writer makes them (`segearth.geo.write_result`), so they are the command line's:
mask PNG (0/255), overlay PNG, probability PNG and the JSON record; for georeferenced inputs also
the mask GeoTIFF (source CRS) and the GeoJSON regions (EPSG:4326, with areas and scores).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from segearth.geo import write_result

from .runs import RunView


def write_downloads(view: RunView) -> list[Path]:
    """Write the downloads into a new temporary folder (Gradio copies them into its cache)."""
    folder = Path(tempfile.mkdtemp(prefix="segearth-run-"))
    return list(write_result(view.result, folder, view.run.name,
                             extra=view.record_extra()).values())
