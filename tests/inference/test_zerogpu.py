"""The ZeroGPU wrapper: `spaces.GPU` around the GPU work only, a no-op without `spaces`."""
from __future__ import annotations

import importlib
import sys
import types
from unittest import mock

import numpy as np
import pytest

from segearth import zerogpu
from segearth.errors import InputError
from segearth.predictor import Predictor

QUESTION = "Where could residents gather safely?"


class StandInSpaces(types.ModuleType):
    """Records what the app asks of `spaces`: the decorations with their durations, the calls."""

    def __init__(self):
        super().__init__("spaces")
        self.decorated: list[tuple[str, object]] = []
        self.calls: list[tuple[str, int]] = []

    def GPU(self, duration):  # noqa: N802 - the real package's name
        def decorate(fn):
            self.decorated.append((fn.__name__, duration))

            def wrapper(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((fn.__name__, seconds))
                return fn(*args, **kwargs)
            return wrapper
        return decorate


@pytest.fixture
def reload_zerogpu():
    """Reload segearth.zerogpu under the `spaces` module a test puts in sys.modules."""
    def reload(spaces_module):
        with mock.patch.dict(sys.modules, {"spaces": spaces_module}):
            return importlib.reload(zerogpu)
    yield reload
    importlib.reload(zerogpu)  # back to the real environment


def test_without_spaces_the_decorator_changes_nothing(reload_zerogpu, monkeypatch):
    module = reload_zerogpu(None)  # None in sys.modules: `import spaces` raises ImportError
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def work(x):
        return x + 1
    assert module.gpu(duration=10)(work) is work
    assert module.ask.__name__ == "ask" and module.ask.__module__ == "segearth.zerogpu"
    assert not module.active()


def test_with_spaces_only_the_gpu_call_is_decorated_and_sized(reload_zerogpu, monkeypatch, tiny_checkpoint):
    stand_in = StandInSpaces()
    module = reload_zerogpu(stand_in)
    assert stand_in.decorated == [("ask", module.call_seconds)]  # decorated once, at import

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert module.active()
    predictor = Predictor.from_pretrained(tiny_checkpoint, precision=module.startup_precision("fp32"), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    with mock.patch.object(Predictor, "to", autospec=True, side_effect=lambda self, device: self) as to:
        encode, prediction = module.ask(predictor, image, QUESTION, 0.5)
        module.ask(predictor, image, QUESTION, 0.5, answer=False)
    assert [c.args[1] for c in to.call_args_list] == ["cuda", "cuda"]  # moved inside each call
    assert stand_in.calls == [("ask", module.MASK_SECONDS + module.ANSWER_SECONDS), ("ask", module.MASK_SECONDS)]
    assert prediction.mask.shape == (64, 80) and isinstance(prediction.answer, str) and encode > 0


def test_real_spaces_outside_a_space_is_a_no_op(reload_zerogpu, monkeypatch):
    spaces = pytest.importorskip("spaces")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    module = reload_zerogpu(spaces)

    def work():
        return 1
    assert module.gpu(duration=5)(work) is work
    assert not module.active()


def test_startup_precision_on_zerogpu():
    assert zerogpu.startup_precision("auto") == "bf16"
    assert zerogpu.startup_precision("fp32") == "fp32"
    for precision in ("fp16", "int8", "int4"):
        with pytest.raises(InputError, match="not supported on ZeroGPU"):
            zerogpu.startup_precision(precision)
