"""One dataclass tree that describes every SegEarth-R1 size, variant and ablation.

`SegEarthConfig()` is the released architecture (Swin-B, d=2 connector, Phi-1.5, D-Projector,
description query). The paper's ablations are fields:

* Table 7, connector depth: ``connector.depth`` 0..3 (1024 / 256 / 64 / 16 visual tokens at 1024).
* Table 5, components: ``use_description_query`` (query the mask decoder with the description
  embedding) and ``use_d_projector`` (description projection module); both off is the PSALM-style
  baseline with ``mask_decoder.num_learned_queries`` learned queries and matching.
* Table 6, LLM family: ``llm.family`` in ``phi`` (Phi-1.5, Phi-2) and ``qwen2`` (Qwen2.5-0.5B).

`SegEarthConfig.tiny()` is a few-megabyte model with every part present, for tests.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from . import constants


@dataclass
class EncoderConfig:
    """Hierarchical Swin encoder (Mask2Former's Swin-B, IN21k 384 by default)."""

    patch_size: int = 4
    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.3

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of res2..res5."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.depths)))


@dataclass
class ConnectorConfig:
    """Token-compression connector: ``depth`` x (3x3 stride-2 conv, LayerNorm), then 1x1 conv."""

    depth: int = 2


@dataclass
class LLMConfig:
    """The language model, built by transformers from ``family`` and these sizes."""

    family: str = "phi"  # "phi" (Phi-1.5 / Phi-2) or "qwen2" (Qwen2.5)
    hidden_size: int = 2048
    num_layers: int = 24
    num_heads: int = 32
    num_kv_heads: int | None = None  # qwen2 grouped-query attention
    intermediate_size: int = 8192
    vocab_size: int = 50297
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.5  # phi only
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu_new"
    tie_word_embeddings: bool = False

    def to_transformers(self):
        """The transformers config object for this LLM."""
        from transformers import PhiConfig, Qwen2Config

        common = dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads or self.num_heads,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
            hidden_act=self.hidden_act,
            tie_word_embeddings=self.tie_word_embeddings,
        )
        if self.family == "phi":
            return PhiConfig(**common, partial_rotary_factor=self.partial_rotary_factor,
                             layer_norm_eps=self.layer_norm_eps, resid_pdrop=0.0, embd_pdrop=0.0,
                             attention_dropout=0.0)
        if self.family == "qwen2":
            return Qwen2Config(**common, rms_norm_eps=self.layer_norm_eps)
        raise ValueError(f"unknown LLM family {self.family!r}; use 'phi' or 'qwen2'")


#: Table 6 of the paper. Vocabulary sizes include [PAD] and [SEG] where the tokenizer lacks them.
LLM_PRESETS: dict[str, LLMConfig] = {
    "phi-1.5": LLMConfig(),
    "phi-2": LLMConfig(hidden_size=2560, num_layers=32, num_heads=32, intermediate_size=10240,
                       vocab_size=50297, partial_rotary_factor=0.4),
    "qwen2.5-0.5b": LLMConfig(family="qwen2", hidden_size=896, num_layers=24, num_heads=14,
                              num_kv_heads=2, intermediate_size=4864, vocab_size=151667,
                              max_position_embeddings=32768, rope_theta=1e6,
                              layer_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=True),
}
#: Where the pretrained weights of each preset live on the hub (training initialisation).
LLM_HUB_IDS = {"phi-1.5": "microsoft/phi-1_5", "phi-2": "microsoft/phi-2",
               "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B"}


@dataclass
class DProjectorConfig:
    """Description projection: pooled description x res5 tokens, one Perceiver block."""

    dim: int = 512
    heads: int = 8
    dim_head: int = 64
    depth: int = 1
    ff_mult: int = 1


@dataclass
class PixelDecoderConfig:
    """Mask2Former's multi-scale deformable-attention pixel decoder."""

    conv_dim: int = 256
    mask_dim: int = 256
    num_layers: int = 6
    ffn_dim: int = 1024
    num_heads: int = 8
    num_points: int = 4
    num_groups: int = 32  # GroupNorm groups


@dataclass
class MaskDecoderConfig:
    """Mask2Former's masked-attention decoder."""

    hidden_dim: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048
    num_layers: int = 9
    #: Learned queries used only by the PSALM-style baseline (``use_description_query=False``).
    num_learned_queries: int = 100


