"""Everything the app reads from the environment, read once at start-up (`AppConfig.from_env`).

`Settings` is the one list of the variables (pydantic-settings reads them: names, types,
defaults and checks), docs/server.md's settings and limits tables say the same for users
(`tests/app/test_config.py` compares them), and `AppConfig` is what the app makes of them.
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by Gradio itself.
"""
from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

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
PRECISION_LABELS = {"auto": "auto (bf16/fp16 on a GPU; bf16 on a CPU with bf16 units, else fp32)", "fp16": "fp16 (GPU)",
                    "int8": "8-bit (int8)", "int4": "4-bit (int4)"}

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


# --- reading the variables -------------------------------------------------------------------
def _whole_number(value: Any) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError("give a whole number >= 1.")
    return int(text)


def _flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError("give 1 (on) or 0 (off).")


def _map_view(value: Any) -> tuple[float, float, int]:
    if isinstance(value, tuple):  # the default
        return value
    try:
        lat, lon, zoom = (part.strip() for part in str(value).split(","))
        return float(lat), float(lon), int(zoom)
    except ValueError:
        raise ValueError("give 'lat,lon,zoom', e.g. '30.5928,114.3055,15'.") from None


def _names(value: Any) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    if isinstance(value, tuple):
        return value
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, BeforeValidator(lambda value: str(value).strip())]


