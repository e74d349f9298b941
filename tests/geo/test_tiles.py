"""fetch_area against a real HTTP tile server on loopback serving tiles with a known red square."""
from __future__ import annotations

import mercantile
import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon

from segearth.errors import GeoError
from segearth.geo.tiles import TileSource, choose_zoom, fetch_area

from .synthetic import RED, RED_BOX

AREA = (11.4970, 48.0985, 11.5060, 48.1040)  # ~670 m x 610 m around RED_BOX
_TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def source_for(server, mode: str = "ok", max_zoom: int = 18) -> TileSource:
    return TileSource(url=server.url(mode), attribution="Test tiles (c) nobody", max_zoom=max_zoom,
                      name="loopback")


def lonlat_to_pixel(geo, lon: float, lat: float) -> tuple[float, float]:
    col, row = ~geo.transform @ _TO_MERCATOR.transform(lon, lat)
    return col, row


def red_extent(image: np.ndarray) -> tuple[int, int, int, int]:
    """(col0, row0, col1, row1) of the red pixels, end-exclusive."""
    rows, cols = np.nonzero((image == RED).all(axis=-1))
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_stitched_image_and_transform_put_the_red_square_at_its_lonlat(tile_server):
    geo = fetch_area(AREA, source_for(tile_server), max_tiles=64)

    # The finest zoom whose covering tiles fit the cap (counted independently with mercantile).
    counts = {z: len(list(mercantile.tiles(*AREA, zooms=z))) for z in range(12, 19)}
    assert geo.source["zoom"] == max(z for z, n in counts.items() if n <= 64)
    assert geo.source["tiles"] == counts[geo.source["zoom"]]
    assert geo.crs.to_epsg() == 3857 and geo.valid is None
    assert geo.image.dtype == np.uint8 and geo.image.shape[2] == 3
    assert geo.source["attribution"] == "Test tiles (c) nobody"

    # The red pixels are where the transform says RED_BOX is (within one pixel each side).
    col0, row0 = lonlat_to_pixel(geo, RED_BOX[0], RED_BOX[3])
    col1, row1 = lonlat_to_pixel(geo, RED_BOX[2], RED_BOX[1])
    assert np.allclose(red_extent(geo.image), (col0, row0, col1, row1), atol=1.0)
    assert red_extent(geo.image)[2] - red_extent(geo.image)[0] > 50  # a real square, not a dot

    # The image is cropped to the area: its corners are the area's corners (within one pixel).
    height, width = geo.shape
    assert np.allclose(lonlat_to_pixel(geo, AREA[0], AREA[3]), (0, 0), atol=1.0)
    assert np.allclose(lonlat_to_pixel(geo, AREA[2], AREA[1]), (width, height), atol=1.0)

    # Ground resolution is the geodesic pixel size: Web-Mercator metres times cos(latitude)
    # (on the sphere; WGS84's ellipsoid adds ~0.2% at this latitude).
    expected = geo.transform.a * np.cos(np.radians((AREA[1] + AREA[3]) / 2))
    assert geo.source["ground_resolution_m"] == pytest.approx(expected, rel=3e-3)


def test_a_lower_tile_cap_picks_a_coarser_zoom_and_still_places_the_square(tile_server):
    fine = fetch_area(AREA, source_for(tile_server), max_tiles=64)
    coarse = fetch_area(AREA, source_for(tile_server), max_tiles=4)
    assert coarse.source["zoom"] < fine.source["zoom"] and coarse.source["tiles"] <= 4
    col0, row0 = lonlat_to_pixel(coarse, RED_BOX[0], RED_BOX[3])
    col1, row1 = lonlat_to_pixel(coarse, RED_BOX[2], RED_BOX[1])
    assert np.allclose(red_extent(coarse.image), (col0, row0, col1, row1), atol=1.0)


def test_a_polygon_area_marks_pixels_outside_it_invalid(tile_server):
    west, south, east, north = AREA
    triangle = Polygon([(west, south), (east, south), (west, north)])  # lower-left half
    geo = fetch_area(triangle, source_for(tile_server), max_tiles=16)
    height, width = geo.shape
    assert geo.valid is not None and geo.valid.shape == (height, width)
    assert geo.valid[height - 2, 1] and not geo.valid[1, width - 2]
    assert 0.45 < geo.valid.mean() < 0.55
    assert np.allclose(lonlat_to_pixel(geo, west, north), (0, 0), atol=1.0)