@dataclass
class SegEarthConfig:
    image_size: int = constants.IMAGE_SIZE
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    d_projector: DProjectorConfig = field(default_factory=DProjectorConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    #: Table 5: use the description embedding as the decoder query (else learned queries).
    use_description_query: bool = True
    #: Table 5: the D-Projector (else a linear map of the pooled description).
    use_d_projector: bool = True
    #: Prompt template key in `constants.PROMPT_TEMPLATES`.
    task: str = "reasoning"
    #: Whether the checkpoint was trained with an answer loss (its generated text means something).
    answers: bool = True
    #: Smallest region a mask keeps, as a share of the square canvas (of the longer side squared
    #: at the image's own size): smaller 4-connected regions are this checkpoint's threshold
    #: noise and are removed, so a mask of specks is "no target" (not found, the empty-target
    #: answer). 0 keeps every pixel, as the authors' code does (released checkpoints); the demo
    #: model sets it from a calibration set (docs/training.md, "The bundled demo model").
    min_region_fraction: float = 0.0
    #: The probability above which a pixel is in the mask when a caller does not choose one.
    #: 0.5 is the authors' "logit > 0" (released checkpoints); a briefly trained model's
    #: probabilities are not calibrated at 0.5, so the demo model carries the threshold picked
    #: with its noise floor on a calibration set (docs/training.md, "The bundled demo model").
    mask_threshold: float = 0.5
    #: Smallest mean probability a region of the mask may have: regions the model is less sure
    #: of are removed like the noise floor's specks. 0 keeps every region (released checkpoints,
    #: as the authors' code); the demo model's, picked with its threshold and floor on a
    #: calibration set, turns the outlines it half-believes on real photographs into "no target"
    #: (docs/training.md, "The bundled demo model").
    min_region_score: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_region_fraction < 1.0:
            raise ValueError(f"min_region_fraction must be within [0, 1), not {self.min_region_fraction}")
        if not 0.0 <= self.min_region_score < 1.0:
            raise ValueError(f"min_region_score must be within [0, 1), not {self.min_region_score}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be within (0, 1), not {self.mask_threshold}")
        if self.image_size % (32 * 2**self.connector.depth):
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of {32 * 2**self.connector.depth} "
                f"for a depth-{self.connector.depth} connector"
            )
        if self.task not in constants.TASKS:
            raise ValueError(f"task must be one of {constants.TASKS}, not {self.task!r}")
        if len(self.encoder.depths) != 4:
            raise ValueError("the encoder must have four stages (res2..res5)")

    @property
    def visual_tokens(self) -> int:
        """How many tokens the connector gives the LLM for one image: res5 (stride 32) halved
        `connector.depth` times, per side (64 for the released 1024 canvas)."""
        return (self.image_size // (32 * 2**self.connector.depth)) ** 2

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SegEarthConfig":
        sub = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in sub:
                continue  # forward compatibility: ignore fields we do not know
            if isinstance(value, dict):
                klass = _SUBCONFIGS[key]
                value = klass(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            kwargs[key] = value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps({"model_type": constants.MODEL_TYPE, **self.to_dict()}, indent=2)

    # --- presets --------------------------------------------------------------------------
    @classmethod
    def released(cls, task: str = "reasoning", **overrides: Any) -> "SegEarthConfig":
        """The architecture of the authors' released checkpoints."""
        return cls(task=task, answers=task == "reasoning", **overrides)

    @classmethod
    def tiny(cls, vocab_size: int = 512, **overrides: Any) -> "SegEarthConfig":
        """Every component at toy width: builds in milliseconds, for tests and the demo model."""
        defaults: dict[str, Any] = dict(
            image_size=128,
            encoder=EncoderConfig(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4),
                                  window_size=4, drop_path_rate=0.0),
            connector=ConnectorConfig(depth=1),
            llm=LLMConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                          vocab_size=vocab_size, max_position_embeddings=512),
            d_projector=DProjectorConfig(dim=32, heads=2, dim_head=16),
            pixel_decoder=PixelDecoderConfig(conv_dim=32, mask_dim=32, num_layers=2, ffn_dim=64,
                                             num_heads=4, num_points=2, num_groups=8),
            mask_decoder=MaskDecoderConfig(hidden_dim=32, num_heads=4, ffn_dim=64, num_layers=3,
                                           num_learned_queries=8),
        )
        defaults.update(overrides)
        return cls(**defaults)


_SUBCONFIGS = {
    "encoder": EncoderConfig,
    "connector": ConnectorConfig,
    "llm": LLMConfig,
    "d_projector": DProjectorConfig,
    "pixel_decoder": PixelDecoderConfig,
    "mask_decoder": MaskDecoderConfig,
}


#: Our LLMConfig field -> the key in the authors' config.json (absent keys keep our Phi-1.5 defaults).
_RELEASED_LLM_FIELDS = {
    "hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size", "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings", "rope_theta": "rope_theta",
    "partial_rotary_factor": "partial_rotary_factor", "layer_norm_eps": "layer_norm_eps",
    "hidden_act": "hidden_act", "tie_word_embeddings": "tie_word_embeddings",
}


def threshold_or_default(threshold: float | None, config: SegEarthConfig | None) -> float:
    """The threshold a run uses: ``threshold`` when the caller chose one, else the checkpoint's
    own (``config.mask_threshold``), else, with no config at hand (a checkpoint not downloaded
    yet, a tiled run none of whose windows had data), the default of every config: the authors'
    0.5. The predictor, the pipelines and the app's slider all ask here."""
    if threshold is not None:
        return threshold
    return SegEarthConfig.mask_threshold if config is None else config.mask_threshold


def from_released_config(data: dict[str, Any]) -> SegEarthConfig:
    """Translate the authors' `config.json` (model_type ``llava_phi``) into ours.

    Only the LLM sizes vary between their files; everything else is the fixed released
    architecture (Swin-B, SparseConv_1 connector, Mask2Former heads).
    """
    llm = LLMConfig(**{ours: data[theirs] for ours, theirs in _RELEASED_LLM_FIELDS.items() if theirs in data})
    if data.get("swin_type", "base") != "base":
        raise ValueError(f"only swin_type 'base' was released, got {data.get('swin_type')!r}")
    if data.get("mm_projector_type", "SparseConv_1") != "SparseConv_1":
        raise ValueError(f"unsupported mm_projector_type {data.get('mm_projector_type')!r}")
    return SegEarthConfig(llm=llm)
