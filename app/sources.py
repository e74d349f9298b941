"""Where the image comes from: a drawn map area (fetched tiles) or an uploaded file.

Both become a `GeoImage` (crs None for a plain photo). The last few are kept, keyed by what the
user gave, so a follow-up question about the same area neither refetches tiles nor re-reads the
file (and, with the same pixels, `LoadedModel.answer` skips the encoder too).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from cachetools import LRUCache

from segearth.errors import InputError
from segearth.geo import GeoImage, RasterFile, TileSource, fetch_area
from segearth.pipelines import SINGLE_PASS_MAX_SIZE

from .config import Limits
from .guard import check_image_size


class SourceCache:
    """The last `size` GeoImages, keyed by (kind, what the user gave). Uploads larger than
    `limits` allow are refused from their header, before their pixels are read."""

    def __init__(self, size: int = 4, limits: Limits = Limits()):
        self.limits = limits
        self._items: LRUCache[tuple, GeoImage] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def _get(self, key: tuple, load: Callable[[], GeoImage]) -> tuple[GeoImage, bool]:
        with self._lock:
            if key in self._items:
                return self._items[key], True
        geo = load()  # outside the lock: a slow tile server does not hold up cached answers
        with self._lock:
            self._items[key] = geo
        return geo, False

    def area(self, geometry: dict, tiles: TileSource, max_tiles: int) -> tuple[GeoImage, bool]:
        """Imagery of the drawn area (EPSG:3857) and whether it came from the cache."""
        key = ("area", json.dumps(geometry, sort_keys=True), tiles.url, max_tiles)
        return self._get(key, lambda: fetch_area(geometry, tiles, max_tiles=max_tiles))

    def upload(self, path: str | Path) -> tuple[GeoImage, bool]:
        """An uploaded image or GeoTIFF and whether it came from the cache."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError:
            raise InputError(f"The uploaded file {path.name} is gone; upload it again.") from None
        key = ("upload", str(path), stat.st_size, stat.st_mtime_ns)
        return self._get(key, lambda: self._read(path))

    def _read(self, path: Path) -> GeoImage:
        with RasterFile(path) as raster:
            check_image_size(raster.width, raster.height, raster.crs is not None, path.name,
                             self.limits)
            return raster.read(SINGLE_PASS_MAX_SIZE)
