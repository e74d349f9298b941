"""The map file anyone can open: a run's imagery, mask and regions on a self-contained web map.

Stakeholders receive results as files, and a GeoTIFF or a GeoJSON needs a GIS. `write_map`
writes one HTML file (folium) that any browser opens from disk: the imagery and the mask as
overlays at their place, the region polygons with popups (rank, area, score, peak), the question
and the answer in a box, a layer switch, a scale bar and the imagery's attribution. Leaflet's
code and styles are inlined from `segearth.vendor`, so the file needs no internet; the online
basemap is one more layer that simply stays empty offline. Overlays are downsampled to
`MAP_MAX_SIZE` so the file stays small (a few MB at most).

`web_mercator` is also how the app places its overlays: a web map is Web Mercator and stretches
an image linearly between its corners, so anything in another CRS is reprojected first.
"""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject

from .geo.raster import GeoImage, lonlat_transformer
from .geo.tiles import TileSource
from .templates import render
from .vendor import LEAFLET_DIR
from .visualize import MASK_COLOR, OUTLINE_COLOR, rgb_hex

if TYPE_CHECKING:
    import folium

    from .result import Result

WEB_MERCATOR = CRS.from_epsg(3857)
#: Long side of the overlays in a map file: sharp on a screen, and the file stays a few MB.
MAP_MAX_SIZE = 2048
#: Leaflet bounds: [[south, west], [north, east]] in degrees.
Bounds = list[list[float]]


def _shrink(rgba: np.ndarray, transform: Affine, max_size: int) -> tuple[np.ndarray, Affine]:
    """At most ``max_size`` on the long side (nearest: mask edges stay hard); RGBA or 2-D."""
    height, width = rgba.shape[:2]
    scale = max_size / max(height, width)
    if scale >= 1:
        return rgba, transform
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(rgba).resize(size, Image.NEAREST))
    return small, transform @ Affine.scale(width / size[0], height / size[1])


def web_mercator(rgba: np.ndarray, crs: CRS, transform: Affine,
                 max_size: int) -> tuple[np.ndarray, Bounds]:
    """``rgba`` (on the grid ``crs``/``transform``) shrunk to ``max_size`` and, unless already
    in Web Mercator (fetched tiles), reprojected to it; with its Leaflet bounds."""
    rgba, transform = _shrink(rgba, transform, max_size)
    height, width = rgba.shape[:2]
    if crs != WEB_MERCATOR:
        left, top = transform @ (0, 0)
        right, bottom = transform @ (width, height)
        dst_transform, dst_width, dst_height = calculate_default_transform(
            crs, WEB_MERCATOR, width, height, left=min(left, right), bottom=min(top, bottom),
            right=max(left, right), top=max(top, bottom))
        warped = np.zeros((4, dst_height, dst_width), np.uint8)
        reproject(np.moveaxis(rgba, -1, 0), warped, src_transform=transform, src_crs=crs,
                  dst_transform=dst_transform, dst_crs=WEB_MERCATOR,
                  resampling=Resampling.nearest)
        rgba, transform = np.moveaxis(warped, 0, -1), dst_transform
        height, width = dst_height, dst_width
    (west, east), (north, south) = lonlat_transformer(WEB_MERCATOR).transform(
        [transform.c, transform.c + transform.a * width],
        [transform.f, transform.f + transform.e * height])
    return np.ascontiguousarray(rgba), [[south, west], [north, east]]


def image_rgba(geo: GeoImage) -> np.ndarray:
    """The image as RGBA, transparent where not valid (nodata, outside a drawn polygon)."""
    alpha = np.full(geo.shape, 255, np.uint8) if geo.valid is None else geo.valid * np.uint8(255)
    return np.dstack([geo.image, alpha])


