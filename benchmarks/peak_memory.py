"""Peak resident memory from process start to the answer, the checkpoint's load included.

A released-size checkpoint (Swin-B, Phi-1.5 with 24 layers, random weights saved in bf16 as the
authors' are, and a small tokenizer; written once to `.cache/released-random-bf16`) is loaded by
`Predictor.from_pretrained` in a fresh process per variant, which then answers one question on
a 1024x768 image (`--answer-tokens` forced tokens, as in `first_mask.py`). The peak is the
process's high-water mark (`ru_maxrss`): everything from its start, imports included.

Variants: a precision (`fp32`, `bf16`, `int8`, ...), or `int8-bf16-vision`, int8 as a CPU with
bf16 units runs it (the vision in bf16), simulated where the CPU has none. `--load-only` stops
after the load (where bf16 is emulated, a question at this size takes minutes).

    flock /tmp/segearth-big.lock python benchmarks/peak_memory.py [--variants int8-bf16-vision bf16 fp32] [--load-only]
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / ".cache" / "released-random-bf16"


def peak_gib() -> float:
    """This process's peak resident set so far (Linux gives KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_checkpoint() -> Path:
    """The released architecture with random weights, in bf16 (built in bf16: no fp32 copy)."""
    import torch

    from predictor_cache import random_tokenizer
    from segearth.checkpoints import save
    from segearth.config import SegEarthConfig
    from segearth.model import SegEarthR1

    if (FOLDER / "model.safetensors").is_file():
        return FOLDER
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = SegEarthR1(SegEarthConfig.released())
    torch.set_default_dtype(torch.float32)
    save(model.to(torch.bfloat16), FOLDER, random_tokenizer())
    return FOLDER


def measure(variant: str, answer_tokens: int, load_only: bool) -> tuple[float, float | None]:
    """(peak GiB after the load, peak GiB after the answer) in this fresh process."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bf16_agreement import CANDIDATES, as_on_a_bf16_cpu
    from first_mask import timed_answers
    from predictor_cache import QUESTIONS

    from segearth.predictor import Predictor

    precision, simulated = CANDIDATES.get(variant, (variant, False))
    with as_on_a_bf16_cpu(simulated):
        predictor = Predictor.from_pretrained(FOLDER, precision=precision, device="cpu")
    loaded = peak_gib()
    if load_only:
        return loaded, None
    with timed_answers(answer_tokens, []):
        predictor.set_image(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8))
        predictor.predict(QUESTIONS[0])
    return loaded, peak_gib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["int8-bf16-vision", "int8", "bf16", "fp32"])
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--load-only", action="store_true", help="stop after the load")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(write_checkpoint)
    print(f"{'variant':<20}{'peak GiB, load':>16}{'to the answer':>16}")
    for variant in args.variants:
        with context.Pool(1) as pool:  # a fresh process each: its own high-water mark
            loaded, answered = pool.apply(measure, (variant, args.answer_tokens, args.load_only))
        print(f"{variant:<20}{loaded:>16.2f}{'-' if answered is None else f'{answered:.2f}':>16}", flush=True)


if __name__ == "__main__":
    main()
