"""Ask many questions about one image cheaply: `set_image` once, then `predict` per question.

The predictor keeps the image's state only (segment-anything's `SamPredictor`): the model is
placed by `segearth.runtime`, the inference steps are the model's own (`SegEarthR1`'s docstring
lists them), the mask comes from the one rule of `segearth.result`.

`set_image` runs everything that depends on the image alone: the encoder, the pixel decoder,
the connector and the LLM over the prompt up to the question (its key/value cache is kept).
`predict` runs only the question through the LLM and the mask decoder, maps the probability back
to the image's own size and returns a `Result`; the answer is generated afterwards from the same
cache (`answer`), so the mask never depends on it, and only when that Result found a target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import image_processing, runtime
from .constants import EMPTY_TARGET_ANSWER
from .errors import InputError
from .geo.raster import GeoImage
from .image_processing import Geometry, ImageLike, load_image, preprocess_image
from .model import ImageFeatures, SegEarthR1
from .model.generation import MAX_ANSWER_TOKENS, PromptPrefix, text_before_image
from .model.prompt import split_at_refer
from .result import Result, check_threshold
from .tokenization import description_ids, prompt_segments, seg_token_id

#: The question used by `warm_up` (any text: only its length matters to the kernels).
WARM_UP_QUESTION = "Where is the warm-up target?"


@dataclass
class _Question:
    """The last question asked, whose states the LLM's cache holds (the answer continues it)."""

    text: str
    embeds: torch.Tensor  # (1, R, D)


@dataclass
class _ImageState:
    image: GeoImage  # the RGB pixels, their valid mask and georeferencing
    geometry: Geometry  # where the image sits on the model's canvas
    features: ImageFeatures
    prefix: PromptPrefix  # the LLM's cache over the prompt up to the question
    seconds: dict[str, float]
    question: _Question | None = None


