"""The prompt template tokenised: the task's template split on its placeholders and each text
chunk tokenised on its own, because the released checkpoints saw chunk-wise BPE merges; the
question and the answer as the ids that fill `<refer>` and `<answer>`.
"""
from __future__ import annotations

import re

from . import constants
from .errors import InputError
from .model.prompt import PromptSegment

_PLACEHOLDER_RE = re.compile("(" + "|".join(re.escape(p) for p in constants.PLACEHOLDERS) + ")")
_KIND = {constants.IMAGE_PLACEHOLDER: "image", constants.SEG_PLACEHOLDER: "seg",
         constants.REFER_PLACEHOLDER: "refer", constants.ANSWER_PLACEHOLDER: "answer"}


def prompt_segments(tokenizer, task: str) -> list[PromptSegment]:
    """The task's template as segments; each text chunk tokenised on its own, no BOS."""
    template = constants.PROMPT_TEMPLATES[task].replace("{eos}", tokenizer.eos_token or "")
    segments = []
    for chunk in _PLACEHOLDER_RE.split(template):
        if chunk in _KIND:
            segments.append(PromptSegment(_KIND[chunk]))
        elif chunk:
            segments.append(PromptSegment("text", tuple(encode(tokenizer, chunk))))
    return segments


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def seg_token_id(tokenizer) -> int:
    seg = tokenizer.convert_tokens_to_ids(constants.SEG_TOKEN)
    if seg is None or seg == tokenizer.unk_token_id:
        raise InputError(f"The tokenizer has no {constants.SEG_TOKEN} token: it is not a SegEarth-R1 tokenizer.")
    return seg


def description_ids(tokenizer, question: str) -> list[int]:
    """What fills `<refer>`: the question with a leading space, then [SEG]."""
    return encode(tokenizer, " " + question) + [seg_token_id(tokenizer)]


def answer_ids(tokenizer, answer: str) -> list[int]:
    """What fills `<answer>`: the answer (no leading space), then [SEG]."""
    return encode(tokenizer, answer) + [seg_token_id(tokenizer)]
