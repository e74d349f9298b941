"""ZeroGPU the platform's documented way, without a GPU: a stand-in `spaces` that records what
the app asks of it and holds the real package's rules for a call, with every `torch.cuda`
function watched and `.to("cuda")` recorded (and kept on the CPU, so the model still runs here)."""
from __future__ import annotations

import importlib
import inspect
import io
import pickle
import queue
import sys
import threading
import time
import types
from unittest import mock

import numpy as np
import pytest
import torch

from app import models, zerogpu
from segearth import AnswerStream
from segearth.errors import InputError
from segearth.geo import GeoImage
from segearth.predictor import Predictor
from segearth.runtime import resolve_precision

QUESTION = "Where could residents gather safely?"
#: The torch.cuda functions a careless main process would call (availability, memory, sync...).
CUDA_FUNCTIONS = ("is_available", "is_bf16_supported", "empty_cache", "synchronize", "current_device",
                  "device_count", "get_device_name", "get_device_properties", "memory_allocated",
                  "max_memory_allocated", "reset_peak_memory_stats", "mem_get_info", "init", "set_device")


class PlainData(pickle.Pickler):
    """What crosses from the GPU worker to the main process: pickled, and never a tensor (its
    storage is the GPU's, which the main process must not touch)."""

    def reducer_override(self, obj):
        if isinstance(obj, (torch.Tensor, torch.nn.Module)):
            raise pickle.PicklingError(f"a {type(obj).__name__} crossed out of the GPU call")
        return NotImplemented


def across(value):
    """`value` as the main process receives it from the worker."""
    buffer = io.BytesIO()
    PlainData(buffer).dump(value)
    return pickle.loads(buffer.getvalue())