class Settings(BaseSettings):
    """Every environment variable the app reads, its type, default and check: the one list.
    `Settings()` reads the process's environment; `from_mapping` a given one (tests, callers)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    checkpoint: Text = Field("", alias="SEGEARTH_CHECKPOINT")  # "": chosen at start-up
    extra_checkpoints: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names)] = Field(
        (), alias="SEGEARTH_CHECKPOINTS")
    allow_custom_checkpoints: Flag = Field(False, alias="SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS")
    demo_checkpoint: Text = Field("", alias="SEGEARTH_DEMO_CHECKPOINT")  # "": the bundled one
    precision: Text = Field("auto", alias="SEGEARTH_PRECISION")
    # the satellite tiles, checked by the library's reader (`tile_environ`)
    tile_url: str | None = Field(None, alias="SEGEARTH_TILE_URL")
    tile_attribution: str | None = Field(None, alias="SEGEARTH_TILE_ATTRIBUTION")
    tile_max_zoom: str = Field("19", alias="SEGEARTH_TILE_MAX_ZOOM")
    street_tile_url: Text = Field("", alias="SEGEARTH_STREET_TILE_URL")
    street_tile_attribution: str | None = Field(None, alias="SEGEARTH_STREET_TILE_ATTRIBUTION")
    basemaps: Text = Field("", alias="SEGEARTH_BASEMAPS")  # see `catalog_basemaps`
    map_view: Annotated[tuple[float, float, int], NoDecode, BeforeValidator(_map_view)] = Field(
        (30.5928, 114.3055, 15), alias="SEGEARTH_MAP_VIEW")
    max_tiles: WholeNumber = Field(16, alias="SEGEARTH_MAX_TILES")
    # the `Limits`, same names
    max_upload_mb: WholeNumber = Field(Limits.max_upload_mb, alias="SEGEARTH_MAX_UPLOAD_MB")
    max_image_megapixels: WholeNumber = Field(Limits.max_image_megapixels,
                                              alias="SEGEARTH_MAX_IMAGE_MEGAPIXELS")
    max_geotiff_side: WholeNumber = Field(Limits.max_geotiff_side, alias="SEGEARTH_MAX_GEOTIFF_SIDE")
    max_question_chars: WholeNumber = Field(Limits.max_question_chars,
                                            alias="SEGEARTH_MAX_QUESTION_CHARS")
    max_checkpoint_gb: WholeNumber = Field(Limits.max_checkpoint_gb, alias="SEGEARTH_MAX_CHECKPOINT_GB")
    queue_size: WholeNumber = Field(Limits.queue_size, alias="SEGEARTH_QUEUE_SIZE")
    question_layers: WholeNumber = Field(Limits.question_layers, alias="SEGEARTH_QUESTION_LAYERS")
    # huggingface_hub's own, read to choose the default checkpoint
    hf_hub_offline: Text = Field("", alias="HF_HUB_OFFLINE")  # 1, true, yes or on: offline
    hf_hub_cache: str | None = Field(None, alias="HF_HUB_CACHE")
    hf_endpoint: str = Field("https://huggingface.co", alias="HF_ENDPOINT")

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str) -> str:
        value = value or "auto"
        if value not in PRECISIONS:
            raise ValueError(f"use one of {', '.join(PRECISIONS)}.")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Given values, then the environment; no .env or secrets files (the Space sets
        variables, and a stray file must not change a server)."""
        return init_settings, env_settings

    @classmethod
    def from_mapping(cls, environ: Mapping[str, str]) -> Settings:
        """The settings `environ` gives, each variable it lacks at its default (never the
        process's environment)."""
        return cls(**{info.alias: environ.get(info.alias, info.default)
                      for info in cls.model_fields.values()})

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """`from_mapping(environ)`, or the process's environment; a bad value is an `InputError`
        that names the variable, the value and what to give instead."""
        try:
            return cls() if environ is None else cls.from_mapping(environ)
        except ValidationError as err:
            raise InputError(" ".join(
                f"{error['loc'][0]}={error['input']!r}: {error['msg'].removeprefix('Value error, ')}"
                for error in err.errors())) from None

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})

    def tile_environ(self) -> dict[str, str]:
        """The satellite tiles' variables that are set, for `TileSource.from_env` (the library's
        reader, shared with the command line and the notebook, checks them)."""
        values = {"SEGEARTH_TILE_URL": self.tile_url, "SEGEARTH_TILE_ATTRIBUTION": self.tile_attribution,
                  "SEGEARTH_TILE_MAX_ZOOM": self.tile_max_zoom}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class AppConfig:
    """What the app makes of its `Settings`: the checkpoints offered, the basemaps, the limits."""

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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        """The app's settings from `environ` (default: the process's environment, `Settings`)."""
        settings = Settings.read(environ)
        demo = settings.demo_checkpoint or str(DEMO_CHECKPOINT)
        street_url = settings.street_tile_url
        street = _OSM if not street_url else TileSource(
            url=street_url, name="street", attribution=settings.street_tile_attribution
            if settings.street_tile_attribution is not None
            else f"Map from {urlsplit(street_url).hostname}")
        satellite = Basemap("satellite", "Satellite", TileSource.from_env(settings.tile_environ()),
                            True)
        basemaps: tuple[Basemap, ...] = (satellite, Basemap("street", "Street map", street, False))
        if settings.basemaps:
            basemaps = catalog_basemaps(settings.basemaps)
            if (settings.tile_url or "").strip():  # a private server replaces them
                basemaps = (satellite, *(b for b in basemaps if not b.imagery))
        return cls(
            checkpoint=settings.checkpoint or _default_checkpoint(demo, settings),
            demo_checkpoint=demo,
            precision=settings.precision,
            basemaps=basemaps,
            map_view=settings.map_view,
            max_tiles=settings.max_tiles,
            extra_checkpoints=settings.extra_checkpoints,
            allow_custom_checkpoints=settings.allow_custom_checkpoints,
            limits=settings.limits,
        )


def _public_name(checkpoint: str) -> str:
    """A hub id as it is; a folder by its last component (server paths stay private)."""
    path = Path(checkpoint)
    return path.name if path.is_absolute() or path.exists() else checkpoint


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _default_checkpoint(demo: str, settings: Settings) -> str:
    """Released EarthReason when it can be had (cached or hub reachable), else the demo model:
    a laptop without internet still starts, with a working (if weak) model."""
    released = RELEASED_CHECKPOINTS["earthreason"]
    if _in_hub_cache(released, settings) or _hub_reachable(settings):
        return released
    return demo


def _in_hub_cache(repo_id: str, settings: Settings) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cache_dir = settings.hf_hub_cache or None
    return isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir), str)


def _hub_reachable(settings: Settings, timeout: float = 3.0) -> bool:
    if settings.hf_hub_offline.lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlsplit(settings.hf_endpoint)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout):
            return True
    except OSError:
        return False
