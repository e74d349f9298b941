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

import functools
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.generation.streamers import BaseStreamer

from . import image_processing, runtime
from .config import threshold_or_default
from .constants import EMPTY_TARGET_ANSWER
from .errors import InputError
from .geo.raster import GeoImage
from .image_processing import Geometry, ImageLike, load_image, preprocess_image
from .model import ImageFeatures, SegEarthR1
from .model.generation import MAX_ANSWER_TOKENS, AnswerStream, CompiledDecoder, PromptPrefix, text_before_image
from .model.prompt import split_at_refer
from .result import Result, check_threshold
from .tokenization import description_ids, prompt_segments, seg_token_id

#: Asked nothing (the app says it before any work, the predictor whoever calls it).
EMPTY_QUESTION = ("The question is empty. Type a question first, e.g. \"If an earthquake struck, "
                  "where could residents gather safely?\"")
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
        self.precision = placement.precision
        self.tokenizer = tokenizer
        self.config = model.config
        self.checkpoint = checkpoint
        self._prefix_segments, self._lead_in = split_at_refer(prompt_segments(tokenizer, self.config.task))
        self._stop_ids = [seg_token_id(tokenizer), tokenizer.eos_token_id]
        self._image: _ImageState | None = None
        self._text_start: PromptPrefix | None = None  # kept by the first set_image
        self._stream: AnswerStream | None = None  # the last answer asked for, maybe still decoding
        #: Decodes answers with a compiled step when set: by `warm_up` where that pays
        #: (`runtime.compiled_decoding_pays`), by `app.zerogpu.compile_decoder` on ZeroGPU.
        self.decoder: CompiledDecoder | None = None

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, precision: str = "auto", device: str | None = None,
                        warm_up: bool = False) -> "Predictor":
        """A released checkpoint (hub id or folder) or one of ours. `warm_up=True` pays the
        first question's one-time costs now (see `warm_up`)."""
        from .checkpoints import load

        placement = runtime.resolve(precision, device)  # fail before the slow load
        model, tokenizer, _ = load(checkpoint, placement=placement)  # read in its final dtypes
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
        allocator's pools grown, and costs what a later question costs. Where compiled decoding
        pays (`runtime.compiled_decoding_pays`) its step is compiled here too, by decoding a
        few tokens of the dummy question's answer, whatever its mask.
        """
        self.set_image(np.zeros((32, 32, 3), np.uint8))  # the first image reads the whole prefix
        # later images read it from the system prompt's cache on: other shapes, other kernels
        self.model.read_prefix(self._prefix_segments, self._image.features, self._text_start)
        self.predict(WARM_UP_QUESTION, answer=self.config.answers)
        self._image = None
        if self.config.answers and self.decoder is None and runtime.compiled_decoding_pays(self.device, self.precision):
            self.decoder = CompiledDecoder(self.model.llm)
            self.try_decoder(self.decoder)

    @torch.inference_mode()
    def try_decoder(self, decoder: CompiledDecoder) -> None:
        """Decode two tokens of the warm-up question's answer about a blank image with `decoder`,
        whatever its mask, and forget the image: its step runs at the cache size of a question of
        usual length, which compiles it (`torch.compile`) or lets `spaces.aoti_capture` record
        its inputs (`app.zerogpu.compile_decoder`)."""
        self.set_image(np.zeros((32, 32, 3), np.uint8))
        self.predict(WARM_UP_QUESTION, answer=False)
        try:
            self.model.answer(self._image.prefix, self._image.question.embeds, self._lead_in, self._stop_ids,
                              decoder=decoder, max_new_tokens=2)
        finally:
            self._image = None

    @property
    def device(self) -> torch.device:
        """Where the model's weights are: the truth, also inside a ZeroGPU call (cuda there,
        cpu-looking in the main process, where `spaces` only records the placement)."""
        return next(self.model.parameters()).device

    @property
    def image(self) -> GeoImage | None:
        """The image whose state `set_image` holds (None before the first), a new object on each
        call: how `segearth.features.FeatureCache` knows no other caller replaced it."""
        return None if self._image is None else self._image.image

    # --- image ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: ImageLike | GeoImage) -> None:
        """Accepts a path, PIL image or array (any mode, any size), or a `GeoImage`, whose valid
        pixels and georeferencing the results keep. Runs the vision path once."""
        self._stop_answer()
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
        threshold = threshold_or_default(threshold, self.config)
        check_threshold(threshold)
        ids = self.question_ids(question)
        self._stop_answer()
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
                        min_region_score=self.config.min_region_score,
                        canvas_probability=_sigmoid(canvas_logits))
        if answer and self.config.answers:
            start = time.perf_counter()
            result.answer = self.answer(result)  # before anything reads the result's properties
            timings["answer"] = time.perf_counter() - start
        return result

    def answer(self, result: Result) -> str | None:
        """The answer to the question `result` came from, following its mask: the no-target
        sentence when it found nothing, generated text otherwise (None for checkpoints trained
        without an answer loss). That question must be the last one `predict` was asked about
        the current image (the answer continues its cache); `result` may be another Result of
        it, e.g. a tiled run's merged windows. `answer_stream` gives it piece by piece."""
        stream = self.answer_stream(result)
        for _ in stream:
            pass
        return stream.text

    def answer_stream(self, result: Result) -> AnswerStream:
        """`answer`, as an iterator of text pieces decoded while it is read, so a caller shows
        the mask first and the words as they come::

            result = predictor.predict(question, answer=False)   # the mask, now
            stream = predictor.answer_stream(result)
            for piece in stream:
                print(piece, end="")
            finish_answer(result, stream)   # the final text (as `answer` gives it) and its seconds

        Nothing to iterate for a checkpoint without answers (`text` None); one piece, the
        no-target sentence, when the mask is empty. The stream continues this predictor's cache:
        the next `predict`, `answer_stream` or `set_image` stops it, as does `stream.close()`."""
        self._stop_answer()
        if not self.config.answers:
            return AnswerStream()
        if not result.found:
            return AnswerStream(fixed=EMPTY_TARGET_ANSWER, seconds=0.0)
        question = self._current().question
        if question is None or question.text != result.question:
            raise InputError("Ask the question with predict(question) first: the answer continues it.")
        self._stream = AnswerStream(self.tokenizer, functools.partial(self._decode, self._image.prefix, question.embeds))
        return self._stream

    @torch.inference_mode()  # in the stream's own thread: inference mode is per thread
    def _decode(self, prefix: PromptPrefix, question: torch.Tensor, streamer: BaseStreamer,
                cancel: threading.Event) -> str:
        tokens = self.model.answer(prefix, question, self._lead_in, self._stop_ids, streamer=streamer, cancel=cancel,
                                   decoder=self.decoder)
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def _stop_answer(self) -> None:
        """Stop an answer still being decoded: it reads and extends the cache about to be used."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _current(self) -> _ImageState:
        if self._image is None:
            raise InputError("No image set: call set_image(image) first.")
        return self._image

    def question_ids(self, question: str) -> list[int]:
        """The question's token ids; an empty question, or one longer than the checkpoint reads
        after the prompt's prefix and before an answer, is refused with a message. Needs no image:
        the app checks a question before a ZeroGPU call, where a refusal would spend quota."""
        if not isinstance(question, str) or not question.strip():
            raise InputError(EMPTY_QUESTION)
        ids = description_ids(self.tokenizer, question.strip())
        prefix = sum(len(s.ids) for s in self._prefix_segments) + self.config.visual_tokens
        budget = (self.config.llm.max_position_embeddings - prefix
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


def finish_answer(result: Result, stream: AnswerStream) -> Result:
    """Put a read stream's final text into ``result`` (``answer``) and its decoding seconds into
    ``result.timings["answer"]``, as `Predictor.predict` does for an answer it generates itself:
    the one way a streamed answer becomes part of the result, its record and its files."""
    result.answer = stream.text
    if stream.seconds is not None:
        result.timings["answer"] = stream.seconds
    return result


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)
