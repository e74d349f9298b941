"""The Jupyter map for researchers checking a checkpoint: draw an area, ask, compare answers.

`Map` is a `leafmap.Map` (ipyleaflet backend, so drawing reaches Python): the same satellite
tiles as the app (`SEGEARTH_TILE_URL` etc., via `TileSource.from_env`) and leafmap's draw tools.
`m.ask(question)` fetches the imagery of the last drawn area (leafmap keeps it in
``m.user_roi``), or of ``area=(west, south, east, north)``, or reads ``image="ortho.tif"``
(placed at its location), predicts, and adds the mask and the region polygons (click: rank,
area, score, peak) as two layers named after the question, each question in its own colour with
a legend, so several questions about one place can be compared. It prints the answer and
returns the run's `Result`. `m.save("map.html")` is ipyleaflet's.

    from segearth.notebook import Map
    from segearth.predictor import Predictor
    m = Map(Predictor.from_pretrained("assets/demo-checkpoint"), center=(30.59, 114.31), zoom=16)
    m                                    # draw a rectangle or polygon, then:
    result = m.ask("Where could residents gather safely after an earthquake?")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ipyleaflet
import leafmap
from ipywidgets.embed import dependency_state

from .errors import InputError
from .features import FeatureCache
from .geo.raster import GeoImage, read_raster
from .geo.tiles import NO_AREA, Area, TileSource, fetch_area
from .maps import data_url, image_rgba, mask_rgba, web_mercator
from .pipelines import SINGLE_PASS_MAX_SIZE
from .predictor import Predictor
from .regions import MIN_REGION_PX
from .result import NO_ANSWER_NOTE, Result
from .visualize import QUESTION_COLORS, hex_rgb

#: Long side of the overlays sent to the notebook's browser.
OVERLAY_MAX_SIZE = 2048


def _bounds(layer_bounds: list[list[float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    (south, west), (north, east) = layer_bounds
    return (south, west), (north, east)


class Map(leafmap.Map):
    """A leafmap map that answers questions about what is drawn on it (see the module doc)."""

    def __init__(self, predictor: Predictor, *, tiles: TileSource | None = None,
                 max_tiles: int = 64, threshold: float | None = None, **kwargs: Any):
        self.tiles = tiles or TileSource.from_env()
        kwargs.setdefault("basemap", ipyleaflet.TileLayer(
            url=self.tiles.url, attribution=self.tiles.attribution, name=self.tiles.name,
            max_zoom=self.tiles.max_zoom, base=True))
        super().__init__(**kwargs)
        self.layers[0].name = self.tiles.name  # leafmap names its first layer "OpenStreetMap"
        self.predictor, self.max_tiles, self.threshold = predictor, max_tiles, threshold
        self.features = FeatureCache(predictor)  # a second question about an area skips the encoder
        self.questions: dict[str, str] = {}  # question -> its colour, in asking order
        self.results: dict[str, Result] = {}

    def _imagery(self, area: Area | None, image: str | Path | None) -> GeoImage:
        """The pixels to ask about: a GeoTIFF, a given area, or the last drawn one."""
        if image is not None and area is not None:
            raise InputError("Give either area= or image=, not both.")
        if image is not None:
            geo = read_raster(image, max_size=SINGLE_PASS_MAX_SIZE)
            if not geo.is_georeferenced:
                raise InputError(f"{Path(image).name} has no georeferencing, so it cannot be "
                                 f"placed on the map: use a GeoTIFF, or segearth.predictor for "
                                 f"plain images.")
            name = f"Image: {Path(image).name}"
            if not any(layer.name == name for layer in self.layers):  # once, under the masks
                pixels, bounds = web_mercator(image_rgba(geo), geo.crs, geo.transform,
                                              OVERLAY_MAX_SIZE)
                self.add_layer(ipyleaflet.ImageOverlay(url=data_url(pixels, "WEBP"),
                                                       bounds=_bounds(bounds), name=name))
            return geo
        area = area if area is not None else self.user_roi
        if area is None:
            raise InputError(f"{NO_AREA}, or give area=(west, south, east, north) or "
                             f"image='x.tif'.")
        return fetch_area(area, self.tiles, max_tiles=self.max_tiles)

    def ask(self, question: str, area: Area | None = None,
            image: str | Path | None = None) -> Result:
        """Answer ``question`` about the last drawn area (or ``area``, or ``image``), add its
        layers, print the answer and return the `Result`."""
        geo = self._imagery(area, image)
        self.features.set_image(geo)
        result = self.predictor.predict(question, threshold=self.threshold, min_region_px=MIN_REGION_PX)
        colour = (self.questions.get(question)
                  or QUESTION_COLORS[len(self.questions) % len(QUESTION_COLORS)])
        self._show(result, colour)
        print(f"{question}\n  {result.answer or f'No answer: {NO_ANSWER_NOTE}'}"
              f"\n  {len(result.regions)} region(s)"
              + (f", {result.area['ha']:.4g} ha" if result.found else ""))
        return result

    def save(self, outfile: str | Path, **kwargs: Any) -> None:
        """The map as a web page (ipyleaflet's `save`), holding only the widgets the map shows:
        the layers a re-asked question replaced are closed, and embedding them would fail."""
        kwargs.setdefault("state", dependency_state([self]))
        super().save(outfile, **kwargs)

    def _show(self, result: Result, colour: str) -> None:
        """The question's mask and outlines as its own two layers (replacing its previous ones)."""
        question = result.question
        for layer in [layer for layer in self.layers if layer.name.startswith(f"{question} (")]:
            self.remove_layer(layer)
        mask, bounds = web_mercator(mask_rgba(result.mask, hex_rgb(colour)), result.geo.crs,
                                    result.geo.transform, OVERLAY_MAX_SIZE)
        self.add_layer(ipyleaflet.ImageOverlay(url=data_url(mask), bounds=_bounds(bounds),
                                               opacity=0.5, name=f"{question} (mask)"))
        regions = [{"type": "Feature", "geometry": f["geometry"], "properties": {
            key: f["properties"][key] for key in ("rank", "area_ha", "area_m2", "score", "peak")}}
            for f in result.features["features"] if f["geometry"] is not None]
        if regions:
            self.add_geojson({"type": "FeatureCollection", "features": regions},
                             layer_name=f"{question} (regions)", info_mode="on_click",
                             style={"color": colour, "weight": 2, "fillOpacity": 0.05})
        self.questions[question] = colour
        self.results[question] = result
        if getattr(self, "legend_control", None) is not None:
            self.remove_control(self.legend_control)
        self.add_legend(title="Questions", legend_dict=self.questions, position="bottomright")
        self.fit_bounds([list(corner) for corner in _bounds(bounds)])
