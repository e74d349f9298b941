"""The models in memory: at most two (compare mode needs two), loaded on demand.

Each model keeps the features of the last image it was given (`segearth.features`), so a
follow-up question about the same area skips the image encoder; `LoadedModel.ask` holds the
model's lock from set_image to predict, so two visitors' runs never mix their images.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from segearth import AnswerStream, Result
from segearth.features import FeatureCache
from segearth.geo import GeoImage
from segearth.predictor import Predictor
from segearth.regions import MIN_REGION_PX

from . import zerogpu

log = logging.getLogger("segearth.app")


@dataclass
class LoadedModel:
    """One predictor, which image its cached features belong to, and its lock."""

    checkpoint: str
    precision: str
    predictor: Predictor
    load_seconds: float
    features: FeatureCache = field(init=False, repr=False, compare=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: Seconds its last decoded answer took (None before one): whether the next one is worth
    #: waiting for before the mask's update leaves (`app.handlers.ANSWER_HOLD_S`).
    answer_seconds: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.features = FeatureCache(self.predictor)

    def ask(self, image: GeoImage | np.ndarray, question: str,
            threshold: float) -> tuple[Result, AnswerStream, float | None, float]:
        """The result for `question` about `image` (an RGB array, or a GeoImage whose valid
        pixels the mask and the answer respect) now, its mask without the answer; the answer
        as a stream of text pieces; the seconds spent encoding the image (None when the cached
        features were reused) and those spent on the mask. Atomic per model: the features
        predict reads are those of `image`, whoever else runs; the answer is decoded while the
        stream is read, and the model's next question stops it (`Predictor.answer_stream`)."""
        if not isinstance(image, GeoImage):
            image = GeoImage(image)
        with self.lock:
            if zerogpu.active():  # one GPU call: the mask now, the answer as it is read
                start = time.perf_counter()
                encode, result, stream = zerogpu.ask(self.predictor, image, question, threshold)
                return result, stream, encode, time.perf_counter() - start - encode
            encode = self.features.set_image(image)
            start = time.perf_counter()
            result = self.predictor.predict(question, threshold=threshold, answer=False,
                                            min_region_px=MIN_REGION_PX)
            return result, self.predictor.answer_stream(result), encode, time.perf_counter() - start


class ModelCache:
    """Least-recently-used predictors keyed by (checkpoint, precision). `size` bounds memory:
    a third model evicts the least recently used one before it loads (two models' memory at
    most, never three). A load that fails adds nothing; the models still loaded keep serving."""

    def __init__(self, size: int = 2):
        self._models: LRUCache[tuple[str, str], LoadedModel] = LRUCache(maxsize=size)
        self._lock = threading.Lock()
        self.status = "No model loaded yet: the first run loads one."

    def preload(self, checkpoint: str, precision: str, name: str) -> threading.Thread:
        """Load and warm the default model in the background at start-up; `status` says how
        far it got (a run asked meanwhile waits for it). `name` is how the page may call the
        checkpoint (never a server path)."""
        def load() -> None:
            self.status = f"Loading and warming up {name} ..."
            try:
                model = self.get(checkpoint, precision)
            except Exception as err:  # noqa: BLE001 - shown in the page; the first run reports it again
                log.warning("preloading %s failed: %s", checkpoint, err)
                self.status = (f"Could not load {name} ({type(err).__name__}); the first run "
                               f"tries again and says why.")
                return
            if zerogpu.active():  # at start-up only: no visitor's call pays the compile
                try:
                    zerogpu.compile_decoder(model.predictor)
                except Exception as err:  # noqa: BLE001 - answers then decode eagerly
                    log.warning("compiling the decoding step for %s failed: %s", checkpoint, err)
            warmed = "loaded" if zerogpu.active() else "loaded and warmed"
            self.status = (f"Model ready: {name} ({runs_on(model.predictor)}, {warmed} "
                           f"in {model.load_seconds:.1f} s).")

        thread = threading.Thread(target=load, daemon=True, name="preload")
        thread.start()
        return thread

    def get(self, checkpoint: str, precision: str) -> LoadedModel:
        """The loaded model, loading it (and evicting the least recently used) if needed."""
        key = (checkpoint, precision)
        with self._lock:
            if key in self._models:
                return self._models[key]  # marks it most recently used
            if self._models.currsize >= self._models.maxsize:
                self._models.popitem()
                _release_memory()
            start = time.perf_counter()
            try:
                if zerogpu.active():  # placed on "cuda" now, computed on inside each GPU call
                    predictor = zerogpu.load(checkpoint, precision)
                else:
                    predictor = Predictor.from_pretrained(checkpoint, precision=precision,
                                                          warm_up=True)
            except BaseException:
                _release_memory()  # what a failed (e.g. out-of-memory) load left behind
                raise
            model = LoadedModel(checkpoint, precision, predictor, time.perf_counter() - start)
            self._models[key] = model
            return model

    def is_loaded(self, checkpoint: str, precision: str) -> bool:
        return (checkpoint, precision) in self._models


def runs_on(predictor: Predictor) -> str:
    """The precision and device in words, for the status line: what a visitor's wait depends on."""
    if zerogpu.active():
        return f"{predictor.precision} on ZeroGPU"
    if predictor.device.type == "cuda":
        import torch

        return f"{predictor.precision} on {torch.cuda.get_device_name(predictor.device)}"
    return f"{predictor.precision} on the CPU"


def _release_memory() -> None:
    """Hand an evicted model's GPU memory back before the next one loads (on ZeroGPU the GPU's
    memory belongs to the calls, and the main process must make no CUDA call)."""
    import gc

    import torch

    gc.collect()
    if not zerogpu.active() and torch.cuda.is_available():
        torch.cuda.empty_cache()
