"""The image encoder's work kept per image: a follow-up question about the same pixels skips it.

A `Predictor` holds the state of the last image it was given (`set_image`: the encoder, the
pixel decoder and the LLM over the prompt up to the question, most of a question's cost).
`FeatureCache` remembers which image that is by content (`image_key`), so a caller that is handed
the same pixels again (the app's follow-up question about a drawn area, which arrives as a new
array; the notebook's next question about the same area) asks the model only for the question.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from .geo.raster import GeoImage
from .predictor import Predictor


def image_key(image: GeoImage) -> str:
    """Content hash of an image and its valid pixels: equal ones mean reusable features and the
    same mask, whatever their source (the valid pixels decide whether a target is found)."""
    digest = hashlib.blake2b(np.ascontiguousarray(image.image).data, digest_size=16)
    digest.update(repr(image.image.shape).encode())
    if image.valid is not None:
        digest.update(np.packbits(image.valid).data)
    return digest.hexdigest()


class FeatureCache:
    """A predictor and the key of the image whose state it holds. Not a lock: callers that share
    the predictor between threads hold their own from `set_image` to the end of `predict`."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.key: str | None = None  # image_key of the image `held` came from
        self._held: GeoImage | None = None  # `predictor.image` right after our set_image

    def set_image(self, image: GeoImage) -> float | None:
        """`predictor.set_image(image)` unless it already holds these very pixels: the seconds
        it took, or None when the held state was reused. A `set_image` by anyone else in between
        (the predictor's image is then another object) makes the next call encode again."""
        key = image_key(image)
        if key == self.key and self.predictor.image is not None and self.predictor.image is self._held:
            return None
        self.key = self._held = None  # a failing set_image leaves no stale key behind
        start = time.perf_counter()
        self.predictor.set_image(image)
        self.key, self._held = key, self.predictor.image
        return time.perf_counter() - start
