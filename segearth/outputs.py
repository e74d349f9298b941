"""Writing a run's result as files: the PNGs, the JSON record, the GeoTIFFs, the GeoJSON and the
map file (`segearth.maps`), each written atomically (`atomic_path`), so a file appears whole or
not at all.

`write_result` decides which files a `Result` becomes; the record itself is `Result.record()`.
The writer lives here, beside the map file it writes, and not in `segearth.result`, so that the
result type knows nothing of files and the map file may read results without an import circle.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .fileio import atomic_path
from .geo.raster import GeoImage
from .geo.vectors import write_geojson, write_image_geotiff, write_mask_geotiff
from .maps import render_map
from .result import Result
from .visualize import blend, probability_image


#: zlib level of the PNGs written: 1, not Pillow's 6: a run's files take half the CPU time or
#: less to write and come out a few percent larger (`benchmarks/write_cost.py`; docs/speed.md,
#: "What streaming costs the app server"); the pixels are the same at any level.
PNG_COMPRESS_LEVEL = 1


def save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def write_result(result: Result, out_dir: str | Path, stem: str, *, geotiff: bool | None = None,
                 imagery: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write a run's files into ``out_dir``, names starting with ``stem``, and return them.

    With the image in memory (a GeoImage): the mask (0/255), overlay and probability PNGs.
    ``geotiff`` (default: when georeferenced): the mask GeoTIFF in the source CRS and grid.
    Georeferenced: the GeoJSON regions and the map file anyone can open (`segearth.maps`).
    ``imagery``: the image itself as a GeoTIFF (fetched tiles). Always the JSON record
    (`Result.record()` plus ``extra`` and the file names), last. Everything is computed before
    the first write, and each write is atomic.
    """
    out_dir = Path(out_dir)
    mask, features = result.mask, result.features
    georeferenced = result.georeferenced
    page = render_map(result) if georeferenced else None
    written: dict[str, Path] = {}
    if isinstance(result.geo, GeoImage):
        image = result.geo.image
        written["mask_png"] = save_png(mask.astype(np.uint8) * 255, out_dir / f"{stem}_mask.png")
        written["overlay_png"] = save_png(blend(image, mask), out_dir / f"{stem}_overlay.png")
        written["probability_png"] = save_png(probability_image(result.probability),
                                              out_dir / f"{stem}_probability.png")
    if georeferenced if geotiff is None else geotiff:
        written["mask_geotiff"] = write_mask_geotiff(mask, result.geo, out_dir / f"{stem}_mask.tif",
                                                     tags=result.properties)
    if features is not None:
        written["geojson"] = write_geojson(features, out_dir / f"{stem}_mask.geojson")
    if page is not None:
        with atomic_path(out_dir / f"{stem}_map.html") as tmp:
            tmp.write_text(page, encoding="utf-8")
        written["map_html"] = out_dir / f"{stem}_map.html"
    if imagery and isinstance(result.geo, GeoImage):
        source = result.geo.source
        written["image_geotiff"] = write_image_geotiff(
            result.geo, out_dir / f"{stem}_image.tif",
            tags={"attribution": source.get("attribution"), "zoom": source.get("zoom")})
    written["json"] = write_record(result, out_dir / f"{stem}.json", written, extra)
    return written


def write_record(result: Result, path: Path, files: dict[str, Path], extra: dict[str, Any] | None = None) -> Path:
    """The JSON record (`Result.record()` plus ``extra`` and the names of ``files``), atomically:
    also how a streamed run's record gets its answer once the answer is complete."""
    record = result.record() | (extra or {})
    record["files"] = {kind: file.name for kind, file in files.items() if kind != "json"}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return path
