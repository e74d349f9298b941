"""Pick a checkpoint's operating point on a calibration set: its default threshold
(`SegEarthConfig.mask_threshold`), its noise floor (`SegEarthConfig.min_region_fraction`) and its
confidence floor (`SegEarthConfig.min_region_score`).

A small model trained briefly answers some absent targets with a few stray blobs, and a person
reads any blob as "here it is"; its probabilities are not calibrated at 0.5 either. This script
asks a synthetic calibration set generated apart from every set docs/training.md reports (seed 2: its
training-phrasing split and its held-out validation split) each item's first question once, then
scores every (threshold, floor, confidence floor) candidate: how many absent targets come out
empty, how many present ones are still found, and the gIoU on the padded canvas, as `segearth
eval` scores. Of the candidates that answer at least ``--absent`` of the absent targets as absent
and find at least ``--present`` of the present ones (90 % each by default, issue 12's targets) it
prints the one with the highest gIoU. The confidence floors tried are ``--scores`` (none by
default: 0 keeps every region).

    python train/calibrate.py .cache/demo-run/final

``--config`` generates the calibration set with a training config's `synthetic` settings other
than its size and seed (for stage 2 of the demo model: more absent targets, and scenes over its
training photograph), into a folder of its own, so that the operating point is picked on the
kind of items that stage taught. ``--photos SHARE`` (with such a config naming photographs) also
draws a set of photograph negatives, every target absent and every item that may be drawn over a
photograph drawn over one (items about `PHOTO_CATEGORIES` keep drawn land), and keeps only candidates that leave at least SHARE of those empty: the
photographs a model must not make targets up on. ``--write`` also stores the pick in the
checkpoint's config.json.

It prints the values to write under ``model.overrides`` of the training config (and into the
checkpoint's config.json); without ``--write`` it writes nothing. With it, the validation the
training recorded in the checkpoint (`training.validation`) is scored again at the new operating
point, so that the recorded figure is the one a user of the checkpoint gets.
"""
from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from segearth.data.registry import load_dataset
from segearth.data.synthetic import generate_dataset
from segearth.evaluation import evaluate
from segearth.metrics import intersection_union, sample_iou
from segearth.image_processing import mask_to_canvas
from segearth.predictor import Predictor
from segearth.result import mask_regions, smallest_region_px

