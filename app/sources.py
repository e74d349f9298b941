"""Where the image comes from: a drawn map area (fetched tiles) or an uploaded file.

Both become a `GeoImage` (crs None for a plain photo). The last few are kept, keyed by what the
user gave, so a follow-up question about the same area neither refetches tiles nor re-reads the
file (and, with the same pixels, `LoadedModel.use_image` skips the encoder too).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from segearth.errors import InputError
from segearth.geo import GeoImage, TileSource, fetch_area, read_raster
from segearth.geo.pipeline import SINGLE_PASS_MAX_SIZE


class SourceCache:
    """The last `size` GeoImages, keyed by (kind, what the user gave)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[tuple, GeoImage] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: tuple, load) -> tuple[GeoImage, bool]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key], True
        geo = load()
        with self._lock:
            self._items[key] = geo
            if len(self._items) > self.size:
                self._items.popitem(last=False)
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
        return self._get(key, lambda: read_raster(path, max_size=SINGLE_PASS_MAX_SIZE))
