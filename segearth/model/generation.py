"""The model's side of a conversation about one image: the prompt prefix read once, then any
number of questions, each continuing the prefix's key/value cache, then the answer.

The LLM is causal, so the hidden states of a question do not depend on anything after it:
reading the prefix once and the question on top of its cache gives the same description as the
whole prompt. The answer continues the same cache with the assistant's lead-in; the mask never
depends on it.

Answers are decoded greedily by `transformers`' `generate` (`inputs_embeds` over the whole
prompt, `cache` holding all but the lead-in, so only the lead-in and the new tokens
run) with two stopping rules of ours: the stop tokens ([SEG], end of text) and `RepetitionStop`.

Or, given a `CompiledDecoder`, the same tokens from a compiled step: the lead-in is read as
`generate` reads it, the cache is copied into a static one (fixed-size tensors, written in
place), and each new token runs one compiled graph (`torch.compile`, or an AOTInductor program
on ZeroGPU, `app.zerogpu`), which on a GPU replaces launching every layer's small kernels from
Python. Where that pays is `compiled_decoding_pays` (docs/speed.md, "Compiled decoding").
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
from transformers.cache_utils import Cache, StaticLayer
from transformers.generation.streamers import BaseStreamer, TextIteratorStreamer

from .prompt import PromptSegment, embed_segments, split_opening

MAX_ANSWER_TOKENS = 64
#: A generated answer stops when its last n tokens (n <= this) repeat three times in a row:
#: users reported answers looping upstream.
LOOP_PERIOD = 8
#: A static cache holds the prompt and `MAX_ANSWER_TOKENS` rounded up to a multiple of this: each
#: such size is one compiled graph (the prompts of a checkpoint differ by their question only).
STATIC_CACHE_STEP = 128
#: Inductor rounds every intermediate to the model's dtype, as eager bf16/fp16 does: otherwise its
#: fused kernels keep them in fp32 and bf16 answers drift from the eager tokens (3 of 6 tiny-model
#: answers differed; 0 with this).
INDUCTOR_OPTIONS = {"emulate_precision_casts": True}


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
                    cancel: threading.Event | None = None, decoder: CompiledDecoder | None = None) -> list[int]:
    """Greedy answer tokens after the question (its embeddings (1, R, D), already in the cache)
    and the assistant's `lead_in`; stops at `stop_ids` (not returned), `max_new_tokens`, a loop
    (one copy of the repeated piece kept) or `cancel` being set. `streamer` (transformers'
    streamer API) is handed each token as it is decoded. With `decoder` the new tokens come from
    its compiled step (the same tokens, `tests/model/test_compiled_decoding.py`)."""
    prompt = torch.cat([prefix.embeds, question, embed_segments(llm, lead_in)], 1)
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                              pad_token_id=stop_ids[0], use_cache=True)
    stopping = StoppingCriteriaList([RepetitionStop(), *([Cancelled(cancel)] if cancel else [])])
    if decoder is not None and decoder.fits(prompt.shape[1], max_new_tokens):
        tokens = decoder.generate(prompt, prefix.cache, config, stopping, streamer)
    else:
        out = llm.generate(inputs_embeds=prompt, cache=prefix.cache, generation_config=config, streamer=streamer,
                           stopping_criteria=stopping,
                           attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device))
        tokens = out[0].tolist()  # with inputs_embeds only, generate returns the new tokens alone
    while tokens and tokens[-1] in stop_ids:
        tokens.pop()
    period = loop_period(tokens)
    if period is not None:
        del tokens[-2 * period:]
    return tokens


class _StaticLayer(StaticLayer):
    """One layer of a static cache whose tensors are given (views of `DecodeStep`'s inputs):
    the new token's key and value are written in place at `position`, and the attention mask
    covers the first `position` + 1 entries (the rest are stale or zero)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, position: torch.Tensor):
        super().__init__(max_cache_len=keys.shape[-2])
        self.keys, self.values, self.position = keys, values, position
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys.index_copy_(2, self.position, key_states)
        self.values.index_copy_(2, self.position, value_states)
        return self.keys, self.values

    def get_seq_length(self) -> torch.Tensor:
        return self.position[0]


class DecodeStep(nn.Module):
    """One decoding step of the LLM on a static cache: (the last token (1, 1), keys and values
    (layers, 1, heads, size, head dim), written in place, the token's position (1,)) -> the next
    token's logits (1, vocabulary). Tensors in, tensors out, shapes fixed per cache size: what
    `torch.compile` and `torch.export` want. The LLM is held, not registered as a submodule, so
    that `spaces.aoti_apply` (which empties the parameters of the module it patches) leaves the
    LLM that reads prompts and questions intact."""

    def __init__(self, llm: nn.Module):
        super().__init__()
        self.__dict__["llm"] = llm

    def forward(self, token: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                position: torch.Tensor) -> torch.Tensor:
        cache = Cache(layers=[_StaticLayer(k, v, position) for k, v in zip(keys, values)])
        return self.llm(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]


