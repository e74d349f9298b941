"""Compiled decoding gives exactly the eager tokens: the static cache, the `torch.compile`d
step, the stop rules, cancelling and the streamed pieces. (The AOTInductor program ZeroGPU runs:
tests/app/test_zerogpu_aoti.py.)

One tiny model and one decoder per module: each cache size compiles once (tens of seconds on
a small CPU), then every test reuses it."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from transformers.generation.streamers import BaseStreamer

from segearth import runtime
from segearth.model import SegEarthR1, generation

from tests.model.conftest import QUESTION

REPO = Path(__file__).resolve().parents[2]


class Pieces(BaseStreamer):
    """Every `put` as a list of ids, and whether `end` came."""

    def __init__(self):
        self.puts: list[list[int]] = []
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value.reshape(-1).tolist())

    def end(self) -> None:
        self.ended = True


@pytest.fixture(scope="module")
def decoder(parts):
    return generation.CompiledDecoder(parts[0].llm)


@torch.inference_mode()
def answer(parts, seed: int, decoder: generation.CompiledDecoder | None, stop_ids=(510, 0),
           dtype: torch.dtype = torch.float32, **kwargs) -> list[int]:
    """The answer to the question about a random image (`seed`), eagerly or with `decoder`."""
    model, prefix_segments, lead_in, ids = parts
    torch.manual_seed(seed)
    features = model.encode_image(torch.randn(1, 3, 128, 128, dtype=dtype))
    prefix = generation.read_prefix(model.llm, prefix_segments, features.visual_tokens[0])
    _, embeds = generation.read_question(model.llm, prefix, ids)
    return model.answer(prefix, embeds, lead_in, list(stop_ids), decoder=decoder, **kwargs)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_decoding_gives_the_eager_tokens(parts, decoder, seed):
    eager = answer(parts, seed, None)
    assert len(eager) > 5
    assert answer(parts, seed, decoder) == eager


def test_bf16_compiled_decoding_gives_the_eager_tokens(parts):
    """bf16 (the GPU's `auto`): Inductor rounds as eager does (`generation.INDUCTOR_OPTIONS`).
    Checked on the CPU, where eager's kernels are ATen's vectorised ones: at AVX-512 some of them
    compute bf16 otherwise than Inductor's generated loops (measured on an AMD EPYC with
    avx512_bf16, with these options: the tokens part with ATen at AVX-512 and agree with it held
    to AVX2), so where ATen runs above AVX2 the check runs in a process of its own with ATen held
    to AVX2."""
    if (torch.backends.cpu.get_cpu_capability() not in ("AVX2", "DEFAULT")
            and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2"):  # not asked already
        test = f"{Path(__file__).relative_to(REPO)}::test_bf16_compiled_decoding_gives_the_eager_tokens"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                              cwd=REPO, env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"},
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-4000:]
        return
    model = parts[0]
    bf16 = (SegEarthR1(model.config).eval(), *parts[1:])
    bf16[0].load_state_dict(model.state_dict())
    bf16[0].to(torch.bfloat16)
    decoder = generation.CompiledDecoder(bf16[0].llm)
    for seed in (0, 3, 5):  # three of these six differed without the option
        assert answer(bf16, seed, decoder, dtype=torch.bfloat16) == answer(bf16, seed, None, dtype=torch.bfloat16)


def test_stop_tokens_token_limit_and_loop_guard_as_eager(parts, decoder):
    free = answer(parts, 1, None)
    stop_at = free[4]  # the fifth token made a stop token
    assert answer(parts, 1, decoder, stop_ids=(stop_at, 0)) == answer(parts, 1, None, stop_ids=(stop_at, 0)) \
        == free[:free.index(stop_at)]
    assert answer(parts, 1, decoder, max_new_tokens=3) == free[:3]
    bias = parts[0].llm.lm_head.bias
    with torch.no_grad():
        bias[7] += 1e4  # the model repeats token 7: three, then one copy kept
    try:
        assert answer(parts, 2, decoder) == answer(parts, 2, None) == [7]
    finally:
        with torch.no_grad():
            bias[7] -= 1e4


def test_the_streamer_gets_what_generate_gives_it(parts, decoder):
    """The same puts (the empty prompt first, then one token each) and the end, so
    `TextIteratorStreamer` releases the same words."""
    eager, compiled = Pieces(), Pieces()
    answer(parts, 3, None, streamer=eager)
    answer(parts, 3, decoder, streamer=compiled)
    assert compiled.puts == eager.puts and compiled.ended and eager.ended
    assert compiled.puts[0] == [] and all(len(put) == 1 for put in compiled.puts[1:])


def test_cancel_stops_at_the_next_token(parts, decoder):
    cancel = threading.Event()

    class CancelAfterTwo(Pieces):
        def put(self, value):
            super().put(value)
            if len(self.puts) == 3:  # the prompt and two tokens
                cancel.set()

    tokens = answer(parts, 0, decoder, streamer=CancelAfterTwo(), cancel=cancel)
    assert tokens == answer(parts, 0, None)[:2]


def test_one_cache_size_per_question_length():
    """Questions of similar length share one static cache (one compiled graph)."""
    size = generation.CompiledDecoder.cache_size
    assert size(150, 2) == size(170, 64) == 256 and size(200, 64) == 384
    assert size(150, 200) >= 350


def test_the_choice_rule(monkeypatch):
    """One table says where the compiled step pays; never on ZeroGPU (no torch.compile there),
    never for quantised LLMs."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert runtime.compiled_decoding_pays(cuda, "bf16") and not runtime.compiled_decoding_pays(cuda, "int4")
    assert not runtime.compiled_decoding_pays(cpu, "int8")
    for precision in ("fp32", "bf16"):
        assert runtime.compiled_decoding_pays(cpu, precision) == runtime.COMPILED_DECODING_PAYS[("cpu", precision)]
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not runtime.compiled_decoding_pays(cuda, "bf16")


def test_warm_up_compiles_where_it_pays_and_answers_are_the_eager_ones(tiny_checkpoint, monkeypatch):
    """A predictor warmed up where the table says yes decodes with the compiled step (through
    the app's and the CLI's `answer_stream`), with the answers of one that decodes eagerly."""
    import numpy as np

    from segearth.predictor import Predictor

    monkeypatch.setitem(runtime.COMPILED_DECODING_PAYS, ("cpu", "fp32"), False)
    eager = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu", warm_up=True)
    assert eager.decoder is None
    monkeypatch.setitem(runtime.COMPILED_DECODING_PAYS, ("cpu", "fp32"), True)
    compiled = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu", warm_up=True)
    assert compiled.decoder is not None
    steps, run = [], compiled.decoder.run
    compiled.decoder.run = lambda *args: (steps.append(args[0]), run(*args))[1]
    for seed in range(2):
        image = np.random.default_rng(seed).integers(0, 256, (64, 80, 3), dtype=np.uint8)
        answers = []
        for predictor in (eager, compiled):
            predictor.set_image(image)
            answers.append(predictor.predict(QUESTION, threshold=1e-6).answer)
        assert answers[0] == answers[1] and answers[0]
    assert steps
