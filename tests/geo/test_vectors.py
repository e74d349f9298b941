"""Mask GeoTIFF and GeoJSON outputs: right place, right geodesic area, atomic writes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import shape

from segearth.errors import GeoError
from segearth.geo import vectors
from segearth.geo.raster import GeoImage, read_raster
from segearth.geo.vectors import mask_to_features, write_geojson, write_mask_geotiff

SWISSIMAGE = (Path(__file__).resolve().parents[3] / "shared" / "samples" / "detectree_swissimage"
              / "original")
PROPS = {"question": "Where is the square?", "answer": "Here.", "checkpoint": "test",
         "imagery": "synthetic", "time_utc": "2026-01-01T00:00:00+00:00"}


def square_geo(crs: str, transform: Affine, size: int = 200) -> tuple[np.ndarray, GeoImage]:
    """A size x size GeoImage with a 100x100 px target square at rows 50..150, cols 60..160."""
    mask = np.zeros((size, size), bool)
    mask[50:150, 60:160] = True
    return mask, GeoImage(image=np.zeros((size, size, 3), np.uint8), crs=CRS.from_string(crs),
                          transform=transform)


def test_utm_square_lands_at_its_lonlat_with_its_geodesic_area(tmp_path):
    transform = from_origin(500_000, 5_330_000, 1, 1)  # 1 m pixels on zone 33's meridian
    mask, geo = square_geo("EPSG:32633", transform)
    fc = mask_to_features(mask, geo, PROPS)

    assert len(fc["features"]) == 1
    feature = fc["features"][0]
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    west, north = to_lonlat.transform(*(transform @ (60, 50)))
    east, south = to_lonlat.transform(*(transform @ (160, 150)))
    assert np.allclose(shape(feature["geometry"]).bounds, (west, south, east, north), atol=1e-7)
    # 100 m x 100 m in UTM; on the ground 1/k^2 larger (k = 0.9996 on the central meridian).
    assert feature["properties"]["area_m2"] == pytest.approx(10_000, rel=0.01)
    assert feature["properties"]["area_m2"] == pytest.approx(10_000 / 0.9996**2, rel=1e-4)
    assert feature["properties"]["area_ha"] == pytest.approx(1.0, rel=0.01)
    assert feature["properties"]["question"] == PROPS["question"]
    assert fc["properties"]["feature_count"] == 1
    assert fc["properties"]["total_area_m2"] == feature["properties"]["area_m2"]

    written = json.loads(write_geojson(fc, tmp_path / "out.geojson").read_text())
    assert written == json.loads(json.dumps(fc))

    tif = write_mask_geotiff(mask, geo, tmp_path / "mask.tif", tags={"question": "q?"})
    with rasterio.open(tif) as src:
        assert src.crs == geo.crs and src.transform == transform
        assert src.dtypes == ("uint8",) and src.compression.name.lower() == "deflate"
        data = src.read(1)
        assert src.tags()["question"] == "q?"
    assert np.array_equal(data, mask.astype(np.uint8) * 255)


@pytest.mark.skipif(not SWISSIMAGE.is_dir(), reason="shared samples not mounted")
def test_real_swissimage_tree_mask_in_lv95(tmp_path):
    """A real SWISSIMAGE tile (EPSG:2056, 0.5 m) with its tree mask: polygons in Switzerland with
    the pixel-count area, mask GeoTIFF on the image's own grid."""
    geo = read_raster(SWISSIMAGE / "img" / "1091-322_05.tif")
    with rasterio.open(SWISSIMAGE / "response_img" / "1091-322_05.tif") as src:
        trees = src.read(1) == 1
    assert geo.crs.to_epsg() == 2056 and geo.shape == trees.shape
    fc = mask_to_features(trees, geo, PROPS)
    assert fc["properties"]["total_area_m2"] == pytest.approx(trees.sum() * 0.25, rel=0.01)
    to_lonlat = Transformer.from_crs(geo.crs, "EPSG:4326", always_xy=True)
    height, width = geo.shape
    corners = [geo.transform @ corner for corner in ((0, 0), (width, 0), (0, height),
                                                      (width, height))]
    lons, lats = to_lonlat.transform(*zip(*corners, strict=True))  # LV95 is turned against lon/lat
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    assert 5.9 < west < east < 10.5 and 45.8 < south < north < 47.9  # Switzerland
    for feature in fc["features"]:
        x0, y0, x1, y1 = shape(feature["geometry"]).bounds
        assert west - 1e-6 <= x0 <= x1 <= east + 1e-6 and south - 1e-6 <= y0 <= y1 <= north + 1e-6
    with rasterio.open(write_mask_geotiff(trees, geo, tmp_path / "trees.tif")) as src:
        assert src.crs == geo.crs and src.transform == geo.transform
        assert np.array_equal(src.read(1) == 255, trees)


