"""Is a faster precision good enough for `auto` on a CPU? `segearth.runtime.YARDSTICK`, measured.

Each candidate against fp32 on the same items:
  * the bundled demo model (assets/demo-checkpoint) on synthetic validation scenes
    (`segearth.data.synthetic`): `YARDSTICK.present_scenes` with the target, drawn evenly over
    `--sizes`, and `YARDSTICK.absent_scenes` without it. gIoU and cIoU against the ground truth
    (each within `max_score_gap` of fp32's), the found / not-found decision (the same as fp32's on
    at least `min_found_agreement` of the items; the flipped ones are listed) and the mean mask
    IoU against fp32 (at least `min_mean_iou`; 1 where both masks are empty);
  * the parity e2e split (7 EarthReason items, the parity weights at the released 1024 canvas)
    against the authors' golden masks, within the bound `tests/inference/test_bf16_parity.py`
    holds (its `MIN_BF16_IOU`). Where bf16 is emulated (no avx512_bf16/amx_bf16: minutes an item)
    a candidate that runs bf16 is checked on the first item only, as that test does.

Candidates: bf16; int8 (the LLM's decoder linears in dynamic int8, the vision as this CPU runs
it: bf16 with bf16 units, fp32 without); int8-bf16-vision (int8 as a CPU with bf16 units runs
it, simulated here where there are none: the same arithmetic, emulated).

    python benchmarks/bf16_agreement.py [--candidates bf16 int8 int8-bf16-vision] [--sizes 256 512]

A candidate may be in `segearth.runtime.PASSES_YARDSTICK` only if it passes. The parity weights
are untrained, so their masks are not the yardstick for agreement itself (docs/speed.md, "bf16 on
a CPU").
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np

from segearth import runtime
from segearth.data import synthetic
from segearth.image_processing import canvas_to_image
from segearth.metrics import SegmentationMetrics, intersection_union, sample_iou
from segearth.predictor import Predictor
from segearth.runtime import YARDSTICK

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the authors' masks and the parity bound live with their tests
from tests.inference.test_bf16_parity import MIN_BF16_IOU  # noqa: E402
from tests.inference.test_e2e_parity import SPLIT, STEMS, golden_mask  # noqa: E402
from tests.parity_fixture import PARITY, build_parity_checkpoint  # noqa: E402

DEMO_CHECKPOINT = REPO / "assets" / "demo-checkpoint"
#: candidate -> (precision, whether it is run as on a CPU with bf16 units)
CANDIDATES = {"bf16": ("bf16", False), "int8": ("int8", False), "int8-bf16-vision": ("int8", True)}


@dataclass(frozen=True)
class Scene:
    size: int
    index: int
    category: str
    empty: bool
    image: np.ndarray
    mask: np.ndarray
    question: str

    def __str__(self) -> str:
        return f"{self.size} px #{self.index} {self.category}{' (absent)' if self.empty else ''}"


@dataclass
class Outcome:
    """One precision's masks and found decisions on the scenes, in order."""

    masks: list[np.ndarray] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if not a.any() and not b.any() else sample_iou(*intersection_union(a, b))


