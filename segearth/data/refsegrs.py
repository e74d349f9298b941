"""RefSegRS reader: ``output_phrase_{split}.txt`` lines ``<id> <phrase>``, ``images/<id>.tif``
and ``masks/<id>.tif`` (255 = target)."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from ..errors import InputError
from .masks import load_label_mask
from .types import Sample

_LINE = re.compile(r"^(\d+)\s+(.+)$")
_LAYOUT = (
    "output_phrase_{split}.txt (lines '<id> <phrase>'), images/<id>.tif and masks/<id>.tif "
    "(255 = target)"
)


def find_refsegrs_dir(root: str | Path, split: str) -> Path:
    """The RefSegRS folder: ``root`` itself, ``root/RefSegRS`` or ``root/rs_ref_seg/RefSegRS``."""
    root = Path(root)
    for candidate in (root, root / "RefSegRS", root / "rs_ref_seg" / "RefSegRS"):
        if (candidate / f"output_phrase_{split}.txt").is_file():
            return candidate
    raise InputError(
        f"No RefSegRS split {split!r} under {root}. Expected a folder holding "
        + _LAYOUT.format(split=split)
        + "."
    )


def read_refsegrs(root: str | Path, split: str) -> list[Sample]:
    """One Sample per phrase line, in file order, stem = the image id, masks decoded lazily."""
    directory = find_refsegrs_dir(root, split)
    phrase_file = directory / f"output_phrase_{split}.txt"
    samples, missing = [], []
    for number, line in enumerate(phrase_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise InputError(
                f"{phrase_file}, line {number}: {line!r} is not '<numeric id> <phrase>'."
            )
        image_id, phrase = match.groups()
        image_path = directory / "images" / f"{image_id}.tif"
        mask_path = directory / "masks" / f"{image_id}.tif"
        missing += [str(path) for path in (image_path, mask_path) if not path.is_file()]
        samples.append(
            Sample(
                stem=image_id,
                image_path=image_path,
                questions=[phrase],
                mask_loader=partial(load_label_mask, mask_path, image_path, "255"),
            )
        )
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"{len(missing)} file(s) named in {phrase_file} do not exist: {shown}. Expected "
            + _LAYOUT.format(split=split)
            + "."
        )
    return samples
