"""One entry point for every dataset layout: ``load_dataset(name, root, split)``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import InputError
from .earthreason import read_earthreason
from .folder import read_folder
from .pairs import expand_question_pairs
from .refsegrs import read_refsegrs
from .rrsisd import read_rrsisd
from .types import Sample


def _read_folder_without_split(root: Path, split: str) -> list[Sample]:
    """User folders have no splits; the registry's uniform signature passes one anyway."""
    return read_folder(root)


_READERS: dict[str, Callable[[Path, str], list[Sample]]] = {
    "earthreason": read_earthreason,
    "rrsisd": read_rrsisd,
    "refsegrs": read_refsegrs,
    "folder": _read_folder_without_split,
}

#: What each name expects on disk, for the error a wrong root or name gets.
LAYOUTS = {
    "earthreason": "RSReasonSeg/{train,val,test}/{images,labels,QAs}/ paired by stem",
    "rrsisd": "RRSIS-D/rrsisd/refs(unc).p, rrsisd/instances.json, images/rrsisd/JPEGImages/",
    "refsegrs": "RefSegRS/output_phrase_{train,val,test}.txt, images/<id>.tif, masks/<id>.tif",
    "folder": "a folder with images/ and QAs/ (and optionally labels/) paired by stem; no split",
}
DATASET_NAMES = tuple(_READERS)


def load_dataset(
    name: str, root: str | Path, split: str | None = None, all_questions: bool = False
) -> list[Sample]:
    """The samples of dataset ``name`` under ``root``; ``split`` is ignored for ``folder``.

    ``all_questions=True`` turns every (question, answer) pair into its own Sample (see
    ``expand_question_pairs``); the default keeps one Sample per item, as the authors did.
    """
    reader = _READERS.get(name.lower())
    if reader is None:
        known = "; ".join(f"{key}: {layout}" for key, layout in LAYOUTS.items())
        raise InputError(f"Unknown dataset {name!r}. Known datasets and their layouts: {known}.")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Dataset folder {root} does not exist. Expected {LAYOUTS[name.lower()]}.")
    if split is None and name.lower() != "folder":
        raise InputError(f"Dataset {name!r} needs a split (train, val or test).")
    samples = reader(root, split or "")
    return expand_question_pairs(samples) if all_questions else samples
