"""What the page's events do. Each handler is a thin layer over segearth's public API; every
user-fixable problem (a SegEarthError) and every unexpected one becomes a message in the page
(`gr.Error`), and the app keeps serving.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, NamedTuple

import gradio as gr
import numpy as np

from segearth import AnswerStream, Result, checkpoints
from segearth.config import threshold_or_default
from segearth.errors import InputError, SegEarthError
from segearth.geo.tiles import NO_AREA
from segearth.maps import image_rgba, mask_rgba
from segearth.predictor import finish_answer
from segearth.visualize import blend, hex_rgb, region_view

from . import messages
from .config import AppConfig
from .downloads import add_answer, discard_downloads, downloads_at, page_image
from .examples import load_examples
from .guard import allowed_checkpoint, loading, question_text, without_paths
from .map_view import parse_area
from .models import LoadedModel, ModelCache
from .render import feature_bounds, map_layer
from .runlog import run_log
from .runs import CheckpointRun, Questions, Run, RunRequest, RunView
from .sources import SourceCache

log = logging.getLogger("segearth.app")

SOURCE_MAP = "map"
SOURCE_UPLOAD = "upload"
TAB_MAP = "map"
TAB_IMAGE = "image"
#: Clears the map's result layers (Gradio drops None-valued props from updates, so not None).
NO_LAYERS: dict = {}
#: Stamps each map update in the order the server made them: Gradio may apply a large update
#: (a finished run's) after a smaller later one (a region's focus), and the map then keeps the
#: newer. Microseconds from the epoch, so a restarted server still counts upwards, and JavaScript
#: numbers hold them exactly.
_MAP_UPDATES = itertools.count(time.time_ns() // 1000)
#: Seconds between two updates of a run while its answer is decoded: the first words go out
#: this long after the mask's update at the latest (at once if they come later), later pieces at
#: most this often. Each update costs the server (Gradio processes every output of it, a skipped
#: one too) and every page about the same, whatever its size; an answer decoded within this time
#: of its mask (the demo model's) costs no update of its own.
TEXT_UPDATE_S = 0.3
#: Seconds the mask's update may wait for the answer when the model's last answer took no
#: longer: an answer done by then comes with the mask, in one update (the demo model's, a few
#: tens of ms), rather than an update after it. A model that answers slowly (a released one on a
#: CPU: seconds) sends its mask at once and streams its answer.
ANSWER_HOLD_S = 0.2


def map_update(layers: dict, **props: Any) -> Any:
    """The map's `layers` (see `static/map.js`), stamped with their place in the order of
    updates, and any other props."""
    return gr.update(layers={**layers, "seq": next(_MAP_UPDATES)}, **props)


def shows_errors(fn: Callable) -> Callable:
    """Turn exceptions into page messages: the user's own problems verbatim, bugs with a pointer
    to the log (where the traceback goes)."""

    @contextmanager
    def page_errors() -> Iterator[None]:
        try:
            yield
        except gr.Error:
            raise
        except SegEarthError as err:
            raise gr.Error(without_paths(str(err)), title=type(err).__name__) from None
        except Exception as err:  # noqa: BLE001 - the page must say something, the app must live
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(err).__name__}: {without_paths(str(err))}). "
                           f"The app is still running; the details are in the server log.",
                           title="Unexpected error") from None

    if inspect.isgeneratorfunction(fn):  # Gradio streams a generator's updates: stay one
        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with page_errors():
                yield from fn(*args, **kwargs)
        return streaming

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with page_errors():
            return fn(*args, **kwargs)

    return wrapper


class Shown(NamedTuple):
    """Everything a run (or a slider move, or picking a question) updates."""

    questions: Questions | None  # the page's state: the questions about the place shown
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
    regions: Any  # the regions table
    picker: Any  # which question's regions, answer and downloads the page shows


class Focus(NamedTuple):
    """What clicking a row of the regions table updates."""

    map: Any
    image: np.ndarray | None
    tabs: Any


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
        self.sources = sources or SourceCache(limits=config.limits)
        self.examples = load_examples(demo=config.is_demo(config.checkpoint))
        #: The answers being decoded, per visitor (Gradio session): a visitor's next run stops them.
        self._streams: dict[str, list[AnswerStream]] = {}
        self._streams_lock = threading.Lock()

    # --- small events ----------------------------------------------------------------------
    def picked(self, checkpoint: str) -> tuple[Any, Any]:
        """A checkpoint was picked: the demo-model banner, visible exactly for the demo model, and
        the threshold slider at that checkpoint's own threshold (a typed custom one leaves it)."""
        banner = gr.update(visible=self.config.is_demo(checkpoint or ""))
        configured = self.config.configured(checkpoint or "")
        return banner, gr.skip() if configured is None else self.threshold_of(configured)

    @staticmethod
    def threshold_of(checkpoint: str) -> float:
        """The checkpoint's default threshold, read from its config when it is on this machine
        (a folder or the hub cache); else 0.5, the authors' logit > 0."""
        return threshold_or_default(None, checkpoints.cached_config(checkpoint))

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
            return Preview(map_update(NO_LAYERS), None, gr.skip(), gr.skip())
        geo, _ = self.sources.upload(path)
        if geo.is_georeferenced:
            layer = map_layer(image_rgba(geo), geo)
            return Preview(map_update({"image": layer, "fit": layer["bounds"]}), geo.image,
                           gr.Tabs(selected=TAB_MAP), SOURCE_UPLOAD)
        return Preview(map_update(NO_LAYERS), geo.image, gr.Tabs(selected=TAB_IMAGE),
                       SOURCE_UPLOAD)

    # --- the run ---------------------------------------------------------------------------
    @shows_errors
    def run(self, request: RunRequest, visitor: gr.Request | None,
            progress: gr.Progress = gr.Progress(),
            earlier: Questions | None = None) -> Iterator[Shown]:
        """Answer the request's question about the chosen image with one (or, to compare, two)
        models. Asked about the place of the `earlier` questions, it joins them as a new layer on
        the map (the last `limits.question_layers`); about another place, it starts afresh.

        The page gets the mask, its outline and the regions table the moment the mask exists,
        then the answer text as it is decoded (decoding starts as the mask's update
        leaves): at most one update every `TEXT_UPDATE_S` after the mask's, each with the text
        alone, all of it decoded by then; an answer complete within that time comes with the
        last update alone (a short answer costs one update, not two). A model whose last answer
        took at most `ANSWER_HOLD_S` holds the mask's update that long for the answer: done by
        then, the run is one update with everything, as a run whose answer is known at once
        (the "no target" sentence, a checkpoint without answers) is. When the answer is
        complete, the last update brings the answer, the summary with its timings and the
        downloads, written now, with the answer in their record (files are sent once: a client
        fetches every file an update names); the other outputs are the mask update's, sent
        again as they were (an API client's last update is the whole result).
        A run the visitor starts meanwhile stops this one's decoding (`stop_answers`): its
        text is left as it was, and nothing more is computed or written for it."""
        session = visitor.session_hash if visitor is not None else None
        threshold, opacity = request.threshold, request.opacity
        with run_log(checkpoint=request.checkpoint, precision=request.precision,
                     source=request.source, compare=request.compare) as entry:
            run, asked = self._run(request, progress, entry["stages_s"])
            streams = [stream for _, stream in asked]
            questions = (earlier or Questions([])).asked(run, self.config.limits.question_layers)
            for gone in earlier.runs if earlier else []:
                if all(gone is not kept for kept in questions.runs):
                    discard_downloads(gone)  # the page can no longer show its files
            if not any(stream.decodes for stream in streams):  # the answers are known now
                for i, stream in enumerate(streams):
                    _finish(run, i, stream, entry)
                yield self.show(questions, threshold, opacity)  # one update: the whole result
                return
            self._register(session, streams)
            try:
                if _answers_with_the_mask(asked):
                    (model, stream), = asked
                    "".join(stream)  # all decoded: read at once
                    _finish(run, 0, stream, entry, model)
                    yield self.show(questions, threshold, opacity)  # one update: the whole result
                    return
                shown = self.show(questions, threshold, opacity, downloads=False)
                streams[0].start()  # decoded while Gradio sends the mask
                yield shown  # the answer box says it is coming
                sent = time.monotonic()
                for i, stream in enumerate(streams):
                    text = ""
                    for piece in stream:
                        text += piece
                        # the page shows the first model's answer: all that is decoded so far
                        if i == 0 and not stream.ahead and time.monotonic() - sent >= TEXT_UPDATE_S:
                            sent = time.monotonic()
                            yield Shown(*(gr.skip() for _ in Shown._fields))._replace(
                                answer=messages.streaming_answer(text))
                    if stream.cancelled:
                        entry["outcome"] = "stopped"
                        return
                    _finish(run, i, stream, entry, asked[i][0])
            finally:
                self._unregister(session, streams)
            # the map's layers keep the mask update's stamp, so that a map update the visitor
            # made meanwhile (a region's focus, a slider) is newer and stays
            add_answer(run)
            view = run.at(threshold)
            answer, summary = self._texts(questions, view)
            yield shown._replace(answer=answer, summary=summary,
                                 downloads=[str(p) for p in downloads_at(view)],
                                 picker=_picker(questions))  # Gradio took its value

    def stop_answers(self, request: gr.Request) -> None:
        """The visitor asked again: stop decoding the answers of their earlier run (they would
        be replaced on the page anyway)."""
        if request is None:
            return
        with self._streams_lock:
            streams = self._streams.pop(request.session_hash, [])
        for stream in streams:
            stream.close()

    def _register(self, session: str | None, streams: list[AnswerStream]) -> None:
        if session is not None:
            with self._streams_lock:
                self._streams[session] = streams

    def _unregister(self, session: str | None, streams: list[AnswerStream]) -> None:
        with self._streams_lock:
            if session is not None and self._streams.get(session) is streams:
                del self._streams[session]
        for stream in streams:
            stream.close()  # a no-op for a finished answer; stops one the page no longer reads

    def _run(self, request: RunRequest, progress: gr.Progress,
             stages: dict[str, float | None]) -> tuple[Run, list[tuple[LoadedModel, AnswerStream]]]:
        """The model part of `run` up to the masks, and each model with its answer as a stream;
        `stages` collects each stage's seconds for the run log."""
        question = question_text(request.question, self.config.limits)
        models = [(allowed_checkpoint(ckpt, self.config), prec) for ckpt, prec in request.models]
        if len(models) > 1 and models[0] == models[1]:
            raise InputError("Compare mode needs two different checkpoints or precisions.")
        source, upload, threshold = request.source, request.upload, request.threshold

        start = time.perf_counter()
        if source == SOURCE_UPLOAD:
            if not upload:
                raise InputError("No file uploaded: upload an image or GeoTIFF, or switch the "
                                 "image source to the area drawn on the map.")
            progress(0.05, desc="Reading the upload")
            geo, cached = self.sources.upload(upload)
        else:
            geometry = parse_area(request.area)
            if geometry is None:
                raise InputError(f"{NO_AREA}, or upload an image.")
            progress(0.05, desc="Fetching map tiles")
            on_screen = (geometry.get("properties") or {}).get("basemap")
            geo, cached = self.sources.area(geometry, self.config.imagery(on_screen),
                                            self.config.max_tiles)
        name = Path(upload).stem if source == SOURCE_UPLOAD else "area"
        run = Run(question, geo, name,
                  timings={"imagery": None if cached else time.perf_counter() - start})
        stages.update(run.timings)
        if source == SOURCE_UPLOAD and geo.is_georeferenced:
            run.backdrop = map_layer(image_rgba(geo), geo)

        asked = []
        for i, (ckpt, prec) in enumerate(models):
            step = f" ({i + 1}/{len(models)})" if len(models) > 1 else ""
            loaded = self.models.is_loaded(ckpt, prec)
            if not loaded:
                progress((i + 0.2) / len(models),
                         desc=f"Loading {self.config.name_of(ckpt)} ({prec}){step}")
            with loading(ckpt, prec, self.config):
                model = self.models.get(ckpt, prec)
            progress((i + 0.5) / len(models), desc=f"Reading the image and finding the target{step}")
            result, stream, encode, seconds = model.ask(geo, question, threshold)
            asked.append((model, stream))
            public = self.config.name_of(ckpt)  # what the page and the downloads may show
            result = replace(result, provenance={**result.provenance, "checkpoint": public})
            run.checkpoint_runs.append(CheckpointRun(public, prec, result, {
                "load": None if loaded else model.load_seconds, "encode": encode,
                "mask": seconds}))
            stages.update({f"{k}{i + 1 if i else ''}": v
                           for k, v in run.checkpoint_runs[-1].timings.items()})
        return run, asked

    @shows_errors
    def show(self, questions: Questions | None, threshold: float, opacity: float,
             downloads: bool = True) -> Shown:
        """Render the questions at `threshold` and `opacity`, without the model (the sliders):
        the selected one in full, the others as map layers; its downloads unless told not to
        (none yet: they come with the answer)."""
        if questions is None:
            return Shown(*(gr.skip() for _ in Shown._fields))
        run = questions.run
        view = run.at(threshold)
        masks = [result.mask for result in view.results]
        compared = len(masks) > 1
        answer, summary = self._texts(questions, view)
        return Shown(
            questions=questions,
            map=map_update(_map_layers(questions, view.result, threshold), opacity=opacity),
            image=page_image(view, f"shown-{opacity:.3f}",
                             lambda: blend(run.geo.image, masks[0], opacity, hex_rgb(run.color))),
            tabs=gr.Tabs(selected=TAB_MAP if run.georeferenced else TAB_IMAGE),
            answer=answer,
            summary=summary,
            downloads=[str(p) for p in downloads_at(view)] if downloads else [],
            compare=gr.update(visible=compared),
            compare_left=page_image(view, f"first-{opacity:.3f}",
                                    lambda: blend(run.geo.image, masks[0], opacity))
            if compared else None,
            compare_right=page_image(view, f"second-{opacity:.3f}",
                                     lambda: blend(run.geo.image, masks[1], opacity))
            if compared else None,
            compare_text=messages.compare_text(view) if compared else "",
            regions=messages.region_table(view.result),
            picker=_picker(questions),
        )

    def _texts(self, questions: Questions, view: RunView) -> tuple[str, str]:
        """The answer box and the summary for the shown question's `view`."""
        run = questions.run
        return (messages.answer_text(view, newest=run is questions.runs[-1]),
                messages.summary(view, self.config.is_demo(run.checkpoint_runs[0].checkpoint)))

    @shows_errors
    def pick(self, questions: Questions | None, index: int | None, threshold: float,
             opacity: float) -> Shown:
        """The visitor picked one of the questions about this place: the page shows its answer,
        regions and downloads, its outlines on top."""
        if questions is None or index is None:
            return Shown(*(gr.skip() for _ in Shown._fields))
        return self.show(questions.select(int(index)), threshold, opacity)

    @shows_errors
    def focus(self, questions: Questions | None, threshold: float, opacity: float,
              evt: gr.SelectData) -> Focus:
        """A row of the regions table clicked: zoom the map (georeferenced) or the image view
        (plain image) to that region and highlight its outline."""
        if questions is None or not evt.index:
            return Focus(gr.skip(), gr.skip(), gr.skip())
        run = questions.run
        result = run.at(threshold).result
        rank = int(evt.index[0]) + 1  # rows are in rank order
        if not 1 <= rank <= len(result.regions):
            return Focus(gr.skip(), gr.skip(), gr.skip())
        if run.georeferenced:
            return Focus(map_update(_map_layers(questions, result, threshold, focus=rank),
                                    opacity=opacity), gr.skip(), gr.Tabs(selected=TAB_MAP))
        return Focus(gr.skip(), region_view(result, rank, opacity, hex_rgb(run.color)),
                     gr.Tabs(selected=TAB_IMAGE))


