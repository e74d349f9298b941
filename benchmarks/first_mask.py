"""What a user waits for, at the released model size: the mask of a new area, then its answer.

The released architecture (Swin-B, Phi-1.5 with 24 layers, 1.6 B parameters) with random
weights (the architecture is what costs; nothing is downloaded), one 1024x768 image, answers of
exactly `--answer-tokens` tokens (32: random weights would stop or loop at random, so the
length is forced and the figure is a real answer's cost). Each variant runs in a fresh process,
so no variant inherits another's warm kernels or memory:

  baseline      the authors' uncached pipeline: fp32, no cache, no warm-up, the whole pipeline
                and the same answer for every question, with their CPU deformable attention
                (Mask2Former's pure-PyTorch fallback samples with `grid_sample`: our training
                kernel, forced here) and PyTorch's default fp32 linears (MKL; `segearth.cpu_linear`
                is switched off). Their model generates the answer and takes the mask from the
                answer's [SEG] token, so the mask, the first text and the whole answer all come at
                the end. Question 1 is this process's cold start; the baseline is the mean of
                questions 2 and 3, the cost of an uncached question once warm
  PRECISION     ours (`--precisions`, and `auto` as it resolves on this machine): load +
                `warm_up()` (reported apart), then the first question on a new image
                (`set_image` + `predict`) and two follow-ups (`predict` only)

Per question: seconds to the mask, to the first answer token, to the whole answer, decode ms
per answer token, peak memory; then the ratios to the baseline and where the first question's
time goes (per stage).

    python benchmarks/first_mask.py [--device cuda] [--precisions fp32 bf16 int8] [--answer-tokens 32] [--small]

`--answer-tokens 0` measures masks only; `--small` runs `SegEarthConfig.tiny()` instead (seconds,
for trying the script out).
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from unittest import mock

import numpy as np
import torch
from predictor_cache import QUESTIONS, PeakMemory, random_tokenizer
from transformers.generation.streamers import BaseStreamer

from segearth import cpu_linear, image_processing
from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1, generation, pixel_decoder
from segearth.predictor import Predictor
from segearth.runtime import resolve_device, resolve_precision

#: Stage name -> the sub-module whose forward it is (nested ones are also in their parent).
MODULE_STAGES = {
    "Swin encoder": "encoder",
    "connector": "connector",
    "pixel decoder": "pixel_decoder",
    "  of which deformable attention": "pixel_decoder.transformer",
    "D-Projector": "d_projector",
    "mask decoder": "mask_decoder",
}
#: Stage name -> the key of `Prediction.timings` that measures it.
TIMING_STAGES = {"LLM prefix": "prompt_prefix", "question (LLM)": "question", "answer": "answer"}
UPSAMPLING = ("logits_to_canvas", "canvas_to_image")


class TokenClock(BaseStreamer):
    """When `generate` handed over each answer token (its first call is the prompt: skipped)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


@contextmanager
def timed_answers(tokens: int, clocks: list[TokenClock]):
    """Every answer generated in the block is exactly `tokens` long (no stop token before, no
    loop guard) and appends its `TokenClock` to `clocks`."""
    generate = generation.generate_answer

    def clocked(*args, **kwargs):
        clocks.append(TokenClock())
        return generate(*args, **{**kwargs, "max_new_tokens": tokens, "streamer": clocks[-1]})

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(generation, "generate_answer", clocked))
        stack.enter_context(mock.patch.object(
            generation, "GenerationConfig", functools.partial(generation.GenerationConfig, min_new_tokens=tokens)))
        stack.enter_context(mock.patch.object(generation, "loop_period", lambda tokens: None))
        yield


@dataclass
class Row:
    """One step: seconds from its start to the mask, the first answer token and the whole answer
    (None without an answer), decode ms per answer token, peak GiB."""

    name: str
    mask: float
    first_token: float | None = None
    whole: float | None = None
    decode_ms: float | None = None
    peak: float = 0.0


