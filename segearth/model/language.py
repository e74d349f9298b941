"""The LLM (built by transformers) and the splicing of visual and description tokens into the
prompt it reads.

The prompt is a list of `PromptSegment`s (see `segearth.processing`): text ids, and the
placeholders `image` (the connector's visual tokens), `refer` (the instruction and [SEG], whose
final hidden states describe the target), `answer` (the answer and [SEG], teacher-forced in
training) and `seg` (dropped: the released checkpoints never saw it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, DynamicCache, PreTrainedModel

from ..config import LLMConfig
from ..processing import PromptSegment


def build_llm(config: LLMConfig) -> PreTrainedModel:
    """A randomly initialised causal LM of the configured family and size."""
    llm = AutoModelForCausalLM.from_config(config.to_transformers(), attn_implementation="sdpa")
    return llm


@dataclass
class SplicedPrompt:
    """One sample's LLM input."""

    embeds: torch.Tensor  # (L, D)
    refer: slice  # positions of the description (instruction tokens and [SEG])
    labels: torch.Tensor  # (L,) token to predict at each position, -100 where no loss


def splice_prompt(segments: list[PromptSegment], embed: nn.Embedding, visual_tokens: torch.Tensor | None,
                  refer_ids: list[int], answer_ids: list[int] | None = None) -> SplicedPrompt:
    """Fill the placeholders of one prompt. `visual_tokens` is (T, D) (None for a piece of
    prompt without the image).

    Text after `answer` is kept only when an answer is given (teacher forcing); without one the
    prompt stops where the model should start answering.
    """
    device = embed.weight.device
    pieces: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    refer = slice(0, 0)
    length = 0

    def add(ids: list[int] | tuple[int, ...], supervised: bool = False) -> None:
        nonlocal length
        ids_t = torch.tensor(ids, dtype=torch.long, device=device)
        pieces.append(embed(ids_t))
        labels.append(ids_t if supervised else torch.full_like(ids_t, -100))
        length += len(ids)

    for segment in segments:
        if segment.kind == "text":
            add(segment.ids)
        elif segment.kind == "image":
            pieces.append(visual_tokens.to(embed.weight.dtype))
            labels.append(torch.full((visual_tokens.shape[0],), -100, dtype=torch.long, device=device))
            length += visual_tokens.shape[0]
        elif segment.kind == "refer":
            refer = slice(length, length + len(refer_ids))
            add(refer_ids)
        elif segment.kind == "answer":
            if answer_ids is None:
                break
            add(answer_ids, supervised=True)
    return SplicedPrompt(torch.cat(pieces), refer, torch.cat(labels))


def embed_segments(llm: PreTrainedModel, segments: list[PromptSegment],
                   visual_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Text and image segments of the prompt -> (1, L, D) input embeddings."""
    return splice_prompt(segments, llm.get_input_embeddings(), visual_tokens, refer_ids=[]).embeds[None]


def split_opening(segments: list[PromptSegment]) -> tuple[list[PromptSegment], list[PromptSegment]]:
    """(the text segments the prompt opens with, before its first placeholder: the system
    prompt; the rest). The opening is the same for every image and question, so a training
    batch and a predictor each read it once."""
    n = next((i for i, s in enumerate(segments) if s.kind != "text"), len(segments))
    return segments[:n], segments[n:]


def read_batch(llm: PreTrainedModel, opening: list[PromptSegment], embeds: torch.Tensor,
               attention: torch.Tensor) -> torch.Tensor:
    """The final hidden states (B, L, D) of a batch of prompts that all start with the text
    segments `opening` (maybe none), followed by their own `embeds` (B, L, D) and padding mask.

    Why: the system prompt is the same in every prompt and over half of the tokens a training
    batch reads (113 of about 210 with the demo model's tokenizer). It is read once and its cache
    repeated over the batch; the LLM is causal, so what follows gets the same states up to
    rounding, and the gradient of every copy flows back into the one reading."""
    if not opening:
        return llm.model(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
    cache = DynamicCache(config=llm.config)
    start = embed_segments(llm, opening)
    llm.model(inputs_embeds=start, cache=cache, use_cache=True)
    cache.batch_repeat_interleave(embeds.shape[0])
    attention = torch.cat([attention.new_ones(embeds.shape[0], start.shape[1]), attention], 1)
    return llm.model(inputs_embeds=embeds, attention_mask=attention, cache=cache, use_cache=True).last_hidden_state


def split_at_refer(segments: list[PromptSegment]) -> tuple[list[PromptSegment], list[PromptSegment]]:
    """(everything before `refer`, everything after it up to `answer`). The first part does not
    depend on the question, so a predictor runs it once per image and caches it."""
    kinds = [s.kind for s in segments]
    r = kinds.index("refer")
    a = kinds.index("answer") if "answer" in kinds else len(segments)
    return segments[:r], [s for s in segments[r + 1:a] if s.kind == "text"]
