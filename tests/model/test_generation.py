"""The model's prompt: prefix cache, question continuation and `generate`-based answers.

`generate_answer` must give exactly the tokens of a plain greedy loop over the same cache (the
loop the predictor used before), including its stop tokens, its token limit and its loop guard.
"""
from __future__ import annotations

import pytest
import torch

from segearth.model import generation
from segearth.model.prompt import embed_segments

from tests.model.conftest import QUESTION


def greedy_loop(llm, prefix, lead_in, stop_ids, max_new_tokens) -> list[int]:
    """The reference: one token at a time on the cache, argmax, the same stop rules."""
    inputs = embed_segments(llm, lead_in)
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        out = llm(inputs_embeds=inputs, cache=prefix.cache, use_cache=True, logits_to_keep=1)
        token = int(out.logits[0, -1].argmax())
        if token in stop_ids:
            break
        tokens.append(token)
        period = generation.loop_period(tokens)
        if period is not None:
            del tokens[-2 * period:]
            break
        inputs = llm.get_input_embeddings()(torch.tensor([[token]]))
    return tokens


@torch.inference_mode()
def answer_both_ways(parts, seed: int, stop_ids: list[int], max_new_tokens: int = 64):
    model, prefix_segments, lead_in, ids = parts
    torch.manual_seed(seed)
    features = model.encode_image(torch.randn(1, 3, 128, 128))
    prefix = generation.read_prefix(model.llm, prefix_segments, features.visual_tokens[0])
    _, embeds = generation.read_question(model.llm, prefix, ids)
    ours = generation.generate_answer(model.llm, prefix, embeds, lead_in, stop_ids, max_new_tokens)
    generation.read_question(model.llm, prefix, ids)  # back to prefix + question
    return ours, greedy_loop(model.llm, prefix, lead_in, stop_ids, max_new_tokens)


@pytest.mark.parametrize("seed", range(4))
def test_generate_gives_the_greedy_loops_tokens(parts, seed):
    ours, reference = answer_both_ways(parts, seed, stop_ids=[510, 0])
    assert ours == reference and len(ours) > 0


def test_stop_tokens_and_token_limit_match_the_loop(parts):
    free, _ = answer_both_ways(parts, 1, stop_ids=[510, 0], max_new_tokens=64)
    stop_at = free[4]  # make the fifth generated token a stop token
    ours, reference = answer_both_ways(parts, 1, stop_ids=[stop_at, 0])
    assert ours == reference == free[:free.index(stop_at)]
    ours, reference = answer_both_ways(parts, 1, stop_ids=[510, 0], max_new_tokens=3)
    assert ours == reference == free[:3]


def test_loop_guard_keeps_one_copy(parts):
    """A huge lm_head bias makes the model repeat token 7: both stop after three, keeping one."""
    bias = parts[0].llm.lm_head.bias
    with torch.no_grad():
        bias[7] += 1e4
    try:
        ours, reference = answer_both_ways(parts, 2, stop_ids=[510, 0])
    finally:
        with torch.no_grad():
            bias[7] -= 1e4
    assert ours == reference == [7]
    assert generation.loop_period(ours) is None
    assert generation.loop_period([1, 2, 1, 2, 1, 2]) == 2
    assert generation.loop_period([5, 5, 5]) == 1
    assert generation.loop_period([1, 2, 3, 1, 2]) is None


def test_question_continuation_equals_the_whole_prompt(parts):
    """The cached prefix + question gives the states of one pass over the whole prompt, and a
    second question forgets the first."""
    model, prefix_segments, lead_in, ids = parts
    with torch.inference_mode():
        features = model.encode_image(torch.randn(1, 3, 128, 128))
        prefix = generation.read_prefix(model.llm, prefix_segments, features.visual_tokens[0])
        generation.read_question(model.llm, prefix, ids[:3])
        cached, _ = generation.read_question(model.llm, prefix, ids)
        assert prefix.cache.get_seq_length() == prefix.length + len(ids)
        whole = torch.cat([prefix.embeds, model.llm.get_input_embeddings()(torch.tensor(ids))[None]], 1)
        full = model.llm.model(inputs_embeds=whole).last_hidden_state[:, prefix.length:]
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
