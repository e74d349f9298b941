"""User-facing errors. Each message says what went wrong *and what to do*; the CLI prints it
without a traceback and the app shows it in the page."""
from __future__ import annotations


class SegEarthError(Exception):
    """A problem the user can fix."""


class InputError(SegEarthError):
    """A file, image, question or option the user gave cannot be used."""


class CheckpointError(SegEarthError):
    """A checkpoint cannot be found, read or matched to the model."""


class GeoError(SegEarthError):
    """A geospatial input (area, raster, tile server, CRS) cannot be used."""
