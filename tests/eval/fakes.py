"""A stand-in predictor whose masks are known in advance, so evaluation numbers can be checked
by hand without running a model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from segearth.data.types import Sample
from segearth import Result
from segearth.geo import GeoImage
from segearth.image_processing import mask_to_canvas

CANVAS = 64


def region(shape: tuple[int, int], name: str) -> np.ndarray:
    """Named masks the fake predictor answers with: 'left', 'top', 'all', 'none'."""
    h, w = shape
    mask = np.zeros(shape, bool)
    if name == "left":
        mask[:, : w // 2] = True
    elif name == "top":
        mask[: h // 2] = True
    elif name == "all":
        mask[:] = True
    return mask


class FakePredictor:
    """Predicts the region named by the question's last word (image size and canvas agree)."""

    def __init__(self, flip: bool = False):
        self.flip = flip  # answers 'top' for 'left', to make a second, different run
        self.images: list[str] = []
        self.shape: tuple[int, int] | None = None

    def set_image(self, image) -> None:
        self.images.append(str(image))
        with Image.open(image) as pil:
            self.shape = (pil.height, pil.width)

    def predict(self, question: str, threshold: float | None = None, answer: bool = True,
                min_region_px: int = 1) -> Result:
        threshold = 0.5 if threshold is None else threshold  # the checkpoint's own, as Predictor's
        name = question.split()[-1]
        if self.flip and name == "left":
            name = "top"
        mask = region(self.shape, name)
        return Result(question, mask.astype(np.float32), threshold, f"I see the {name}" if answer else None,
                      GeoImage(np.zeros(self.shape + (3,), np.uint8)), timings={"mask": 0.001},
                      provenance={"precision": "fp32", "device": "cpu"}, min_region_px=min_region_px,
                      canvas_probability=mask_to_canvas(mask, canvas=CANVAS).astype(np.float32))


def make_samples(folder: Path, write: bool = True) -> list[Sample]:
    """Four items on three images: a perfect hit, half hits, a wrong empty-target answer, an
    empty target answered right, and one item without ground truth. ``write=False`` reuses
    images written before (several processes must not rewrite files the others read)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in {"wide": (32, 64), "square": (40, 40), "tall": (64, 32)}.items():
        paths[name] = folder / f"{name}.png"
        if write:
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(paths[name])
    sq, wide, tall = (40, 40), (32, 64), (64, 32)
    return [
        Sample("square", paths["square"], ["segment left"], ["the left"], mask=region(sq, "left"),
               category="field"),
        Sample("square", paths["square"], ["segment top"], ["the top"], mask=region(sq, "left"),
               category="field"),
        Sample("wide", paths["wide"], ["segment all"], [], mask=region(wide, "none"), category="lake"),
        Sample("tall", paths["tall"], ["segment none"], [], mask=region(tall, "none"), category="lake"),
        Sample("nolabel", paths["tall"], ["segment left"], ["x"], mask=None),
    ]