class Predictor:
    """segment-anything style: `set_image(image)` then `predict(question)`."""

    def __init__(self, model: SegEarthR1, tokenizer, precision: str = "auto", device: str | None = None,
                 checkpoint: str | None = None):
        self.model, placement = runtime.place(model, precision, device)
        self.device, self.precision = placement.device, placement.precision
        self.tokenizer = tokenizer
        self.config = model.config
        self.checkpoint = checkpoint
        self._prefix_segments, self._lead_in = split_at_refer(prompt_segments(tokenizer, self.config.task))
        self._stop_ids = [seg_token_id(tokenizer), tokenizer.eos_token_id]
        self._image: _ImageState | None = None
        self._text_start: PromptPrefix | None = None  # kept by the first set_image

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, precision: str = "auto", device: str | None = None,
                        warm_up: bool = False) -> "Predictor":
        """A released checkpoint (hub id or folder) or one of ours. `warm_up=True` pays the
        first question's one-time costs now (see `warm_up`)."""
        from .checkpoints import load

        runtime.resolve(precision, device)  # fail before the slow load
        model, tokenizer, _ = load(checkpoint)
        predictor = cls(model, tokenizer, precision, device, checkpoint=str(checkpoint))
        if warm_up:
            predictor.warm_up()
        return predictor

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Run one dummy question (with its answer) on a small blank image and forget it.

        Every image is padded to the same canvas, so this runs the vision path at exactly the
        shapes of a real request: the first user's question then finds oneDNN's primitives
        created, transformers' lazily built generation and masking code loaded and the
        allocator's pools grown, and costs what a later question costs.
        """
        self.set_image(np.zeros((32, 32, 3), np.uint8))  # the first image reads the whole prefix
        # later images read it from the system prompt's cache on: other shapes, other kernels
        self.model.read_prefix(self._prefix_segments, self._image.features, self._text_start)
        self.predict(WARM_UP_QUESTION, answer=self.config.answers)
        self._image = None

    def to(self, device: str | torch.device) -> "Predictor":
        """Move the model (and the current image's features) to `device`, e.g. into a ZeroGPU
        call; precision stays as resolved."""
        device = torch.device(device)
        if device != self.device:
            self.model.to(device)
            self.device = device
            self._image = None  # its cache and features were made on the old device
            self._text_start = None
        return self

    # --- image ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: ImageLike | GeoImage) -> None:
        """Accepts a path, PIL image or array (any mode, any size), or a `GeoImage`, whose valid
        pixels and georeferencing the results keep. Runs the vision path once."""
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        if isinstance(image, GeoImage):
            geo = replace(image, image=load_image(image.image))
        else:
            source = {"kind": "image", "path": str(image)} if isinstance(image, (str, Path)) else {}
            geo = GeoImage(load_image(image), source=source)
        pixels, geometry = preprocess_image(geo.image, self.config.image_size)
        seconds["preprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        vision_dtype = next(self.model.encoder.parameters()).dtype
        features = self.model.encode_image(pixels.to(self.device, vision_dtype))
        seconds["image_features"] = time.perf_counter() - start

        start = time.perf_counter()
        prefix = self.model.read_prefix(self._prefix_segments, features, self._text_start)
        if self._text_start is None:  # the same for every image: kept from the first (`warm_up`'s)
            self._text_start = text_before_image(prefix, self._prefix_segments)
        seconds["prompt_prefix"] = time.perf_counter() - start
        self._image = _ImageState(geo, geometry, features, prefix, seconds)

    # --- question -------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, question: str, threshold: float | None = None, answer: bool = True,
                min_region_px: int = 1) -> Result:
        """The `Result` for `question` about the current image: its mask at `threshold` (None:
        the checkpoint's own, `SegEarthConfig.mask_threshold`, 0.5 for the released ones) without
        regions under `min_region_px` or the checkpoint's noise floor, and the answer if the
        checkpoint gives one (`answer=False` skips generation, e.g. for evaluation; `answer`
        gives it later). `min_region_px` 1 keeps every region, as the authors' model does (what
        evaluation scores and the parity tests compare); the page, the files and the command
        line drop specks under `segearth.regions.MIN_REGION_PX`, and pass it here so that the
        answer follows the mask they show."""
        state = self._current()
        threshold = self.config.mask_threshold if threshold is None else threshold
        check_threshold(threshold)
        ids = self._question_ids(question)
        timings = dict(state.seconds)

        start = time.perf_counter()
        states, embeds = self.model.read_question(state.prefix, ids)  # (1, R, D)
        state.question = _Question(question, embeds)
        timings["question"] = time.perf_counter() - start

        start = time.perf_counter()
        logits = self.model.mask_logits(states, state.features)  # (1, s, s)
        canvas_logits = image_processing.logits_to_canvas(logits, self.config.image_size)[0].float().cpu().numpy()
        timings["mask_decoder"] = time.perf_counter() - start

        start = time.perf_counter()
        probability = _sigmoid(image_processing.canvas_to_image(canvas_logits, state.geometry))
        timings["postprocess"] = time.perf_counter() - start

        result = Result(question, probability, threshold, None, state.image, checkpoint=self.checkpoint,
                        provenance=self._provenance(question), timings=timings,
                        min_region_px=min_region_px, min_region_fraction=self.config.min_region_fraction,
                        canvas_probability=_sigmoid(canvas_logits))
        if answer and self.config.answers:
            start = time.perf_counter()
            result.answer = self.answer(result)  # before anything reads the result's properties
            timings["answer"] = time.perf_counter() - start
        return result

    @torch.inference_mode()
    def answer(self, result: Result) -> str | None:
        """The answer to the question `result` came from, following its mask: the no-target
        sentence when it found nothing, generated text otherwise (None for checkpoints trained
        without an answer loss). That question must be the last one `predict` was asked about
        the current image (the answer continues its cache); `result` may be another Result of
        it, e.g. a tiled run's merged windows."""
        if not self.config.answers:
            return None
        if not result.found:
            return EMPTY_TARGET_ANSWER
        question = self._current().question
        if question is None or question.text != result.question:
            raise InputError("Ask the question with predict(question) first: the answer continues it.")
        tokens = self.model.answer(self._image.prefix, question.embeds, self._lead_in, self._stop_ids)
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def _current(self) -> _ImageState:
        if self._image is None:
            raise InputError("No image set: call set_image(image) first.")
        return self._image

    def _question_ids(self, question: str) -> list[int]:
        if not isinstance(question, str) or not question.strip():
            raise InputError("The question is empty: ask about something in the image.")
        ids = description_ids(self.tokenizer, question.strip())
        budget = (self.config.llm.max_position_embeddings - self._image.prefix.length
                  - sum(len(s.ids) for s in self._lead_in) - MAX_ANSWER_TOKENS)
        if len(ids) > budget:
            raise InputError(
                f"The question is {len(ids)} tokens long; this checkpoint reads at most {budget}. Shorten it."
            )
        return ids

    def _provenance(self, question: str) -> dict[str, Any]:
        height, width = self._image.image.shape
        return {
            "checkpoint": self.checkpoint,
            "precision": self.precision,
            "device": str(self.device),
            "task": self.config.task,
            "prompt_template": self.config.task,
            "image_size": [height, width],
            "canvas": self.config.image_size,
            "answers": self.config.answers,
            "question": question,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)
