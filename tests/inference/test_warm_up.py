"""Cold start: `warm_up` pays the first question's one-time work at load.

The one-time work is counted, not timed: oneDNN (PyTorch's CPU kernels for convolutions and
bf16 matrix products) creates a primitive per operation and shape the first time it meets it
and logs `create:cache_miss`; later calls find it in its cache. Every image is padded to the
same canvas, so after `warm_up` a user's first question creates no more primitives than their
second (what both still create depends on their question's length).
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth.predictor import Predictor, cpu_has_native_bf16

QUESTIONS = ("Where could residents gather safely?", "Which fields are flooded now?")


def primitive_creations(capfd, predictor: Predictor, image: np.ndarray, question: str) -> int:
    capfd.readouterr()
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON_CREATION):
        predictor.set_image(image)
        predictor.predict(question)
    return capfd.readouterr().out.count("create:cache_miss")


def fresh_predictor(tokenizer, precision: str) -> Predictor:
    torch.manual_seed(0)
    return Predictor(SegEarthR1(SegEarthConfig.tiny()).eval(), tokenizer, precision=precision, device="cpu")


PRECISIONS = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_first_question_creates_no_more_kernels_than_the_second(capfd, e2e_tokenizer, precision):
    image = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    cold = fresh_predictor(e2e_tokenizer, precision)
    cold_counts = [primitive_creations(capfd, cold, image, q) for q in QUESTIONS]
    assert cold_counts[0] > cold_counts[1]  # the penalty exists without warm-up

    warm = fresh_predictor(e2e_tokenizer, precision)
    warm.warm_up()
    warm_counts = [primitive_creations(capfd, warm, image, q) for q in QUESTIONS]
    assert warm_counts[0] <= warm_counts[1]


def test_warm_up_runs_the_whole_path_once_and_forgets_its_image(e2e_tokenizer):
    predictor = fresh_predictor(e2e_tokenizer, "fp32")
    model = predictor.model
    with mock.patch.object(model, "encode_image", wraps=model.encode_image) as encode, \
            mock.patch("segearth.model.generation.generate_answer", return_value=[5]) as generate:
        predictor.warm_up()
    assert encode.call_count == 1 and generate.call_count == 1
    assert encode.call_args.args[0].shape == (1, 3, 128, 128)  # the canvas every request uses
    assert predictor._image is None
    with pytest.raises(Exception, match="set_image"):
        predictor.predict(QUESTIONS[0])


def test_from_pretrained_warms_up_only_when_asked(tiny_checkpoint):
    with mock.patch.object(Predictor, "warm_up") as warm_up:
        Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")
        assert warm_up.call_count == 0
        Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu", warm_up=True)
        assert warm_up.call_count == 1
