"""bf16 on the CPU against the authors' fp32 masks, on the parity e2e split (masks, at the
image's own size). The agreement measured is below what `auto` needs (`BF16_AGREES_ON_CPU` is
False): this holds bf16 to what it was measured to give, so a change that degrades it fails."""
from __future__ import annotations

import json

import numpy as np
import pytest

from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Predictor
from segearth.image_processing import canvas_to_image

from .test_e2e_parity import SPLIT, STEMS, golden_mask

#: The lowest IoU measured over the seven items (0.903, docs/speed.md), less a
#: margin for other CPUs' kernels.
MIN_BF16_IOU = 0.90


@pytest.fixture(scope="module")
def predictor(parity_checkpoint) -> Predictor:
    return Predictor.from_pretrained(parity_checkpoint, precision="bf16", device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_bf16_masks_agree_with_the_authors(predictor, stem):
    question = json.loads((SPLIT / "QAs" / f"{stem}.json").read_text())["questions"][0]
    predictor.set_image(SPLIT / "images" / f"{stem}.png")
    prediction = predictor.predict(question, answer=False)
    golden = canvas_to_image(golden_mask(stem).astype(np.float32), predictor._image.geometry) > 0.5
    iou = 1.0 if not golden.any() and not prediction.mask.any() else \
        sample_iou(*intersection_union(prediction.mask, golden))
    print(f"{stem}: bf16 IoU {iou:.4f}")
    assert iou >= MIN_BF16_IOU, f"{stem}: bf16 IoU {iou:.4f}"
