"""Everything the app reads from the environment, read once at start-up (`AppConfig.from_env`).

The variables and their defaults are listed for users in the README's "Web app" section, the
limits in docs/server.md's limits table. GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by
Gradio itself.
"""
from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from segearth.constants import RELEASED_CHECKPOINTS
from segearth.errors import InputError
from segearth.geo import TileSource
from segearth.runtime import PRECISIONS

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
EXAMPLES_DIR = ASSETS_DIR / "examples"
DEMO_CHECKPOINT = ASSETS_DIR / "demo-checkpoint"

#: The picker's name for the bundled demo model.
DEMO_LABEL = "Bundled demo model"
#: How the page names segearth's precisions (the choices themselves are segearth's).
PRECISION_LABELS = {"auto": "auto (bf16/fp16 on a GPU, fp32 on CPU)", "fp16": "fp16 (GPU)",
                    "int8": "8-bit (int8)", "int4": "4-bit (int4)"}

#: Environment variable -> Limits field (docs/server.md's limits table lists both, and defaults).
_LIMIT_VARIABLES = {
    "SEGEARTH_MAX_UPLOAD_MB": "max_upload_mb",
    "SEGEARTH_MAX_IMAGE_MEGAPIXELS": "max_image_megapixels",
    "SEGEARTH_MAX_GEOTIFF_SIDE": "max_geotiff_side",
    "SEGEARTH_MAX_QUESTION_CHARS": "max_question_chars",
    "SEGEARTH_MAX_CHECKPOINT_GB": "max_checkpoint_gb",
    "SEGEARTH_QUEUE_SIZE": "queue_size",
    "SEGEARTH_QUESTION_LAYERS": "question_layers",
}

_OSM = TileSource(url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                  attribution="&copy; OpenStreetMap contributors", max_zoom=19, name="street")
#: How SEGEARTH_BASEMAPS marks a basemap whose pixels a run may read.
IMAGERY_MARK = ":imagery"


@dataclass(frozen=True)
class Basemap:
    """One background layer the page offers; a run reads its pixels from an imagery one."""

    key: str  # the page's name for it (CSS class, what the map sends back)
    name: str  # as the layer switch shows it
    tiles: TileSource
    imagery: bool


def catalog_basemaps(text: str) -> tuple[Basemap, ...]:
    """SEGEARTH_BASEMAPS, e.g. "Esri.WorldImagery:imagery, OpenTopoMap, OpenStreetMap": names
    in leafmap's basemap catalog (its own layers plus xyzservices' free ones), imagery marked.
    leafmap is imported only here, so an app without the variable starts as fast as before."""
    from leafmap.basemaps import xyz_to_leaflet  # the submodule (leafmap.basemaps is a Box)

    catalog = xyz_to_leaflet()
    basemaps = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name = item.removesuffix(IMAGERY_MARK).strip()
        entry = catalog.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(catalog), n=3)
            raise InputError(f"SEGEARTH_BASEMAPS: {name!r} is not in leafmap's basemap catalog"
                             + (f"; did you mean {', '.join(close)}?" if close else ".")
                             + " Names look like Esri.WorldImagery, OpenTopoMap, OpenStreetMap.")
        if entry.get("type") != "xyz":
            raise InputError(f"SEGEARTH_BASEMAPS: {name!r} is a {entry.get('type')} layer; the "
                             f"map takes XYZ tile layers only.")
        subdomains = entry.get("subdomains") or "abc"
        url = entry["url"].replace("{s}", subdomains[0]).replace("{r}", "")
        basemaps.append(Basemap(
            key=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"), name=name,
            tiles=TileSource(url=url, name=name, max_zoom=int(entry.get("max_zoom") or 19),
                             attribution=entry.get("html_attribution") or entry.get(
                                 "attribution") or name),
            imagery=item.endswith(IMAGERY_MARK)))
    if not any(b.imagery for b in basemaps):
        raise InputError(f"SEGEARTH_BASEMAPS={text!r}: mark at least one basemap as imagery "
                         f"(the pixels a run reads), e.g. 'Esri.WorldImagery{IMAGERY_MARK}, "
                         f"OpenStreetMap'.")
    return tuple(basemaps)


@dataclass(frozen=True)
class Limits:
    """What one visitor may send: a public server must bound every request's cost."""

    max_upload_mb: int = 200  # Gradio refuses bigger uploads before they reach the app
    max_image_megapixels: int = 50  # plain images (PNG/JPEG/TIFF without a CRS)
    max_geotiff_side: int = 20_000  # width and height of a georeferenced raster, in pixels
    max_question_chars: int = 500
    max_checkpoint_gb: int = 8  # custom checkpoints only (SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS=1)
    queue_size: int = 100  # waiting runs; more visitors are told the queue is full
    #: Questions about one place a visitor's map keeps as layers (each holds its probability map
    #: in the server's memory for the visitor's session).
    question_layers: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Limits":
        """The defaults above, each overridden by its environment variable."""
        defaults = cls()
        return cls(**{field: _positive_int(name, environ.get(name, str(getattr(defaults, field))))
                      for name, field in _LIMIT_VARIABLES.items()})


