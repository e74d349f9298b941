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

from segearth.predictor import Predictor


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


class ModelCache:
    """Least-recently-used predictors keyed by (checkpoint, precision). `size` bounds memory:
    a third model evicts the oldest."""

    def __init__(self, size: int = 2):
        self.size = size
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

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
            predictor = Predictor.from_pretrained(checkpoint, precision=precision)
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
