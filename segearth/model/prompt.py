"""The prompt as the model reads it: `PromptSegment`s (text ids, and the placeholders `image`
(the connector's visual tokens), `refer` (the instruction and [SEG], whose final hidden states
describe the target), `answer` (the answer and [SEG], teacher-forced in training) and `seg`
(dropped: the released checkpoints never saw it)), and their splicing into input embeddings.

These are the model's own types: the tokeniser side (`segearth.tokenization`) produces them,
the model never imports it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel


@dataclass(frozen=True)
class PromptSegment:
    """A piece of the prompt: literal text ids, or a placeholder the model fills in."""

    kind: str  # "text", "image", "refer", "answer", "seg"
    ids: tuple[int, ...] = ()


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


def split_at_refer(segments: list[PromptSegment]) -> tuple[list[PromptSegment], list[PromptSegment]]:
    """(everything before `refer`, everything after it up to `answer`). The first part does not
    depend on the question, so a predictor runs it once per image and caches it."""
    kinds = [s.kind for s in segments]
    r = kinds.index("refer")
    a = kinds.index("answer") if "answer" in kinds else len(segments)
    return segments[:r], [s for s in segments[r + 1:a] if s.kind == "text"]