class StageProfile:
    """Seconds per stage while active: forward hooks on the model's parts, and the two
    upsampling functions wrapped (CUDA is synchronised at each boundary)."""

    def __init__(self, predictor: Predictor):
        self.seconds: dict[str, float] = defaultdict(float)
        self.cuda = predictor.device.type == "cuda"
        for stage, name in MODULE_STAGES.items():
            module = predictor.model.get_submodule(name)
            module.register_forward_pre_hook(self._start(stage))
            module.register_forward_hook(self._stop(stage))
        self._started: dict[str, float] = {}

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _start(self, stage: str):
        def hook(module, args):
            self._started[stage] = self._now()
        return hook

    def _stop(self, stage: str):
        def hook(module, args, output):
            self.seconds[stage] += self._now() - self._started.pop(stage)
        return hook

    @contextmanager
    def upsampling(self):
        def timed(fn):
            def wrapper(*args, **kwargs):
                start = self._now()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds["upsampling"] += self._now() - start
            return wrapper
        with mock.patch.multiple(image_processing, **{n: timed(getattr(image_processing, n)) for n in UPSAMPLING}):
            yield


def run(variant: str, device: str | None, answer_tokens: int, small: bool, image: np.ndarray, tokenizer) -> dict:
    """One variant in this (fresh) process: its rows and the first question's per-stage seconds."""
    torch.manual_seed(0)
    config = SegEarthConfig.tiny() if small else SegEarthConfig.released()
    baseline = variant == "baseline"
    if baseline:  # the authors' kernels, for the rest of this (baseline-only) process:
        # grid_sample for deformable attention, PyTorch's default (MKL) for fp32 linears
        mock.patch.object(pixel_decoder, "_sample_with_embedding_bag", pixel_decoder._sample_with_grid_sample).start()
        mock.patch.object(cpu_linear, "route_linears", lambda *parts: 0).start()
    clocks: list[TokenClock] = []
    with timed_answers(answer_tokens, clocks):
        return _questions(variant, device, answer_tokens, config, image, tokenizer, clocks)


def _questions(variant: str, device: str | None, answer_tokens: int, config: SegEarthConfig, image: np.ndarray,
               tokenizer, clocks: list[TokenClock]) -> dict:
    baseline = variant == "baseline"
    with PeakMemory(torch.device(device or "cpu")) as m:
        predictor = Predictor(SegEarthR1(config), tokenizer, precision="fp32" if baseline else variant,
                              device=device, checkpoint="random")
        if not baseline:
            predictor.warm_up()
    rows = [Row(f"{variant}: load{'' if baseline else ' + warm-up'}", m.seconds, peak=m.peak)]
    profile = StageProfile(predictor)
    stages: dict[str, float] = {}

    def ask(name: str, question: str, new_image: bool) -> None:
        profile.seconds.clear()
        clocks.clear()
        with PeakMemory(predictor.device) as m, profile.upsampling():
            start = time.perf_counter()
            if new_image:
                predictor.set_image(image)
            prediction = predictor.predict(question, answer=answer_tokens > 0)
        row = Row(name, m.seconds - prediction.timings.get("answer", 0.0), peak=m.peak)
        if clocks and clocks[0].times:
            times = clocks[0].times
            row.first_token, row.whole = times[0] - start, m.seconds
            row.decode_ms = 1000 * (times[-1] - times[0]) / max(len(times) - 1, 1)
            if baseline:  # the authors' mask and text come from one generate: at its end
                row.mask = row.first_token = row.whole
        rows.append(row)
        if not stages:  # the first question's profile
            stages.update(profile.seconds)
            stages.update({s: prediction.timings[k] for s, k in TIMING_STAGES.items() if k in prediction.timings})

    if baseline:
        for i, question in enumerate(QUESTIONS[:3], 1):
            ask(f"baseline: uncached question {i}", question, new_image=True)
    else:
        ask(f"{variant}: first question (set_image + predict)", QUESTIONS[0], new_image=True)
        for i, question in enumerate(QUESTIONS[1:3], 2):
            ask(f"{variant}: follow-up {i}", question, new_image=False)
    return {"rows": rows, "stages": stages, "mask": predictor.predict(QUESTIONS[0], answer=False).mask}


