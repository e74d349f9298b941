"""Known-content inputs for the geo tests: a loopback XYZ tile server whose tiles show a red square
at a known lon/lat, GeoTIFF writers, and a stand-in predictor that segments red pixels."""
from __future__ import annotations

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import mercantile
import numpy as np
import rasterio
from PIL import Image
from pyproj import Transformer

from segearth import Result
from segearth.geo import GeoImage

#: The red square drawn into every tile: (west, south, east, north) in degrees (~150 m x 145 m).
RED_BOX = (11.5000, 48.1000, 11.5020, 48.1013)
RED = (230, 20, 20)
BACKGROUND = (60, 110, 60)
TILE = 256
SLOW_SECONDS = 1.5
_TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def render_tile(z: int, x: int, y: int) -> np.ndarray:
    """(256, 256, 3) tile: background, red where the pixel centre lies in RED_BOX."""
    bounds = mercantile.xy_bounds(x, y, z)
    res = (bounds.right - bounds.left) / TILE
    centres = np.arange(TILE) + 0.5
    xs, ys = bounds.left + centres * res, bounds.top - centres * res
    (x0, x1), (y0, y1) = _TO_MERCATOR.transform([RED_BOX[0], RED_BOX[2]],
                                                [RED_BOX[1], RED_BOX[3]])
    inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    tile = np.empty((TILE, TILE, 3), np.uint8)
    tile[:] = BACKGROUND
    tile[inside] = RED
    return tile


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class _TileHandler(BaseHTTPRequestHandler):
    """/MODE/z/x/y.png with MODE: ok, missing (404), error (500), junk (HTML with 200), slow,
    flaky (503 on each tile's first request, then the tile), drop (the connection closes halfway
    through the tile)."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server: TileServer = self.server  # type: ignore[assignment]
        mode, z, x, y = self.path.strip("/").removesuffix(".png").split("/")
        with server.lock:
            server.hits[mode] += 1
            first = self.path not in server.seen
            server.seen.add(self.path)
        if mode == "missing" or mode == "error" or (mode == "flaky" and first):
            status = {"missing": 404, "error": 500}.get(mode, 503)
            self._send(status, "text/plain", b"no tile")
        elif mode == "junk":
            self._send(200, "text/html", b"<html><body>Service temporarily moved</body></html>")
        else:
            if mode == "slow":
                time.sleep(SLOW_SECONDS)
            body = _png(render_tile(int(z), int(x), int(y)))
            self._send(200, "image/png", body, cut=len(body) // 2 if mode == "drop" else None)

    def _send(self, status: int, content_type: str, body: bytes, cut: int | None = None) -> None:
        """Send `body`, or, with `cut`, only its first `cut` bytes before closing (the length
        header still promises all of it)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body[:cut])
            if cut is not None:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left (the slow mode)

    def log_message(self, *args: object) -> None:
        pass


class TileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TileHandler)
        self.hits: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/{{z}}/{{x}}/{{y}}.png"


def write_raster(path: Path, bands: np.ndarray, crs: str | None = None,
                 transform=None, nodata: float | None = None, **profile) -> Path:
    """(count, H, W) array as a GeoTIFF (plain TIFF when crs is None)."""
    count, height, width = bands.shape
    options = dict(driver="GTiff", width=width, height=height, count=count, dtype=bands.dtype,
                   nodata=nodata, **profile)
    if crs is not None:
        options.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(bands)
    return path


class RedPredictor:
    """Stand-in for segearth.predictor.Predictor with the two methods predict_geo calls.

    It 'segments' strongly red pixels after shrinking the image so its long side is at most
    ``input_size`` (as the real model's resize to its 1024 input does), then scales the result
    back to the image's own size - so small targets vanish in big images, as with the model.
    """

    def __init__(self, input_size: int = 1024):
        self.input_size = input_size
        self.calls = 0
        self.answered = 0  # calls that generated an answer

    def set_image(self, image: np.ndarray | GeoImage) -> None:
        self.geo = image if isinstance(image, GeoImage) else GeoImage(np.asarray(image))
        self.image = self.geo.image

    def predict(self, question: str, threshold: float | None = None, answer: bool = True,
                min_region_px: int = 1) -> Result:
        threshold = 0.5 if threshold is None else threshold  # the checkpoint's own, as Predictor's
        self.calls += 1
        height, width = self.image.shape[:2]
        scale = min(1.0, self.input_size / max(height, width))
        small = self.image if scale == 1.0 else cv2.resize(
            self.image, (round(width * scale), round(height * scale)),
            interpolation=cv2.INTER_AREA)
        r, g, b = (small[..., i].astype(np.int16) for i in range(3))
        prob = ((r > 200) & (g < 60) & (b < 60)).astype(np.float32)
        if scale != 1.0:
            prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_NEAREST)
        result = Result(question, prob, threshold, None, self.geo, checkpoint="red-standin",
                        provenance={"checkpoint": "red-standin"}, min_region_px=min_region_px)
        if answer:
            result.answer = self.answer(result)
        return result

    def answer(self, result: Result) -> str:
        """As Predictor.answer: the answer follows the result's mask."""
        self.answered += 1
        return "A red square." if result.found else "No red square."
