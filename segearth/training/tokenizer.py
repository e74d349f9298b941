"""Tokenizers for training: SegEarth-R1's added tokens, and a small BPE for the demo model.

The released vocabulary is the base tokenizer plus ``[PAD]`` and ``[SEG]`` appended in that
order (Phi-1.5: 50,295 + 2 = 50,297, see `segearth.config.LLM_PRESETS`); the LLM's embeddings
are resized to match after the tokens are added.
"""
from __future__ import annotations

from typing import Iterable

from .. import constants
from ..data.types import Sample

#: The end-of-text token of Phi's (GPT-2's) vocabulary, which the reasoning template ends with.
EOS_TOKEN = "<|endoftext|>"


def add_segearth_tokens(tokenizer):
    """Append ``[PAD]`` (made the padding token) and ``[SEG]`` where the vocabulary lacks them."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    if constants.PAD_TOKEN not in vocab:
        tokenizer.add_special_tokens({"pad_token": constants.PAD_TOKEN})
    if constants.SEG_TOKEN not in vocab:
        tokenizer.add_tokens([AddedToken(constants.SEG_TOKEN, special=True)], special_tokens=True)
    return tokenizer


def training_texts(samples: Iterable[Sample]) -> list[str]:
    """What the model reads: every template's text, every question and every answer."""
    texts = [template.replace("{eos}", "") for template in constants.PROMPT_TEMPLATES.values()]
    texts.append(constants.EMPTY_TARGET_ANSWER)
    for sample in samples:
        texts.extend(" " + q for q in sample.questions)  # questions follow a space in the prompt
        texts.extend(sample.answers)
    return texts


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE (GPT-2 style: no unknown tokens) trained on ``texts``, with
    ``<|endoftext|>`` as end of text, then ``[PAD]`` and ``[SEG]``. It saves with
    ``save_pretrained`` and loads back with ``transformers.AutoTokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2,  # room for [PAD] and [SEG]
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer)
    return add_segearth_tokens(PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN))
