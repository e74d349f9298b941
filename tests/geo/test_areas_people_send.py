"""Areas as people send them (GeoJSON Features and FeatureCollections from leafmap, geojson.io,
QGIS) and the inputs that used to end in "Unexpected error": JSON nested too deeply and a GeoTIFF
whose geotransform is degenerate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from shapely.geometry import box, mapping

from app.map_view import parse_area
from segearth.errors import GeoError, InputError
from segearth.geo.raster import read_raster
from segearth.geo.tiles import TileSource, fetch_area

from .synthetic import RED_BOX, write_raster

WEST_HALF = box(11.4995, 48.0995, 11.5010, 48.1018)
EAST_HALF = box(11.5012, 48.0995, 11.5025, 48.1018)


def feature(geometry) -> dict:
    return {"type": "Feature", "properties": {"name": "x"}, "geometry": mapping(geometry)}


def source(server) -> TileSource:
    return TileSource(url=server.url("ok"), attribution="t", max_zoom=18)


def test_a_feature_is_its_geometry(tile_server):
    plain = fetch_area(mapping(WEST_HALF), source(tile_server), max_tiles=20)
    wrapped = fetch_area(feature(WEST_HALF), source(tile_server), max_tiles=20)
    assert np.array_equal(plain.image, wrapped.image) and plain.transform == wrapped.transform


def test_a_feature_collection_is_the_union_of_its_shapes(tile_server):
    collection = {"type": "FeatureCollection",
                  "features": [feature(WEST_HALF), feature(EAST_HALF)]}
    geo = fetch_area(json.loads(json.dumps(collection)), source(tile_server), max_tiles=20)
    west, _, east, _ = geo.source["bbox"]
    assert (west, east) == (WEST_HALF.bounds[0], EAST_HALF.bounds[2])

    def column(lon: float) -> int:
        return int((lon - west) / (east - west) * geo.shape[1])

    # the gap between the two shapes is outside the area: its pixels are not valid
    middle = geo.shape[0] // 2
    assert not geo.valid[:, column(11.5011)].any()
    assert geo.valid[middle, column(11.5000)] and geo.valid[middle, column(11.5020)]


def test_shapes_too_far_apart_are_a_message(tile_server):
    far = box(RED_BOX[0] + 2.0, RED_BOX[1], RED_BOX[2] + 2.0, RED_BOX[3])
    collection = {"type": "FeatureCollection", "features": [feature(box(*RED_BOX)), feature(far)]}
    with pytest.raises(GeoError, match="2 separate shapes are too far apart.*each shape"):
        fetch_area(collection, source(tile_server), max_tiles=20)


def test_an_empty_feature_collection_is_a_message():
    with pytest.raises(GeoError, match="no features"):
        fetch_area({"type": "FeatureCollection", "features": []}, TileSource.default())


def test_json_nested_too_deeply_is_a_message():
    deep = '{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InputError, match="nested too deeply"):
        parse_area(deep)
    nested: dict = {"type": "FeatureCollection", "features": []}
    inner = nested
    for _ in range(5000):
        child = {"type": "FeatureCollection", "features": []}
        inner["features"].append(child)
        inner = child
    with pytest.raises(GeoError, match="nested too deeply"):
        fetch_area(nested, TileSource.default())


@pytest.mark.parametrize("geotransform", ["686100, 0, 0, 5330600, 0, -1",
                                          "686100, 1, 0, 5330600, 0, 0"])
def test_a_degenerate_geotransform_is_a_message(tmp_path, geotransform):
    """GDAL will not write a zero pixel size into a GeoTIFF, but reads one from a sidecar (.aux.xml,
    as some tools leave them)."""
    path = write_raster(tmp_path / "flat.tif", np.zeros((3, 20, 30), np.uint8))
    Path(f"{path}.aux.xml").write_text(
        f"<PAMDataset><SRS>{CRS.from_epsg(32632).to_wkt()}</SRS>"
        f"<GeoTransform>{geotransform}</GeoTransform></PAMDataset>")
    with pytest.raises(GeoError, match="degenerate geotransform.*gdal_edit"):
        read_raster(path)