class CompiledDecoder:
    """Greedy decoding with a compiled `DecodeStep`: `torch.compile`d by default (each cache size
    compiles once, on its first answer: `Predictor.warm_up` pays it), or `run` given, compiled
    for the cache `sizes` only (an AOTInductor program: other sizes decode eagerly). Its static
    caches are kept between answers, one per size; one answer at a time (a predictor's answers
    are)."""

    def __init__(self, llm: nn.Module, run: Callable[..., torch.Tensor] | None = None,
                 sizes: frozenset[int] | None = None):
        self.llm = llm
        self.run = run if run is not None else torch.compile(DecodeStep(llm), fullgraph=True, dynamic=False,
                                                             options=INDUCTOR_OPTIONS)
        self.sizes = sizes
        self._caches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def fits(self, prompt_tokens: int, max_new_tokens: int) -> bool:
        """Whether this prompt's static cache is one the step runs (every size unless `sizes`)."""
        return self.sizes is None or self.cache_size(prompt_tokens, max_new_tokens) in self.sizes

    @staticmethod
    def cache_size(prompt_tokens: int, max_new_tokens: int) -> int:
        """The static cache's length for a prompt: the same for every question of similar length."""
        return -(-(prompt_tokens + max(max_new_tokens, MAX_ANSWER_TOKENS)) // STATIC_CACHE_STEP) * STATIC_CACHE_STEP

    def static_cache(self, cache: DynamicCache, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`cache`'s keys and values copied into the static tensors of `size`, and the next position."""
        first = cache.layers[0].keys
        if size not in self._caches:
            shape = (len(cache.layers), 1, first.shape[1], size, first.shape[-1])
            self._caches[size] = (first.new_zeros(shape), first.new_zeros(shape))
        keys, values = self._caches[size]
        length = first.shape[-2]
        for index, layer in enumerate(cache.layers):
            keys[index, :, :, :length] = layer.keys
            values[index, :, :, :length] = layer.values
        return keys, values, torch.tensor([length], device=first.device)

    def generate(self, prompt: torch.Tensor, cache: DynamicCache, config: GenerationConfig,
                 stopping: StoppingCriteriaList, streamer: BaseStreamer | None) -> list[int]:
        """What `generate` returns for these arguments (the new tokens, a final stop token
        included), the streamer handed the same pieces: the prompt's unread part runs eagerly
        on `cache`, each new token through the compiled step."""
        read = cache.get_seq_length()
        logits = self.llm(inputs_embeds=prompt[:, read:], cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        keys, values, position = self.static_cache(cache, self.cache_size(prompt.shape[1], config.max_new_tokens))
        stop_ids = torch.tensor(config.eos_token_id, device=logits.device)
        tokens = torch.empty((1, 0), dtype=torch.long, device=logits.device)
        if streamer is not None:
            streamer.put(tokens.cpu())  # the (empty) prompt, as generate hands it over first
        for index in range(config.max_new_tokens):
            if index < (config.min_new_tokens or 0):
                logits[:, stop_ids] = -torch.inf
            token = logits.float().argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, token], 1)
            if streamer is not None:
                streamer.put(token[0].cpu())
            if int(token) in config.eos_token_id or stopping(tokens, logits).any() \
                    or index + 1 == config.max_new_tokens:
                break
            logits = self.run(token, keys, values, position)
            position += 1
        if streamer is not None:
            streamer.end()
        return tokens[0].tolist()


class AnswerStream:
    """An answer as it is decoded: iterating gives its text piece by piece (whole words, as
    transformers' `TextIteratorStreamer` releases them); once the iteration ends, `text` is the
    final answer and `seconds` what decoding took; `close()` stops decoding at the next token.

    `decode(streamer, cancel)` runs the generation and returns the final text. It runs in a
    thread of its own, started by `start()` or else by the first iteration, so an answer nobody
    reads costs nothing; a caller with other work to do first (sending the mask) starts it early.
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
        self._streamer: TextIteratorStreamer | None = None
        self._started = False  # read

    @property
    def cancelled(self) -> bool:
        """True when decoding was stopped before the answer was complete."""
        return self._cancel.is_set() and self.text is None

    @property
    def decodes(self) -> bool:
        """True when the answer is decoded as it is read; False when it is known at once
        (`fixed`) or there is none."""
        return self._decode is not None

    @property
    def ahead(self) -> bool:
        """True when more is decoded than read so far (a piece, or the end): a reader that
        batches pieces reads on before it shows any."""
        return self._streamer is not None and not self._streamer.text_queue.empty()

    def start(self) -> None:
        """Start decoding now, before the first read (a no-op once started, or without decoding)."""
        if self._decode is None or self._thread is not None:
            return
        self._streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._thread = threading.Thread(target=self._run, args=(self._streamer,), name="segearth-answer",
                                        daemon=True)
        self._thread.start()

    def done_within(self, seconds: float) -> bool:
        """Start decoding and wait at most `seconds` for its end: True when the answer is complete
        (or known without decoding), so a caller can send it with the mask rather than after it
        (reading it then gives every piece at once)."""
        if self._decode is None:
            return True
        self.start()
        self._thread.join(seconds)
        return not self._thread.is_alive()

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("An answer stream is read once.")
        self._started = True
        if self._decode is None:  # fixed, or no answer
            if self.text:
                yield self.text
            return
        self.start()
        streamer = self._streamer
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