def test_web_mercator_area_is_geodesic_not_planar():
    # At 60 N a Web-Mercator metre is half a ground metre: 2-unit pixels are ~1 m on the ground.
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(10.0, 60.0)
    mask, geo = square_geo("EPSG:3857", Affine(2, 0, x, 0, -2, y))
    feature = mask_to_features(mask, geo, PROPS)["features"][0]
    planar = 200 * 200  # the square's area in Web-Mercator units
    ground_pixel = 2 * np.cos(np.radians(60))
    assert feature["properties"]["area_m2"] == pytest.approx((100 * ground_pixel) ** 2, rel=0.01)
    assert feature["properties"]["area_m2"] < 0.3 * planar


def test_regions_are_separate_features_largest_first_and_holes_count():
    transform = from_origin(500_000, 5_330_000, 1, 1)
    mask = np.zeros((100, 100), bool)
    mask[10:30, 10:30] = True  # 400 m2
    mask[50:90, 50:90] = True  # 1600 m2 with a 10x10 hole
    mask[65:75, 65:75] = False
    geo = GeoImage(np.zeros((100, 100, 3), np.uint8), CRS.from_epsg(32633), transform)
    fc = mask_to_features(mask, geo, PROPS)
    areas = [f["properties"]["area_m2"] for f in fc["features"]]
    assert [f["properties"]["id"] for f in fc["features"]] == [1, 2]
    assert areas == pytest.approx([1500 / 0.9996**2, 400 / 0.9996**2], rel=1e-4)
    assert fc["properties"]["total_area_m2"] == pytest.approx(sum(areas))
    assert len(fc["features"][0]["geometry"]["coordinates"]) == 2  # exterior + hole


def test_outputs_are_clipped_to_valid_pixels(tmp_path):
    mask, geo = square_geo("EPSG:32633", from_origin(500_000, 5_330_000, 1, 1))
    geo.valid = np.ones(mask.shape, bool)
    geo.valid[:, 110:] = False  # e.g. outside the drawn polygon: half the square remains
    feature = mask_to_features(mask, geo, PROPS)["features"][0]
    assert feature["properties"]["area_m2"] == pytest.approx(5_000, rel=0.01)
    with rasterio.open(write_mask_geotiff(mask, geo, tmp_path / "m.tif")) as src:
        assert src.read(1)[100, 100] == 255 and src.read(1)[100, 120] == 0


def test_empty_mask_gives_an_empty_collection():
    mask, geo = square_geo("EPSG:32633", from_origin(500_000, 5_330_000, 1, 1))
    fc = mask_to_features(np.zeros_like(mask), geo, PROPS)
    assert fc["features"] == [] and fc["properties"]["total_area_m2"] == 0


def test_plain_image_has_no_geojson_but_a_plain_mask_tiff(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:10] = True
    geo = GeoImage(image=np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(GeoError, match="no georeferencing"):
        mask_to_features(mask, geo, PROPS)
    with rasterio.open(write_mask_geotiff(mask, geo, tmp_path / "plain.tif")) as src:
        assert src.crs is None and src.read(1).sum() == 25 * 255


def test_unknown_crs_is_refused():
    mask, geo = square_geo("EPSG:32633", from_origin(0, 0, 1, 1))
    geo.crs = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]')
    with pytest.raises(GeoError, match="cannot be related to longitude/latitude"):
        mask_to_features(mask, geo, PROPS)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.geojson"
    target.write_text("old")

    def broken_dump(obj, fh, **kwargs):
        fh.write('{"type": "FeatureCollection", "feat')  # half a file, then the disk is full
        raise OSError("No space left on device")

    monkeypatch.setattr(vectors.json, "dump", broken_dump)
    with pytest.raises(OSError, match="No space"):
        write_geojson({"type": "FeatureCollection", "features": []}, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.geojson"]


def test_failed_geotiff_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    mask, geo = square_geo("EPSG:32633", from_origin(500_000, 5_330_000, 1, 1))
    target = tmp_path / "m.tif"
    target.write_bytes(b"old")
    real_open = rasterio.open

    class DiskFullAfterWriting:
        """A dataset that writes its pixels, then fails (as a full disk would on flush)."""

        def __init__(self, *args, **kwargs):
            self.dataset = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.dataset.close()

        def write(self, array):
            self.dataset.write(array)
            raise OSError("No space left on device")

    monkeypatch.setattr(vectors.rasterio, "open", DiskFullAfterWriting)
    with pytest.raises(OSError, match="No space"):
        write_mask_geotiff(mask, geo, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.tif"]
