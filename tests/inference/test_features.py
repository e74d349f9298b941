"""The library's shared steps that the app, the notebook and the command line call: the feature
cache keyed by image, finishing a streamed answer into its Result, the default threshold."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from segearth.config import SegEarthConfig, threshold_or_default
from segearth.features import FeatureCache, image_key
from segearth.geo import GeoImage
from segearth.predictor import Predictor, finish_answer

QUESTION = "Where could residents gather safely after an earthquake?"


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")


def scene(seed: int) -> GeoImage:
    return GeoImage(np.random.default_rng(seed).integers(0, 256, (64, 96, 3), dtype=np.uint8))


def test_image_key_is_the_pixels_and_their_valid_mask():
    image = scene(0)
    assert image_key(image) == image_key(GeoImage(image.image.copy()))  # another array, same pixels
    assert image_key(image) != image_key(scene(1))
    valid = np.ones(image.shape, bool)
    valid[:10] = False  # a drawn polygon: the same pixels, another answer
    assert image_key(replace(image, valid=valid)) != image_key(image)


def test_the_same_pixels_are_encoded_once(predictor, monkeypatch):
    cache = FeatureCache(predictor)
    image = scene(0)
    assert cache.set_image(image) > 0
    first = predictor.predict(QUESTION, answer=False).probability
    encoded = []
    monkeypatch.setattr(predictor, "set_image", lambda img, real=predictor.set_image: (
        encoded.append(img), real(img))[1])
    assert cache.set_image(GeoImage(image.image.copy())) is None and not encoded
    np.testing.assert_array_equal(predictor.predict(QUESTION, answer=False).probability, first)
    assert cache.set_image(scene(1)) > 0 and len(encoded) == 1


def test_an_image_set_by_someone_else_is_noticed(predictor):
    """The predictor is the caller's too: after its own set_image the cache encodes again,
    else the next question would read the other image's features."""
    cache = FeatureCache(predictor)
    image = scene(0)
    cache.set_image(image)
    alone = predictor.predict(QUESTION, answer=False).probability
    predictor.set_image(scene(2).image)
    assert cache.set_image(image) > 0
    np.testing.assert_array_equal(predictor.predict(QUESTION, answer=False).probability, alone)


def test_a_finished_stream_becomes_the_results_answer(predictor):
    predictor.set_image(scene(0).image)
    result = predictor.predict(QUESTION, answer=False, threshold=0.01)  # a target: a real answer
    assert result.answer is None and "answer" not in result.timings
    stream = predictor.answer_stream(result)
    pieces = "".join(stream)
    assert finish_answer(result, stream) is result
    assert pieces and result.answer == stream.text
    assert result.timings["answer"] == stream.seconds > 0
    assert result.record()["answer"] == stream.text


def test_the_default_threshold_is_the_checkpoints_else_the_authors():
    demo = SegEarthConfig(mask_threshold=0.3)
    assert threshold_or_default(0.7, demo) == 0.7  # the caller's choice first
    assert threshold_or_default(None, demo) == 0.3
    assert threshold_or_default(None, None) == 0.5 == SegEarthConfig().mask_threshold