CALIBRATION_SEED = 2
CANDIDATE_THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
CANDIDATE_PIXELS = (0, 16, 32, 48, 64, 96, 128)  # floors, on the canvas
#: Confidence floors tried with ``--scores on``: the smallest mean probability a region keeps.
CANDIDATE_SCORES = (0.0, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
Items = list[tuple[np.ndarray, np.ndarray]]


def canvas_items(predictor: Predictor, root: Path) -> Items:
    """(canvas probability, canvas target) per item of both splits, asked its first question as
    `segearth eval` asks it."""
    items = []
    for split in ("train", "val"):
        for sample in load_dataset("earthreason", root, split):
            predictor.set_image(sample.image_path)
            probability = predictor.predict(sample.question, answer=False).canvas_probability
            items.append((probability, mask_to_canvas(sample.mask, probability.shape[0]).astype(bool)))
    return items


def score(items: Items, threshold: float, fraction: float, min_score: float = 0.0) -> tuple[float, float, float]:
    """(share of absent targets empty, share of present targets found, gIoU); a share is NaN
    when ``items`` hold none of its kind."""
    empty, found, ious = [], [], []
    for probability, target in items:
        min_px = smallest_region_px(1, fraction, probability.shape[0])
        mask = mask_regions(probability, threshold, min_px, min_score=min_score).mask
        (found if target.any() else empty).append(mask.any() == target.any())
        ious.append(sample_iou(*intersection_union(mask, target)))
    return _share(empty), _share(found), float(np.mean(ious))


def _share(hits: list[bool]) -> float:
    return float(np.mean(hits)) if hits else float("nan")


def drawn(root: Path, settings: dict, items: int) -> Path:
    """``root`` holding a calibration set drawn with ``settings`` (seed `CALIBRATION_SEED`),
    generated there the first time."""
    if not (root / "synthetic.json").is_file():
        generate_dataset(root, **{**settings, "n_train": items, "n_val": items, "seed": CALIBRATION_SEED})
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--root", default=".cache/synthetic-calibration", type=Path)
    parser.add_argument("--items", type=int, default=100, help="items per split")
    parser.add_argument("--absent", type=float, default=0.9)
    parser.add_argument("--present", type=float, default=0.9)
    parser.add_argument("--photos", type=float, default=0.0,
                        help="the share of photograph negatives that must come out empty (needs --config "
                             "with photos)")
    parser.add_argument("--scores", choices=("off", "on"), default="off",
                        help=f"also try the confidence floors {CANDIDATE_SCORES}")
    parser.add_argument("--config", type=Path, help="a training config whose synthetic settings to use")
    parser.add_argument("--write", action="store_true", help="store the pick in the checkpoint's config.json")
    args = parser.parse_args()
    settings = {"image_size": 128, "questions_per_item": 4}
    if args.config:
        settings = json.loads(args.config.read_text())["synthetic"]
        args.root = args.root.with_name(f"{args.root.name}-{args.config.stem}")
    if args.photos and not settings.get("photos"):
        parser.error("--photos needs a --config whose synthetic settings name photographs")
    predictor = Predictor.from_pretrained(args.checkpoint, precision="fp32", device="cpu")
    items = canvas_items(predictor, drawn(args.root, settings, args.items))
    photos: Items = []
    if args.photos:  # every target absent, every item that may be over a photograph over one
        photos = canvas_items(predictor, drawn(args.root.with_name(f"{args.root.name}-photos"),
                                               {**settings, "photo_fraction": 1.0, "empty_fraction": 1.0},
                                               args.items))
    canvas = items[0][0].size
    absent = sum(not target.any() for _, target in items)
    print(f"{absent} absent and {len(items) - absent} present targets, {len(photos)} photograph negatives; "
          f"canvas {canvas} px")
    print(f"{'threshold':>9}{'floor px':>9}{'min score':>10}{'absent empty':>14}{'present found':>15}"
          f"{'photos empty':>14}{'gIoU':>8}")
    best = None
    for threshold, pixels, min_score in itertools.product(
            CANDIDATE_THRESHOLDS, CANDIDATE_PIXELS, CANDIDATE_SCORES if args.scores == "on" else (0.0,)):
        empty, found, giou = score(items, threshold, pixels / canvas, min_score)
        photos_empty = score(photos, threshold, pixels / canvas, min_score)[0] if photos else float("nan")
        ok = empty >= args.absent and found >= args.present and (not photos or photos_empty >= args.photos)
        print(f"{threshold:>9.2f}{pixels:>9}{min_score:>10.2f}{empty:>14.3f}{found:>15.3f}{photos_empty:>14.3f}"
              f"{giou:>8.4f}{'' if ok else '  (shares missed)'}")
        if ok and (best is None or giou > best[0]):
            best = (giou, threshold, pixels / canvas, min_score)
    if best is None:
        print("no candidate meets the shares: keep mask_threshold 0.5, min_region_fraction 0 and min_region_score 0")
    else:
        print(f"mask_threshold {best[1]:.2f}  min_region_fraction {best[2]:.5f}  min_region_score {best[3]:.2f}")
        if args.write:
            write_operating_point(predictor, Path(args.checkpoint), mask_threshold=best[1],
                                  min_region_fraction=round(best[2], 5), min_region_score=best[3])


def write_operating_point(predictor: Predictor, checkpoint: Path, **point: float) -> None:
    """Store ``point`` in the checkpoint's config.json, with the validation its training recorded
    scored again at it (by ``predictor``, the checkpoint's model): the recorded scores are then
    what a user of the checkpoint gets."""
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    config.update(point)
    training = config.get("training") or {}
    if training.get("validation"):
        run = training["config"]
        samples = load_dataset(run["dataset"], run["data_root"], run["val_split"])[: run.get("val_limit")]
        predictor.config = replace(predictor.config, **point)
        canvas = evaluate(predictor, samples, progress=False).summary()["canvas"]
        training["validation"] = {"step": training["validation"].get("step", training.get("step")), **canvas}
        print(f"validation at this operating point: gIoU {canvas['gIoU']:.4f}, cIoU {canvas['cIoU']:.4f}")
    path.write_text(json.dumps(config, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
