"""The training configuration: a JSON file per dataset, read into `TrainConfig`.

Files live in ``train/configs/``. A file may name a ``"base"`` file (relative to itself) whose
values it overrides key by key, nested dictionaries merged; so the paper's shared
hyper-parameters (Table 8) are written once in ``base.json`` and each dataset file adds what
is its own (data, task, iterations). Fields without a default here must come from the files:
the numbers live there, not in code. ``--set key.sub=value`` on the command line overrides
any field (value parsed as JSON, else taken as a string).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import LLM_HUB_IDS, LLM_PRESETS, SegEarthConfig
from ..errors import InputError
from ..losses import LossConfig

MODEL_PRESETS = ("released", "tiny")


@dataclass
class ModelSpec:
    """Which architecture to build when not starting from a checkpoint."""

    preset: str = "released"  # "released" (Swin-B + Phi-1.5 ...) or "tiny" (`SegEarthConfig.tiny`)
    llm: str = "phi-1.5"  # a key of `segearth.config.LLM_PRESETS` (released preset only)
    #: Nested `SegEarthConfig` fields to change, e.g. {"connector": {"depth": 1}}.
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class InitSpec:
    """Where the starting weights and the tokenizer come from."""

    #: A folder or hub id of a SegEarth-R1 checkpoint (released or ours) to fine-tune; when set,
    #: the model and tokenizer are that checkpoint's and the fields below are ignored.
    checkpoint: str | None = None
    #: Start the LLM from pretrained weights (else random).
    pretrained_llm: bool = True
    #: Folder or hub id of the pretrained LLM and its tokenizer; None = the hub id of
    #: ``model.llm`` in `segearth.config.LLM_HUB_IDS`.
    llm_source: str | None = None
    #: Tokenizer folder or hub id, when not the LLM source's.
    tokenizer: str | None = None
    #: Instead of a pretrained tokenizer, train a byte-level BPE of this size on the training
    #: text (the demo model, whose LLM starts from scratch).
    bpe_vocab_size: int | None = None
    #: Mask2Former detectron2 checkpoint (local path or URL) for the Swin encoder, pixel decoder
    #: and mask decoder; None leaves them randomly initialised.
    mask2former: str | None = None


@dataclass
class TrainConfig:
    # --- data ---
    dataset: str  # a name of `segearth.data.load_dataset`
    data_root: str | None
    task: str  # prompt template (`segearth.constants.PROMPT_TEMPLATES`)
    answer_loss: bool  # token cross-entropy on the answer (reasoning data)
    # --- optimisation (paper Table 8 and the authors' script) ---
    learning_rate: float
    weight_decay: float
    adam_betas: tuple[float, float]
    adam_epsilon: float
    lr_schedule: str  # a `transformers.get_scheduler` name
    warmup_ratio: float
    max_steps: int  # optimiser steps ("iterations")
    effective_batch_size: int  # per optimiser step, over all processes and accumulation
    per_device_batch_size: int
    max_grad_norm: float | None
    mixed_precision: str  # "no", "bf16" or "fp16" (accelerate)
    gradient_checkpointing: bool
    #: Train the Swin encoder too (the authors freeze it; the demo model's starts random, and its
    #: features are what the LLM sees of the image when it decides whether the target is there).
    train_encoder: bool = False
    #: Teach empty targets `EMPTY_TARGET_ANSWER` as their answer (the authors do). Off, an empty
    #: target trains the mask alone, so the text never learns to say "nothing here" and the mask
    #: decides it (the predictor answers an empty mask with that sentence): stage 2 of the demo
    #: model, whose text said it over right masks when taught so (docs/training.md).
    answer_empty_targets: bool = True
    # --- model ---
    model: ModelSpec = field(default_factory=ModelSpec)
    init: InitSpec = field(default_factory=InitSpec)
    loss: LossConfig = field(default_factory=LossConfig)
    #: `segearth.data.synthetic.generate_dataset` arguments: generate the dataset into
    #: ``data_root`` first if it is not there (the demo model's data).
    synthetic: dict[str, Any] | None = None
    # --- bookkeeping ---
    output_dir: str = "runs/train"
    train_split: str = "train"
    val_split: str = "val"
    #: Train on every question of an item, each its own sample (`expand_question_pairs`); the
    #: authors train on the first only. Validation always asks the first.
    all_questions: bool = False
    val_limit: int | None = None  # validate on the first N items only (None = all)
    eval_every: int = 0  # steps between validations (0 = only at the end)
    save_every: int = 0  # steps between resumable states and model checkpoints (0 = only at the end)
    log_every: int = 1
    num_workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.data_root:
            raise InputError(f"No data_root for dataset {self.dataset!r}: pass --data-root FOLDER.")
        if self.model.preset not in MODEL_PRESETS:
            raise InputError(f"model.preset must be one of {MODEL_PRESETS}, not {self.model.preset!r}.")
        if self.model.llm not in LLM_PRESETS:
            raise InputError(f"model.llm must be one of {sorted(LLM_PRESETS)}, not {self.model.llm!r}.")
        if self.effective_batch_size % self.per_device_batch_size:
            raise InputError(
                f"effective_batch_size {self.effective_batch_size} is not a multiple of "
                f"per_device_batch_size {self.per_device_batch_size}."
            )

    def accumulation_steps(self, num_processes: int) -> int:
        """Gradient accumulation that makes the effective batch whatever the process count."""
        per_step = self.per_device_batch_size * num_processes
        if self.effective_batch_size % per_step:
            raise InputError(
                f"effective_batch_size {self.effective_batch_size} cannot be split over {num_processes} "
                f"processes x per_device_batch_size {self.per_device_batch_size}; change one of them."
            )
        return self.effective_batch_size // per_step

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_ratio * self.max_steps))

    @property
    def llm_source(self) -> str:
        return self.init.llm_source or LLM_HUB_IDS[self.model.llm]

    def model_config(self, vocab_size: int) -> SegEarthConfig:
        """The architecture to build from scratch (or around pretrained parts)."""
        if self.model.preset == "tiny":
            base = SegEarthConfig.tiny(vocab_size=vocab_size)
        else:
            llm = dataclasses.replace(LLM_PRESETS[self.model.llm], vocab_size=vocab_size)
            base = SegEarthConfig.released(llm=llm)
        data = _merge(base.to_dict(), self.model.overrides)
        data.update(task=self.task, answers=self.answer_loss)
        return SegEarthConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- reading ----------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The file (with its ``base`` chain) plus ``key.sub=value`` overrides."""
    data = read_config_file(Path(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InputError(f"--set expects key=value, got {item!r}.")
        _merge_into(data, _nest(key.strip().split("."), _parse_value(raw)))
    return config_from_dict(data)


def read_config_file(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in _seen:
        raise InputError(f"Config files include each other in a loop: {' -> '.join(map(str, _seen + (path,)))}")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"Training config {path} does not exist (see train/configs/).") from None
    except json.JSONDecodeError as err:
        raise InputError(f"Training config {path} is not valid JSON: {err}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(read_config_file(path.parent / base, _seen + (path,)), data)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    data = {k: v for k, v in data.items() if not k.startswith("_")}  # "_comment" keys
    nested = {"model": ModelSpec, "init": InitSpec, "loss": LossConfig}
    try:
        kwargs = {k: nested[k](**v) if k in nested else v for k, v in data.items()}
        if "adam_betas" in kwargs:
            kwargs["adam_betas"] = tuple(kwargs["adam_betas"])
        return TrainConfig(**kwargs)
    except TypeError as err:
        raise InputError(f"The training config does not fit TrainConfig: {err}") from None


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    for key in reversed(keys):
        value = {key: value}
    return value


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))  # deep copy of plain data
    _merge_into(out, override)
    return out


def _merge_into(target: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value
