"""Score the demo model on what issue 28 asks of it, on data it was not trained on, and print
the figures:

1. canvas gIoU on unseen synthetic scenes drawn at 256 x 256 (validation phrasings and the
   held-out categories, seed ``SYNTHETIC_SEED``: no training set uses it);
2. the share of absent-target items asked in new phrasings that it answers "no target"
   (scenes with none of the asked category, validation phrasings);
3. the share of questions about real aerial photographs that hold none of the categories asked
   for which it answers "no target": the NEON photographs in ``assets/examples`` that no
   training set draws from (``HELD_OUT_PHOTOS``; training reads ``neon_yell_road_forest.jpg``
   only), whole and in quarters, asked about every category a forest photograph does not hold,
   in validation phrasings.

    python train/evaluate_demo.py assets/demo-checkpoint

"No target" is the answer the predictor gives when the mask at the checkpoint's operating point
is empty (`segearth.constants.EMPTY_TARGET_ANSWER`); answers are generated, as the app does.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from segearth import constants
from segearth.data.registry import load_dataset
from segearth.data.synthetic import CATEGORIES, PHOTO_CATEGORIES, ask, generate_dataset
from segearth.data.types import Sample
from segearth.evaluation import EvalResult, evaluate
from segearth.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
#: Real photographs no training set reads (CC0 NEON orthophotos; see assets/examples/LICENSE.md).
HELD_OUT_PHOTOS = tuple(REPO / "assets" / "examples" / name for name in (
    "neon_soap_snags.jpg", "neon_soap_blowdown.jpg", "neon_osbs_young_pines.jpg"))
SYNTHETIC_SEED = 7
IMAGE_SIZE = 256
#: Questions per (photo view, absent category).
PHOTO_QUESTIONS = 2


def photo_views(path: Path) -> list[Image.Image]:
    """The whole photograph and its four quarters: five views at two scales."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    quarters = [image.crop((x, y, x + width // 2, y + height // 2))
                for y in (0, height // 2) for x in (0, width // 2)]
    return [image, *quarters]


def photo_samples(folder: Path, seed: int = SYNTHETIC_SEED) -> list[Sample]:
    """Every held-out photo view asked about each category it does not hold, as Samples with an
    empty target (written into ``folder``, since evaluation reads images from disk)."""
    rng = np.random.default_rng(seed)
    absent = [c for c in CATEGORIES if c not in PHOTO_CATEGORIES]
    samples = []
    for photo in HELD_OUT_PHOTOS:
        for index, view in enumerate(photo_views(photo)):
            path = folder / f"{photo.stem}_{index}.png"
            view.save(path)
            empty = np.zeros((view.height, view.width), bool)
            for category in absent:
                for k in range(PHOTO_QUESTIONS):
                    samples.append(Sample(f"{path.stem}_{category}_{k}", path, [ask(category, "val", rng)],
                                          [], empty, category))
    return samples


def says_absent(result: EvalResult) -> tuple[int, int]:
    """(items answered "no target", items) over the empty-target items of ``result``."""
    answers = [item.answer == constants.EMPTY_TARGET_ANSWER for item in result.items if item.empty_target]
    return sum(answers), len(answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--items", type=int, default=200, help="unseen synthetic scenes per set")
    args = parser.parse_args()
    predictor = Predictor.from_pretrained(args.checkpoint, precision="fp32", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scenes = generate_dataset(tmp / "scenes", n_train=0, n_val=args.items, image_size=IMAGE_SIZE,
                                  seed=SYNTHETIC_SEED, questions_per_item=1)
        absent = generate_dataset(tmp / "absent", n_train=0, n_val=args.items, image_size=IMAGE_SIZE,
                                  seed=SYNTHETIC_SEED + 1, questions_per_item=1, empty_fraction=1.0)
        (tmp / "photos").mkdir()
        results = {name: evaluate(predictor, samples, progress=False, answers=True) for name, samples in (
            ("scenes", load_dataset("earthreason", scenes, "val")),
            ("absent", load_dataset("earthreason", absent, "val")),
            ("photos", photo_samples(tmp / "photos")))}
    canvas = results["scenes"].summary()["canvas"]
    present = [item.answer != constants.EMPTY_TARGET_ANSWER for item in results["scenes"].items if not item.empty_target]
    print(f"checkpoint {args.checkpoint}")
    print(f"unseen synthetic scenes ({IMAGE_SIZE} px, {canvas['count']} items): canvas gIoU {canvas['gIoU']:.4f}, "
          f"cIoU {canvas['cIoU']:.4f}; present targets found {sum(present)}/{len(present)} "
          f"({sum(present) / len(present):.1%})")
    for name, label in (("absent", "absent targets asked in new phrasings"),
                        ("photos", "held-out real photos, absent categories")):
        hits, total = says_absent(results[name])
        print(f"{label}: 'no target' {hits}/{total} ({hits / total:.1%})")
    by_photo: dict[str, list[bool]] = {}
    for item in results["photos"].items:  # views are saved as <photo stem>_<view>.png
        photo = Path(item.image_path).stem.rsplit("_", 1)[0]
        by_photo.setdefault(photo, []).append(item.answer == constants.EMPTY_TARGET_ANSWER)
    print("  per photo: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in by_photo.items()))


if __name__ == "__main__":
    main()
