"""RRSIS-D reader: REFER-style ``rrsisd/refs(unc).p`` + COCO ``rrsisd/instances.json``, images
under ``images/rrsisd/JPEGImages/``.

Each ref names one annotation (``ann_id``) and one image (``image_id``); its first sentence's
``raw`` text is the instruction the authors evaluate with. Masks are decoded with pycocotools at
the size ``instances.json`` gives the image (800x800 for every RRSIS-D image, which the authors
hard-code).
"""

from __future__ import annotations

import json
import pickle
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from ..errors import InputError
from .types import Sample

#: The authors' fallback when an image record carries no size.
RRSISD_IMAGE_SIZE = 800
_LAYOUT = (
    "rrsisd/refs(unc).p, rrsisd/instances.json and images/rrsisd/JPEGImages/ inside the "
    "RRSIS-D folder"
)


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only.

    Why: unpickling calls whatever importable callable the file names, so a tampered
    ``refs(unc).p`` could run arbitrary code. The refs are dicts, lists, strings and numbers,
    which pickle stores with dedicated opcodes and no named globals; the only globals such a
    file may legitimately name are the builtin set types (older protocols rebuild sets by
    calling them). Every other global is refused.
    """

    _ALLOWED = {("builtins", "set"), ("builtins", "frozenset")}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 pickles
            module = "builtins"
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise InputError(
            f"The refs pickle names {module}.{name}; only plain dicts, lists, strings and numbers "
            "are accepted, because loading other objects could run code from the file."
        )


def load_plain_pickle(path: Path) -> Any:
    """A pickle holding only plain data (see ``_PlainDataUnpickler`` for why nothing else)."""
    with open(path, "rb") as handle:
        try:
            # Python 2 pickles store text as bytes; decode it as UTF-8.
            return _PlainDataUnpickler(handle, encoding="utf-8").load()
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError) as error:
            raise InputError(f"Cannot read the pickle {path}: {error}") from error


def find_rrsisd_dir(root: str | Path) -> Path:
    """The RRSIS-D folder: ``root`` itself, ``root/RRSIS-D`` or ``root/rs_ref_seg/RRSIS-D``."""
    root = Path(root)
    for candidate in (root, root / "RRSIS-D", root / "rs_ref_seg" / "RRSIS-D"):
        if (candidate / "rrsisd" / "refs(unc).p").is_file():
            return candidate
    raise InputError(f"No RRSIS-D annotations under {root}. Expected {_LAYOUT}.")


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as one boolean mask."""
    if isinstance(segmentation, list):  # polygons: one list of x,y coordinates each
        rles = coco_mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rles = [coco_mask.frPyObjects(segmentation, height, width)]
    else:
        rles = [segmentation]
    return coco_mask.decode(rles).any(axis=2)


def split_matches(ref_split: str, split: str) -> bool:
    """REFER's rule: ``test`` also takes ``testA``/``testB``; other splits match exactly."""
    return split in ref_split if split == "test" else ref_split == split


def read_rrsisd(root: str | Path, split: str) -> list[Sample]:
    """One Sample per ref of ``split`` in file order; questions = every sentence's raw text.

    Stems are ``<image stem>_ref<ref_id>`` because one image may carry several refs.
    """
    directory = find_rrsisd_dir(root)
    annotation_dir = directory / "rrsisd"
    instances_path = annotation_dir / "instances.json"
    if not instances_path.is_file():
        raise InputError(f"Missing {instances_path}. Expected {_LAYOUT}.")
    refs = load_plain_pickle(annotation_dir / "refs(unc).p")
    instances = json.loads(instances_path.read_text(encoding="utf-8"))
    images = {image["id"]: image for image in instances["images"]}
    annotations = {annotation["id"]: annotation for annotation in instances["annotations"]}
    categories = {category["id"]: category["name"] for category in instances.get("categories", [])}
    image_dir = directory / "images" / "rrsisd" / "JPEGImages"

    samples = []
    for ref in refs:
        if not split_matches(ref["split"], split):
            continue
        image = images.get(ref["image_id"])
        annotation = annotations.get(ref["ann_id"])
        if image is None or annotation is None:
            raise InputError(
                f"ref {ref.get('ref_id')} names image {ref['image_id']} / annotation "
                f"{ref['ann_id']}, which {instances_path} does not hold."
            )
        image_path = image_dir / image["file_name"]
        height = image.get("height", RRSISD_IMAGE_SIZE)
        width = image.get("width", RRSISD_IMAGE_SIZE)
        samples.append(
            Sample(
                stem=f"{image_path.stem}_ref{ref['ref_id']}",
                image_path=image_path,
                questions=[sentence["raw"] for sentence in ref["sentences"]],
                category=categories.get(ref.get("category_id", annotation.get("category_id"))),
                mask_loader=partial(decode_segmentation, annotation["segmentation"], height, width),
            )
        )
    if not samples:
        raise InputError(f"No RRSIS-D ref has split {split!r} in {annotation_dir / 'refs(unc).p'}.")
    missing = [str(sample.image_path) for sample in samples if not sample.image_path.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} RRSIS-D image(s) are missing, e.g. {missing[0]}. Expected {_LAYOUT}."
        )
    return samples