@dataclass(frozen=True)
class AppConfig:
    """The app's settings; `from_env` is the only place that reads environment variables."""

    checkpoint: str
    demo_checkpoint: str
    precision: str
    basemaps: tuple[Basemap, ...]  # the layer switch's, in order; the first one shows first
    map_view: tuple[float, float, int]
    max_tiles: int
    extra_checkpoints: tuple[str, ...] = ()  # SEGEARTH_CHECKPOINTS
    allow_custom_checkpoints: bool = False  # SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS=1: trusted use
    limits: Limits = Limits()

    @property
    def satellite(self) -> TileSource:
        """The imagery a run reads when the visitor's map names none of ours: the first."""
        return next(b.tiles for b in self.basemaps if b.imagery)

    def imagery(self, key: str | None) -> TileSource:
        """The imagery basemap the visitor has on screen, by its key; any other key (the
        visitor's page sends it) gives the first imagery basemap, never a URL of theirs."""
        return next((b.tiles for b in self.basemaps if b.imagery and b.key == key),
                    self.satellite)

    @property
    def checkpoints(self) -> dict[str, str]:
        """Checkpoint choices for the picker, label -> hub id or folder: the only ones a visitor
        may use unless `allow_custom_checkpoints`. Labels name no server path (a folder shows
        as its last component)."""
        choices = {
            "EarthReason (released)": RELEASED_CHECKPOINTS["earthreason"],
            "RRSIS-D (released)": RELEASED_CHECKPOINTS["rrsisd"],
            DEMO_LABEL: self.demo_checkpoint,
        }
        for extra in (self.checkpoint, *self.extra_checkpoints):
            if extra not in choices.values():
                choices[f"Configured: {_public_name(extra)}"] = extra
        return choices

    def configured(self, value: str) -> str | None:
        """The hub id or folder of a configured checkpoint, given its label (what the picker and
        the API send) or itself; None for anything else."""
        choices = self.checkpoints
        return choices.get(value) or (value if value in choices.values() else None)

    def name_of(self, checkpoint: str) -> str:
        """How the page names `checkpoint`: its picker label, else a name without server path."""
        labels = {value: label for label, value in self.checkpoints.items()}
        return labels.get(checkpoint, _public_name(checkpoint))

    def is_demo(self, checkpoint: str) -> bool:
        """Whether `checkpoint` (a label or a folder) is the bundled demo model (the page then
        says so plainly)."""
        return checkpoint == DEMO_LABEL or _same_path(checkpoint, self.demo_checkpoint)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "AppConfig":
        demo = environ.get("SEGEARTH_DEMO_CHECKPOINT", "").strip() or str(DEMO_CHECKPOINT)
        checkpoint = (environ.get("SEGEARTH_CHECKPOINT", "").strip()
                      or _default_checkpoint(demo, environ))
        precision = environ.get("SEGEARTH_PRECISION", "auto").strip() or "auto"
        if precision not in PRECISIONS:
            raise InputError(f"SEGEARTH_PRECISION={precision!r}: use one of "
                             f"{', '.join(PRECISIONS)}.")
        street_url = environ.get("SEGEARTH_STREET_TILE_URL", "").strip()
        street = _OSM if not street_url else TileSource(
            url=street_url, name="street", attribution=environ.get(
                "SEGEARTH_STREET_TILE_ATTRIBUTION", f"Map from {urlsplit(street_url).hostname}"))
        satellite = Basemap("satellite", "Satellite", TileSource.from_env(environ), True)
        basemaps: tuple[Basemap, ...] = (satellite, Basemap("street", "Street map", street, False))
        if environ.get("SEGEARTH_BASEMAPS", "").strip():
            basemaps = catalog_basemaps(environ["SEGEARTH_BASEMAPS"])
            if environ.get("SEGEARTH_TILE_URL", "").strip():  # a private server replaces them
                basemaps = (satellite, *(b for b in basemaps if not b.imagery))
        return cls(
            checkpoint=checkpoint,
            demo_checkpoint=demo,
            precision=precision,
            basemaps=basemaps,
            map_view=_map_view(environ.get("SEGEARTH_MAP_VIEW", "30.5928,114.3055,15")),
            max_tiles=_positive_int("SEGEARTH_MAX_TILES", environ.get("SEGEARTH_MAX_TILES", "16")),
            extra_checkpoints=tuple(c.strip() for c in environ.get(
                "SEGEARTH_CHECKPOINTS", "").split(",") if c.strip()),
            allow_custom_checkpoints=_flag("SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS", environ),
            limits=Limits.from_env(environ),
        )


def _public_name(checkpoint: str) -> str:
    """A hub id as it is; a folder by its last component (server paths stay private)."""
    path = Path(checkpoint)
    return path.name if path.is_absolute() or path.exists() else checkpoint


def _flag(name: str, environ: Mapping[str, str]) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise InputError(f"{name}={value!r}: give 1 (on) or 0 (off).")


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _map_view(text: str) -> tuple[float, float, int]:
    try:
        lat, lon, zoom = (part.strip() for part in text.split(","))
        return float(lat), float(lon), int(zoom)
    except ValueError:
        raise InputError(f"SEGEARTH_MAP_VIEW={text!r}: give 'lat,lon,zoom', e.g. "
                         f"'30.5928,114.3055,15'.") from None


def _positive_int(name: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise InputError(f"{name}={text!r}: give a whole number >= 1.")
    return int(text)


def _default_checkpoint(demo: str, environ: Mapping[str, str]) -> str:
    """Released EarthReason when it can be had (cached or hub reachable), else the demo model:
    a laptop without internet still starts, with a working (if weak) model."""
    released = RELEASED_CHECKPOINTS["earthreason"]
    if _in_hub_cache(released, environ) or _hub_reachable(environ):
        return released
    return demo


def _in_hub_cache(repo_id: str, environ: Mapping[str, str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cache_dir = environ.get("HF_HUB_CACHE") or None
    return isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir), str)


def _hub_reachable(environ: Mapping[str, str], timeout: float = 3.0) -> bool:
    if environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlsplit(environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout):
            return True
    except OSError:
        return False
