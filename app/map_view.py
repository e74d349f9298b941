"""The map: a Leaflet + Leaflet.draw map as a Gradio 6 `gr.HTML` component.

Why `gr.HTML` and not leafmap or folium: leafmap's Gradio export drops the draw handlers and a
folium map is one-way (Python -> page), but the app needs the drawn area back in Python and
results pushed onto the same live map. `gr.HTML` loads our served scripts via `head=`, runs
`static/map.js` via `js_on_load`, and carries data both ways through `props`.

* value (input): the drawn area as a GeoJSON Feature string in lon/lat ("" when none), whose
  ``basemap`` property is the key of the imagery basemap on screen (the run reads its pixels).
* `layers` prop (output): the results to draw, stamped in order (`handlers.map_update`); see
  `static/map.js`.
* `opacity` prop (output): overlay opacity, changed without resending the overlay.
* `draw` event: fired when the user draws, edits or deletes the area.
"""
from __future__ import annotations

import json
from typing import Any

import gradio as gr

from segearth.errors import InputError
from segearth.vendor import LEAFLET_DIR
from segearth.visualize import HIGHLIGHT_COLOR, OUTLINE_COLOR, rgb_hex

from .config import Basemap
from .static_files import STATIC_DIR, VENDOR_DIR, static_url


def basemap_layers(basemaps: tuple[Basemap, ...]) -> list[dict]:
    """The switchable background layers for `map.js`; the first one is shown first."""
    return [{"key": b.key, "name": b.name, "url": b.tiles.url, "attribution": b.tiles.attribution,
             "max_zoom": b.tiles.max_zoom, "imagery": b.imagery} for b in basemaps]


def _head() -> str:
    """Stylesheets, then scripts in dependency order (Leaflet, Leaflet.draw, our map)."""
    css = [LEAFLET_DIR / "leaflet.css", VENDOR_DIR / "leaflet-draw/leaflet.draw.css",
           STATIC_DIR / "map.css"]
    js = [LEAFLET_DIR / "leaflet.js", VENDOR_DIR / "leaflet-draw/leaflet.draw.js",
          STATIC_DIR / "map.js"]
    return "".join(f'<link rel="stylesheet" href="{static_url(p)}">' for p in css) + "".join(
        f'<script src="{static_url(p)}"></script>' for p in js)


class MapView(gr.HTML):
    """The drawable map. The template never depends on props, so Gradio never re-renders (and
    so never wipes) the Leaflet DOM; all updates go through `watch` in `map.js`."""

    def __init__(self, basemaps: list[dict], view: dict, height: int,
                 layers: dict | None = None, opacity: float = 0.5,
                 colors: dict[str, str] | None = None, **kwargs: Any):
        # Every prop is a constructor parameter: Gradio rebuilds the component from its
        # constructor arguments plus the update when a handler returns gr.update(layers=...).
        kwargs.setdefault("value", "")
        super().__init__(
            html_template='<div class="segearth-map"></div>',
            css_template=".segearth-map { height: ${height}px; }",  # Leaflet needs a height
            # gr.HTML exposes a custom event to Python only if its quoted name is in js_on_load.
            js_on_load="SegEarthMap.mount(element, props, trigger, watch); // emits 'draw'",
            head=_head(),
            basemaps=basemaps,
            view=view,
            layers=layers,
            opacity=opacity,
            # the region outlines in the package's colours (segearth.visualize), as in the files
            colors=colors or {"outline": rgb_hex(OUTLINE_COLOR), "highlight": rgb_hex(HIGHLIGHT_COLOR)},
            height=height,
            **kwargs,
        )

    def api_info(self) -> dict[str, Any]:
        return {"type": "string", "description": "GeoJSON geometry (lon/lat) of the area, or ''"}


def parse_area(value: str | None) -> dict | None:
    """The map's value as a GeoJSON dict (lon/lat; a geometry, Feature or FeatureCollection);
    None when nothing is drawn.
    (segearth.geo checks that it is a usable area.)"""
    if not value or not value.strip():
        return None
    try:
        geometry = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputError(f"The drawn area is not GeoJSON ({exc}). Draw it again on the "
                         f"map.") from None
    except RecursionError:
        raise InputError("The drawn area's JSON is nested too deeply to be a map shape: send "
                         "one polygon, a Feature or a FeatureCollection of polygons.") from None
    if not isinstance(geometry, dict):
        raise InputError("The drawn area is not a GeoJSON geometry. Draw it again on the map.")
    return geometry
