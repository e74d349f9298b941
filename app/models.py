"""The models in memory: at most two (compare mode needs two), loaded on demand.

A Predictor caches the features of the last image it was given. `LoadedModel.use_image` keeps
the key of that image, so a follow-up question about the same area skips the image encoder.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from segearth import zerogpu
from segearth.predictor import Prediction, Predictor


def image_key(image: np.ndarray) -> str:
    """Content hash of an image: equal pixels mean reusable features, whatever their source."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16)
    digest.update(repr(image.shape).encode())
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """One predictor and which image its cached features belong to."""

    checkpoint: str
    precision: str
    predictor: Predictor
    load_seconds: float
    image: str | None = None  # image_key of the image whose features the predictor holds

    def use_image(self, image: np.ndarray) -> float | None:
        """Give the predictor `image`; seconds spent encoding it, None when the cached features
        were reused."""
        key = image_key(image)
        if key == self.image:
            return None
        start = time.perf_counter()
        self.predictor.set_image(image)
        self.image = key
        return time.perf_counter() - start

    def ask(self, image: np.ndarray, question: str, threshold: float) -> tuple[float | None, Prediction]:
        """(seconds encoding the image or None when cached, the prediction). On ZeroGPU both
        run inside one GPU call, and nothing is cached between calls."""
        if zerogpu.active():
            return zerogpu.ask(self.predictor, image, question, threshold)
        encode = self.use_image(image)
        return encode, self.predictor.predict(question, threshold=threshold, answer=True)


class ModelCache:
    """Least-recently-used predictors keyed by (checkpoint, precision). `size` bounds memory:
    a third model evicts the oldest."""

    def __init__(self, size: int = 2):
        self.size = size
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.status = "No model loaded yet: the first run loads one."

    def preload(self, checkpoint: str, precision: str) -> threading.Thread:
        """Load and warm the default model in the background at start-up; `status` says how
        far it got (a run asked meanwhile waits for it)."""
        def load() -> None:
            self.status = f"Loading and warming up {checkpoint} ..."
            try:
                model = self.get(checkpoint, precision)
            except Exception as err:  # noqa: BLE001 - shown in the page; the first run reports it again
                self.status = f"Could not load {checkpoint}: {err}"
                return
            self.status = f"Model ready: {checkpoint} ({model.predictor.precision}, loaded and warmed " \
                          f"in {model.load_seconds:.1f} s)."

        thread = threading.Thread(target=load, daemon=True, name="preload")
        thread.start()
        return thread

    def get(self, checkpoint: str, precision: str) -> LoadedModel:
        """The loaded model, loading it (and evicting the oldest) if needed."""
        key = (checkpoint, precision)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            if len(self._models) >= self.size:
                self._models.popitem(last=False)
                _release_memory()
            start = time.perf_counter()
            if zerogpu.active():  # built on the CPU, moved to the GPU inside each call
                predictor = Predictor.from_pretrained(checkpoint, precision=zerogpu.startup_precision(precision),
                                                      device="cpu")
            else:
                predictor = Predictor.from_pretrained(checkpoint, precision=precision, warm_up=True)
            model = LoadedModel(checkpoint, precision, predictor, time.perf_counter() - start)
            self._models[key] = model
            return model

    def is_loaded(self, checkpoint: str, precision: str) -> bool:
        return (checkpoint, precision) in self._models


def _release_memory() -> None:
    """Hand an evicted model's GPU memory back before the next one loads."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
