"""ZeroGPU the platform's documented way, without a GPU: a stand-in `spaces` that records what
the app asks of it, with every `torch.cuda` function watched and `.to("cuda")` recorded (and
kept on the CPU, so the model still runs here)."""
from __future__ import annotations

import importlib
import sys
import types
from unittest import mock

import numpy as np
import pytest
import torch

from app import models, zerogpu
from segearth.errors import InputError
from segearth.geo import GeoImage
from segearth.runtime import resolve_precision

QUESTION = "Where could residents gather safely?"
#: The torch.cuda functions a careless main process would call (availability, memory, sync...).
CUDA_FUNCTIONS = ("is_available", "is_bf16_supported", "empty_cache", "synchronize", "current_device",
                  "device_count", "get_device_name", "get_device_properties", "memory_allocated",
                  "max_memory_allocated", "reset_peak_memory_stats", "mem_get_info", "init", "set_device")


class StandInSpaces(types.ModuleType):
    """Records the decorations with their durations, the calls with the seconds asked, and
    whether a call is running (`inside`), as the real package's GPU worker would bracket it."""

    def __init__(self):
        super().__init__("spaces")
        self.decorated: list[tuple[str, object]] = []
        self.calls: list[tuple[str, int]] = []
        self.inside = False

    def GPU(self, duration):  # noqa: N802 - the real package's name
        def decorate(fn):
            self.decorated.append((fn.__name__, duration))

            def wrapper(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((fn.__name__, seconds))
                self.inside = True
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.inside = False
            return wrapper
        return decorate


@pytest.fixture
def reload_zerogpu():
    """Reload app.zerogpu under the `spaces` module a test puts in sys.modules."""
    def reload(spaces_module):
        with mock.patch.dict(sys.modules, {"spaces": spaces_module}):
            return importlib.reload(zerogpu)
    yield reload
    importlib.reload(zerogpu)  # back to the real environment


@pytest.fixture
def on_a_zerogpu_space(reload_zerogpu, monkeypatch):
    """A ZeroGPU Space, as far as the main process can tell: SPACES_ZERO_GPU set, a stand-in
    `spaces`, every torch.cuda call and every move to "cuda" recorded with where it happened."""
    stand_in = StandInSpaces()
    module = reload_zerogpu(stand_in)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    cuda_calls: list[tuple[str, bool]] = []
    for name in CUDA_FUNCTIONS:
        monkeypatch.setattr(torch.cuda, name, lambda *a, _name=name, **k: cuda_calls.append((_name, stand_in.inside)))
    moves: list[tuple[str, bool]] = []
    to = torch.nn.Module.to

    def recorded_to(self, *args, **kwargs):
        target = next((a for a in (*args, kwargs.get("device")) if isinstance(a, (str, torch.device))), None)
        if target is not None and torch.device(target).type == "cuda":  # spaces records it; stays on the CPU
            moves.append((type(self).__name__, stand_in.inside))
            args = tuple("cpu" if a is target else a for a in args)
            kwargs = {k: ("cpu" if v is target else v) for k, v in kwargs.items()}
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recorded_to)
    return types.SimpleNamespace(spaces=stand_in, module=module, cuda_calls=cuda_calls, moves=moves)


def test_without_spaces_the_decorator_changes_nothing(reload_zerogpu, monkeypatch):
    module = reload_zerogpu(None)  # None in sys.modules: `import spaces` raises ImportError
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def work(x):
        return x + 1
    assert module.gpu(duration=10)(work) is work
    assert not module.active()


def test_real_spaces_outside_a_space_is_a_no_op(reload_zerogpu, monkeypatch):
    spaces = pytest.importorskip("spaces")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    module = reload_zerogpu(spaces)

    def work():
        return 1
    assert module.gpu(duration=5)(work) is work
    assert not module.active()


def test_the_model_is_placed_at_start_up_and_only_computation_runs_in_the_call(on_a_zerogpu_space,
                                                                              tiny_checkpoint):
    space, module = on_a_zerogpu_space, on_a_zerogpu_space.module
    assert space.spaces.decorated == [("_ask", module.call_seconds)]  # one GPU function, sized by its inputs

    cache = models.ModelCache()
    loaded = cache.get(str(tiny_checkpoint), "auto")  # start-up: the main process
    assert space.moves and not any(inside for _, inside in space.moves)  # .to("cuda") outside any call
    assert loaded.predictor.precision == "bf16" and not space.spaces.calls  # auto, and nothing computed yet
    moves_at_start_up = len(space.moves)

    image = GeoImage(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    result, stream, encode, answering = loaded.ask(image, QUESTION, 0.5)
    assert list(stream) == [result.answer]  # answered inside the call: one piece
    loaded.ask(image, "A follow-up about the same area?", 0.5)
    assert space.spaces.calls == [("_ask", module.MASK_SECONDS + module.ANSWER_SECONDS)] * 2  # each re-encodes
    assert len(space.moves) == moves_at_start_up  # nothing moved inside a call: the weights were placed
    assert isinstance(result.probability, np.ndarray) and result.mask.shape == (64, 80)  # plain arrays back
    assert isinstance(result.answer, str) and encode > 0 and answering >= 0
    assert "ZeroGPU" in models.runs_on(loaded.predictor)

    cache.get(str(tiny_checkpoint), "fp32")
    cache.get(str(tiny_checkpoint), "fp16")  # a third model evicts one, and memory is released
    assert not [name for name, inside in space.cuda_calls if not inside], space.cuda_calls


def test_inputs_are_checked_before_the_gpu_call(on_a_zerogpu_space, tiny_checkpoint):
    loaded = models.ModelCache().get(str(tiny_checkpoint), "auto")
    image = GeoImage(np.zeros((32, 32, 3), np.uint8))
    for question, threshold, message in [("   ", 0.5, "question is empty"), (QUESTION, 1.0, "strictly between"),
                                         ("why " * 5000, 0.5, "tokens long")]:
        with pytest.raises(InputError, match=message):
            loaded.ask(image, question, threshold)
    assert on_a_zerogpu_space.spaces.calls == []  # refused without spending a visitor's quota


def test_precisions_on_zerogpu(on_a_zerogpu_space):
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda) == "bf16"  # without asking the GPU
    assert resolve_precision("fp16", cuda) == "fp16"
    for precision in ("int8", "int4"):  # bitsandbytes would quantise with CUDA at start-up
        with pytest.raises(InputError, match="not available on ZeroGPU"):
            resolve_precision(precision, cuda)
    assert not on_a_zerogpu_space.cuda_calls