class StandInSpaces(types.ModuleType):
    """Records the decorations with their durations, the calls with the seconds asked, and
    whether a call is running (`inside`), as the real package's GPU worker would bracket it.

    A generator function follows spaces 0.51.3's `generator_function_wrapper`: the call starts
    (and its duration is asked) at the first `next`; the function runs in a worker of its own (a
    thread here, a forked process there), which sends each value it yields to the main process,
    pickled, and runs on without waiting for it to be read; closing the main process's generator
    sets the worker's stop event, which the worker checks each time the function has yielded its
    next value (and then closes the function's generator), and the main process waits for the
    worker to end. `ended` counts the calls whose worker has ended, `after_stop` the values
    functions yielded once their stop event was set (the real worker's too: it cannot stop a
    function between two values)."""

    def __init__(self):
        super().__init__("spaces")
        self.decorated: list[tuple[str, object]] = []
        self.calls: list[tuple[str, int]] = []
        self.inside = False
        self.ended = 0
        self.after_stop = 0

    def GPU(self, duration):  # noqa: N802 - the real package's name
        def decorate(fn):
            self.decorated.append((fn.__name__, duration))
            if inspect.isgeneratorfunction(fn):
                return self._generator_call(fn, duration)

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

    def _generator_call(self, fn, duration):
        def main_side(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            self.calls.append((fn.__name__, seconds))
            values: queue.Queue = queue.Queue()
            stop = threading.Event()

            def worker() -> None:
                self.inside = True
                try:
                    gen = fn(*args, **kwargs)
                    while True:
                        try:
                            value = next(gen)
                        except StopIteration:
                            break
                        except Exception as err:  # noqa: BLE001 - raised in the main process
                            values.put(("error", err))
                            return
                        if stop.is_set():
                            self.after_stop += 1
                            gen.close()
                            break
                        try:
                            values.put(("value", across(value)))
                        except pickle.PicklingError as err:
                            values.put(("error", err))
                            return
                finally:
                    self.inside = False
                    self.ended += 1
                    values.put(("end", None))

            thread = threading.Thread(target=worker, name="gpu-worker", daemon=True)
            thread.start()
            try:
                while True:
                    kind, value = values.get(timeout=60)
                    if kind == "error":
                        raise value
                    if kind == "end":
                        return
                    yield value
            except GeneratorExit:
                stop.set()
                raise
            finally:
                thread.join()
        return main_side


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
    # one GPU function per question, sized by its inputs; one at start-up (tests/app/test_zerogpu_aoti.py)
    assert space.spaces.decorated == [("_compile_step", module.COMPILE_SECONDS), ("_ask", module.call_seconds)]

    cache = models.ModelCache()
    loaded = cache.get(str(tiny_checkpoint), "auto")  # start-up: the main process
    assert space.moves and not any(inside for _, inside in space.moves)  # .to("cuda") outside any call
    assert loaded.predictor.precision == "bf16" and not space.spaces.calls  # auto, and nothing computed yet
    moves_at_start_up = len(space.moves)

    image = GeoImage(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    result, stream, encode, answering = loaded.ask(image, QUESTION, 0.5)
    assert result.answer is None  # the mask's result, yielded before the answer
    pieces = list(stream)  # the rest of the same call
    assert pieces and stream.text and "".join(pieces).strip().startswith(stream.text)
    loaded.ask(image, "A follow-up about the same area?", 0.5)  # its stream dropped unread
    assert space.spaces.calls == [("_ask", module.MASK_SECONDS + module.ANSWER_SECONDS)] * 2  # each re-encodes
    assert len(space.moves) == moves_at_start_up  # nothing moved inside a call: the weights were placed
    assert isinstance(result.probability, np.ndarray) and result.mask.shape == (64, 80)  # plain arrays back
    assert isinstance(stream.text, str) and encode > 0 and answering >= 0  # text, once read
    assert "ZeroGPU" in models.runs_on(loaded.predictor)

    cache.get(str(tiny_checkpoint), "fp32")
    cache.get(str(tiny_checkpoint), "fp16")  # a third model evicts one, and memory is released
    assert not [name for name, inside in space.cuda_calls if not inside], space.cuda_calls


#: The answer the stand-in decodes (`decoded_words`), a word every 0.1 s.
WORDS = [f"word{i} " for i in range(8)]


@pytest.fixture
def decoded_words(monkeypatch) -> list[float]:
    """Every answer decoded by a stand-in, one of `WORDS` every 0.1 s, and when each was: an
    answer slow enough to watch, of several pieces whatever the CPU. The random tiny model's own
    words depend on the CPU's bf16 arithmetic (ZeroGPU's `auto` is bf16; native on a CPU with
    avx512_bf16, emulated elsewhere) and on some CPUs come as one piece without spaces. Decoding
    stops at the next word once its stream is closed, as the model's stops at the next token."""
    steps: list[float] = []

    def answer_stream(self, result):
        def decode(streamer, cancel):
            for word in WORDS:
                if cancel.is_set():
                    return None
                steps.append(time.perf_counter())
                time.sleep(0.1)
                streamer.on_finalized_text(word)
            return "".join(WORDS).strip()
        return AnswerStream(self.tokenizer, decode)

    monkeypatch.setattr(Predictor, "answer_stream", answer_stream)
    return steps


#: A question, image and threshold for which the random tiny model finds a target, so an answer
#: is decoded.
WORDY_QUESTION, WORDY_SEED, TARGET_THRESHOLD = "Which area would flood first?", 1, 0.05


def test_one_call_yields_the_mask_then_the_answer_pieces(on_a_zerogpu_space, tiny_checkpoint,
                                                          decoded_words):
    space, module = on_a_zerogpu_space, on_a_zerogpu_space.module
    loaded = models.ModelCache().get(str(tiny_checkpoint), "auto")
    image = GeoImage(np.random.default_rng(WORDY_SEED).integers(0, 256, (64, 80, 3), np.uint8))
    result, stream, _, _ = loaded.ask(image, WORDY_QUESTION, TARGET_THRESHOLD)
    assert result.found and result.answer is None
    assert space.spaces.inside and not decoded_words[1:]  # the mask is out; the call goes on
    pieces = []
    for piece in stream:
        pieces.append((piece, len(decoded_words)))
    assert len(pieces) > 1 and pieces[0][1] < len(decoded_words)  # piece by piece, not at the end
    assert "".join(p for p, _ in pieces).strip() == stream.text == "".join(WORDS).strip()
    assert space.spaces.calls == [("_ask", module.MASK_SECONDS + module.ANSWER_SECONDS)]
    assert space.spaces.ended == 1 and not space.spaces.inside
    assert not [name for name, inside in space.cuda_calls if not inside], space.cuda_calls


def test_closing_the_answer_ends_the_gpu_call(on_a_zerogpu_space, tiny_checkpoint, decoded_words):
    """What asking again does (`Handlers.stop_answers` closes the stream): the worker stops at its
    next piece, and decoding stops with the call: no quota is spent on text nobody reads."""
    space = on_a_zerogpu_space.spaces
    loaded = models.ModelCache().get(str(tiny_checkpoint), "auto")
    image = GeoImage(np.random.default_rng(WORDY_SEED).integers(0, 256, (64, 80, 3), np.uint8))
    _, stream, _, _ = loaded.ask(image, WORDY_QUESTION, TARGET_THRESHOLD)
    reader = iter(stream)
    next(reader)  # the first words
    closed_at = len(decoded_words)
    stream.close()
    assert space.ended == 1 and not space.inside  # the call is over once close returns
    assert space.after_stop == 1  # the one piece the worker checks its stop event after
    ended_at = len(decoded_words)
    time.sleep(0.3)
    assert len(decoded_words) == ended_at >= closed_at  # nothing decoded once the call ended
    assert stream.cancelled and stream.text is None
    assert not [t for t in threading.enumerate() if t.name in ("gpu-worker", "segearth-answer")]


def test_what_a_call_yields_must_be_plain_data():
    """The stand-in refuses what the real worker could not hand over: a tensor."""
    with pytest.raises(pickle.PicklingError, match="Tensor"):
        across({"mask": torch.zeros(2)})
    assert across({"mask": np.zeros(2)})["mask"].shape == (2,)


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
