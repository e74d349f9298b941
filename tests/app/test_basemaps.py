"""SEGEARTH_BASEMAPS: basemaps named from leafmap's catalog, imagery marked; a run reads its
pixels from the imagery basemap the visitor has on screen, never from a URL the visitor sends."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.config import AppConfig, Basemap
from app.handlers import Handlers
from app.map_view import basemap_layers
from app.runs import RunRequest
from segearth.errors import InputError
from segearth.geo import TileSource

from .conftest import AREA

CATALOG = "Esri.WorldImagery:imagery, USGS.USImagery:imagery, OpenTopoMap, OpenStreetMap"


def test_default_is_todays_satellite_and_street_pair(app_environ):
    config = AppConfig.from_env(app_environ)
    assert [(b.key, b.imagery) for b in config.basemaps] == [("satellite", True), ("street", False)]
    assert config.imagery("street").url == config.imagery(None).url == app_environ["SEGEARTH_TILE_URL"]


def test_catalog_names_give_leafmaps_urls_and_attributions():
    config = AppConfig.from_env({"SEGEARTH_BASEMAPS": CATALOG, "SEGEARTH_DEMO_CHECKPOINT": "x",
                                 "SEGEARTH_CHECKPOINT": "x"})
    layers = basemap_layers(config.basemaps)
    assert [layer["name"] for layer in layers] == [
        "Esri.WorldImagery", "USGS.USImagery", "OpenTopoMap", "OpenStreetMap"]
    assert [layer["imagery"] for layer in layers] == [True, True, False, False]
    esri, usgs, topo, osm = layers
    assert esri["url"].startswith("https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery")
    assert "OpenTopoMap" in topo["attribution"] and topo["max_zoom"] == 17
    assert "{s}" not in osm["url"] and "U.S. Geological Survey" in usgs["attribution"]
    # the visitor's map names the imagery on screen by key; anything else gives the first one
    assert config.imagery("usgs-usimagery").name == "USGS.USImagery"
    for sent in ("opentopomap", "https://evil.example.com/{z}/{x}/{y}.png", None):
        assert config.imagery(sent).name == "Esri.WorldImagery"


def test_a_private_tile_server_still_overrides_the_imagery(app_environ):
    config = AppConfig.from_env(app_environ | {"SEGEARTH_BASEMAPS": CATALOG})
    assert [b.name for b in config.basemaps] == ["Satellite", "OpenTopoMap", "OpenStreetMap"]
    assert config.imagery("esri-worldimagery").url == app_environ["SEGEARTH_TILE_URL"]


@pytest.mark.parametrize("text, message", [
    ("Esri.WorldImagry:imagery", "not in leafmap's basemap catalog; did you mean Esri.WorldImagery"),
    ("OpenTopoMap, OpenStreetMap", "mark at least one basemap as imagery"),
    ("FWS NWI Wetlands:imagery", "wms layer"),
])
def test_bad_basemap_names_are_messages(text, message):
    with pytest.raises(InputError, match=message):
        AppConfig.from_env({"SEGEARTH_BASEMAPS": text, "SEGEARTH_CHECKPOINT": "x"})


def test_a_run_fetches_the_imagery_the_visitor_has_on_screen(app_environ, tiles):
    """Two imagery basemaps, two paths of the loopback server: the drawn Feature names the
    second, and its server is the one asked for the tiles; an unknown key falls back."""
    config = AppConfig.from_env(app_environ)
    second = Basemap("second", "Second imagery", TileSource(
        url=tiles.url("second"), attribution="2nd", max_zoom=18), imagery=True)
    handlers = Handlers(replace(config, basemaps=(*config.basemaps, second)))
    geometry = json.loads(AREA)
    for key, expected in (("second", tiles.url("second")), ("unknown", tiles.url("ok"))):
        area = {"type": "Feature", "properties": {"basemap": key}, "geometry": geometry}
        request = RunRequest("map", json.dumps(area), None, "Where is the red roof?",
                             config.checkpoint, "fp32", False, "", "fp32", 0.5, 0.5)
        run, _ = handlers._run(request, lambda *args, **kwargs: None, {})
        assert run.geo.source["url"] == expected and run.geo.image.shape[0] > 0
    assert tiles.hits["second"] > 0
