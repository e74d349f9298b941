"""Time to the first mask, at the released model size: what a user waits for a new area.

The released architecture (Swin-B, Phi-1.5 with 24 layers, 1.6 B parameters) with random
weights (the architecture is what costs; nothing is downloaded), one 1024x768 image. Each
variant runs in a fresh process, so no variant inherits another's warm kernels or memory:

  baseline      fp32, no cache, no warm-up: the whole pipeline for every question, as the
                authors' code runs it, with their CPU deformable attention (Mask2Former's
                pure-PyTorch fallback samples with `grid_sample`: our training kernel, forced
                here) and PyTorch's default fp32 linears (MKL; `segearth.cpu_linear` is
                switched off); question 1 is this process's cold start, the baseline is the mean of
                questions 2 and 3, the cost of an uncached question once warm
  fp32 / bf16   ours: load + `warm_up()` (reported apart), then the first question on a new
                image (`set_image` + `predict`) and two follow-ups (`predict` only)

It prints seconds and peak memory per step, the ratios to the baseline, and where the first
question's time goes (per stage).

    python benchmarks/first_mask.py [--device cuda] [--answers] [--precisions fp32 bf16] [--small]

`--small` runs `SegEarthConfig.tiny()` instead (seconds, for trying the script out).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from collections import defaultdict
from contextlib import contextmanager
from unittest import mock

import numpy as np
import torch
from predictor_cache import QUESTIONS, PeakMemory, random_tokenizer

from segearth import cpu_linear, image_processing
from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1, pixel_decoder
from segearth.predictor import Predictor

#: Stage name -> the sub-module whose forward it is (nested ones are also in their parent).
MODULE_STAGES = {
    "Swin encoder": "encoder",
    "connector": "connector",
    "pixel decoder": "pixel_decoder",
    "  of which deformable attention": "pixel_decoder.transformer",
    "D-Projector": "d_projector",
    "mask decoder": "mask_decoder",
}
#: Stage name -> the key of `Result.timings` that measures it.
TIMING_STAGES = {"LLM prefix": "prompt_prefix", "question (LLM)": "question", "answer": "answer"}
UPSAMPLING = ("logits_to_canvas", "canvas_to_image")


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


def run(variant: str, device: str | None, answers: bool, small: bool, image: np.ndarray, tokenizer) -> dict:
    """One variant in this (fresh) process: rows of (step, seconds, peak GiB) and the first
    question's per-stage seconds."""
    torch.manual_seed(0)
    config = SegEarthConfig.tiny() if small else SegEarthConfig.released()
    precision = "fp32" if variant == "baseline" else variant
    rows, stages = [], {}
    if variant == "baseline":  # the authors' kernels, for the rest of this (baseline-only) process:
        # grid_sample for deformable attention, PyTorch's default (MKL) for fp32 linears
        mock.patch.object(pixel_decoder, "_sample_with_embedding_bag", pixel_decoder._sample_with_grid_sample).start()
        mock.patch.object(cpu_linear, "route_linears", lambda *parts: 0).start()
    with PeakMemory(torch.device(device or "cpu")) as m:
        predictor = Predictor(SegEarthR1(config), tokenizer, precision=precision, device=device, checkpoint="random")
        if variant != "baseline":
            predictor.warm_up()
    rows.append((f"{variant}: load{'' if variant == 'baseline' else ' + warm-up'}", m.seconds, m.peak))
    profile = StageProfile(predictor)

    def ask(name: str, question: str, new_image: bool) -> None:
        profile.seconds.clear()
        with PeakMemory(predictor.device) as m, profile.upsampling():
            if new_image:
                predictor.set_image(image)
            prediction = predictor.predict(question, answer=answers)
        rows.append((name, m.seconds, m.peak))
        if not stages:  # the first question's profile
            stages.update(profile.seconds)
            stages.update({s: prediction.timings[k] for s, k in TIMING_STAGES.items() if k in prediction.timings})

    if variant == "baseline":
        for i, question in enumerate(QUESTIONS[:3], 1):
            ask(f"baseline: uncached question {i}", question, new_image=True)
    else:
        ask(f"{variant}: first question (set_image + predict)", QUESTIONS[0], new_image=True)
        for i, question in enumerate(QUESTIONS[1:3], 2):
            ask(f"{variant}: follow-up {i}", question, new_image=False)
    return {"rows": rows, "stages": stages, "masks": predictor.predict(QUESTIONS[0], answer=False).mask}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--answers", action="store_true", help="also generate answers (64 tokens max)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--small", action="store_true", help="the tiny config, to try the script")
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    tokenizer = random_tokenizer()
    results = {}
    context = multiprocessing.get_context("spawn")
    for variant in ["baseline", *args.precisions]:
        with context.Pool(1) as pool:  # a fresh process each: cold kernels, separate peaks
            results[variant] = pool.apply(run, (variant, args.device, args.answers, args.small, image, tokenizer))

    rows = [row for r in results.values() for row in r["rows"]]
    baseline = np.mean([s for n, s, _ in rows if n.startswith("baseline: uncached question") and not n.endswith(" 1")])
    print(f"\n{'step':<50}{'seconds':>9}{'x base':>8}{'peak GiB':>10}")
    for name, seconds, peak in rows:
        print(f"{name:<50}{seconds:>9.2f}{seconds / baseline:>8.3f}{peak:>10.2f}")
    print(f"\nbaseline = mean of uncached questions 2-3 = {baseline:.2f} s")
    for variant in args.precisions:
        first = next(s for n, s, _ in results[variant]["rows"] if n.startswith(f"{variant}: first"))
        follow = np.mean([s for n, s, _ in results[variant]["rows"] if n.startswith(f"{variant}: follow-up")])
        print(f"{variant}: first question {first / baseline:.3f}x, follow-up {follow / baseline:.3f}x the baseline")
    if "fp32" in results and "bf16" in results:
        a, b = results["fp32"]["masks"], results["bf16"]["masks"]
        union = (a | b).sum()
        print(f"bf16 vs fp32 mask IoU (random weights, this image): {(a & b).sum() / union if union else 1.0:.4f}")

    names = [s for s in [*MODULE_STAGES, "upsampling", *TIMING_STAGES] if any(s in r["stages"] for r in results.values())]
    print(f"\n{'first question per stage (s)':<34}" + "".join(f"{v:>10}" for v in results))
    for stage in names:
        cells = "".join(f"{r['stages'].get(stage, 0.0):>10.2f}" for r in results.values())
        print(f"{stage:<34}{cells}")


if __name__ == "__main__":
    main()
