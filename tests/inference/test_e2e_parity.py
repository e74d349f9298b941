"""End to end against the authors' pipeline: image files and question text in, masks out.

The golden masks were made by the authors' code from the same files, tokenizer and parity
weights, on their padded 1024 canvas. We compare there (up to the few pixels whose logit is
within rounding of zero) and at the image's own size, where the golden canvas mask is mapped
back the same way our postprocessing maps probabilities (crop the padding, resize).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Predictor
from segearth.image_processing import canvas_to_image

from ..conftest import E2E

SPLIT = E2E / "dataset" / "rs_reason_seg" / "RSReasonSeg" / "val"
STEMS = sorted(p.stem for p in (SPLIT / "images").glob("*.png"))
MAX_CANVAS_FLIPS = 105  # 0.01 % of the canvas, as in the parity README
MIN_IMAGE_IOU = 0.999  # measured: 1.0 or 0.99999 (at most one pixel differs)


@pytest.fixture(scope="module")
def predictor(parity_checkpoint) -> Predictor:
    return Predictor.from_pretrained(parity_checkpoint, precision="fp32", device="cpu")


def golden_mask(stem: str) -> np.ndarray:
    packed = np.load(E2E / "golden.npz")[f"{stem}__final_mask_packbits"]
    return np.unpackbits(packed)[: 1024 * 1024].reshape(1024, 1024).astype(bool)


def test_split_is_complete():
    assert len(STEMS) == 7


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_masks_match_the_authors(predictor, stem):
    question = json.loads((SPLIT / "QAs" / f"{stem}.json").read_text())["questions"][0]
    predictor.set_image(SPLIT / "images" / f"{stem}.png")
    prediction = predictor.predict(question, answer=False)

    golden = golden_mask(stem)
    flips = int((prediction.canvas_mask != golden).sum())
    assert flips <= MAX_CANVAS_FLIPS, f"{stem}: {flips} canvas pixels differ"

    geometry = predictor._image.geometry
    golden_at_image = canvas_to_image(golden.astype(np.float32), geometry) > 0.5
    assert prediction.mask.shape == golden_at_image.shape == (geometry.height, geometry.width)
    iou = sample_iou(*intersection_union(prediction.mask, golden_at_image))
    if not golden_at_image.any() and not prediction.mask.any():
        iou = 1.0
    assert iou >= MIN_IMAGE_IOU, f"{stem}: IoU {iou:.4f} at image size"
