"""How much the Predictor's cache and 8-bit LLM save, at the released model size.

One image, five questions. Prints, for each step, wall time and peak memory:
  * cached: `set_image` + first question, then each follow-up (only the question runs);
  * uncached: the same five questions, each paying for the whole pipeline (what the authors'
    code does for every question);
  * fp32 against int8 (LLM quantised by bitsandbytes) for the cached run.
Weights are random (the architecture is what costs), so no download is needed.

    python benchmarks/predictor_cache.py [--device cuda] [--answers] [--precisions fp32 int8]

Memory: peak resident set size of the process during the step on CPU (sampled every 10 ms),
peak allocated CUDA memory on a GPU.
"""
from __future__ import annotations

import argparse
import multiprocessing
import threading
import time

import numpy as np
import psutil
import torch

from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth.predictor import Predictor

QUESTIONS = (
    "If an earthquake struck, where could residents gather safely?",
    "Where could a small plane make an emergency landing?",
    "Which areas would flood first after heavy rain?",
    "Where could children play football?",
    "Which buildings could store grain for the farms around them?",
)


class PeakMemory:
    """Peak memory (GiB) while the block runs."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            process = psutil.Process()
            self.peak = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(0.01):
                    self.peak = max(self.peak, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
        self.seconds = time.perf_counter() - self.start
        self.peak /= 2**30


def random_tokenizer():
    """A tokenizer with [SEG]: GPT-2's byte-level BPE trained on the questions (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(list(QUESTIONS) * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "[PAD]", "[SEG]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="[PAD]")


def run(precision: str, device: str | None, answers: bool, image: np.ndarray, tokenizer) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    model = SegEarthR1(SegEarthConfig.released())
    predictor = Predictor(model, tokenizer, precision=precision, device=device, checkpoint="random")
    rows = []
    with PeakMemory(predictor.device) as m:
        predictor.set_image(image)
        predictor.predict(QUESTIONS[0], answer=answers)
    rows.append((f"{precision} cached: first question (set_image + predict)", m.seconds, m.peak))
    for i, question in enumerate(QUESTIONS[1:], 2):
        with PeakMemory(predictor.device) as m:
            predictor.predict(question, answer=answers)
        rows.append((f"{precision} cached: follow-up {i}", m.seconds, m.peak))
    if precision == "fp32":
        for i, question in enumerate(QUESTIONS, 1):
            with PeakMemory(predictor.device) as m:
                predictor.set_image(image)  # the whole pipeline again
                predictor.predict(question, answer=answers)
            rows.append((f"{precision} uncached: question {i}", m.seconds, m.peak))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--answers", action="store_true", help="also generate answers (64 tokens max)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    tokenizer = random_tokenizer()
    rows = []
    context = multiprocessing.get_context("spawn")
    for precision in args.precisions:  # a fresh process each, so peaks do not mix
        with context.Pool(1) as pool:
            rows += pool.apply(run, (precision, args.device, args.answers, image, tokenizer))
    print(f"\n{'step':<52}{'seconds':>10}{'peak GiB':>10}")
    for name, seconds, peak in rows:
        print(f"{name:<52}{seconds:>10.2f}{peak:>10.2f}")

    def total(prefix: str) -> float:
        return sum(s for n, s, _ in rows if n.startswith(prefix))

    cached, uncached = total("fp32 cached"), total("fp32 uncached")
    if cached and uncached:
        print(f"\nfive questions: cached {cached:.1f} s, uncached {uncached:.1f} s -> {uncached / cached:.2f}x faster")
        follow = [s for n, s, _ in rows if n.startswith("fp32 cached: follow-up")]
        first_uncached = [s for n, s, _ in rows if n.startswith("fp32 uncached")]
        print(f"a follow-up costs {np.mean(follow) / np.mean(first_uncached):.3f} of a full run")
    if total("int8 cached") and cached:
        peaks = {p: max(pk for n, _, pk in rows if n.startswith(f"{p} cached")) for p in ("fp32", "int8")}
        print(f"int8 vs fp32 (cached five questions): time {total('int8 cached') / cached:.2f}x, "
              f"peak memory {peaks['int8']:.2f} vs {peaks['fp32']:.2f} GiB ({peaks['int8'] / peaks['fp32']:.2f}x)")


if __name__ == "__main__":
    main()
