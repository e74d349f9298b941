"""Hugging Face ZeroGPU, the platform's documented way: the model is placed on "cuda" at
start-up in the main process (where `spaces` records the placement and no CUDA call may run),
and only the computation runs inside `@spaces.GPU`, in a worker that the platform forks for
the call with a GPU attached for at most `duration` seconds (shorter durations queue first).

One call per question, a generator (`spaces` runs it in the worker and relays what it yields):
it yields the mask's result first, so the page shows the mask as soon as it would on a CPU, then
the answer's text pieces as they are decoded, then the final text. Inputs are checked before the
call (a refusal inside it still spends the visitor's quota), and what the call yields is plain
data (a `Result` holds numpy arrays only; pieces are strings). Asking again closes the call's
generator in the main process: `spaces` then stops the worker's generator at its next piece, so
no quota is spent on text nobody reads. Nothing a call computes outlives it, so a follow-up
question encodes its image again: carrying the image's state (108 MB in bf16) out of the call and
back in measured 390 ms on an H200, encoding it 150 ms (docs/speed.md, "On a GPU").

Everywhere else (no `spaces`, or `spaces` outside a ZeroGPU Space, where its decorator returns
the function unchanged) `gpu` changes nothing and `active()` is False.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import torch
from transformers.generation.streamers import BaseStreamer

from segearth import INDUCTOR_OPTIONS, AnswerStream, CompiledDecoder, DecodeStep, Result
from segearth.geo import GeoImage
from segearth.predictor import Predictor
from segearth.regions import MIN_REGION_PX
from segearth.result import check_threshold
from segearth.runtime import on_zerogpu as active  # noqa: F401 - the app asks here

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds asked for one call, from `benchmarks/gpu_check.py` on an H200 with margin for a
#: slice and a fresh worker (CUDA start, weights onto the GPU): the mask took 0.4 s, 32 answer
#: tokens 3.5 s, so up to 64 tokens 7 s. A call asked again ends early, and the quota counts the
#: seconds used, not those asked.
MASK_SECONDS = 10
ANSWER_SECONDS = 10


class Mask(NamedTuple):
    """What a call yields first: the seconds spent encoding the image and the mask's result
    (no answer yet)."""

    encode_s: float
    result: Result


class Answered(NamedTuple):
    """What a call yields last: the answer's final text (None for a checkpoint without answers;
    it can be shorter than the pieces, see `AnswerStream`)."""

    text: str | None


def gpu(duration: int | Callable[..., int]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the `spaces` package is installed, else a no-op."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def call_seconds(predictor: Predictor, image: GeoImage, question: str, threshold: float) -> int:
    """The duration of one `ask` call, from its arguments (spaces calls it with them)."""
    return MASK_SECONDS + (ANSWER_SECONDS if predictor.config.answers else 0)


#: Seconds asked for the start-up call that compiles the decoding step ahead of time (export
#: and AOTInductor for Phi-1.5 on a GPU: a few minutes, *not yet measured*; 25 minutes is what
#: the `spaces` package allows a start-up call).
COMPILE_SECONDS = 600


def compile_decoder(predictor: Predictor) -> None:
    """Compiled decoding on ZeroGPU, where `torch.compile` is not allowed: the platform's
    ahead-of-time way, called once at start-up in the main process after `load`. One GPU call
    runs the warm-up question's answer with `spaces.aoti_capture` around the decoding step (the
    step's real inputs), exports the step and compiles it with `spaces.aoti_compile`; the
    compiled program comes back as plain data and `spaces.aoti_apply` makes it the step that
    every later call's answers run (at that cache size; longer questions decode eagerly). No
    visitor pays the compile. Only for bf16/fp16/fp32: bitsandbytes' layers are not exported."""
    if not predictor.config.answers or predictor.precision not in ("bf16", "fp16", "fp32"):
        return
    import spaces

    step = DecodeStep(predictor.model.llm)
    compiled, size = _compile_step(predictor, step)
    spaces.aoti_apply(compiled, step)
    predictor.decoder = CompiledDecoder(predictor.model.llm, run=step, sizes=frozenset({size}))


@gpu(duration=COMPILE_SECONDS)
def _compile_step(predictor: Predictor, step: DecodeStep) -> tuple[Any, int]:
    """(the AOTInductor program of `step`, the cache size it runs), inside the GPU call."""
    import spaces

    with torch.inference_mode():  # the captured inputs are inference tensors
        with spaces.aoti_capture(step) as call:
            predictor.try_decoder(CompiledDecoder(predictor.model.llm, run=step))
        exported = torch.export.export(step, args=call.args, kwargs=call.kwargs)
        return spaces.aoti_compile(exported, INDUCTOR_OPTIONS), call.args[1].shape[-2]


def load(checkpoint: str, precision: str) -> Predictor:
    """The model placed on "cuda" at start-up, outside any call; no warm-up (that would compute)."""
    return Predictor.from_pretrained(checkpoint, precision=precision, device="cuda")


def ask(predictor: Predictor, image: GeoImage, question: str,
        threshold: float) -> tuple[float, Result, AnswerStream]:
    """(seconds spent on the image, the mask's result, the answer as a stream), from one GPU call
    started after the inputs are checked here, in the main process. Returns when the call has
    yielded the mask; the stream relays the call's pieces as it is read, and closing it (or
    dropping it unread: its generator is closed when freed) ends the call."""
    check_threshold(threshold)
    predictor.question_ids(question)
    call = _ask(predictor, image, question, threshold)
    try:
        mask = next(call)
    except BaseException:
        call.close()
        raise
    return mask.encode_s, mask.result, AnswerStream(
        predictor.tokenizer, lambda streamer, cancel: _relay(call, streamer, cancel))


def _relay(call: Iterator[Any], streamer: BaseStreamer, cancel: threading.Event) -> str | None:
    """Hand the call's pieces to the stream's reader until the final text, or until the reader
    stops (`cancel`): the call is closed then, which stops the GPU worker at its next piece."""
    try:
        for item in call:
            if cancel.is_set():
                return None
            if isinstance(item, Answered):
                return item.text
            streamer.on_finalized_text(item)
        return None
    finally:
        call.close()


@gpu(duration=call_seconds)
def _ask(predictor: Predictor, image: GeoImage, question: str,
         threshold: float) -> Iterator[Mask | str | Answered]:
    """The GPU call: the mask's result, then the answer's pieces and its final text."""
    start = time.perf_counter()
    predictor.set_image(image)
    encode = time.perf_counter() - start
    result = predictor.predict(question, threshold=threshold, answer=False,
                               min_region_px=MIN_REGION_PX)
    yield Mask(encode, result)
    stream = predictor.answer_stream(result)
    try:
        yield from stream
    finally:
        stream.close()  # the caller closed the call: stop decoding at the next token
    yield Answered(stream.text)