def mask_rgba(mask: np.ndarray, color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """The mask in ``color``, transparent elsewhere; the map sets its opacity."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = (*color, 255)
    return rgba


def data_url(rgba: np.ndarray, kind: str = "PNG") -> str:
    """An image data URL: PNG (lossless, for masks) or WEBP (lossy with alpha, for imagery)."""
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format=kind, **({"quality": 80} if kind == "WEBP" else {}))
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def _basemap(result: Result) -> TileSource:
    """The online background: the run's own tile server (fetched imagery), else the default."""
    source = result.geo.source
    if source.get("kind") == "tiles":
        return TileSource(url=source["url"], attribution=source.get("attribution") or "",
                          name=source.get("name") or "imagery")
    return TileSource.default()


def _popup_feature(feature: dict) -> dict:
    """A region as the map shows it: its figures as text, the popup's rows in order."""
    props = feature["properties"]
    return {"type": "Feature", "geometry": feature["geometry"], "properties": {
        "Region": str(props["rank"]),
        "Area": f"{props['area_ha']:.4g} ha ({props['area_m2']:,.0f} m²)",
        "Score (mean probability)": f"{props['score']:.3f}",
        "Peak probability": f"{props['peak']:.3f}"}}


def _summary_box(record: dict[str, Any]) -> str:
    """The question, the answer and the run's figures, as the box in the map's corner."""
    answer = record["answer"] or record["answer_note"] or ""
    regions = record["regions"]
    found = (f"{len(regions)} region(s), {record['area']['ha']:.4g} ha in all" if regions
             else record["message"])
    rows = [("Question", record["question"]), ("Answer", answer), ("Found", found),
            ("Model", f"{record['checkpoint']} at threshold {record['threshold']:.2f}"),
            ("Run", record["time_utc"])]
    return render("map_summary.html", rows=rows)


def _verbatim(html: str) -> folium.Element:
    """A folium element that inserts ``html`` as it is. ``folium.Element(html)`` would compile
    ``html`` as a jinja2 template, so a question holding ``{{ ... }}`` would run as code."""
    import folium

    element = folium.Element("{{ this.content }}")
    element.content = html
    return element


def render_map(result: Result) -> str:
    """The map file's HTML for a georeferenced run (see the module docstring)."""
    import folium  # here, not at the top: the app imports this module at start-up

    geo = result.geo
    imagery = geo if isinstance(geo, GeoImage) else geo.read(MAP_MAX_SIZE)  # a tiled run's file
    image, bounds = web_mercator(image_rgba(imagery), imagery.crs, imagery.transform,
                                 MAP_MAX_SIZE)
    # shrunk before it is coloured: a tiled run's mask can be 20,000 px a side
    small, transform = _shrink(result.mask.view(np.uint8), geo.transform, MAP_MAX_SIZE)
    mask, mask_bounds = web_mercator(mask_rgba(small.astype(bool)), geo.crs, transform,
                                     MAP_MAX_SIZE)
    record = result.record()
    basemap = _basemap(result)

    fmap = folium.Map(tiles=None, control_scale=True)
    # Leaflet inlined instead of folium's CDN links (jQuery, Bootstrap... are for features
    # not used here), so the file works offline.
    fmap.default_js, fmap.default_css = [], []
    # The title is ours too: folium's page template does not escape it.
    fmap.get_root().header.add_child(_verbatim(render(
        "map_head.html", question=result.question, leaflet_css=(LEAFLET_DIR / "leaflet.css").read_text(),
        leaflet_js=(LEAFLET_DIR / "leaflet.js").read_text())), name="segearth_head")
    folium.TileLayer(basemap.url, attr=basemap.attribution, name=f"{basemap.name} (online)",
                     max_zoom=basemap.max_zoom).add_to(fmap)
    folium.raster_layers.ImageOverlay(
        data_url(image, "WEBP"), bounds, name="Imagery of this run",
        attribution=record["geo"]["attribution"] or "").add_to(fmap)
    folium.raster_layers.ImageOverlay(data_url(mask), mask_bounds, name="Mask",
                                      opacity=0.5).add_to(fmap)
    regions = [_popup_feature(f) for f in result.features["features"] if f["geometry"] is not None]
    if regions:
        fields = list(regions[0]["properties"])
        folium.GeoJson(
            {"type": "FeatureCollection", "features": regions}, name="Regions",
            style_function=lambda _: {"color": rgb_hex(OUTLINE_COLOR), "weight": 2, "fillOpacity": 0.05},
            popup=folium.GeoJsonPopup(fields=fields), tooltip=folium.GeoJsonTooltip(fields[:2]),
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.fit_bounds(bounds)
    fmap.get_root().html.add_child(_verbatim(_summary_box(record)))
    return fmap.get_root().render()
