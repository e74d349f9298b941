"""The model's side of a conversation about one image: the prompt prefix read once, then any
number of questions, each continuing the prefix's key/value cache, then the answer.

The LLM is causal, so the hidden states of a question do not depend on anything after it:
reading the prefix once and the question on top of its cache gives the same description as the
whole prompt. The answer continues the same cache with the assistant's lead-in; the mask never
depends on it.

Answers are decoded greedily by `transformers`' `generate` (`inputs_embeds` over the whole
prompt, `cache` holding all but the lead-in, so only the lead-in and the new tokens
run) with two stopping rules of ours: the stop tokens ([SEG], end of text) and `RepetitionStop`.
"""
from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer, TextIteratorStreamer

from .prompt import PromptSegment, embed_segments, split_opening

MAX_ANSWER_TOKENS = 64
#: A generated answer stops when its last n tokens (n <= this) repeat three times in a row:
#: users reported answers looping upstream.
LOOP_PERIOD = 8


@dataclass
class PromptPrefix:
    """The LLM's cache over the question-independent start of the prompt (system text, visual
    tokens, instruction lead-in), and that start's embeddings (`generate` is given the whole
    prompt's embeddings and runs only what the cache lacks)."""

    cache: DynamicCache
    embeds: torch.Tensor  # (1, P, D)

    @property
    def length(self) -> int:
        return self.embeds.shape[1]


def read_prefix(llm: nn.Module, segments: list[PromptSegment], visual_tokens: torch.Tensor,
                text_start: PromptPrefix | None = None) -> PromptPrefix:
    """Run the prompt up to the question (`segments`, `visual_tokens` (T, D)) and keep its cache.
    With `text_start` (see `text_before_image`) only what follows it runs, on a copy of its
    cache: the LLM is causal, so the result is the same up to rounding (that part now runs as a
    chunk of its own: 1e-6 in fp32, tested)."""
    embeds = embed_segments(llm, segments, visual_tokens)
    cache = copy.deepcopy(text_start.cache) if text_start else DynamicCache(config=llm.config)
    llm.model(inputs_embeds=embeds[:, cache.get_seq_length():], cache=cache, use_cache=True)
    return PromptPrefix(cache, embeds)


def text_before_image(prefix: PromptPrefix, segments: list[PromptSegment]) -> PromptPrefix | None:
    """The part of a freshly read prefix before the image (its opening text, `split_opening`: the
    system prompt, 53 of the released model's 129 prefix tokens), which every later image's
    prefix can start from; None if the prompt opens with the image.

    Cut from a whole prefix rather than read alone: the CPU kernels (oneDNN's matrix products,
    SDPA's blocks) are chosen by sequence length, so a 53-token run rounds differently from
    the first 53 rows of a 129-token one, which bf16 turns into different masks."""
    length = sum(len(s.ids) for s in split_opening(segments)[0])
    if not length:
        return None
    cache = copy.deepcopy(prefix.cache)
    cache.crop(length - cache.get_seq_length())
    return PromptPrefix(cache, prefix.embeds[:, :length])


def read_question(llm: nn.Module, prefix: PromptPrefix, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The question's ids on top of the prefix -> (its final hidden states (1, R, D), its
    embeddings (1, R, D)). Forgets any earlier question first; the cache then holds prefix +
    this question."""
    cache = prefix.cache
    extra = cache.get_seq_length() - prefix.length
    if extra:
        cache.crop(-extra)
    embed = llm.get_input_embeddings()
    embeds = embed(torch.tensor(ids, device=embed.weight.device))[None]
    states = llm.model(inputs_embeds=embeds, cache=cache, use_cache=True).last_hidden_state
    return states, embeds


class RepetitionStop(StoppingCriteria):
    """Stop when the last n generated tokens (1 <= n <= LOOP_PERIOD) repeat three times in a row.
    (`generate` fed with `inputs_embeds` passes the new tokens alone as `input_ids`.)"""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        looping = [loop_period(row.tolist()) is not None for row in input_ids]
        return torch.tensor(looping, device=input_ids.device)


class Cancelled(StoppingCriteria):
    """Stop as soon as `event` is set (from any thread): nobody reads the rest."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def loop_period(tokens: list[int]) -> int | None:
    """The shortest n <= LOOP_PERIOD such that `tokens` ends in three copies of its last n."""
    for period in range(1, LOOP_PERIOD + 1):
        if len(tokens) >= 3 * period and \
                tokens[-period:] == tokens[-2 * period:-period] == tokens[-3 * period:-2 * period]:
            return period
    return None