def _cell(seconds: float | None, baseline: float, width: int = 8) -> str:
    return f"{'-':>{width}}{'':>7}" if seconds is None else f"{seconds:>{width}.2f}{seconds / baseline:>6.3f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--answer-tokens", type=int, default=32, help="answer length (0: masks only)")
    parser.add_argument("--small", action="store_true", help="the tiny config, to try the script")
    args = parser.parse_args()
    auto = resolve_precision("auto", resolve_device(args.device))
    variants = ["baseline", *args.precisions, *([] if auto in args.precisions else [auto])]
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    tokenizer = random_tokenizer()
    results = {}
    context = multiprocessing.get_context("spawn")
    for variant in variants:
        with context.Pool(1) as pool:  # a fresh process each: cold kernels, separate peaks
            results[variant] = pool.apply(run, (variant, args.device, args.answer_tokens, args.small, image, tokenizer))
        print(f"{variant} done: " + "; ".join(f"{r.name} {r.mask:.2f}/{r.whole or 0:.2f} s" for r in results[variant]["rows"]),
              flush=True)

    rows = [row for r in results.values() for row in r["rows"]]
    uncached = [r for r in results["baseline"]["rows"] if r.name.startswith("baseline: uncached")][1:]
    base = {k: np.mean([getattr(r, k) for r in uncached]) for k in ("mask", "whole") if getattr(uncached[0], k)}
    base.setdefault("whole", base["mask"])
    print(f"\n{'step':<46}{'to mask':>15}{'to 1st token':>15}{'to answer':>15}{'ms/token':>9}{'peak GiB':>9}")
    for r in rows:
        decode = f"{r.decode_ms:>9.0f}" if r.decode_ms else f"{'-':>9}"
        print(f"{r.name:<46}{_cell(r.mask, base['mask'])}{_cell(r.first_token, base['whole'])}"
              f"{_cell(r.whole, base['whole'])}{decode}{r.peak:>9.2f}")
    print(f"\nbaseline = mean of uncached questions 2-3: {base['mask']:.2f} s to the mask"
          + (f" and the {args.answer_tokens}-token answer" if args.answer_tokens else "")
          + "; ratios (x) are to it (the first-token and answer columns to the whole answer's time)")
    print(f"auto resolves to {auto} here")
    for variant in variants[1:]:
        own = results[variant]["rows"]
        first = own[1]
        follow = np.mean([r.mask for r in own[2:]])
        line = (f"{variant}{' (auto)' if variant == auto else ''}: mask {first.mask / base['mask']:.3f}x, "
                f"follow-up mask {follow / base['mask']:.3f}x")
        if first.whole:
            line += (f", first token {first.first_token - first.mask:.2f} s after the mask, whole answer "
                     f"{first.whole / base['whole']:.3f}x")
        print(line + f", peak {max(r.peak for r in own):.2f} GiB")
    if "fp32" in results and "bf16" in results:
        a, b = results["fp32"]["mask"], results["bf16"]["mask"]
        union = (a | b).sum()
        print(f"bf16 vs fp32 mask IoU (random weights, this image): {(a & b).sum() / union if union else 1.0:.4f}")

    names = [s for s in [*MODULE_STAGES, "upsampling", *TIMING_STAGES] if any(s in r["stages"] for r in results.values())]
    print(f"\n{'first question per stage (s)':<34}" + "".join(f"{v:>10}" for v in results))
    for stage in names:
        cells = "".join(f"{r['stages'].get(stage, 0.0):>10.2f}" for r in results.values())
        print(f"{stage:<34}{cells}")


if __name__ == "__main__":
    main()
