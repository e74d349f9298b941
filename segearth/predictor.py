"""Ask many questions about one image cheaply: `set_image` once, then `predict` per question.

(Interface fixed now; the body lands with the model.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ImageInput = "str | Path | PIL.Image.Image | np.ndarray"


@dataclass
class Prediction:
    """What one question about one image gives back, everything at the image's own size."""

    mask: np.ndarray  # (H, W) bool, probability >= threshold
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # on the probability; 0.5 is the authors' logit > 0
    answer: str | None  # None for checkpoints trained without an answer loss
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    provenance: dict[str, Any] = field(default_factory=dict)  # checkpoint, precision, device, ...
    #: The authors' output: the mask on the padded 1024x1024 canvas (what their metrics use).
    canvas_mask: np.ndarray | None = None

    @property
    def found(self) -> bool:
        """False is the explicit "no target in this image" result."""
        return bool(self.mask.any())

    def with_threshold(self, threshold: float) -> "Prediction":
        """The same prediction re-thresholded without running the model."""
        raise NotImplementedError


class Predictor:
    """segment-anything style: `set_image(image)` then `predict(question)`."""

    def __init__(self, model, tokenizer, precision: str = "fp32", device: str | None = None):
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, precision: str = "auto",
                        device: str | None = None) -> "Predictor":
        raise NotImplementedError

    def set_image(self, image) -> None:
        """Accepts a path, PIL image or array (any mode, any size)."""
        raise NotImplementedError

    def predict(self, question: str, threshold: float = 0.5, answer: bool = True) -> Prediction:
        raise NotImplementedError
