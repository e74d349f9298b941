"""One GPU check: everything a CUDA GPU changes, in one run that prints one table for the README.

Run from the repository root on a machine with one CUDA GPU (set up with `scripts/setup.sh`;
this script installs nothing):

    python benchmarks/gpu_check.py             # the released size, < 8 minutes on an H200
    python benchmarks/gpu_check.py --dry-run   # the same steps, tiny model on the CPU (fp32, bf16),
                                               # the compiled step included: a few minutes

Steps, each in a fresh process (so no step inherits another's memory peak or kernels):
  speed      the released architecture (random weights: the architecture is what costs) per
             precision: bf16, fp16, int8 and int4 (bitsandbytes, LLM only): time to the mask of
             a new image (`set_image` + `predict`), to the first words of a 32-token answer after
             it and to the whole answer, ms per token decoded eagerly and with the compiled step
             (`generation.CompiledDecoder`; bf16/fp16 only), a follow-up question, peak GPU
             memory; and the size of what `set_image` computed and what carrying it to the CPU
             and back costs (the ZeroGPU follow-up path) against encoding
  agreement  bf16 against fp32 on the GPU by `benchmarks/bf16_agreement.py`'s yardstick (the
             bundled demo model's synthetic scenes at two sizes, the authors' masks on the
             parity e2e split), with the per-scene mask IoUs
  tests      `pytest -m cuda`: the tests of every GPU-only path
  load       `benchmarks/load_app.py --clients 50` with the demo model on the GPU
  train      20 optimiser steps of the released recipe (train/configs/earthreason.json: bf16,
             gradient checkpointing, frozen Swin, batch 16 as 16 x 1 accumulated) at the released
             size from random weights, on a few generated EarthReason-layout items: seconds per
             step and peak memory

Any failing step is named and makes the exit status non-zero; the other steps still run, so one
run on a borrowed GPU reports everything it can. The parity fixtures are read from
`--shared` (default `../shared`); the parity weights are built once into `.cache/parity` by the fixtures' `make_weights.py`.
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmarks

ANSWER_TOKENS = 32
QUESTION, FOLLOW_UP = "Where could a small plane make an emergency landing?", "Which areas would flood first?"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def timed(device: torch.device, into: dict, key: str):
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    into[key] = time.perf_counter() - start


@contextmanager
def forced_answer_length(tokens: int):
    """Answers of exactly `tokens` tokens: random weights would stop or loop at any point, and
    a real answer's cost is what is measured (EarthReason answers are ~35 tokens)."""
    from transformers import GenerationConfig

    from segearth.model import generation

    def config(**kwargs) -> GenerationConfig:
        return GenerationConfig(**{**kwargs, "max_new_tokens": tokens, "min_new_tokens": tokens})

    with mock.patch.object(generation, "GenerationConfig", config), \
            mock.patch.object(generation.RepetitionStop, "__call__",
                              lambda self, ids, scores, **kw: torch.zeros(len(ids), dtype=torch.bool, device=ids.device)):
        yield


def tensors_in(obj, seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor reachable from `obj` (dataclasses, caches, lists, dicts), each once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.nn.Module)):
        children = list(vars(obj).values())
    else:
        return []
    return [t for child in children for t in tensors_in(child, seen)]


def carry_cost(state, device: torch.device) -> dict:
    """What carrying the image state out of a ZeroGPU call and back in would cost: its size, the
    copy to the CPU, a pickle round trip (how it crosses processes) and the copy back."""
    tensors = tensors_in(state)
    out = {"state MB": sum(t.numel() * t.element_size() for t in tensors) / 2**20}
    with timed(device, out, "to CPU s"):
        cpu = [t.to("cpu") for t in tensors]
    with timed(device, out, "pickle s"):
        buffer = io.BytesIO()
        torch.save(cpu, buffer)
        buffer.seek(0)
        cpu = torch.load(buffer)
    with timed(device, out, "back s"):
        [t.to(device) for t in cpu]
    return out


def timed_answer(predictor, result, place: torch.device) -> dict:
    """Seconds from the mask to the answer's first words and to its whole text, and its text."""
    synchronize(place)
    start = time.perf_counter()
    stream = predictor.answer_stream(result)
    first = None
    for _ in stream:
        first = time.perf_counter() - start if first is None else first
    synchronize(place)
    whole = time.perf_counter() - start
    return {"first words s": first, "answer s": whole, "ms/token": 1000 * whole / ANSWER_TOKENS, "text": stream.text}


