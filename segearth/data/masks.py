"""Reading label images as boolean masks, checked against the image they belong to.

Readers hand these functions to ``Sample.mask_loader`` through ``functools.partial`` (not a
lambda) so that samples stay picklable for data-loader worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ..errors import InputError

#: How a label's grey value says "target": EarthReason labels are any non-zero value, RefSegRS
#: masks are 255 (the authors' loaders test ``!= 0`` and ``== 255`` respectively).
PositiveRule = Literal["nonzero", "255"]

_SINGLE_CHANNEL_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def read_grey_label(path: Path) -> np.ndarray:
    """A label image as one channel, converted to grey the way the authors' OpenCV loader does.

    Single-channel files keep their values; colour or palette files go through the ITU-R 601
    luma conversion (what ``cv2.IMREAD_GRAYSCALE`` does too).
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _SINGLE_CHANNEL_MODES:
                image = image.convert("L")
            return np.asarray(image)
    except (OSError, SyntaxError) as error:
        raise InputError(
            f"Cannot read the label image {path}: {error}. Replace or remove it."
        ) from error


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError) as error:
        raise InputError(f"Cannot read the image {path}: {error}. Replace or remove it.") from error


def load_label_mask(label_path: Path, image_path: Path, positive: PositiveRule) -> np.ndarray:
    """The boolean target mask stored in ``label_path``, which must match the image's size.

    Why the size check: every consumer treats the mask as pixel-aligned with the image; a label
    at another size would be silently stretched by preprocessing and score wrongly.
    """
    grey = read_grey_label(label_path)
    width, height = image_size(image_path)
    if grey.shape != (height, width):
        raise InputError(
            f"The label {label_path} is {grey.shape[1]}x{grey.shape[0]} but its image "
            f"{image_path} is {width}x{height}; a label must have the size of its image."
        )
    return grey == 255 if positive == "255" else grey != 0
