"""The LLM (built by transformers) and the batched reading of prompts in training; the prompt's
segments and their splicing are in `segearth.model.prompt`."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, DynamicCache, PreTrainedModel

from ..config import LLMConfig
from .prompt import PromptSegment, embed_segments


def build_llm(config: LLMConfig) -> PreTrainedModel:
    """A randomly initialised causal LM of the configured family and size."""
    llm = AutoModelForCausalLM.from_config(config.to_transformers(), attn_implementation="sdpa")
    return llm


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