def speed(precision: str, device: str, small: bool) -> dict:
    """One precision at the released size (tiny with `small`) in this fresh process: the mask of
    a new image, then its 32-token answer decoded eagerly and with the compiled step (where the
    precision has one: not int8/int4), a follow-up question, the peak memory."""
    from predictor_cache import random_tokenizer

    from segearth.config import SegEarthConfig
    from segearth.model import SegEarthR1
    from segearth.model.generation import CompiledDecoder
    from segearth.predictor import Predictor

    torch.manual_seed(0)
    config = SegEarthConfig.tiny() if small else SegEarthConfig.released()
    # random weights drawn on the device (1.6 B on a CPU take a minute); for int8/int4 the LLM
    # then goes back to the CPU, because bitsandbytes quantises CPU weights as they move to the
    # GPU, as a loaded checkpoint's are
    with torch.device(device):
        model = SegEarthR1(config)
    if precision in ("int8", "int4"):
        model.llm.to("cpu")
    predictor = Predictor(model, random_tokenizer(), precision=precision, device=device,
                          checkpoint="random")
    place = predictor.device
    row: dict = {}
    with timed(place, row, "warm-up s"):
        predictor.warm_up()
    decoder = predictor.decoder
    if decoder is None and precision not in ("int8", "int4"):  # where warm-up does not (a CPU), compile here
        decoder = CompiledDecoder(predictor.model.llm)
        with timed(place, row, "compile s"):
            predictor.try_decoder(decoder)
    if place.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    with timed(place, row, "encode s"):
        predictor.set_image(image)
    with timed(place, row, "mask s"):
        predictor.predict(QUESTION, answer=False)
    row["mask s"] += row["encode s"]  # time to the mask of a new image
    with forced_answer_length(ANSWER_TOKENS):  # threshold ~0: a mask, so an answer is generated
        for mode, step in (("eager", None), ("compiled", decoder)):
            if mode == "eager" or step is not None:
                predictor.decoder = step
                result = predictor.predict(QUESTION, threshold=1e-6, answer=False)
                row[mode] = timed_answer(predictor, result, place)
    if "compiled" in row:
        row["same answer"] = row["compiled"]["text"] == row["eager"]["text"]
    with timed(place, row, "follow-up s"):
        predictor.predict(FOLLOW_UP, answer=False)
    row.update(carry_cost(predictor._image, place))
    row["peak GiB"] = peak_gib(place)
    return row


def peak_gib(place: torch.device) -> float:
    """Peak memory: allocated on a GPU (since the last reset), this process's resident set on a CPU."""
    if place.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def agreement(device: str, small: bool) -> dict:
    """bf16 against fp32 on the GPU, by `benchmarks/bf16_agreement.py`'s yardstick: per-scene mask
    IoU on its synthetic scenes (the bundled demo model) and, in a full run, the authors' masks on
    the parity e2e split and the yardstick's verdict. A dry run takes two scenes at one size and
    builds the parity checkpoint without running its 1024-pixel items (minutes on a CPU)."""
    import bf16_agreement as ba
    from tests.parity_fixture import PARITY, build_parity_checkpoint

    if not PARITY.is_dir():
        raise FileNotFoundError(f"no parity fixtures at {PARITY}: pass --shared (the folder holding reference/parity)")
    drawn = ba.scenes([256])[:2] if small else ba.scenes([256, 512])
    fp32, bf16 = (ba.run_scenes(precision, drawn, device) for precision in ("fp32", "bf16"))
    ious = {"synthetic, bf16 vs fp32": [ba.mask_iou(a, b) for a, b in zip(fp32.masks, bf16.masks)]}
    if small:
        build_parity_checkpoint()
        return ious
    parity = ba.parity_against_the_authors("bf16", device)
    ba.verdict("bf16", drawn, fp32, bf16, parity)
    return ious | {"parity e2e, bf16 vs the authors": parity}