def generate_answer(llm: nn.Module, prefix: PromptPrefix, question: torch.Tensor,
                    lead_in: list[PromptSegment], stop_ids: list[int],
                    max_new_tokens: int = MAX_ANSWER_TOKENS, streamer: BaseStreamer | None = None,
                    cancel: threading.Event | None = None) -> list[int]:
    """Greedy answer tokens after the question (its embeddings (1, R, D), already in the cache)
    and the assistant's `lead_in`; stops at `stop_ids` (not returned), `max_new_tokens`, a loop
    (one copy of the repeated piece kept) or `cancel` being set. `streamer` (transformers'
    streamer API) is handed each token as it is decoded."""
    prompt = torch.cat([prefix.embeds, question, embed_segments(llm, lead_in)], 1)
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                              pad_token_id=stop_ids[0], use_cache=True)
    out = llm.generate(inputs_embeds=prompt, cache=prefix.cache, generation_config=config, streamer=streamer,
                       stopping_criteria=StoppingCriteriaList([RepetitionStop(), *([Cancelled(cancel)] if cancel else [])]),
                       attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device))
    tokens = out[0].tolist()  # with inputs_embeds only, generate returns the new tokens alone
    while tokens and tokens[-1] in stop_ids:
        tokens.pop()
    period = loop_period(tokens)
    if period is not None:
        del tokens[-2 * period:]
    return tokens


class AnswerStream:
    """An answer as it is decoded: iterating gives its text piece by piece (whole words, as
    transformers' `TextIteratorStreamer` releases them); once the iteration ends, `text` is the
    final answer and `seconds` what decoding took; `close()` stops decoding at the next token.

    `decode(streamer, cancel)` runs the generation and returns the final text. It runs in a
    thread of its own, started by the first iteration, so an answer nobody reads costs nothing.
    The pieces are what was decoded; the final text can be shorter when a loop was cut
    (`generate_answer` keeps one copy), so a caller that shows pieces shows `text` at the end.
    `fixed` is an answer known without decoding (one piece; `seconds` what it took); with
    neither, there is no answer (`text` None, nothing to iterate).
    """

    def __init__(self, tokenizer=None, decode: Callable[[BaseStreamer, threading.Event], str] | None = None,
                 fixed: str | None = None, seconds: float | None = None):
        self._tokenizer, self._decode = tokenizer, decode
        self.text: str | None = fixed
        self.seconds = seconds  # what decoding took, once done (given with a fixed answer)
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started = False

    @property
    def cancelled(self) -> bool:
        """True when decoding was stopped before the answer was complete."""
        return self._cancel.is_set() and self.text is None

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("An answer stream is read once.")
        self._started = True
        if self._decode is None:  # fixed, or no answer
            if self.text:
                yield self.text
            return
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._thread = threading.Thread(target=self._run, args=(streamer,), name="segearth-answer", daemon=True)
        self._thread.start()
        read = False
        try:
            for piece in streamer:
                if piece:
                    yield piece
            read = True
        finally:
            if read:  # decoding ended: its thread is returning the final text
                self._thread.join()
            else:  # the reader stopped early: no decoding for nobody
                self.close()
        if self._error is not None:
            raise self._error

    def _run(self, streamer: TextIteratorStreamer) -> None:
        start = time.perf_counter()
        try:
            text = self._decode(streamer, self._cancel)
            if not self._cancel.is_set():
                self.text, self.seconds = text, time.perf_counter() - start
        except BaseException as error:  # noqa: BLE001 - raised again in the reader's thread
            self._error = error
        finally:
            streamer.on_finalized_text("", stream_end=True)  # the reader never waits for ever

    def close(self) -> None:
        """Stop decoding at the next token and wait for its thread to end (no-op when done)."""
        if self._thread is None:
            return
        if self.text is None and self._error is None:
            self._cancel.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
