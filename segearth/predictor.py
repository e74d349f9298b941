"""Ask many questions about one image cheaply: `set_image` once, then `predict` per question.

`set_image` runs everything that depends on the image alone: the encoder, the pixel decoder,
the connector and the LLM over the prompt up to the question (its key/value cache is kept).
`predict` runs only the question through the LLM, the D-Projector and the mask decoder, then
maps the mask back to the image's own size; the answer is generated afterwards from the same
cache, so the mask never depends on it.
"""
from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import cpu_linear, processing
from .constants import EMPTY_TARGET_ANSWER
from .errors import InputError
from .model import ImageFeatures, SegEarthR1, generation
from .model.language import split_at_refer
from .regions import Region, drop_small_regions, find_regions, min_region_pixels

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "int4")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: CPU flags of native bf16 matrix units: AVX-512 BF16 dot products, AMX tiles.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: The bf16-vs-fp32 mask IoU every item must reach for `auto` to pick bf16 on such CPUs.
BF16_MIN_IOU = 0.99
#: Whether bf16 masks agree with fp32 well enough for `auto` to pick bf16 on such CPUs, as
#: `benchmarks/bf16_agreement.py` measures it: the bundled demo model's masks on every item of
#: at least 50 synthetic scenes at two sizes at `BF16_MIN_IOU`, and bf16 on the parity e2e split
#: within the bf16 parity test's bound against the authors' masks (README, "Speed and memory").
#: Where this is False, `auto` stays fp32 on every CPU.
BF16_AGREES_ON_CPU = False
#: The question used by `warm_up` (any text: only its length matters to the kernels).
WARM_UP_QUESTION = "Where is the warm-up target?"


@dataclass
class Prediction:
    """What one question about one image gives back, everything at the image's own size."""

    mask: np.ndarray  # (H, W) bool: probability > threshold, regions under min_region_fraction removed
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    threshold: float  # on the probability; 0.5 is the authors' "logit > 0"
    answer: str | None  # None for checkpoints trained without an answer loss
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    provenance: dict[str, Any] = field(default_factory=dict)  # checkpoint, precision, device, ...
    #: The authors' frame: the model's probability on the padded square canvas.
    canvas_probability: np.ndarray | None = None
    #: The checkpoint's `SegEarthConfig.min_region_fraction`, applied to every mask derived here.
    min_region_fraction: float = 0.0

    @property
    def found(self) -> bool:
        """False is the explicit "no target in this image" result."""
        return bool(self.mask.any())

    @property
    def canvas_mask(self) -> np.ndarray | None:
        """The authors' output: the mask on the padded canvas (what their metrics use)."""
        if self.canvas_probability is None:
            return None
        return threshold_mask(self.canvas_probability, self.threshold, self.min_region_fraction)

    @property
    def regions(self) -> list[Region]:
        """The mask's connected regions with their confidence, largest first (segearth.regions)."""
        return find_regions(self.mask, self.probability).regions

    def with_answer(self, stream: "generation.AnswerStream") -> "Prediction":
        """This prediction with the answer `stream` gave once read (and the seconds it took)."""
        timings = self.timings if stream.seconds is None else {**self.timings, "answer": stream.seconds}
        return replace(self, answer=stream.text, timings=timings)

    def with_threshold(self, threshold: float) -> "Prediction":
        """The same prediction re-thresholded without running the model."""
        _check_threshold(threshold)
        return replace(self, mask=threshold_mask(self.probability, threshold, self.min_region_fraction),
                       threshold=threshold)


@dataclass
class _ImageState:
    geometry: processing.Geometry
    features: ImageFeatures
    prefix: generation.PromptPrefix  # the LLM's cache over the prompt up to the question
    seconds: dict[str, float]


