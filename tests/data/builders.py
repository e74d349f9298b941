"""Writers for tiny on-disk datasets in each layout the readers accept."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A random RGB image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_label(path: Path, mask: np.ndarray, value: int = 255) -> None:
    """A single-channel label holding ``value`` on the mask and 0 elsewhere."""
    write_grey(path, np.where(mask, value, 0).astype(np.uint8))


def write_grey(path: Path, grey: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey).save(path)


def write_qa(path: Path, questions: list[str], answers: list[str], **extra: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"questions": questions, "answer": answers, **extra}))


def box_mask(height: int, width: int, rows: int) -> np.ndarray:
    """A mask whose first ``rows`` rows are target: its sum identifies which item it is."""
    mask = np.zeros((height, width), bool)
    mask[:rows] = True
    return mask


def write_pickle(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
