"""Imagery for a drawn area: XYZ web-map tiles fetched, stitched and cropped to the area.

The tile server is chosen by whoever runs SegEarth (env var ``SEGEARTH_TILE_URL``), not by the
person drawing the area; the default is Esri World Imagery, with its attribution carried into
every output. The zoom is the finest one at which the area fits under a tile cap, which bounds
both the download and the image size.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mercantile
import numpy as np
import requests
import shapely
from affine import Affine
from PIL import Image, UnidentifiedImageError
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from requests.adapters import HTTPAdapter
from shapely.errors import GEOSException
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from urllib3.exceptions import ReadTimeoutError
from urllib3.util import Retry

from ..errors import GeoError
from ..fileio import atomic_path
from .raster import GEOD, GeoImage, ground_resolution

#: (west, south, east, north) in degrees, a shapely (Multi)Polygon in lon/lat, or a GeoJSON
#: geometry/Feature dict (what a map widget's draw tool gives).
Area = tuple[float, float, float, float] | BaseGeometry | Mapping[str, Any]

#: Coarsest zoom still worth segmenting (~38 m/px at the equator); an area that needs more tiles
#: than the cap even here is too big to fetch.
MIN_USEFUL_ZOOM = 12
MERCATOR_MAX_LAT = 85.0511287798
USER_AGENT = "segearth-r1/0.1 (geospatial pixel reasoning)"
#: Asked about a map with nothing drawn on it (the app and the notebook add their other ways).
NO_AREA = "No area drawn: draw a rectangle or polygon on the map (tools at its top left)"
_TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


@dataclass(frozen=True)
class TileSource:
    """An XYZ tile server: ``url`` has {z}, {x}, {y} placeholders (Web-Mercator, y from north)."""

    url: str
    attribution: str
    max_zoom: int = 19
    name: str = "custom"

    def __post_init__(self) -> None:
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in self.url]
        if missing or urlsplit(self.url).scheme not in ("http", "https"):
            raise GeoError(f"tile URL {self.url!r} must be http(s) with {{z}}, {{x}} and {{y}} "
                           f"placeholders, e.g. https://tiles.example.com/{{z}}/{{x}}/{{y}}.png")

    @classmethod
    def default(cls) -> TileSource:
        """Esri World Imagery (via xyzservices, which keeps its URL and attribution current)."""
        import xyzservices.providers as xyz

        provider = xyz.Esri.WorldImagery
        return cls(url=provider.build_url(), attribution=provider.attribution,
                   max_zoom=int(provider.get("max_zoom") or 19), name=provider.name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TileSource:
        """``SEGEARTH_TILE_URL`` (+ ``SEGEARTH_TILE_ATTRIBUTION``, ``SEGEARTH_TILE_MAX_ZOOM``)
        if set, else the default."""
        url = environ.get("SEGEARTH_TILE_URL", "").strip()
        if not url:
            return cls.default()
        host = urlsplit(url).hostname or url
        max_zoom = environ.get("SEGEARTH_TILE_MAX_ZOOM", "19")
        if not max_zoom.isdigit():
            raise GeoError(f"SEGEARTH_TILE_MAX_ZOOM={max_zoom!r}: give a whole number like 19.")
        return cls(url=url, max_zoom=int(max_zoom), name=host,
                   attribution=environ.get("SEGEARTH_TILE_ATTRIBUTION", f"Imagery from {host}"))

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def public_url(self) -> str:
        """The template without its query string, which may hold an API key."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    def tile_url(self, tile: mercantile.Tile) -> str:
        return self.url.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace(
            "{y}", str(tile.y))


def _geojson_shape(area: Mapping[str, Any]) -> BaseGeometry:
    """A GeoJSON geometry, Feature or FeatureCollection (what map widgets, geojson.io and QGIS
    export) as one shapely geometry: a collection's shapes become their union."""
    try:
        if area.get("type") == "FeatureCollection":
            features = area.get("features") or []
            if not features:
                raise GeoError("The GeoJSON FeatureCollection has no features: draw or export at "
                               "least one polygon.")
            return shapely.union_all([_geojson_shape(feature) for feature in features])
        return shape(area.get("geometry") or area)
    except RecursionError:
        raise GeoError("The area's GeoJSON is nested too deeply to be a map shape: send one "
                       "polygon, a Feature or a FeatureCollection of polygons.") from None
    except (AttributeError, KeyError, TypeError, ValueError, GEOSException) as exc:
        raise GeoError(f"The drawn area is not a valid GeoJSON geometry ({exc}).") from exc


