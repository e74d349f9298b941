"""predict_geo end to end: an area from the loopback tile server or a GeoTIFF in, GIS files out."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box, shape

from segearth.errors import GeoError
from segearth.pipelines import predict_geo
from segearth.geo.raster import read_raster
from segearth.geo.tiles import TileSource

from .synthetic import RED_BOX, RedPredictor, write_raster
from .test_tiles import AREA

QUESTION = "Which structure is painted red?"
GEOD = Geod(ellps="WGS84")


def loopback(server, mode: str = "ok") -> TileSource:
    return TileSource(url=server.url(mode), attribution="Test tiles (c) nobody", max_zoom=18)


def test_area_gives_mask_geotiff_geojson_and_imagery_at_the_right_place(tile_server, tmp_path):
    # 20 tiles: zoom 17, an image under the model's 1024 px, so the mask is exact at the edges.
    out = predict_geo(RedPredictor(), AREA, QUESTION, tmp_path / "out",
                      tile_source=loopback(tile_server), checkpoint_name="ckpt-x", max_tiles=20)
    assert set(out) == {"mask_geotiff", "geojson", "map_html", "image_geotiff"} | SINGLE_PASS_FILES

    fc = json.loads(out["geojson"].read_text())
    assert len(fc["features"]) == 1
    feature = fc["features"][0]
    assert np.allclose(shape(feature["geometry"]).bounds, RED_BOX, atol=2e-5)  # ~1.5 px
    true_area = abs(GEOD.geometry_area_perimeter(box(*RED_BOX))[0])
    assert feature["properties"]["area_m2"] == pytest.approx(true_area, rel=0.02)
    props = fc["properties"]
    assert props["question"] == QUESTION and props["answer"] == "A red square."
    assert props["checkpoint"] == "ckpt-x" and props["mode"] == "single"
    assert props["attribution"] == "Test tiles (c) nobody" and props["zoom"] == 17
    assert props["imagery"] == loopback(tile_server).public_url
    assert 0.7 < props["ground_resolution_m"] < 0.9  # 1.2 m * cos(48 deg)
    age = datetime.now(timezone.utc) - datetime.fromisoformat(props["time_utc"])
    assert 0 <= age.total_seconds() < 60
    assert feature["properties"]["question"] == QUESTION

    with rasterio.open(out["mask_geotiff"]) as mask_tif, \
            rasterio.open(out["image_geotiff"]) as image_tif:
        assert mask_tif.crs == CRS.from_epsg(3857) == image_tif.crs
        assert mask_tif.transform == image_tif.transform and mask_tif.shape == image_tif.shape
        assert mask_tif.tags()["question"] == QUESTION
        assert "nobody" in image_tif.tags()["attribution"]
        mask = mask_tif.read(1) == 255
        red = (image_tif.read() == np.array([230, 20, 20])[:, None, None]).all(axis=0)
    assert np.array_equal(mask, red)


def test_polygon_area_from_the_env_tile_server_clips_outputs_to_the_polygon(
        tile_server, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEARTH_TILE_URL", tile_server.url("ok"))
    monkeypatch.setenv("SEGEARTH_TILE_ATTRIBUTION", "Env tiles")
    monkeypatch.setenv("SEGEARTH_TILE_MAX_ZOOM", "18")
    west, south, east, north = RED_BOX
    left_half = (west + east) / 2
    polygon = Polygon([(AREA[0], AREA[1]), (left_half, AREA[1]), (left_half, AREA[3]),
                       (AREA[0], AREA[3])])
    out = predict_geo(RedPredictor(), polygon, QUESTION, tmp_path, max_tiles=16)
    fc = json.loads(out["geojson"].read_text())
    assert fc["properties"]["attribution"] == "Env tiles"
    bounds = shape(fc["features"][0]["geometry"]).bounds
    assert bounds[0] == pytest.approx(west, abs=5e-5)
    assert bounds[2] == pytest.approx(left_half, abs=5e-5)


SINGLE_PASS_FILES = {"mask_png", "overlay_png", "probability_png", "json"}  # pictures + run record


@pytest.fixture
def red_geotiff(tmp_path):
    """16-bit 4-band UTM GeoTIFF (2 m pixels) with a 'red' 30x40 px block: band 1 high, 2-3 low."""
    bands = np.full((4, 120, 160), 1000, np.uint16)
    bands[1:3] = 3000
    bands[0, 40:70, 50:90] = 4000
    bands[1:3, 40:70, 50:90] = 500
    transform = from_origin(500_000, 5_330_000, 2, 2)
    return write_raster(tmp_path / "scene.tif", bands, "EPSG:32633", transform), transform


@pytest.mark.parametrize("tiled", [False, True])
def test_geotiff_outputs_stay_in_the_source_crs_and_grid(red_geotiff, tmp_path, tiled):
    path, transform = red_geotiff
    predictor = RedPredictor()
    out = predict_geo(predictor, path, QUESTION, tmp_path / "out", tiled=tiled, window=64,
                      overlap=16)
    assert set(out) == {"mask_geotiff", "geojson", "map_html", "json"} | (set() if tiled else SINGLE_PASS_FILES)
    record = json.loads(out["json"].read_text())
    assert record["geo"]["question"] == QUESTION and record["geo"]["mode"] == ("tiled" if tiled else "single")
    assert out["mask_geotiff"].name == "scene_mask.tif"
    with rasterio.open(out["mask_geotiff"]) as src:
        assert src.crs == CRS.from_epsg(32633) and src.transform == transform
        mask = src.read(1) == 255
    expected = np.zeros((120, 160), bool)
    expected[40:70, 50:90] = True
    assert np.array_equal(mask, expected)

    fc = json.loads(out["geojson"].read_text())
    assert fc["properties"]["answer"] == "A red square."
    assert fc["properties"]["mode"] == ("tiled" if tiled else "single")
    assert fc["properties"]["imagery"] == str(path)
    assert fc["properties"]["ground_resolution_m"] == pytest.approx(2.0, rel=1e-3)
    assert fc["features"][0]["properties"]["area_m2"] == pytest.approx(60 * 80, rel=0.01)
    # 3 x 3 windows of 64 px over 120 x 160, then one answer (for the most confident window).
    assert predictor.calls == (10 if tiled else 1) and predictor.answered == 1


@pytest.fixture(scope="module")
def tiny_predictor(tiny_checkpoint):
    from segearth.predictor import Predictor

    return Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")


@pytest.mark.parametrize("tiled", [False, True])
def test_real_predictor_masks_land_on_the_source_grid(tiny_predictor, tiny_checkpoint,
                                                      red_geotiff, tmp_path, tiled):
    """The tiny random checkpoint through predict_geo: the written mask is exactly what the
    Predictor gives for the same image (single) or its windows (tiled), on the source grid."""
    path, transform = red_geotiff
    out = predict_geo(tiny_predictor, path, QUESTION, tmp_path / "out", tiled=tiled,
                      window=120, overlap=32)
    image = read_raster(path).image
    expected = np.zeros(image.shape[:2], np.float32)
    for col in (0, 40) if tiled else (0,):  # 120 x 120 windows over 120 x 160, or the image
        part = image[:, col:col + 120] if tiled else image
        tiny_predictor.set_image(part)
        probability = tiny_predictor.predict(QUESTION, answer=False).probability
        view = expected[:, col:col + part.shape[1]]
        np.maximum(view, probability, out=view)
    with rasterio.open(out["mask_geotiff"]) as src:
        assert src.crs == CRS.from_epsg(32633) and src.transform == transform
        assert np.array_equal(src.read(1) == 255, expected > 0.5)
    props = json.loads(out["geojson"].read_text())["properties"]
    assert props["checkpoint"] == str(tiny_checkpoint) and isinstance(props["answer"], str)


def test_plain_tiff_gives_a_plain_mask_and_no_geojson(tmp_path):
    image = np.zeros((3, 40, 60), np.uint8)
    image[0, 10:20, 10:30] = 255
    path = write_raster(tmp_path / "photo.tif", image)
    out = predict_geo(RedPredictor(), path, QUESTION, tmp_path / "out")
    assert set(out) == {"mask_geotiff"} | SINGLE_PASS_FILES
    with rasterio.open(out["mask_geotiff"]) as src:
        assert src.crs is None and (src.read(1) == 255).sum() == 200
        assert src.tags()["answer"] == "A red square."


def test_tile_server_failure_writes_nothing(tile_server, tmp_path):
    with pytest.raises(GeoError, match="HTTP 404"):
        predict_geo(RedPredictor(), AREA, QUESTION, tmp_path / "out",
                    tile_source=loopback(tile_server, "missing"), max_tiles=4)
    assert not (tmp_path / "out").exists()


def test_unknown_crs_writes_nothing(tmp_path):
    local = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]')
    path = write_raster(tmp_path / "local.tif", np.zeros((3, 16, 16), np.uint8), local,
                        from_origin(0, 16, 1, 1))
    with pytest.raises(GeoError, match="longitude/latitude"):
        predict_geo(RedPredictor(), path, QUESTION, tmp_path / "out")
    assert not (tmp_path / "out").exists()
