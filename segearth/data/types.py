"""The one record every dataset reader yields and every evaluator and trainer consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One (image, question, mask) item.

    ``mask`` is a boolean array at the image's own size (all False for an empty target), or None
    where the dataset has no ground truth. ``answers``/``questions`` keep every phrasing the
    dataset offers; readers put the one the authors used (the first) at index 0.
    """

    stem: str
    image_path: Path
    questions: list[str]
    answers: list[str] = field(default_factory=list)
    mask: np.ndarray | None = None
    category: str | None = None

    @property
    def question(self) -> str:
        return self.questions[0]

    @property
    def answer(self) -> str | None:
        return self.answers[0] if self.answers else None

    @property
    def is_empty_target(self) -> bool:
        return self.mask is not None and not self.mask.any()