def _area_bounds(area: Area) -> tuple[tuple[float, float, float, float], BaseGeometry | None]:
    """Validated (west, south, east, north) and the polygon, if one was given."""
    polygon = None
    if isinstance(area, Mapping):
        area = _geojson_shape(area)
    if isinstance(area, BaseGeometry):
        polygon = shapely.make_valid(area) if not area.is_valid else area
        if polygon.is_empty or polygon.area == 0:
            raise GeoError("The drawn area is empty (no surface): draw a polygon or box with an "
                           "inside.")
        bounds = tuple(float(v) for v in polygon.bounds)
    else:
        try:
            bounds = tuple(float(v) for v in area)
        except (TypeError, ValueError) as exc:
            raise GeoError(f"area {area!r}: give (west, south, east, north) in degrees or a "
                           f"shapely Polygon in lon/lat.") from exc
        if len(bounds) != 4:
            raise GeoError(f"area {area!r}: give 4 numbers (west, south, east, north).")
    west, south, east, north = bounds
    if not all(math.isfinite(v) for v in bounds):
        raise GeoError(f"area {bounds}: coordinates must be finite numbers.")
    if west > east or min(west, east) < -180 or max(west, east) > 180:
        raise GeoError(f"The area (west={west}, east={east}) crosses the antimeridian or leaves "
                       f"-180..180. Split it into two areas at 180 degrees, or give longitudes "
                       f"in -180..180 with west < east.")
    if south > north:
        raise GeoError(f"south={south} is north of north={north}: give (west, south, east, "
                       f"north).")
    if west == east or south == north:
        raise GeoError(f"The area {bounds} is empty (zero width or height): draw a larger one.")
    if south < -MERCATOR_MAX_LAT or north > MERCATOR_MAX_LAT:
        raise GeoError(f"Latitudes {south}..{north} leave the web-map range "
                       f"(-85.05..85.05): tiles do not exist there.")
    return (west, south, east, north), polygon


def _tile_range(bbox: tuple[float, float, float, float], zoom: int) -> tuple[mercantile.Tile,
                                                                            mercantile.Tile]:
    """Upper-left and lower-right tiles covering bbox (mercantile's epsilon: an area ending on a
    tile edge does not pull in the next tile)."""
    west, south, east, north = bbox
    return (mercantile.tile(west, north, zoom),
            mercantile.tile(east - mercantile.LL_EPSILON, south + mercantile.LL_EPSILON, zoom))


def choose_zoom(bbox: tuple[float, float, float, float], max_zoom: int, max_tiles: int,
                min_zoom: int = MIN_USEFUL_ZOOM) -> int:
    """The finest zoom in min_zoom..max_zoom whose tiles covering bbox number <= max_tiles."""
    min_zoom = min(min_zoom, max_zoom)  # a server that stops early: its finest is all there is
    for zoom in range(max_zoom, min_zoom - 1, -1):
        ul, lr = _tile_range(bbox, zoom)
        if (lr.x - ul.x + 1) * (lr.y - ul.y + 1) <= max_tiles:
            return zoom
    west, south, east, north = bbox
    mid = (south + north) / 2
    width_km = GEOD.inv(west, mid, east, mid)[2] / 1000
    height_km = GEOD.inv(west, south, west, north)[2] / 1000
    ul, lr = _tile_range(bbox, min_zoom)
    needed = (lr.x - ul.x + 1) * (lr.y - ul.y + 1)
    raise GeoError(f"The area is about {width_km:.1f} km x {height_km:.1f} km: even at zoom "
                   f"{min_zoom}, the coarsest useful one, it needs {needed} tiles, over the cap "
                   f"of {max_tiles}. Draw a smaller area, or raise max_tiles.")


