"""The app under test, against a loopback tile server (127.0.0.1 only, no internet) and the tiny
random checkpoint from tests/conftest.py, which plays the bundled demo model (HF_HUB_OFFLINE, an
empty hub cache and no SEGEARTH_CHECKPOINT: the offline default path)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from tests.geo.synthetic import RED_BOX, TileServer, write_raster

from .process import REPO, free_port

ARTIFACTS = REPO / "test-artifacts" / "app"
#: The map opens on the tile server's red square, at a zoom where it is ~200 px wide.
MAP_VIEW = f"{(RED_BOX[1] + RED_BOX[3]) / 2},{(RED_BOX[0] + RED_BOX[2]) / 2},17"
#: A drawn area around the red square, GeoJSON in lon/lat (what the map sends).
AREA = ('{"type":"Polygon","coordinates":[[[11.4995,48.0995],[11.5025,48.0995],'
        '[11.5025,48.1018],[11.4995,48.1018],[11.4995,48.0995]]]}')
#: Top-left corner of a UTM zone 32N GeoTIFF with 1 m pixels, on the red square.
UTM_ORIGIN = (686_100.0, 5_330_600.0)


@pytest.fixture(scope="session")
def app_environ(tiles: TileServer, tiny_checkpoint: Path, tmp_path_factory) -> dict[str, str]:
    """The environment the app is started with (the only way it is configured)."""
    return {
        "SEGEARTH_TILE_URL": tiles.url("ok"),
        "SEGEARTH_TILE_ATTRIBUTION": "Synthetic test tiles",
        "SEGEARTH_STREET_TILE_URL": tiles.url("ok"),
        "SEGEARTH_STREET_TILE_ATTRIBUTION": "Synthetic street tiles",
        "SEGEARTH_DEMO_CHECKPOINT": str(tiny_checkpoint),
        "SEGEARTH_MAP_VIEW": MAP_VIEW,
        "SEGEARTH_MAX_TILES": "4",
        "SEGEARTH_PRECISION": "fp32",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path_factory.mktemp("empty-hub-cache")),
    }


@pytest.fixture(scope="session")
def checkpoint() -> str:
    """The demo checkpoint as the picker (and the API) names it: no server path."""
    from app.config import DEMO_LABEL

    return DEMO_LABEL


@pytest.fixture(scope="session")
def app_url(app_environ: dict[str, str]) -> Iterator[str]:
    """The real app, in this process, on a free loopback port (for the gradio_client tests)."""
    from app.config import AppConfig
    from app.ui import build_app, launch_options

    config = AppConfig.from_env(app_environ)
    demo = build_app(config)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(config))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def plain_image(tmp_path_factory) -> Path:
    """A 300x200 PNG without georeferencing."""
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("uploads") / "plain.png"
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def utm_geotiff(tmp_path_factory) -> Path:
    """A 3-band 256x192 GeoTIFF in EPSG:32632 (not the map's CRS, so the app must reproject)."""
    rng = np.random.default_rng(1)
    bands = rng.integers(0, 255, (3, 192, 256), dtype=np.uint8)
    path = tmp_path_factory.mktemp("uploads") / "utm.tif"
    return write_raster(path, bands, crs="EPSG:32632",
                        transform=Affine(1.0, 0, UTM_ORIGIN[0], 0, -1.0, UTM_ORIGIN[1]))


@pytest.fixture(scope="session")
def broken_upload(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("uploads") / "broken.tif"
    path.write_bytes(b"II*\x00 this is not really a TIFF")
    return path


def utm_bounds_lonlat() -> tuple[float, float, float, float]:
    """(west, south, east, north) of `utm_geotiff`."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    x0, y1 = UTM_ORIGIN
    x1, y0 = x0 + 256, y1 - 192
    lons, lats = to_lonlat.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
    return min(lons), min(lats), max(lons), max(lats)
