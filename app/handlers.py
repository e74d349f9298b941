"""What the page's events do. Each handler is a thin layer over segearth's public API; every
user-fixable problem (a SegEarthError) and every unexpected one becomes a message in the page
(`gr.Error`), and the app keeps serving.
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import gradio as gr
import numpy as np

from segearth.errors import InputError, SegEarthError
from segearth.visualize import blend

from . import messages
from .config import AppConfig
from .downloads import write_downloads
from .examples import load_examples
from .map_view import parse_area
from .models import ModelCache
from .render import image_rgba, map_layer, mask_rgba
from .runs import Answer, Run, RunView
from .sources import SourceCache

log = logging.getLogger("segearth.app")

SOURCE_MAP = "map"
SOURCE_UPLOAD = "upload"
TAB_MAP = "map"
TAB_IMAGE = "image"
#: Clears the map's result layers (Gradio drops None-valued props from updates, so not None).
NO_LAYERS: dict = {}


def shows_errors(fn: Callable) -> Callable:
    """Turn exceptions into page messages: the user's own problems verbatim, bugs with a pointer
    to the log (where the traceback goes)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except SegEarthError as err:
            raise gr.Error(str(err), title=type(err).__name__) from None
        except Exception as err:  # noqa: BLE001 - the page must say something, the app must live
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(err).__name__}: {err}). The app is still "
                           f"running; the details are in the server log.",
                           title="Unexpected error") from None

    return wrapper


class Shown(NamedTuple):
    """Everything a run (or a slider move) updates, in the order of `ui.RESULT_OUTPUTS`."""

    run: Run | None
    map: Any
    image: np.ndarray | None
    tabs: Any
    answer: str
    summary: str
    downloads: list
    compare: Any
    compare_left: np.ndarray | None
    compare_right: np.ndarray | None
    compare_text: str


class Preview(NamedTuple):
    """What an upload (or example) updates before any question is asked."""

    map: Any
    image: np.ndarray | None
    tabs: Any
    source: str