class _TileCache:
    """Raw tile bytes on disk, one folder per URL template, written atomically."""

    def __init__(self, root: Path, source: TileSource):
        self.root = Path(root) / hashlib.sha1(source.url.encode()).hexdigest()[:16]

    def _path(self, tile: mercantile.Tile) -> Path:
        return self.root / str(tile.z) / str(tile.x) / str(tile.y)

    def get(self, tile: mercantile.Tile) -> bytes | None:
        path = self._path(tile)
        return path.read_bytes() if path.is_file() else None

    def put(self, tile: mercantile.Tile, content: bytes) -> None:
        with atomic_path(self._path(tile)) as tmp:
            tmp.write_bytes(content)


def _decode(content: bytes, source: TileSource, tile: mercantile.Tile,
            content_type: str) -> np.ndarray:
    """(h, w, 4) RGBA uint8, or a GeoError for anything that is not an image."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            return np.asarray(img.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise GeoError(f"Tile server {source.host} returned something that is not an image for "
                       f"tile {tile.z}/{tile.x}/{tile.y} (Content-Type {content_type or 'none'}, "
                       f"starts {content[:40]!r}). Check the tile URL template "
                       f"({source.public_url}).") from exc


#: HTTP statuses worth retrying: rate limits and server trouble; a 404 will not change.
RETRY_STATUSES = (429, 500, 502, 503, 504)


def tile_session(retries: int, pool_size: int = 8) -> requests.Session:
    """A requests session that retries timeouts, refused connections, 429 and 5xx ``retries``
    times with exponential backoff (0.25 s, 0.5 s, ..., at most 2 s), via urllib3's Retry."""
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                  backoff_factor=0.25, backoff_max=2.0, status_forcelist=RETRY_STATUSES,
                  allowed_methods=frozenset({"GET"}), raise_on_status=False,
                  respect_retry_after_header=False)
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _download(session: requests.Session, source: TileSource, tile: mercantile.Tile,
              timeout: float, retries: int) -> tuple[bytes, str]:
    """Tile bytes and content type; the session retries what can succeed later, every other
    HTTP error is final (retrying a 404 cannot help)."""
    where = f"tile {tile.z}/{tile.x}/{tile.y}"
    tries = f"({retries + 1} tries)"
    try:
        response = session.get(source.tile_url(tile), timeout=timeout)
    except requests.RequestException as exc:
        timed_out = isinstance(exc, requests.Timeout) or isinstance(
            getattr(exc.args[0] if exc.args else None, "reason", None), ReadTimeoutError)
        problem = (f"did not answer within {timeout:g} s" if timed_out
                   else f"cannot be reached ({type(exc).__name__})")
        raise GeoError(f"Tile server {source.host} {problem} for {where} {tries}. It may be down "
                       f"or overloaded: try again later, or set SEGEARTH_TILE_URL to another "
                       f"server.") from None
    if response.status_code == 200:
        return response.content, response.headers.get("Content-Type", "")
    problem = f"answered HTTP {response.status_code} {response.reason or ''}".rstrip()
    if response.status_code in RETRY_STATUSES:
        raise GeoError(f"Tile server {source.host} {problem} for {where} {tries}. It may be "
                       f"down or overloaded: try again later, or set SEGEARTH_TILE_URL to another "
                       f"server.")
    hint = " (no imagery there at this zoom, or a wrong URL template)" if response.status_code == 404 else ""
    raise GeoError(f"Tile server {source.host} {problem} for {where}{hint}. "
                   f"Template: {source.public_url}")


def _fetch_tile(session: requests.Session, source: TileSource, tile: mercantile.Tile,
                timeout: float, retries: int, cache: _TileCache | None) -> np.ndarray:
    content = cache.get(tile) if cache else None
    if content is not None:
        return _decode(content, source, tile, "cached")
    content, content_type = _download(session, source, tile, timeout, retries)
    rgba = _decode(content, source, tile, content_type)
    if cache:
        cache.put(tile, content)
    return rgba