def _answers_with_the_mask(asked: list[tuple[LoadedModel, AnswerStream]]) -> bool:
    """One model, whose last answer took at most `ANSWER_HOLD_S`, and its answer is complete
    within that time of its mask (decoding starts now). An answer stopped meanwhile (the visitor
    asked again) or failed is not: the mask goes out alone, and the failure after it."""
    if len(asked) != 1:
        return False
    (model, stream), = asked
    return (model.answer_seconds is not None and model.answer_seconds <= ANSWER_HOLD_S
            and stream.done_within(ANSWER_HOLD_S) and stream.text is not None)


def _finish(run: Run, index: int, stream: AnswerStream, entry: dict,
            model: LoadedModel | None = None) -> None:
    """The run's `index`th model's answer is complete (read, or known at once): into its result,
    and its seconds (none without an answer) into its timings and the run log's `entry`; a
    decoded answer's seconds into its `model` too (the next run's `ANSWER_HOLD_S` choice)."""
    answered = run.checkpoint_runs[index]
    finish_answer(answered.result, stream)
    if stream.seconds is not None:
        answered.timings["answer"] = stream.seconds
        entry["stages_s"][f"answer{index + 1 if index else ''}"] = stream.seconds
        if model is not None and stream.decodes:
            model.answer_seconds = stream.seconds


