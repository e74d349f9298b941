"""Ask many questions about one image cheaply: `set_image` once, then `predict` per question.

`set_image` runs everything that depends on the image alone: the encoder, the pixel decoder,
the connector and the LLM over the prompt up to the question (its key/value cache is kept).
`predict` runs only the question through the LLM, the D-Projector and the mask decoder, then
maps the mask back to the image's own size; the answer is generated afterwards from the same
cache, so the mask never depends on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import processing
from .errors import InputError
from .model import ImageFeatures, SegEarthR1
from .model.language import split_at_refer
from .regions import Region, find_regions

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "int4")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MAX_ANSWER_TOKENS = 64
#: A generated answer stops when its last n tokens (n <= this) repeat three times in a row:
#: users reported answers looping upstream.
LOOP_PERIOD = 8


@dataclass
class Prediction:
    """What one question about one image gives back, everything at the image's own size."""

    mask: np.ndarray  # (H, W) bool: probability > threshold
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # on the probability; 0.5 is the authors' "logit > 0"
    answer: str | None  # None for checkpoints trained without an answer loss
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    provenance: dict[str, Any] = field(default_factory=dict)  # checkpoint, precision, device, ...
    #: The authors' frame: the model's probability on the padded square canvas.
    canvas_probability: np.ndarray | None = None

    @property
    def found(self) -> bool:
        """False is the explicit "no target in this image" result."""
        return bool(self.mask.any())

    @property
    def canvas_mask(self) -> np.ndarray | None:
        """The authors' output: the mask on the padded canvas (what their metrics use)."""
        return None if self.canvas_probability is None else self.canvas_probability > self.threshold

    @property
    def regions(self) -> list[Region]:
        """The mask's connected regions with their confidence, largest first (segearth.regions)."""
        return find_regions(self.mask, self.probability).regions

    def with_threshold(self, threshold: float) -> "Prediction":
        """The same prediction re-thresholded without running the model."""
        _check_threshold(threshold)
        return replace(self, mask=self.probability > threshold, threshold=threshold)


