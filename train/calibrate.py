"""Pick a checkpoint's operating point on a calibration set: its default threshold
(`SegEarthConfig.mask_threshold`) and its noise floor (`SegEarthConfig.min_region_fraction`).

A small model trained briefly answers some absent targets with a few stray blobs, and a person
reads any blob as "here it is"; its probabilities are not calibrated at 0.5 either. This script
asks a synthetic calibration set generated apart from every set docs/training.md reports (seed 2: its
training-phrasing split and its held-out validation split) each item's first question once, then
scores every (threshold, floor) pair: how many absent targets come out empty, how many present
ones are still found, and the gIoU on the padded canvas, as `segearth eval` scores. Of the pairs
that answer at least ``--absent`` of the absent targets as absent and find at least ``--present``
of the present ones (90 % each by default, issue 12's targets) it prints the one with the highest
gIoU.

    python train/calibrate.py .cache/demo-run/final

``--config`` generates the calibration set with a training config's `synthetic` settings other
than its size and seed (for stage 2 of the demo model: more absent targets, and scenes over its
training photograph), into a folder of its own, so that the operating point is picked on the
kind of items that stage taught. ``--write`` also stores the pick in the checkpoint's
config.json.

It prints the values to write under ``model.overrides`` of the training config (and into the
checkpoint's config.json); without ``--write`` it writes nothing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from segearth.data.registry import load_dataset
from segearth.data.synthetic import generate_dataset
from segearth.metrics import intersection_union, sample_iou
from segearth.image_processing import mask_to_canvas
from segearth.predictor import Predictor
from segearth.result import mask_regions, smallest_region_px

CALIBRATION_SEED = 2
CANDIDATE_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5)
CANDIDATE_PIXELS = (0, 16, 32, 48, 64, 96, 128)  # floors, on the canvas


def canvas_items(checkpoint: str, root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(canvas probability, canvas target) per item of both splits, asked its first question as
    `segearth eval` asks it."""
    predictor = Predictor.from_pretrained(checkpoint, precision="fp32", device="cpu")
    items = []
    for split in ("train", "val"):
        for sample in load_dataset("earthreason", root, split):
            predictor.set_image(sample.image_path)
            probability = predictor.predict(sample.question, answer=False).canvas_probability
            items.append((probability, mask_to_canvas(sample.mask, probability.shape[0]).astype(bool)))
    return items


def score(items: list[tuple[np.ndarray, np.ndarray]], threshold: float, fraction: float) -> tuple[float, float, float]:
    """(share of absent targets empty, share of present targets found, gIoU)."""
    empty, found, ious = [], [], []
    for probability, target in items:
        mask = mask_regions(probability, threshold, smallest_region_px(1, fraction, probability.shape[0])).mask
        (found if target.any() else empty).append(mask.any() == target.any())
        ious.append(sample_iou(*intersection_union(mask, target)))
    return float(np.mean(empty)), float(np.mean(found)), float(np.mean(ious))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--root", default=".cache/synthetic-calibration", type=Path)
    parser.add_argument("--items", type=int, default=100, help="items per split")
    parser.add_argument("--absent", type=float, default=0.9)
    parser.add_argument("--present", type=float, default=0.9)
    parser.add_argument("--config", type=Path, help="a training config whose synthetic settings to use")
    parser.add_argument("--write", action="store_true", help="store the pick in the checkpoint's config.json")
    args = parser.parse_args()
    settings = {"image_size": 128, "questions_per_item": 4}
    if args.config:
        settings = json.loads(args.config.read_text())["synthetic"]
        args.root = args.root.with_name(f"{args.root.name}-{args.config.stem}")
    if not (args.root / "synthetic.json").is_file():
        generate_dataset(args.root, **{**settings, "n_train": args.items, "n_val": args.items,
                                       "seed": CALIBRATION_SEED})
    items = canvas_items(args.checkpoint, args.root)
    canvas = items[0][0].size
    absent = sum(not target.any() for _, target in items)
    print(f"{absent} absent and {len(items) - absent} present targets; canvas {canvas} px")
    print(f"{'threshold':>9}{'floor px':>9}{'absent empty':>14}{'present found':>15}{'gIoU':>8}")
    best = None
    for threshold in CANDIDATE_THRESHOLDS:
        for pixels in CANDIDATE_PIXELS:
            empty, found, giou = score(items, threshold, pixels / canvas)
            ok = empty >= args.absent and found >= args.present
            print(f"{threshold:>9.2f}{pixels:>9}{empty:>14.3f}{found:>15.3f}{giou:>8.4f}{'' if ok else '  (shares missed)'}")
            if ok and (best is None or giou > best[0]):
                best = (giou, threshold, pixels / canvas)
    if best is None:
        print("no candidate meets both shares: keep mask_threshold 0.5 and min_region_fraction 0")
    else:
        print(f"mask_threshold {best[1]:.2f}  min_region_fraction {best[2]:.5f}")
        if args.write:
            path = Path(args.checkpoint) / "config.json"
            config = json.loads(path.read_text())
            config.update(mask_threshold=best[1], min_region_fraction=round(best[2], 5))
            path.write_text(json.dumps(config, indent=2))
            print(f"written to {path}")


if __name__ == "__main__":
    main()