def train_steps(device: str, small: bool) -> dict:
    """Steps of the released recipe (random weights) on generated EarthReason-layout items."""
    from accelerate.state import AcceleratorState, GradientState

    from segearth.training.config import load_config
    from segearth.training.logbook import read_metrics
    from segearth.training.loop import train

    root = Path(tempfile.mkdtemp(prefix="gpu-check-train-"))
    steps = 2 if small else 20
    overrides = [
        f"data_root={root / 'data'}", f"output_dir={root / 'run'}", f"max_steps={steps}",
        'synthetic={"n_train": 16, "n_val": 2, "image_size": 256, "seed": 0, "questions_per_item": 1}',
        "init.pretrained_llm=false", "init.mask2former=null", "init.bpe_vocab_size=1024",
        "eval_every=0", "save_every=0", "log_every=1", "num_workers=0",
    ]
    if small:
        overrides += ['model={"preset": "tiny"}', "effective_batch_size=2", "mixed_precision=no"]
    config = load_config(REPO / "train" / "configs" / "earthreason.json", overrides)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train(config)
    seconds = [row["seconds"] for row in read_metrics(root / "run" / "metrics.csv") if "loss" in row]
    return {"steps": steps, "batch": config.effective_batch_size,
            "s/step": (seconds[-1] - seconds[0]) / (len(seconds) - 1),  # after the first (warm-up) step
            "peak GiB": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")}


def in_fresh_process(fn: Callable, *args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def printed(name: str, row: dict) -> dict:
    """Each figure as soon as it exists: a run cut short still reports what it measured."""
    print(f"{name}: {json.dumps(row)}", flush=True)
    return row


def command(args: list[str], timeout: float = 600) -> str:
    """Run a command, echo its output's tail, fail on a non-zero exit."""
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    print(output[-3000:], flush=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}")
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU: checks the script itself")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the parity fixtures' root")
    parser.add_argument("--steps", nargs="+", default=["speed", "agreement", "tests", "load", "train"])
    args = parser.parse_args()
    small = args.dry_run
    device = "cpu" if small else "cuda"
    if not small and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (use --dry-run to check the script on a CPU)", file=sys.stderr)
        return 2
    if not small:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    precisions = ["fp32", "bf16"] if small else ["bf16", "fp16", "int8", "int4"]
    os.environ["SEGEARTH_SHARED"] = str(args.shared.resolve())  # for every step's processes
    steps: dict[str, Callable[[], object]] = {
        "speed": lambda: {p: printed(p, in_fresh_process(speed, p, device, small)) for p in precisions},
        "agreement": lambda: in_fresh_process(agreement, device, small),
        "tests": lambda: command([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/inference",
                                  "tests/model", "-p", "no:cacheprovider"]).strip().splitlines()[-1],
        "load": lambda: command([sys.executable, "benchmarks/load_app.py", "--clients", "2" if small else "50"],
                                timeout=900).strip().splitlines()[-5:],
        "train": lambda: in_fresh_process(train_steps, device, small),
    }
    results, failed = {}, []
    for name in args.steps:
        print(f"\n=== gpu_check: {name} ===", flush=True)
        start = time.perf_counter()
        try:
            results[name] = steps[name]()
        except Exception:  # noqa: BLE001 - named below, and the run goes on to the next step
            traceback.print_exc()
            failed.append(name)
        print(f"=== {name}: {'FAILED' if name in failed else 'ok'} in {time.perf_counter() - start:.0f} s ===",
              flush=True)
    report(results)
    if failed:
        print(f"\ngpu_check FAILED steps: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("\ngpu_check: all steps passed")
    return 0


def report(results: dict) -> None:
    """The README's table: one line per precision, then the other steps' figures."""
    print("\n| precision | mask (new image) | first words after it | 32-token answer | ms/token eager | "
          "ms/token compiled | follow-up | peak GiB (GPU allocated; CPU resident) |")
    print("|---|---|---|---|---|---|---|---|")
    for precision, row in results.get("speed", {}).items():
        answer = row.get("compiled", row["eager"])  # what a visitor gets: compiled where there is one
        compiled = f"{row['compiled']['ms/token']:.1f}" if "compiled" in row else "-"
        print(f"| {precision} | {row['mask s']:.2f} s | {answer['first words s']:.2f} s | {answer['answer s']:.2f} s "
              f"| {row['eager']['ms/token']:.1f} | {compiled} | {row['follow-up s']:.3f} s | {row['peak GiB']:.2f} |")
    for precision, row in results.get("speed", {}).items():
        if "compiled" in row:
            print(f"{precision}: compiled step {row['eager']['ms/token'] / row['compiled']['ms/token']:.2f}x as fast "
                  f"as eager per token; same answer as eager: {row['same answer']}; "
                  + (f"compiled in {row['compile s']:.1f} s" if "compile s" in row
                     else f"warm-up with the compile {row['warm-up s']:.1f} s"))
    for precision, row in results.get("speed", {}).items():
        print(f"{precision}: image state {row['state MB']:.1f} MB: to CPU {row['to CPU s'] * 1e3:.1f} ms, pickle round "
              f"trip {row['pickle s'] * 1e3:.1f} ms, back {row['back s'] * 1e3:.1f} ms; encoding the image "
              f"{row['encode s'] * 1e3:.0f} ms")
    for name, ious in results.get("agreement", {}).items():
        print(f"bf16 vs fp32 mask IoU, {name}: worst {min(ious):.4f}, mean {np.mean(ious):.4f} over {len(ious)} items")
    if "tests" in results:
        print(f"pytest -m cuda: {results['tests']}")
    if "load" in results:
        print("load:", *results["load"], sep="\n  ")
    if "train" in results:
        row = results["train"]
        print(f"training: {row['steps']} steps of batch {row['batch']}: {row['s/step']:.2f} s/step, "
              f"peak {row['peak GiB']:.1f} GiB")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    sys.exit(main())
