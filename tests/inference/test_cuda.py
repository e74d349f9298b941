"""The GPU-only paths: bf16/fp16 on CUDA, the LLM in 8/4 bits (bitsandbytes) on CUDA, and the
benchmark on `--device cuda`. Skipped without a CUDA GPU; `benchmarks/gpu_check.py` runs them
(`pytest -m cuda`). The bundled demo model is trained, so its masks are a fair yardstick:
untrained logits sit near 0, where any rounding flips pixels."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segearth.data import synthetic
from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Predictor
from segearth.runtime import resolve_precision

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "demo-checkpoint"

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(3)
    items = [synthetic.make_item(str(rng.choice(synthetic.categories_for("val"))), empty=False, split="val",
                                 size=(256, 256), rng=rng) for _ in range(6)]
    return [(item.image, item.questions[0]) for item in items]


@pytest.fixture(scope="module")
def fp32_masks(scenes) -> list[np.ndarray]:
    return masks(Predictor.from_pretrained(DEMO, precision="fp32", device="cpu"), scenes)


def masks(predictor: Predictor, scenes) -> list[np.ndarray]:
    out = []
    for image, question in scenes:
        predictor.set_image(image)
        out.append(predictor.predict(question, answer=False).mask)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 if not a.any() and not b.any() else sample_iou(*intersection_union(a, b))


def test_auto_is_a_half_precision_on_cuda():
    assert resolve_precision("auto", torch.device("cuda")) == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")


@pytest.mark.parametrize("precision, min_iou", [("fp32", 0.999), ("bf16", 0.98), ("fp16", 0.98),
                                                ("int8", 0.95), ("int4", 0.85)])
def test_masks_on_cuda_agree_with_the_cpu(precision, min_iou, scenes, fp32_masks):
    predictor = Predictor.from_pretrained(DEMO, precision=precision, device="cuda")
    assert predictor.device.type == "cuda" and predictor.precision == precision
    ious = [iou(a, b) for a, b in zip(masks(predictor, scenes), fp32_masks)]
    print(f"{precision} on cuda vs fp32 on cpu, mask IoU per scene: {[round(x, 4) for x in ious]}")
    assert min(ious) >= min_iou


@pytest.mark.parametrize("precision, module", [("int8", "Linear8bitLt"), ("int4", "Linear4bit")])
def test_quantised_llm_on_cuda_is_bitsandbytes_in_the_llm_only(precision, module):
    predictor = Predictor.from_pretrained(DEMO, precision=precision, device="cuda")
    kinds = {type(m).__name__ for m in predictor.model.llm.model.layers.modules()}
    assert module in kinds and "Linear" not in kinds
    assert not any(type(m).__module__.startswith("bitsandbytes") for m in predictor.model.encoder.modules())
    predictor.set_image(np.zeros((64, 64, 3), np.uint8))
    prediction = predictor.predict("Where is the runway?", answer=True)
    assert isinstance(prediction.answer, str) and prediction.answer


def test_the_benchmark_runs_on_cuda():
    done = subprocess.run([sys.executable, "benchmarks/first_mask.py", "--device", "cuda", "--small",
                           "--precisions", "bf16"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bf16: first question" in done.stdout
