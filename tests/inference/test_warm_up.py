"""Cold start: `warm_up` pays the first question's one-time work at load.

The one-time work is counted, not timed: oneDNN (PyTorch's CPU kernels for convolutions and
bf16 matrix products) creates a primitive per operation and shape the first time it meets it
and logs `create:cache_miss`; later calls find it in its cache. Every image is padded to the
same canvas, so after `warm_up` a user's first question creates no more primitives than their
second (what both still create depends on their question's length).
"""
from __future__ import annotations

import subprocess
import sys
from unittest import mock

import pytest
import torch

from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth.predictor import Predictor
from segearth.runtime import cpu_has_native_bf16

from ..conftest import E2E, REPO

QUESTIONS = ("Where could residents gather safely?", "Which fields are flooded now?")
#: Runs in a fresh interpreter (oneDNN's primitive cache is per process): two questions about
#: one image, oneDNN's creation log on, a marker line before each.
CHILD = """
import sys, numpy as np, torch
from transformers import AutoTokenizer
from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth.predictor import Predictor
precision, warm, tokenizer_dir, questions = sys.argv[1], sys.argv[2] == "warm", sys.argv[3], sys.argv[4:]
torch.manual_seed(0)
predictor = Predictor(SegEarthR1(SegEarthConfig.tiny()).eval(), AutoTokenizer.from_pretrained(tokenizer_dir),
                      precision=precision, device="cpu")
if warm:
    predictor.warm_up()
image = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
for question in questions:
    print("=== request", flush=True)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON_CREATION):
        predictor.set_image(image)
        predictor.predict(question)
    sys.stdout.flush()
"""


def primitive_creations(precision: str, warm: bool) -> list[int]:
    """oneDNN primitives created by each of the two requests of a fresh process."""
    out = subprocess.run([sys.executable, "-c", CHILD, precision, "warm" if warm else "cold", str(E2E), *QUESTIONS],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    return [part.count("create:cache_miss") for part in out.split("=== request")[1:]]


def fresh_predictor(tokenizer, precision: str) -> Predictor:
    torch.manual_seed(0)
    return Predictor(SegEarthR1(SegEarthConfig.tiny()).eval(), tokenizer, precision=precision, device="cpu")


PRECISIONS = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_first_question_creates_no_more_kernels_than_the_second(precision):
    cold = primitive_creations(precision, warm=False)
    assert cold[0] > cold[1]  # the penalty exists without warm-up
    warm = primitive_creations(precision, warm=True)
    assert len(warm) == 2 and warm[0] <= warm[1]


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
