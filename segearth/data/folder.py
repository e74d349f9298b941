"""A user's own folder in the EarthReason layout, with or without ground-truth labels."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .earthreason import FOLDER_LAYOUT, read_reason_dir
from .types import Sample


def read_folder(root: str | Path) -> list[Sample]:
    """Items of ``root/{images,QAs}`` and, if present, ``root/labels``, paired by stem.

    Without ``labels/`` the samples have no mask (``mask is None``): enough for prediction,
    not for scoring.
    """
    root = Path(root)
    if not (root / "images").is_dir() or not (root / "QAs").is_dir():
        raise InputError(
            f"{root} is not a dataset folder. Expected {FOLDER_LAYOUT}; labels/ may be left out "
            "when there is no ground truth."
        )
    return read_reason_dir(root, labels_required=False)
