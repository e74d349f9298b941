"""The files a prediction becomes: mask PNG, overlay PNG, probability PNG and a JSON record.

Each file appears whole or not at all (`atomic_path`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .fileio import atomic_path
from .predictor import Prediction
from .visualize import blend, probability_image


def save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def run_record(prediction: Prediction, question: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to know later what produced a mask."""
    return {
        "question": question,
        "answer": prediction.answer,
        "answer_note": None if prediction.answer is not None or prediction.provenance.get("answers", True)
        else "This checkpoint was trained without an answer loss: it gives masks only.",
        "found": prediction.found,
        "message": None if prediction.found else "No target in this image.",
        "threshold": prediction.threshold,
        "positive_fraction": float(prediction.mask.mean()),
        "size": list(prediction.mask.shape),
        "timings_s": {k: round(v, 4) for k, v in prediction.timings.items()},
        "provenance": prediction.provenance,
        **(extra or {}),
    }


def write_prediction(prediction: Prediction, image: np.ndarray, question: str, out_dir: Path,
                     stem: str, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """mask (0/255), overlay, probability (0..255) PNGs and the JSON record, at image size."""
    out_dir = Path(out_dir)
    written = {
        "mask_png": save_png(prediction.mask.astype(np.uint8) * 255, out_dir / f"{stem}_mask.png"),
        "overlay_png": save_png(blend(image, prediction.mask), out_dir / f"{stem}_overlay.png"),
        "probability_png": save_png(probability_image(prediction.probability), out_dir / f"{stem}_probability.png"),
    }
    record = run_record(prediction, question, extra)
    record["files"] = {k: p.name for k, p in written.items()} | (extra or {}).get("files", {})
    with atomic_path(out_dir / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    written["json"] = out_dir / f"{stem}.json"
    return written