class Handlers:
    """The app's state that outlives a request: the config, the models, the image cache."""

    def __init__(self, config: AppConfig, models: ModelCache | None = None,
                 sources: SourceCache | None = None):
        self.config = config
        self.models = models or ModelCache()
        self.sources = sources or SourceCache()
        self.examples = load_examples()

    # --- small events ----------------------------------------------------------------------
    def banner(self, checkpoint: str) -> Any:
        """The demo-model banner, visible exactly when the demo checkpoint is picked."""
        return gr.update(visible=self.config.is_demo(checkpoint or ""))

    @staticmethod
    def drew() -> str:
        """Drawing on the map makes the drawn area the image source."""
        return SOURCE_MAP

    def pick_example(self, evt: gr.SelectData) -> tuple[str, str]:
        """An example fills the upload and the question (the upload's change event previews it)."""
        example = self.examples[evt.index]
        return str(example.image), example.question

    @shows_errors
    def preview(self, path: str | None) -> Preview:
        """Show an upload where it belongs: a GeoTIFF on the map at its place, a plain image in
        the image view."""
        if not path:
            return Preview(gr.update(layers=NO_LAYERS), None, gr.skip(), gr.skip())
        geo, _ = self.sources.upload(path)
        if geo.is_georeferenced:
            layer = map_layer(image_rgba(geo), geo)
            return Preview(gr.update(layers={"image": layer, "fit": layer["bounds"]}), geo.image,
                           gr.Tabs(selected=TAB_MAP), SOURCE_UPLOAD)
        return Preview(gr.update(layers=NO_LAYERS), geo.image, gr.Tabs(selected=TAB_IMAGE),
                       SOURCE_UPLOAD)

    # --- the run ---------------------------------------------------------------------------
    @shows_errors
    def run(self, source: str, area: str, upload: str | None, question: str, checkpoint: str,
            precision: str, compare: bool, checkpoint_b: str, precision_b: str, threshold: float,
            opacity: float, progress: gr.Progress = gr.Progress()) -> Shown:
        """Answer `question` about the chosen image with one (or, to compare, two) models."""
        question = (question or "").strip()
        if not question:
            raise InputError("Type a question first, e.g. \"If an earthquake struck, where could "
                             "residents gather safely?\"")
        models = [(_checkpoint(checkpoint), precision)]
        if compare:
            models.append((_checkpoint(checkpoint_b), precision_b))
            if models[0] == models[1]:
                raise InputError("Compare mode needs two different checkpoints or precisions.")

        start = time.perf_counter()
        if source == SOURCE_UPLOAD:
            if not upload:
                raise InputError("No file uploaded: upload an image or GeoTIFF, or switch the "
                                 "image source to the area drawn on the map.")
            progress(0.05, desc="Reading the upload")
            geo, cached = self.sources.upload(upload)
        else:
            geometry = parse_area(area)
            if geometry is None:
                raise InputError("No area drawn: draw a rectangle or polygon on the map (tools at "
                                 "its top left), or upload an image.")
            progress(0.05, desc="Fetching map tiles")
            geo, cached = self.sources.area(geometry, self.config.satellite,
                                            self.config.max_tiles)
        name = Path(upload).stem if source == SOURCE_UPLOAD else "area"
        run = Run(question, geo, name,
                  timings={"imagery": None if cached else time.perf_counter() - start})
        if source == SOURCE_UPLOAD and geo.is_georeferenced:
            run.backdrop = map_layer(image_rgba(geo), geo)

        for i, (ckpt, prec) in enumerate(models):
            step = f" ({i + 1}/{len(models)})" if len(models) > 1 else ""
            loaded = self.models.is_loaded(ckpt, prec)
            if not loaded:
                progress((i + 0.2) / len(models), desc=f"Loading {ckpt} ({prec}){step}")
            model = self.models.get(ckpt, prec)
            progress((i + 0.5) / len(models), desc=f"Reading the image and answering{step}")
            start = time.perf_counter()
            encode, prediction = model.ask(geo.image, question, threshold)
            run.answers.append(Answer(ckpt, prec, prediction, {
                "load": None if loaded else model.load_seconds, "encode": encode,
                "answer": time.perf_counter() - start - (encode or 0.0)}))
        return self.show(run, threshold, opacity)

    @shows_errors
    def show(self, run: Run | None, threshold: float, opacity: float) -> Shown:
        """Render `run` at `threshold` and `opacity`, without the model (the sliders)."""
        if run is None:
            return Shown(*(gr.skip() for _ in Shown._fields))
        view = run.at(threshold)
        is_demo = self.config.is_demo(run.answers[0].checkpoint)
        masks = [p.mask for p in view.predictions]
        compared = len(masks) > 1
        return Shown(
            run=run,
            map=gr.update(layers=_map_layers(view), opacity=opacity),
            image=blend(run.geo.image, masks[0], opacity),
            tabs=gr.Tabs(selected=TAB_MAP if run.georeferenced else TAB_IMAGE),
            answer=messages.answer_text(view),
            summary=messages.summary(view, is_demo),
            downloads=[str(p) for p in write_downloads(view)],
            compare=gr.update(visible=compared),
            compare_left=blend(run.geo.image, masks[0], opacity) if compared else None,
            compare_right=blend(run.geo.image, masks[1], opacity) if compared else None,
            compare_text=messages.compare_text(view) if compared else "",
        )


def _checkpoint(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InputError("Pick a checkpoint, or type a hub id or a local checkpoint folder.")
    return value


def _map_layers(view: RunView) -> dict:
    """The map's layers for a run: the mask over the area, its outlines, a GeoTIFF backdrop."""
    if not view.run.georeferenced:
        return NO_LAYERS
    return {"image": view.run.backdrop,
            "overlay": map_layer(mask_rgba(view.prediction.mask), view.run.geo),
            "outlines": view.features, "fit": None}
