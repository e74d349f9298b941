"""The model and tokenizer a run starts from.

Either a SegEarth-R1 checkpoint to fine-tune (released or ours, via `segearth.checkpoints.load`),
or the authors' recipe: the LLM and its tokenizer from the hub (Phi-1.5), ``[PAD]``/``[SEG]``
appended and the embeddings resized, and the vision side from Mask2Former (see
`mask2former`). The demo model instead trains its own small tokenizer and starts from scratch.

A run writes its tokenizer and architecture into its output folder first (`write_run_files`),
so that resuming rebuilds the same model without downloading anything (`rebuild`); the weights
then come from the saved training state.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from ..checkpoints import load, load_into, load_tokenizer
from ..config import SegEarthConfig
from ..data.types import Sample
from ..errors import CheckpointError, InputError
from ..model import SegEarthR1
from .config import TrainConfig
from .mask2former import load_mask2former
from .tokenizer import add_segearth_tokens, train_bpe_tokenizer, training_texts

TOKENIZER_DIR = "tokenizer"
MODEL_CONFIG_FILE = "model_config.json"


def build_tokenizer(config: TrainConfig, samples: Sequence[Sample]):
    if config.init.bpe_vocab_size:
        return train_bpe_tokenizer(training_texts(samples), config.init.bpe_vocab_size)
    from transformers import AutoTokenizer

    source = config.init.tokenizer or config.llm_source
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"Cannot load the tokenizer {source!r} ({err}). Give a folder or hub id.") from None
    return add_segearth_tokens(tokenizer)


def load_pretrained_llm(model: SegEarthR1, source: str) -> None:
    """Copy a pretrained causal LM (hub id or folder) into ``model.llm``. Its embeddings are first
    resized to our vocabulary; transformers initialises the new rows from the old ones' mean."""
    from transformers import AutoModelForCausalLM

    try:
        pretrained = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"Cannot load the pretrained LLM {source!r} ({err}).") from None
    pretrained.resize_token_embeddings(model.config.llm.vocab_size)
    load_into(model.llm, pretrained.state_dict(), source=source)


def initialise(config: TrainConfig, train_samples: Sequence[Sample]) -> tuple[SegEarthR1, object]:
    """(model in float32, tokenizer) as the config's ``init`` section describes."""
    if config.init.checkpoint:
        model, tokenizer, _ = load(config.init.checkpoint)
        model.config.task, model.config.answers = config.task, config.answer_loss
        return model.float(), tokenizer
    tokenizer = build_tokenizer(config, train_samples)
    model = SegEarthR1(config.model_config(vocab_size=len(tokenizer)))
    if config.init.pretrained_llm:
        load_pretrained_llm(model, config.llm_source)
    if config.init.mask2former:
        load_mask2former(model, config.init.mask2former)
    return model, tokenizer


def write_run_files(folder: Path, model: SegEarthR1, tokenizer) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    (folder / MODEL_CONFIG_FILE).write_text(model.config.to_json())


def rebuild(folder: Path) -> tuple[SegEarthR1, object]:
    """The model (random weights) and tokenizer of the run in ``folder``, for resuming."""
    if not (folder / MODEL_CONFIG_FILE).is_file():
        raise InputError(f"Cannot resume: {folder} lacks {MODEL_CONFIG_FILE} (written when the run started). "
                         "Resume with the run's own --output-dir.")
    config = SegEarthConfig.from_dict(json.loads((folder / MODEL_CONFIG_FILE).read_text()))
    return SegEarthR1(config), load_tokenizer(folder / TOKENIZER_DIR)
