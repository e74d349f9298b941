"""Between the user's images and the model's tensors, both ways.

The authors' geometry (long side to the canvas with truncation, OpenCV linear resize, centred
zero padding, normalisation after padding) and its inverse, so masks come back at the image's
own size. Any path, PIL image or array is read into RGB first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from . import constants
from .errors import InputError

ImageLike = Union[str, Path, Image.Image, np.ndarray]

Image.MAX_IMAGE_PIXELS = constants.MAX_IMAGE_PIXELS


# --- reading any image into RGB uint8 ----------------------------------------------------------
def load_image(image: ImageLike) -> np.ndarray:
    """Any path, PIL image or array -> (H, W, 3) uint8 RGB.

    Grayscale is repeated to three channels, alpha is composited on black (the colour of the
    padding the model already knows), palettes are expanded and 16-bit or float data is stretched
    to 8 bits between its 2nd and 98th percentiles.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"Image file not found: {path}. Check the path.")
        try:
            with Image.open(path) as pil:
                pil.load()
                return _pil_to_rgb(pil)
        except Image.DecompressionBombError as err:
            raise InputError(
                f"{path.name} is too large to decode safely ({err}). Use a GeoTIFF with the tiled "
                "mode, or downsample the image first."
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InputError(
                f"Cannot read {path.name} as an image ({err}). Use PNG, JPEG or TIFF."
            ) from None
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise InputError(f"Unsupported image type {type(image).__name__}: give a path, PIL image or array.")


def _pil_to_rgb(pil: Image.Image) -> np.ndarray:
    if pil.width * pil.height > constants.MAX_IMAGE_PIXELS:
        raise InputError(
            f"The image has {pil.width}x{pil.height} pixels, over the {constants.MAX_IMAGE_PIXELS:,} "
            "pixel limit. Downsample it or use the tiled GeoTIFF mode."
        )
    if pil.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _array_to_rgb(np.asarray(pil))
    if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        rgba = np.asarray(pil.convert("RGBA")).astype(np.float32)
        return np.round(rgba[..., :3] * rgba[..., 3:] / 255.0).astype(np.uint8)
    return np.asarray(pil.convert("RGB")).copy()


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise InputError(f"An image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}.")
    if array.shape[0] * array.shape[1] > constants.MAX_IMAGE_PIXELS:
        raise InputError(f"The image has {array.shape[1]}x{array.shape[0]} pixels: too large.")
    if array.shape[2] == 4:
        alpha = array[..., 3:].astype(np.float32) / (255.0 if array.dtype == np.uint8 else array[..., 3:].max() or 1)
        array = (array[..., :3].astype(np.float32) * alpha)
    if array.dtype != np.uint8:
        array = stretch_to_uint8(array)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


def stretch_to_uint8(array: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Percentile stretch of 16-bit/float data to 0..255 (one range for all bands, so colours
    keep their balance). Non-finite values become 0."""
    data = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, np.uint8)
    lo, hi = np.percentile(data[finite], [low, high])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((np.where(finite, data, lo) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return np.round(out).astype(np.uint8)


# --- image geometry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """Where an (height x width) image sits on the square canvas."""

    height: int
    width: int
    resized_height: int
    resized_width: int
    top: int
    left: int
    canvas: int

    @classmethod
    def of(cls, height: int, width: int, canvas: int = constants.IMAGE_SIZE) -> "Geometry":
        # The authors' float product then truncation, kept bit-for-bit: a 1568x1176 image
        # becomes 1024x767, not 768 (see the parity fixtures).
        if height >= width:
            new_h, new_w = canvas, int(width * (canvas / height))
        else:
            new_h, new_w = int(height * (canvas / width)), canvas
        new_h, new_w = max(new_h, 1), max(new_w, 1)
        return cls(height, width, new_h, new_w, (canvas - new_h) // 2, (canvas - new_w) // 2, canvas)

    @property
    def valid_slice(self) -> tuple[slice, slice]:
        return (slice(self.top, self.top + self.resized_height),
                slice(self.left, self.left + self.resized_width))


def pad_to_canvas(image: np.ndarray, geometry: Geometry, interpolation: int) -> np.ndarray:
    """Resize to the geometry's size and place centred on a zero canvas (HxW or HxWxC)."""
    resized = cv2.resize(image, (geometry.resized_width, geometry.resized_height),
                         interpolation=interpolation)
    canvas = np.zeros((geometry.canvas, geometry.canvas) + image.shape[2:], image.dtype)
    canvas[geometry.valid_slice] = resized.reshape(canvas[geometry.valid_slice].shape)
    return canvas


def preprocess_image(image: np.ndarray, canvas: int = constants.IMAGE_SIZE) -> tuple[torch.Tensor, Geometry]:
    """RGB uint8 (H, W, 3) -> normalised (1, 3, canvas, canvas) float32 and its geometry."""
    geometry = Geometry.of(image.shape[0], image.shape[1], canvas)
    padded = pad_to_canvas(image, geometry, cv2.INTER_LINEAR)
    mean = np.asarray(constants.PIXEL_MEAN, np.float32)
    std = np.asarray(constants.PIXEL_STD, np.float32)
    pixels = (padded.astype(np.float32) - mean) / std  # after padding, as the authors did
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None], geometry


def mask_to_canvas(mask: np.ndarray, canvas: int = constants.IMAGE_SIZE) -> np.ndarray:
    """A ground-truth mask at image size -> the padded canvas (nearest neighbour), as the
    authors' evaluation compares masks."""
    geometry = Geometry.of(mask.shape[0], mask.shape[1], canvas)
    return pad_to_canvas(mask.astype(np.uint8), geometry, cv2.INTER_NEAREST).astype(bool)


def logits_to_canvas(logits: torch.Tensor, canvas: int = constants.IMAGE_SIZE) -> torch.Tensor:
    """Decoder logits (..., h, w) -> the canvas, bilinear, align_corners=False (authors')."""
    shape = logits.shape
    flat = logits.reshape(-1, 1, *shape[-2:]).float()
    up = F.interpolate(flat, size=(canvas, canvas), mode="bilinear", align_corners=False)
    return up.reshape(*shape[:-2], canvas, canvas)


def canvas_to_image(canvas_values: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Undo the padding and the resize: canvas (C, C) float -> (H, W) float.

    Shrinking samples the nearest canvas pixel, so a mask thresholded at image size is exactly
    the authors' canvas mask resampled; enlarging interpolates bilinearly for smooth edges.
    """
    valid = np.ascontiguousarray(canvas_values[geometry.valid_slice], dtype=np.float32)
    if valid.shape == (geometry.height, geometry.width):
        return valid
    enlarging = geometry.height * geometry.width > valid.shape[0] * valid.shape[1]
    interpolation = cv2.INTER_LINEAR if enlarging else cv2.INTER_NEAREST_EXACT
    return cv2.resize(valid, (geometry.width, geometry.height), interpolation=interpolation)