def threshold_mask(probability: np.ndarray, threshold: float, min_region_fraction: float) -> np.ndarray:
    """probability > threshold, without the regions under ``min_region_fraction``."""
    return drop_small_regions(probability > threshold, min_region_pixels(min_region_fraction, probability.shape))


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


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere: no guessing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True on CPUs with bf16 matrix instructions (AVX-512 BF16 or AMX), where bf16 runs faster
    than fp32; elsewhere bf16 is emulated and slower."""
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if BF16_AGREES_ON_CPU and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 needs a GPU; on the CPU use fp32, bf16 or int8.")
    if precision == "int4" or (precision == "int8" and device.type == "cuda"):
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


def quantize_llm_cpu(llm: nn.Module) -> None:
    """int8 on a CPU: the Linear layers inside the LLM's decoder layers become PyTorch's own
    dynamically quantised ones (int8 weights, activations quantised per call; fbgemm's kernels
    through the default `x86` engine). Embeddings, norms, lm_head and the vision/mask parts stay fp32.

    Measured per decoded token of the released-size LLM (README, "Speed and memory"), this is
    the fast CPU path; bitsandbytes' int8 on a CPU was slower than fp32 and stays the GPU path.
    `torch.ao.quantization` rather than torchao, its maintained successor: torchao's eager CPU
    int8 paths measured slower per token than fp32 (dynamic activations) or 5x slower (weight
    only). `torch.ao` warns that it is deprecated; the warning is silenced here, where the
    choice is made, and a PyTorch without it fails `tests/inference/test_predictor.py`.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        quantize_dynamic(llm.model.layers, {nn.Linear}, dtype=torch.qint8, inplace=True)


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
        self._prefix_segments, self._lead_in = split_at_refer(segments)
        self._stop_ids = [processing.seg_token_id(tokenizer), tokenizer.eos_token_id]
        self._image: _ImageState | None = None
        self._text_start: generation.PromptPrefix | None = None  # kept by the first set_image
        self._stream: generation.AnswerStream | None = None  # the last question's answer

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, precision: str = "auto", device: str | None = None,
                        warm_up: bool = False) -> "Predictor":
        """A released checkpoint (hub id or folder) or one of ours. `warm_up=True` pays the
        first question's one-time costs now (see `warm_up`)."""
        from .checkpoints import load

        resolve_precision(precision, resolve_device(device))  # fail before the slow load
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
        generation.read_prefix(self.model.llm, self._prefix_segments, self._image.features.visual_tokens[0],
                               self._text_start)
        self.predict(WARM_UP_QUESTION, answer=self.config.answers)
        self._image = None

    def to(self, device: str | torch.device) -> "Predictor":
        """Move the model (and the current image's features) to `device`, e.g. into a ZeroGPU
        call; precision stays as resolved."""
        device = torch.device(device)
        if device != self.device:
            self._stop_answer()
            self.model.to(device)
            self.device = device
            self._image = None  # its cache and features were made on the old device
            self._text_start = None
        return self

    def _place(self, model: SegEarthR1) -> SegEarthR1:
        cpu_linear.route_linears(model.encoder, model.llm)  # fp32 on a CPU: oneDNN's kernel (see there)
        if self.precision in _DTYPES:
            return model.to(self.device, _DTYPES[self.precision])
        # int8 / int4: LLM weights quantised; its other tensors in the compute dtype
        compute = torch.float16 if self.device.type == "cuda" else torch.float32
        model.llm.to(compute)
        if self.precision == "int8" and self.device.type == "cpu":
            quantize_llm_cpu(model.llm)
        else:
            quantize_llm(model.llm, 8 if self.precision == "int8" else 4, compute)
        return model.to(self.device)

    @property
    def _vision_dtype(self) -> torch.dtype:
        return next(self.model.encoder.parameters()).dtype

    # --- image ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: processing.ImageLike) -> None:
        """Accepts a path, PIL image or array (any mode, any size). Runs the vision path once."""
        self._stop_answer()
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        rgb = processing.load_image(image)
        pixels, geometry = processing.preprocess_image(rgb, self.config.image_size)
        seconds["preprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        features = self.model.encode_image(pixels.to(self.device, self._vision_dtype))
        seconds["image_features"] = time.perf_counter() - start

        start = time.perf_counter()
        prefix = generation.read_prefix(self.model.llm, self._prefix_segments, features.visual_tokens[0],
                                        self._text_start)
        if self._text_start is None:  # the same for every image: kept from the first (`warm_up`'s)
            self._text_start = generation.text_before_image(prefix, self._prefix_segments)
        seconds["prompt_prefix"] = time.perf_counter() - start
        self._image = _ImageState(geometry, features, prefix, seconds)

    # --- question -------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, question: str, threshold: float | None = None, answer: bool = True) -> Prediction:
        """The mask for `question` about the current image, and the answer if the checkpoint
        gives one (`answer=False` skips generation, e.g. for evaluation). `threshold` None is the
        checkpoint's own (`SegEarthConfig.mask_threshold`: 0.5 for the released ones).
        `predict_streaming` gives the same without waiting for the answer."""
        prediction, stream = self.predict_streaming(question, threshold, answer)
        for _ in stream:
            pass
        return prediction.with_answer(stream)

    @torch.inference_mode()
    def predict_streaming(self, question: str, threshold: float | None = None,
                          answer: bool = True) -> tuple[Prediction, generation.AnswerStream]:
        """The mask for `question` now (the prediction's `answer` is None), and the answer as an
        iterator of text pieces, decoded while it is read::

            prediction, stream = predictor.predict_streaming("Where could a plane land?")
            show(prediction.mask)
            for piece in stream:
                print(piece, end="")
            prediction = prediction.with_answer(stream)  # the final text, as `predict` gives it

        The stream yields nothing for a checkpoint without answers (or `answer=False`), one piece
        ("There is no target object in the image.") when the mask is empty. It shares this
        predictor's cache: the next `predict`, `predict_streaming` or `set_image` stops it, as
        does `stream.close()`."""
        if self._image is None:
            raise InputError("No image set: call set_image(image) first.")
        threshold = self.config.mask_threshold if threshold is None else threshold
        _check_threshold(threshold)
        ids = self._question_ids(question)
        self._stop_answer()
        state = self._image
        timings = dict(state.seconds)

        start = time.perf_counter()
        states, question_embeds = generation.read_question(self.model.llm, state.prefix, ids)  # (1, R, D)
        timings["question"] = time.perf_counter() - start

        start = time.perf_counter()
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

        mask = threshold_mask(probability, threshold, self.config.min_region_fraction)
        prediction = Prediction(
            mask=mask, probability=probability, threshold=threshold, answer=None,
            timings=timings, provenance=self._provenance(question), canvas_probability=canvas_probability,
            min_region_fraction=self.config.min_region_fraction,
        )
        if not (answer and self.config.answers):
            stream = generation.AnswerStream()
        elif not mask.any():
            stream = generation.AnswerStream(fixed=EMPTY_TARGET_ANSWER, seconds=0.0)
        else:
            stream = generation.AnswerStream(self.tokenizer, functools.partial(self._answer, state, question_embeds))
        self._stream = stream
        return prediction, stream

    def _stop_answer(self) -> None:
        """Stop an answer still being decoded: it reads and extends the cache we are about to use."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    @torch.inference_mode()
    def _answer(self, state: _ImageState, question_embeds: torch.Tensor, streamer, cancel) -> str:
        tokens = generation.generate_answer(self.model.llm, state.prefix, question_embeds, self._lead_in,
                                            self._stop_ids, streamer=streamer, cancel=cancel)
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def _question_ids(self, question: str) -> list[int]:
        if not isinstance(question, str) or not question.strip():
            raise InputError("The question is empty: ask about something in the image.")
        ids = processing.description_ids(self.tokenizer, question.strip())
        budget = (self.config.llm.max_position_embeddings - self._image.prefix.length
                  - sum(len(s.ids) for s in self._lead_in) - generation.MAX_ANSWER_TOKENS)
        if len(ids) > budget:
            raise InputError(
                f"The question is {len(ids)} tokens long; this checkpoint reads at most {budget}. Shorten it."
            )
        return ids

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