def _picker(questions: Questions) -> Any:
    """The question picker's update: a new one per update (Gradio takes the value out of it)."""
    return gr.update(choices=messages.question_choices(questions.runs), value=questions.selected,
                     visible=len(questions.runs) > 1)


def _map_layers(questions: Questions, result: Result, threshold: float,
                focus: int | None = None) -> dict:
    """The map's layers: the shown question's mask over the area and its region outlines (region
    ``focus`` highlighted and fitted), each other question about the place as a layer of its own
    colour at the same threshold, a GeoTIFF backdrop."""
    if not result.georeferenced:
        return NO_LAYERS
    run = questions.run
    return {**_question_layer(run, result, questions.selected), "image": run.backdrop,
            "focus": focus, "fit": None if focus is None else feature_bounds(result.features, focus),
            "others": [_question_layer(other, other.at(threshold).result, order)
                       for order, other in enumerate(questions.runs) if other is not run]}


def _question_layer(run: Run, result: Result, order: int) -> dict:
    """One question as the map shows it: its mask and region outlines, in its colour, and its
    place in asking order (the layer switch's order)."""
    return {"name": run.question, "color": run.color, "order": order,
            "overlay": map_layer(mask_rgba(result.mask, hex_rgb(run.color)), result.geo),
            "outlines": result.features}