@dataclass
class _ImageState:
    geometry: processing.Geometry
    features: ImageFeatures
    prefix_cache: Any  # the LLM's key/value cache over the prompt up to the question
    prefix_length: int
    seconds: dict[str, float]


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise InputError(f"The threshold is a probability strictly between 0 and 1, not {threshold}.")


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"Unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("No CUDA GPU is available here: use device 'cpu'.")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 needs a GPU; on the CPU use fp32, bf16 or int8.")
    if precision in ("int8", "int4"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise InputError(f"{precision} needs the bitsandbytes package: pip install bitsandbytes.") from None
    return precision


def quantize_llm(llm: nn.Module, bits: int, compute_dtype: torch.dtype) -> None:
    """Replace the Linear layers inside the LLM's decoder layers by bitsandbytes 8/4-bit ones.

    Only the LLM is quantised: embeddings, norms, lm_head and every vision/mask part keep their
    precision. (The authors' 8-bit path quantised everything and failed on dtype errors.)
    """
    import bitsandbytes as bnb

    for layer in llm.model.layers:
        for name, module in list(layer.named_modules()):
            if not isinstance(module, nn.Linear):
                continue
            parent = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
            weight = module.weight.data.float()
            if bits == 8:
                new = bnb.nn.Linear8bitLt(module.in_features, module.out_features, module.bias is not None,
                                          has_fp16_weights=False, threshold=6.0)
                new.weight = bnb.nn.Int8Params(weight.to(compute_dtype), requires_grad=False,
                                               has_fp16_weights=False)
            else:
                new = bnb.nn.Linear4bit(module.in_features, module.out_features, module.bias is not None,
                                        compute_dtype=compute_dtype, quant_type="nf4")
                new.weight = bnb.nn.Params4bit(weight.to(compute_dtype), requires_grad=False, quant_type="nf4")
            if module.bias is not None:
                new.bias = nn.Parameter(module.bias.data.to(compute_dtype), requires_grad=False)
            setattr(parent, name.rpartition(".")[2], new)


class Predictor:
    """segment-anything style: `set_image(image)` then `predict(question)`."""

    def __init__(self, model: SegEarthR1, tokenizer, precision: str = "auto", device: str | None = None,
                 checkpoint: str | None = None):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tokenizer = tokenizer
        self.config = model.config
        self.checkpoint = checkpoint
        self.model = self._place(model.eval())
        segments = processing.prompt_segments(tokenizer, self.config.task)
        self._prefix_segments, self._post_segments = split_at_refer(segments)
        self._seg_id = processing.seg_token_id(tokenizer)
        self._image: _ImageState | None = None
        self.encoder_calls = 0  # how many times set_image ran the vision path (for cache checks)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, precision: str = "auto",
                        device: str | None = None) -> "Predictor":
        """A released checkpoint (hub id or folder) or one of ours."""
        from .checkpoints import load

        resolve_precision(precision, resolve_device(device))  # fail before the slow load
        model, tokenizer, _ = load(checkpoint)
        return cls(model, tokenizer, precision, device, checkpoint=str(checkpoint))

    def _place(self, model: SegEarthR1) -> SegEarthR1:
        if self.precision in _DTYPES:
            return model.to(self.device, _DTYPES[self.precision])
        # int8 / int4: LLM weights quantised; its other tensors in the compute dtype
        compute = torch.float16 if self.device.type == "cuda" else torch.float32
        model.llm.to(compute)
        quantize_llm(model.llm, 8 if self.precision == "int8" else 4, compute)
        return model.to(self.device)

    @property
    def _vision_dtype(self) -> torch.dtype:
        return next(self.model.encoder.parameters()).dtype

    @property
    def _embed(self) -> nn.Embedding:
        return self.model.llm.get_input_embeddings()

    # --- image ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: processing.ImageLike) -> None:
        """Accepts a path, PIL image or array (any mode, any size). Runs the vision path once."""
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        rgb = processing.load_image(image)
        pixels, geometry = processing.preprocess_image(rgb, self.config.image_size)
        seconds["preprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        features = self.model.encode_image(pixels.to(self.device, self._vision_dtype))
        self.encoder_calls += 1
        seconds["image_features"] = time.perf_counter() - start

        start = time.perf_counter()
        prefix = self._embed_segments(self._prefix_segments, features.visual_tokens[0])
        out = self.model.llm.model(inputs_embeds=prefix[None], use_cache=True)
        seconds["prompt_prefix"] = time.perf_counter() - start
        self._image = _ImageState(geometry, features, out.cache, prefix.shape[0], seconds)

    def _embed_segments(self, segments, visual_tokens: torch.Tensor | None = None) -> torch.Tensor:
        embed = self._embed
        pieces = []
        for segment in segments:
            if segment.kind == "image":
                pieces.append(visual_tokens.to(embed.weight.dtype))
            elif segment.kind == "text":
                pieces.append(embed(torch.tensor(segment.ids, device=self.device)))
        return torch.cat(pieces)

    # --- question -------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, question: str, threshold: float = 0.5, answer: bool = True) -> Prediction:
        """The mask for `question` about the current image, and the answer if the checkpoint
        gives one (`answer=False` skips generation, e.g. for evaluation)."""
        if self._image is None:
            raise InputError("No image set: call set_image(image) first.")
        _check_threshold(threshold)
        ids = self._question_ids(question)
        state = self._image
        timings = dict(state.seconds)

        start = time.perf_counter()
        cache = state.prefix_cache
        cache.crop(state.prefix_length - cache.get_seq_length())  # forget the previous question
        embeds = self._embed(torch.tensor(ids, device=self.device))[None]
        out = self.model.llm.model(inputs_embeds=embeds, cache=cache, use_cache=True)
        timings["question"] = time.perf_counter() - start

        start = time.perf_counter()
        states = out.last_hidden_state  # (1, R, D): the description
        query = self.model.describe(states, torch.ones(states.shape[:2], dtype=torch.bool, device=self.device),
                                    state.features.res5)
        logits = self.model.decode(query.to(self._vision_dtype), state.features).logits  # (1, s, s)
        canvas_logits = processing.logits_to_canvas(logits, self.config.image_size)[0].float().cpu().numpy()
        timings["mask_decoder"] = time.perf_counter() - start

        start = time.perf_counter()
        image_logits = processing.canvas_to_image(canvas_logits, state.geometry)
        probability = _sigmoid(image_logits)
        canvas_probability = _sigmoid(canvas_logits)
        timings["postprocess"] = time.perf_counter() - start

        text = None
        if answer and self.config.answers:
            start = time.perf_counter()
            text = self._generate_answer(state)
            timings["answer"] = time.perf_counter() - start
        return Prediction(
            mask=probability > threshold, probability=probability, threshold=threshold, answer=text,
            timings=timings, provenance=self._provenance(question), canvas_probability=canvas_probability,
        )

    def _question_ids(self, question: str) -> list[int]:
        if not isinstance(question, str) or not question.strip():
            raise InputError("The question is empty: ask about something in the image.")
        ids = processing.description_ids(self.tokenizer, question.strip())
        budget = (self.config.llm.max_position_embeddings - self._image.prefix_length
                  - sum(len(s.ids) for s in self._post_segments) - MAX_ANSWER_TOKENS)
        if len(ids) > budget:
            raise InputError(
                f"The question is {len(ids)} tokens long; this checkpoint reads at most {budget}. Shorten it."
            )
        return ids

    def _generate_answer(self, state: _ImageState) -> str:
        """Greedy decoding after the assistant's lead-in, stopping at [SEG], end of text, the
        token limit or a loop."""
        cache = state.prefix_cache  # holds prefix + question now
        inputs = self._embed_segments(self._post_segments)[None]
        generated: list[int] = []
        stop = {self._seg_id, self.tokenizer.eos_token_id}
        for _ in range(MAX_ANSWER_TOKENS):
            out = self.model.llm(inputs_embeds=inputs, cache=cache, use_cache=True, logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
            if token in stop:
                break
            generated.append(token)
            if _ends_in_loop(generated):
                break
            inputs = self._embed(torch.tensor([[token]], device=self.device))
        return self.tokenizer.decode(generated, skip_special_tokens=True).strip()

    def _provenance(self, question: str) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "precision": self.precision,
            "device": str(self.device),
            "task": self.config.task,
            "prompt_template": self.config.task,
            "image_size": [self._image.geometry.height, self._image.geometry.width],
            "canvas": self.config.image_size,
            "answers": self.config.answers,
            "question": question,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)


def _ends_in_loop(tokens: list[int]) -> bool:
    for period in range(1, LOOP_PERIOD + 1):
        if len(tokens) >= 3 * period and tokens[-period:] == tokens[-2 * period:-period] == tokens[-3 * period:-2 * period]:
            del tokens[-2 * period:]  # keep one copy of the repeated piece
            return True
    return False