def _fetch_mosaic(source: TileSource, tiles: list[mercantile.Tile], timeout: float, retries: int,
                  cache: _TileCache | None) -> dict[mercantile.Tile, np.ndarray]:
    """All tiles, concurrently; the first failure cancels the rest and is raised."""
    workers = min(8, len(tiles))
    pool = ThreadPoolExecutor(max_workers=workers)
    with tile_session(retries, workers) as session:
        try:
            futures = {pool.submit(_fetch_tile, session, source, t, timeout, retries, cache): t
                       for t in tiles}
            return {futures[f]: f.result() for f in as_completed(futures)}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def fetch_area(area: Area, source: TileSource, max_tiles: int = 64, timeout: float = 10.0,
               retries: int = 2, cache_dir: str | Path | None = None,
               min_zoom: int = MIN_USEFUL_ZOOM) -> GeoImage:
    """Imagery of ``area`` in EPSG:3857, cropped to its bounding box.

    For a polygon, ``valid`` is False outside it (the imagery there is kept as context for the
    model; outputs are clipped to the polygon). Transparent tile pixels are not valid either.
    """
    bbox, polygon = _area_bounds(area)
    try:
        zoom = choose_zoom(bbox, source.max_zoom, max_tiles, min_zoom)
    except GeoError as exc:
        parts = len(getattr(polygon, "geoms", ()))
        if parts < 2:
            raise
        raise GeoError(f"The area's {parts} separate shapes are too far apart to fetch as one "
                       f"area: {exc} Ask about each shape on its own.") from None
    ul, lr = _tile_range(bbox, zoom)
    tiles = [mercantile.Tile(x, y, zoom) for y in range(ul.y, lr.y + 1)
             for x in range(ul.x, lr.x + 1)]
    cache = _TileCache(Path(cache_dir), source) if cache_dir is not None else None
    fetched = _fetch_mosaic(source, tiles, timeout, retries, cache)

    size = fetched[ul].shape[0]
    if any(a.shape != (size, size, 4) for a in fetched.values()):
        raise GeoError(f"Tile server {source.host} returned tiles of different or non-square "
                       f"sizes; an XYZ server must serve equal square tiles.")
    mosaic = np.zeros(((lr.y - ul.y + 1) * size, (lr.x - ul.x + 1) * size, 4), np.uint8)
    for t, rgba in fetched.items():
        mosaic[(t.y - ul.y) * size:(t.y - ul.y + 1) * size,
               (t.x - ul.x) * size:(t.x - ul.x + 1) * size] = rgba

    origin = mercantile.xy_bounds(ul)
    res = (origin.right - origin.left) / size
    west, south, east, north = bbox
    x0, y0 = _TO_MERCATOR.transform(west, north)
    x1, y1 = _TO_MERCATOR.transform(east, south)
    col0 = math.floor((x0 - origin.left) / res)
    row0 = math.floor((origin.top - y0) / res)
    col1 = max(col0 + 1, math.ceil((x1 - origin.left) / res))
    row1 = max(row0 + 1, math.ceil((origin.top - y1) / res))
    crop = mosaic[row0:row1, col0:col1]
    transform = Affine(res, 0, origin.left + col0 * res, 0, -res, origin.top - row0 * res)

    valid = crop[..., 3] > 0
    if polygon is not None:
        projected = shapely.transform(polygon, lambda x, y: _TO_MERCATOR.transform(x, y),
                                      interleaved=False)
        # all_touched: a pixel partly inside counts, as the box crop keeps partial edge pixels
        valid &= geometry_mask([projected], out_shape=valid.shape, transform=transform,
                               all_touched=True, invert=True)
    crs = CRS.from_epsg(3857)
    return GeoImage(
        image=np.ascontiguousarray(crop[..., :3]), crs=crs, transform=transform,
        valid=None if valid.all() else valid,
        source={"kind": "tiles", "name": source.name, "url": source.public_url,
                "attribution": source.attribution, "zoom": zoom, "tiles": len(tiles),
                "bbox": list(bbox), "area": None if polygon is None else mapping(polygon),
                "ground_resolution_m": ground_resolution(
                    crs, transform, crop.shape[0] / 2, crop.shape[1] / 2)})