def scenes(sizes: list[int]) -> list[Scene]:
    """`YARDSTICK`'s present- and absent-target scenes, spread evenly over `sizes` (the same
    categories and seeds at every size)."""
    drawn = []
    for size in sizes:
        rng = np.random.default_rng(0)
        for empty, total in ((False, YARDSTICK.present_scenes), (True, YARDSTICK.absent_scenes)):
            for i in range(-(-total // len(sizes))):
                category = str(rng.choice(synthetic.categories_for("val")))
                item = synthetic.make_item(category, empty=empty, split="val", size=(size, size), rng=rng)
                drawn.append(Scene(size, i, category, empty, item.image, item.mask, item.questions[0]))
    return drawn


@contextmanager
def as_on_a_bf16_cpu(simulated: bool):
    """`runtime` told the CPU has bf16 units (where `simulated`): int8 then runs the vision in bf16."""
    if not simulated:
        yield
        return
    flags = runtime.cpu_flags() | {"avx512_bf16"}
    with mock.patch.object(runtime, "cpu_flags", lambda: flags):
        yield


def predictor(checkpoint: Path, candidate: str, device: str = "cpu") -> Predictor:
    precision, simulated = CANDIDATES.get(candidate, (candidate, False))
    with as_on_a_bf16_cpu(simulated):
        return Predictor.from_pretrained(checkpoint, precision=precision, device=device)


def run_scenes(candidate: str, drawn: list[Scene], device: str = "cpu") -> Outcome:
    model = predictor(DEMO_CHECKPOINT, candidate, device)
    outcome = Outcome()
    for scene in drawn:
        model.set_image(scene.image)
        result = model.predict(scene.question, answer=False)
        outcome.masks.append(result.mask)
        outcome.found.append(result.found)
    return outcome


def runs_bf16(candidate: str) -> bool:
    precision, simulated = CANDIDATES[candidate]
    return precision == "bf16" or (simulated or runtime.cpu_has_native_bf16()) and precision == "int8"


def parity_against_the_authors(candidate: str, device: str = "cpu") -> list[float]:
    """The candidate's masks against the authors' golden masks on the parity e2e split, as the bf16
    parity test measures them (our fp32 masks equal theirs to IoU >= 0.99999). The parity weights
    are built once from the fixtures (`SEGEARTH_SHARED` names their root elsewhere)."""
    if not PARITY.is_dir():
        raise FileNotFoundError(f"no parity fixtures at {PARITY}: set SEGEARTH_SHARED to the folder holding reference/parity")
    model = predictor(build_parity_checkpoint(), candidate, device)
    emulated = device == "cpu" and runs_bf16(candidate) and not runtime.cpu_has_native_bf16()
    stems = STEMS[:1] if emulated else STEMS
    ious = []
    for stem in stems:
        question = json.loads((SPLIT / "QAs" / f"{stem}.json").read_text())["questions"][0]
        model.set_image(SPLIT / "images" / f"{stem}.png")
        mask = model.predict(question, answer=False).mask
        golden = canvas_to_image(golden_mask(stem).astype(np.float32), model._image.geometry) > 0.5
        ious.append(mask_iou(mask, golden))
        print(f"parity {stem} {candidate} vs the authors {ious[-1]:>8.4f}", flush=True)
    return ious


def scores(drawn: list[Scene], outcome: Outcome) -> dict[str, float]:
    metrics = SegmentationMetrics()
    for scene, mask in zip(drawn, outcome.masks):
        metrics.add(mask, scene.mask)
    return metrics.summary()


def verdict(candidate: str, drawn: list[Scene], fp32: Outcome, outcome: Outcome, parity: list[float]) -> bool:
    """Print the candidate's figures against `YARDSTICK`; whether it passes."""
    ours, theirs = scores(drawn, fp32), scores(drawn, outcome)
    flipped = [str(s) for s, a, b in zip(drawn, fp32.found, outcome.found) if a != b]
    agreement = 1 - len(flipped) / len(drawn)
    ious = [mask_iou(a, b) for a, b in zip(fp32.masks, outcome.masks)]
    identical = sum(np.array_equal(a, b) for a, b in zip(fp32.masks, outcome.masks))
    checks = {
        f"gIoU {100 * theirs['gIoU']:.2f} vs fp32 {100 * ours['gIoU']:.2f} (within {100 * YARDSTICK.max_score_gap:.1f})":
            abs(theirs["gIoU"] - ours["gIoU"]) <= YARDSTICK.max_score_gap,
        f"cIoU {100 * theirs['cIoU']:.2f} vs fp32 {100 * ours['cIoU']:.2f} (within {100 * YARDSTICK.max_score_gap:.1f})":
            abs(theirs["cIoU"] - ours["cIoU"]) <= YARDSTICK.max_score_gap,
        f"found / not found as fp32 on {agreement:.1%} of {len(drawn)} items (>= {YARDSTICK.min_found_agreement:.0%}); "
        f"flipped: {', '.join(flipped) or 'none'}": agreement >= YARDSTICK.min_found_agreement,
        f"mean mask IoU vs fp32 {np.mean(ious):.4f} (>= {YARDSTICK.min_mean_iou}); worst {min(ious):.4f}, "
        f"{identical} of {len(drawn)} masks identical": np.mean(ious) >= YARDSTICK.min_mean_iou,
        f"parity e2e split vs the authors: worst IoU {min(parity):.4f} over {len(parity)} item(s) "
        f"(>= {MIN_BF16_IOU})": min(parity) >= MIN_BF16_IOU,
    }
    passes = all(checks.values())
    print(f"\n{candidate}: {'PASSES' if passes else 'FAILS'} the yardstick")
    for line, holds in checks.items():
        print(f"  {'holds' if holds else 'FAILS'}  {line}")
    return passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="scene sizes in pixels (two or more)")
    args = parser.parse_args()
    drawn = scenes(args.sizes)
    present = sum(not s.empty for s in drawn)
    print(f"{present} present-target and {len(drawn) - present} absent-target scenes at {args.sizes} px; "
          f"CPU bf16 units: {runtime.cpu_has_native_bf16()}", flush=True)
    fp32 = run_scenes("fp32", drawn)
    passing = []
    for candidate in args.candidates:
        outcome = run_scenes(candidate, drawn)
        if verdict(candidate, drawn, fp32, outcome, parity_against_the_authors(candidate)):
            passing.append(candidate)
    print(f"\npass the yardstick: {', '.join(passing) or 'none'}")


if __name__ == "__main__":
    main()
