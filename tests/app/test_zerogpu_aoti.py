"""Compiled decoding on ZeroGPU, the platform's ahead-of-time way, under the stand-in's rules
(tests/app/test_zerogpu.py) with the real `spaces` package's `aoti_capture`, `aoti_compile` and
`aoti_apply` (AOTInductor builds for the CPU here): the compile runs in one call at start-up,
the main process makes no CUDA call, and answers decoded by the compiled program are the eager
ones. Slow: AOTInductor compiles C++ for the tiny model (minutes on a small CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from app import models
from segearth.geo import GeoImage

from .test_zerogpu import CUDA_FUNCTIONS, on_a_zerogpu_space, reload_zerogpu  # noqa: F401 - fixtures

QUESTION = "Where could residents gather safely?"
#: torch.cuda as it is here (no GPU), taken before the stand-in records its calls.
REAL_CUDA = {name: getattr(torch.cuda, name) for name in CUDA_FUNCTIONS}


@pytest.mark.slow
def test_the_decoding_step_is_compiled_ahead_of_time_at_start_up(on_a_zerogpu_space, tiny_checkpoint,  # noqa: F811
                                                                 monkeypatch):
    aoti = pytest.importorskip("spaces.zero.torch.aoti")
    space, module = on_a_zerogpu_space, on_a_zerogpu_space.module
    for name in ("aoti_capture", "aoti_compile", "aoti_apply"):
        setattr(space.spaces, name, getattr(aoti, name))
    for name in CUDA_FUNCTIONS:  # still recorded, but answered as this machine would (the compiler asks)
        monkeypatch.setattr(torch.cuda, name, lambda *a, _name=name, **k: (
            space.cuda_calls.append((_name, space.spaces.inside)), REAL_CUDA[_name](*a, **k))[1])
    predictor = models.ModelCache().get(str(tiny_checkpoint), "fp32").predictor
    image = GeoImage(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    predictor.set_image(image)
    eager = predictor.predict(QUESTION, threshold=1e-6).answer  # a target: an answer is decoded
    weights = {name: p.clone() for name, p in predictor.model.llm.state_dict().items()}

    module.compile_decoder(predictor)
    assert space.spaces.calls == [("_compile_step", module.COMPILE_SECONDS)]  # one call, at start-up
    assert not [name for name, inside in space.cuda_calls if not inside], space.cuda_calls
    assert predictor.decoder is not None and len(predictor.decoder.sizes) == 1
    assert all(p.equal(weights[name]) for name, p in predictor.model.llm.state_dict().items())  # LLM intact

    steps, run = [], predictor.decoder.run
    predictor.decoder.run = lambda *args: (steps.append(args[0]), run(*args))[1]
    predictor.set_image(image)
    compiled = predictor.predict(QUESTION, threshold=1e-6).answer
    assert compiled == eager and compiled and steps  # the compiled program decoded it