def test_a_geojson_feature_from_a_map_widget_is_an_area(tile_server):
    west, south, east, north = AREA
    drawn = {"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                            [west, north], [west, south]]]}}
    geo = fetch_area(drawn, source_for(tile_server), max_tiles=4)
    assert geo.valid is None and geo.source["bbox"] == list(AREA)
    with pytest.raises(GeoError, match="not a valid GeoJSON geometry"):
        fetch_area({"type": "Polygon", "coordinates": "nonsense"}, source_for(tile_server))


def test_flaky_server_is_retried(tile_server):
    before = tile_server.hits["flaky"]
    geo = fetch_area(AREA, source_for(tile_server, "flaky"), max_tiles=4, retries=1)
    assert (geo.image == RED).all(axis=-1).any()
    assert tile_server.hits["flaky"] - before == 2 * geo.source["tiles"]  # 503, then the tile


def test_cache_serves_a_repeated_area_without_requests(tile_server, tmp_path):
    source = source_for(tile_server)
    first = fetch_area(AREA, source, max_tiles=4, cache_dir=tmp_path)
    before = tile_server.hits["ok"]
    second = fetch_area(AREA, source, max_tiles=4, cache_dir=tmp_path)
    assert tile_server.hits["ok"] == before
    assert np.array_equal(first.image, second.image) and first.transform == second.transform


def test_choose_zoom_is_the_finest_under_the_cap():
    bbox = (11.0, 48.0, 11.1, 48.1)
    zoom = choose_zoom(bbox, max_zoom=19, max_tiles=64)
    assert len(list(mercantile.tiles(*bbox, zooms=zoom))) <= 64
    assert len(list(mercantile.tiles(*bbox, zooms=zoom + 1))) > 64


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("area", [(179.5, 0.0, -179.5, 1.0), (179.0, 0.0, 181.0, 1.0)])
def test_antimeridian_crossing_says_to_split(tile_server, area):
    with pytest.raises(GeoError, match="antimeridian.*Split it into two"):
        fetch_area(area, source_for(tile_server))


@pytest.mark.parametrize("area", [(11.0, 48.0, 11.0, 48.1), (11.0, 48.0, 11.1, 48.0),
                                  Polygon(), Polygon([(11, 48), (11.1, 48), (11.2, 48)])])
def test_empty_area(tile_server, area):
    with pytest.raises(GeoError, match="empty"):
        fetch_area(area, source_for(tile_server))


def test_huge_area_says_how_big_and_the_cap(tile_server):
    before = sum(tile_server.hits.values())
    with pytest.raises(GeoError, match=r"about 4\d\d\d.\d km x 4\d\d\d.\d km.*cap of 64"):
        fetch_area((0.0, 0.0, 40.0, 40.0), source_for(tile_server))
    assert sum(tile_server.hits.values()) == before  # refused before any download


def test_outside_web_mercator_latitudes(tile_server):
    with pytest.raises(GeoError, match="web-map range"):
        fetch_area((0.0, 86.0, 1.0, 87.0), source_for(tile_server))


def test_server_down_names_the_host(closed_port_url):
    source = TileSource(url=closed_port_url, attribution="x")
    with pytest.raises(GeoError, match=r"127\.0\.0\.1:\d+ cannot be reached .*2 tries"):
        fetch_area(AREA, source, max_tiles=1, min_zoom=0, retries=1)


def test_slow_server_times_out(tile_server):
    with pytest.raises(GeoError, match=r"did not answer within 0\.2 s"):
        fetch_area(AREA, source_for(tile_server, "slow"), max_tiles=1, min_zoom=0, timeout=0.2,
                   retries=0)


def test_404_names_host_and_status(tile_server):
    host = f"127.0.0.1:{tile_server.server_address[1]}"
    with pytest.raises(GeoError, match=rf"{host} answered HTTP 404.*no imagery there"):
        fetch_area(AREA, source_for(tile_server, "missing"), max_tiles=4)


def test_junk_content_is_not_taken_for_an_image(tile_server):
    with pytest.raises(GeoError, match="not an image .*text/html"):
        fetch_area(AREA, source_for(tile_server, "junk"), max_tiles=4)


# --- tile source configuration ----------------------------------------------------------------


def test_default_source_is_esri_world_imagery_with_attribution():
    source = TileSource.default()
    assert "World_Imagery" in source.url and "Esri" in source.attribution
    assert TileSource.from_env({}) == source


def test_source_from_env():
    source = TileSource.from_env({"SEGEARTH_TILE_URL": "https://t.example/{z}/{x}/{y}.jpg?key=s",
                                  "SEGEARTH_TILE_ATTRIBUTION": "(c) Example",
                                  "SEGEARTH_TILE_MAX_ZOOM": "17"})
    assert (source.attribution, source.max_zoom, source.host) == ("(c) Example", 17, "t.example")
    assert source.public_url == "https://t.example/{z}/{x}/{y}.jpg"  # no key in outputs
    assert source.tile_url(mercantile.Tile(3, 5, 7)) == "https://t.example/7/3/5.jpg?key=s"


@pytest.mark.parametrize("url", ["https://t.example/{z}/{x}.png", "ftp://t.example/{z}/{x}/{y}"])
def test_bad_tile_template(url):
    with pytest.raises(GeoError, match="placeholders"):
        TileSource.from_env({"SEGEARTH_TILE_URL": url})
