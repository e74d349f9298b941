"""SegEarth-R1: image -> Swin features -> compressed visual tokens -> LLM with the question ->
description embeddings -> D-Projector query -> masked-attention decoder -> mask logits.

The model does no I/O and no tokenisation. `forward` is the training path (teacher-forced
prompt, every prediction returned for the auxiliary losses). Inference is split into the steps a
predictor calls in this order, so that image work is done once per image and the answer comes
after the mask:

    encode_image   pixels -> ImageFeatures                          once per image
    read_prefix    the prompt up to the question -> its LLM cache    once per image
    read_question  the question's ids on that cache -> its states    per question
    mask_logits    those states + the image features -> mask logits  per question
    answer         greedy tokens continuing the question's cache     per question, if wanted
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn
from transformers.generation.streamers import BaseStreamer

from ..config import SegEarthConfig
from .connector import TokenCompressionConnector
from .d_projector import DProjector, PooledProjector
from .encoder import SwinEncoder
from . import generation
from .generation import PromptPrefix
from .language import build_llm, read_batch
from .mask_decoder import MaskDecoder
from .pixel_decoder import PixelDecoder
from .prompt import PromptSegment, splice_prompt, split_opening


@dataclass
class ImageFeatures:
    """Everything that depends on the image alone (cached by the predictor)."""

    res5: torch.Tensor  # (B, C5, S/32, S/32), read by the D-Projector
    visual_tokens: torch.Tensor  # (B, T, D_llm)
    mask_features: torch.Tensor  # (B, d, S/4, S/4)
    multi_scale: list[torch.Tensor]  # [(B, d, S/32), (S/16), (S/8)]


@dataclass
class MaskOutput:
    predictions: list[torch.Tensor]  # every decoder prediction, each (B, Q, S/4, S/4); last = output
    scores: torch.Tensor | None  # (B, Q) description-query similarity, baseline only

    @property
    def logits(self) -> torch.Tensor:
        """The answer mask logits (B, S/4, S/4): the single query, or the best-scoring one."""
        last = self.predictions[-1]
        if self.scores is None:
            return last[:, 0]
        best = self.scores.argmax(-1)
        return last[torch.arange(last.shape[0], device=last.device), best]


@dataclass
class SegEarthOutput:
    masks: MaskOutput
    answer_logits: torch.Tensor  # (N, vocab): the LM head where the next token is an answer token
    answer_targets: torch.Tensor  # (N,) those tokens; N = 0 without teacher-forced answers
    description_states: torch.Tensor  # (B, R, D_llm), padded
    description_mask: torch.Tensor  # (B, R)


@dataclass
class PromptInputs:
    refer_ids: list[int]
    answer_ids: list[int] | None = None


class SegEarthR1(nn.Module):
    def __init__(self, config: SegEarthConfig):
        super().__init__()
        self.config = config
        channels = config.encoder.channels
        hidden = config.llm.hidden_size
        query_dim = config.mask_decoder.hidden_dim
        self.encoder = SwinEncoder(config.encoder)
        self.connector = TokenCompressionConnector(channels[-1], hidden, config.connector.depth,
                                                   grid=config.image_size // 32)
        self.llm = build_llm(config.llm)
        if config.use_d_projector:
            self.d_projector = DProjector(config.d_projector, hidden, channels[-1], query_dim)
        else:
            self.d_projector = PooledProjector(hidden, query_dim)
        self.pixel_decoder = PixelDecoder(config.pixel_decoder, channels)
        self.mask_decoder = MaskDecoder(config.mask_decoder, config.pixel_decoder.mask_dim,
                                        learned_queries=not config.use_description_query)

    # --- parts --------------------------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> ImageFeatures:
        """(B, 3, S, S) normalised canvas -> the image-only features (one encoder pass)."""
        features = self.encoder(pixel_values)
        mask_features, multi_scale = self.pixel_decoder(features)
        return ImageFeatures(features["res5"], self.connector(features["res5"]), mask_features, multi_scale)

    def describe(self, states: torch.Tensor, mask: torch.Tensor, res5: torch.Tensor) -> torch.Tensor:
        """Description hidden states (B, R, D) -> the decoder query (B, 1, d)."""
        dtype = next(self.d_projector.parameters()).dtype
        return self.d_projector(states.to(dtype), mask, res5.to(dtype))

    def decode(self, description: torch.Tensor, image: ImageFeatures) -> MaskOutput:
        """The description query (B, 1, d) against the image features -> mask logits."""
        if self.config.use_description_query:
            predictions, _ = self.mask_decoder(description, image.mask_features, image.multi_scale)
            return MaskOutput(predictions, None)
        b = description.shape[0]  # PSALM-style baseline: learned queries, the description picks one
        queries = self.mask_decoder.query_feat.weight[None].expand(b, -1, -1)
        query_pos = self.mask_decoder.query_embed.weight[None].expand(b, -1, -1)
        predictions, embeddings = self.mask_decoder(queries, image.mask_features, image.multi_scale, query_pos)
        scores = torch.einsum("bqd,bd->bq", embeddings, description[:, 0]) / embeddings.shape[-1] ** 0.5
        return MaskOutput(predictions, scores)

    # --- inference steps (see the module's docstring) ---------------------------------------
    def read_prefix(self, segments: list[PromptSegment], image: ImageFeatures,
                    text_start: PromptPrefix | None = None) -> PromptPrefix:
        """The prompt up to the question (`segments`, the image's visual tokens) read into a
        cache; `text_start` (`generation.text_before_image`) saves re-reading the system text.
        The visual tokens take the LLM's dtype (int8 on a CPU runs the vision in bf16 and the
        LLM's other tensors in fp32)."""
        tokens = image.visual_tokens[0].to(self.llm.get_input_embeddings().weight.dtype)
        return generation.read_prefix(self.llm, segments, tokens, text_start)

    def read_question(self, prefix: PromptPrefix, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The question's ids after the prefix -> (its final states (1, R, D), its embeddings)."""
        return generation.read_question(self.llm, prefix, ids)

    def mask_logits(self, states: torch.Tensor, image: ImageFeatures) -> torch.Tensor:
        """The question's final states -> the mask logits (1, S/4, S/4) for the image."""
        mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        query = self.describe(states, mask, image.res5)
        return self.decode(query.to(image.mask_features.dtype), image).logits

    def answer(self, prefix: PromptPrefix, question: torch.Tensor, lead_in: list[PromptSegment],
               stop_ids: list[int], streamer: BaseStreamer | None = None,
               cancel: threading.Event | None = None,
               decoder: generation.CompiledDecoder | None = None,
               max_new_tokens: int = generation.MAX_ANSWER_TOKENS) -> list[int]:
        """Greedy answer tokens after the question (its embeddings, as `read_question` gave
        them) and the assistant's `lead_in`, each handed to `streamer` as it is decoded; setting
        `cancel` stops decoding; `decoder` decodes with a compiled step (the same tokens). The
        cache is first cut back to prefix + question, so asking for the answer twice gives it
        twice."""
        extra = prefix.cache.get_seq_length() - prefix.length - question.shape[1]
        if extra:
            prefix.cache.crop(-extra)
        return generation.generate_answer(self.llm, prefix, question, lead_in, stop_ids,
                                          streamer=streamer, cancel=cancel, decoder=decoder,
                                          max_new_tokens=max_new_tokens)

    # --- training path ------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, segments: list[PromptSegment],
                prompts: list[PromptInputs]) -> SegEarthOutput:
        image = self.encode_image(pixel_values)
        embed = self.llm.get_input_embeddings()
        shared, own = self._shared_opening(segments, len(prompts))
        spliced = [splice_prompt(own, embed, tokens, p.refer_ids, p.answer_ids)
                   for tokens, p in zip(image.visual_tokens, prompts)]
        embeds, attention, labels = _pad_batch(spliced)
        hidden = read_batch(self.llm, shared, embeds, attention)  # (B, L, D), L after the shared text
        predicting, targets = answer_rows(hidden, labels)
        states, mask = _gather_refer(hidden, [s.refer for s in spliced])
        description = self.describe(states, mask, image.res5)
        return SegEarthOutput(self.decode(description, image), self.llm.lm_head(predicting), targets, states, mask)

    def _shared_opening(self, segments: list[PromptSegment], batch: int
                        ) -> tuple[list[PromptSegment], list[PromptSegment]]:
        """(the text every prompt opens with, the rest). The opening is read once per batch (see
        `read_batch`); not for a single prompt, where there is nothing to share, nor under
        gradient checkpointing, which runs the LLM without a cache."""
        if batch == 1 or self.llm.is_activation_checkpointing:
            return [], segments
        return split_opening(segments)


def _pad_batch(spliced) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to the longest prompt; padding is masked out and never a target."""
    length = max(s.embeds.shape[0] for s in spliced)
    b, d = len(spliced), spliced[0].embeds.shape[1]
    ref = spliced[0].embeds
    embeds = ref.new_zeros(b, length, d)
    attention = torch.zeros(b, length, dtype=torch.long, device=ref.device)
    labels = torch.full((b, length), -100, dtype=torch.long, device=ref.device)
    for i, s in enumerate(spliced):
        n = s.embeds.shape[0]
        embeds[i, :n], attention[i, :n], labels[i, :n] = s.embeds, 1, s.labels
    return embeds, attention, labels


def answer_rows(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden (B, L, D), labels (B, L) -> (the states that predict an answer token (N, D), those
    tokens (N,)): the state at p predicts the token at p + 1. Only these rows go through the LM
    head, a sixth of a demo batch's positions: the head's product and softmax over every
    position took 4 % of a training step."""
    targets = labels[:, 1:]
    predicting = targets != -100
    return hidden[:, :-1][predicting], targets[predicting]


def _gather_refer(hidden: torch.Tensor, spans: list[slice]) -> tuple[torch.Tensor, torch.Tensor]:
    """The description states of each sample, right-padded: (B, R, D) and a validity mask."""
    longest = max(s.stop - s.start for s in spans)
    states = hidden.new_zeros(hidden.shape[0], longest, hidden.shape[-1])
    mask = torch.zeros(hidden.shape[0], longest, dtype=torch.bool, device=hidden.device)
    for i, span in enumerate(spans):
        n = span.stop - span.start
        states[i, :n], mask[i, :n] = hidden[i, span], True
    return states, mask
