"""Hugging Face ZeroGPU, the platform's documented way: the model is placed on "cuda" at
start-up in the main process (where `spaces` records the placement and no CUDA call may run),
and only the computation runs inside `@spaces.GPU`, in a worker that the platform forks for
the call with a GPU attached for at most `duration` seconds (shorter durations queue first).

Inputs are checked before the call (a refusal inside it still spends the visitor's quota), and
the call returns plain data: a `Result` holds numpy arrays only. Nothing a call computes
outlives it, so a follow-up question encodes its image again: carrying the image's state (108
MB in bf16) out of the call and back in measured 390 ms on an H200, encoding it 150 ms
(docs/speed.md, "On a GPU").

Everywhere else (no `spaces`, or `spaces` outside a ZeroGPU Space, where its decorator returns
the function unchanged) `gpu` changes nothing and `active()` is False.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from segearth import Result
from segearth.geo import GeoImage
from segearth.predictor import Predictor
from segearth.regions import MIN_REGION_PX
from segearth.result import check_threshold
from segearth.runtime import on_zerogpu as active  # noqa: F401 - the app asks here

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds asked for one call, from `benchmarks/gpu_check.py` on an H200 with margin for a
#: slice and a fresh worker (CUDA start, weights onto the GPU): the mask took 0.4 s, 32 answer
#: tokens 3.5 s, so up to 64 tokens 7 s.
MASK_SECONDS = 10
ANSWER_SECONDS = 10


def gpu(duration: int | Callable[..., int]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the `spaces` package is installed, else a no-op."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def call_seconds(predictor: Predictor, image: GeoImage, question: str, threshold: float,
                 answer: bool = True) -> int:
    """The duration of one `ask` call, from its arguments (spaces calls it with them)."""
    return MASK_SECONDS + (ANSWER_SECONDS if answer and predictor.config.answers else 0)


def load(checkpoint: str, precision: str) -> Predictor:
    """The model placed on "cuda" at start-up, outside any call; no warm-up (that would compute)."""
    return Predictor.from_pretrained(checkpoint, precision=precision, device="cuda")


def ask(predictor: Predictor, image: GeoImage, question: str, threshold: float) -> tuple[float, Result]:
    """(seconds spent on the image, the result with its answer), computed in one GPU call after
    the inputs are checked here, in the main process."""
    check_threshold(threshold)
    predictor.question_ids(question)
    return _ask(predictor, image, question, threshold)


@gpu(duration=call_seconds)
def _ask(predictor: Predictor, image: GeoImage, question: str, threshold: float,
         answer: bool = True) -> tuple[float, Result]:
    start = time.perf_counter()
    predictor.set_image(image)
    encode = time.perf_counter() - start
    return encode, predictor.predict(question, threshold=threshold, answer=answer, min_region_px=MIN_REGION_PX)
