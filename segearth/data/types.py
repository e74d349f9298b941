"""The one record every dataset reader yields and every evaluator and trainer consumes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

MaskLoader = Callable[[], np.ndarray]


class _LazyMask:
    """Descriptor behind ``Sample.mask``: an array given directly, else one decoded on access.

    Why: a split of EarthReason or RRSIS-D holds thousands of masks at full image size (about
    1 MB each as bool), too many to keep in memory together. Readers therefore set
    ``Sample.mask_loader`` and leave ``mask`` unset; the mask is read from disk each time it is
    accessed and never cached, so iterating a split holds one mask at a time. Code that builds a
    Sample by hand still passes ``mask=`` as before.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, sample: Sample | None, owner: type | None = None) -> np.ndarray | None:
        if sample is None:
            return None  # the dataclass default
        value = sample.__dict__.get(self._slot)
        if value is None and sample.mask_loader is not None:
            return sample.mask_loader()
        return value

    def __set__(self, sample: Sample, value: np.ndarray | None) -> None:
        sample.__dict__[self._slot] = value


@dataclass
class Sample:
    """One (image, question, mask) item.

    ``mask`` is a boolean array at the image's own size (all False for an empty target), or None
    where the dataset has no ground truth. Readers give ``mask_loader`` instead of ``mask``; then
    every access to ``mask`` decodes it anew (hold on to the array if you need it twice).
    ``answers``/``questions`` keep every phrasing the dataset offers; readers put the one the
    authors used (the first) at index 0.
    """

    stem: str
    image_path: Path
    questions: list[str]
    answers: list[str] = field(default_factory=list)
    mask: np.ndarray | None = _LazyMask()  # type: ignore[assignment]
    category: str | None = None
    mask_loader: MaskLoader | None = field(default=None, repr=False, compare=False)

    @property
    def question(self) -> str:
        return self.questions[0]

    @property
    def answer(self) -> str | None:
        return self.answers[0] if self.answers else None

    @property
    def is_empty_target(self) -> bool:
        mask = self.mask
        return mask is not None and not mask.any()

    @property
    def has_mask(self) -> bool:
        """Whether ground truth exists, answered without decoding the mask."""
        return self.mask_loader is not None or self.__dict__.get("_mask") is not None

    def with_text(self, questions: list[str], answers: list[str]) -> Sample:
        """The same image and target asked with other words; a lazy mask stays lazy."""
        clone = copy.copy(self)  # copies attributes, so the mask is not decoded
        clone.questions = list(questions)
        clone.answers = list(answers)
        return clone
