"""Hugging Face ZeroGPU support: only the GPU work runs inside `@spaces.GPU`.

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with
`spaces.GPU` runs, in a worker forked for the call, for at most its `duration` (shorter
durations queue first). The conventions followed here: the model is built on the CPU at
start-up, moved to CUDA inside the call, and the call returns plain data (the `Result`'s
arrays). State set inside the call does not outlive it, so each call encodes its image.

Everywhere else (no `spaces` package, or `spaces` outside a ZeroGPU Space, where its decorator
returns the function unchanged) `gpu` changes nothing and `active()` is False.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import InputError
from .predictor import Predictor
from .result import Result
from .image_processing import ImageLike

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds asked for one call (expected on a ZeroGPU H200 slice: model to GPU ~2 s, image and
#: question < 1 s, a 64-token answer ~2 s; README "Where to run it"). Extra for the answer.
MASK_SECONDS = 20
ANSWER_SECONDS = 15


def active() -> bool:
    """True on a ZeroGPU Space (the variable the `spaces` package reads)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu(duration: int | Callable[..., int]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the `spaces` package is installed, else a no-op."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def call_seconds(predictor: Predictor, image: ImageLike, question: str, threshold: float | None = None,
                 answer: bool = True) -> int:
    """The duration of one `ask` call, from its arguments (spaces calls it with them)."""
    return MASK_SECONDS + (ANSWER_SECONDS if answer and predictor.config.answers else 0)


@gpu(duration=call_seconds)
def ask(predictor: Predictor, image: ImageLike, question: str, threshold: float | None = None,
        answer: bool = True) -> tuple[float, Result]:
    """One question about `image` on the GPU: (seconds spent on the image, the prediction)."""
    predictor.to("cuda")
    start = time.perf_counter()
    predictor.set_image(image)
    encode = time.perf_counter() - start
    return encode, predictor.predict(question, threshold=threshold, answer=answer)


def startup_precision(precision: str) -> str:
    """The precision to build the model in on the CPU for a ZeroGPU Space: `auto` means bf16,
    what its GPUs (H200 slices) run best. fp16 (refused on a CPU) and 8/4-bit (bitsandbytes
    quantises on the device the model lands on) are refused: bf16 is as fast there."""
    if precision not in ("auto", "bf16", "fp32"):
        raise InputError(f"{precision} is not supported on ZeroGPU: use auto, bf16 or fp32.")
    return "bf16" if precision == "auto" else precision
