"""Do bf16 masks on the CPU agree with fp32? The measurement behind `auto`'s choice on CPUs.

Per item, the IoU at the image's own size between the bf16 and the fp32 mask of the same
question (1 when both are empty):
  * the parity e2e split (7 EarthReason items, the parity weights at the released 1024 canvas);
  * synthetic scenes (`segearth.data.synthetic`, validation split) with the bundled demo model.

    python benchmarks/bf16_agreement.py [--synthetic 20]

`segearth.predictor.BF16_AGREES_ON_CPU` may be True only if every item printed is >= 0.99.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from segearth.data import synthetic
from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.parity_fixture import SHARED, build_parity_checkpoint  # noqa: E402

SPLIT = Path("reference", "parity", "e2e", "dataset", "rs_reason_seg", "RSReasonSeg", "val")
DEMO_CHECKPOINT = REPO / "assets" / "demo-checkpoint"
MIN_IOU = 0.99


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if not a.any() and not b.any() else sample_iou(*intersection_union(a, b))


def agreement(checkpoint: Path, items: list[tuple[str, object, str]], device: str = "cpu") -> list[tuple[str, float]]:
    """(name, IoU bf16 vs fp32) per (name, image, question), printed as they come."""
    predictors = [Predictor.from_pretrained(checkpoint, precision=p, device=device) for p in ("fp32", "bf16")]
    rows = []
    for name, image, question in items:
        masks = []
        for predictor in predictors:
            predictor.set_image(image)
            masks.append(predictor.predict(question, answer=False).mask)
        rows.append((name, mask_iou(*masks)))
        print(f"{name:<40}{rows[-1][1]:>8.4f}", flush=True)
    return rows


def parity_checkpoint(shared: Path = SHARED) -> Path | None:
    """The parity weights in the released layout (built once), or None without the fixtures."""
    parity = shared / "reference" / "parity"
    return build_parity_checkpoint(parity) if parity.is_dir() else None


def e2e_items(shared: Path = SHARED) -> list[tuple[str, object, str]]:
    split = shared / SPLIT
    return [(f"e2e {p.stem}", p, json.loads((split / "QAs" / f"{p.stem}.json").read_text())["questions"][0])
            for p in sorted((split / "images").glob("*.png"))]


def synthetic_items(count: int, size: int) -> list[tuple[str, object, str]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(count):
        category = str(rng.choice(synthetic.categories_for("val")))
        item = synthetic.make_item(category, empty=False, split="val", size=(size, size), rng=rng)
        items.append((f"synthetic {i} ({category})", item.image, item.questions[0]))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=20, help="number of synthetic scenes")
    args = parser.parse_args()
    parity = parity_checkpoint()
    if parity is None:
        sys.exit(f"No parity fixtures in {SHARED}: set SEGEARTH_SHARED to the folder that holds reference/parity.")
    rows = agreement(parity, e2e_items())
    rows += agreement(DEMO_CHECKPOINT, synthetic_items(args.synthetic, 256))
    worst = min(iou for _, iou in rows)
    print(f"\nworst IoU {worst:.4f}: bf16 {'agrees' if worst >= MIN_IOU else 'does NOT agree'} with fp32 "
          f"(threshold {MIN_IOU})")


if __name__ == "__main__":
    main()
