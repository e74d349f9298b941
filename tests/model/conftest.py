"""The tiny model and its prompt parts that the generation tests (eager and compiled) share."""
from __future__ import annotations

import pytest
import torch

from segearth import tokenization
from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth.model.prompt import split_at_refer

QUESTION = "Where could residents gather safely after an earthquake?"


@pytest.fixture(scope="module")
def parts(e2e_tokenizer):
    """(tiny model, the prompt's segments before `<refer>`, its lead-in, the question's ids): one
    per test module, so each module's compiled cache sizes compile once."""
    torch.manual_seed(0)
    model = SegEarthR1(SegEarthConfig.tiny()).eval()
    prefix_segments, lead_in = split_at_refer(tokenization.prompt_segments(e2e_tokenizer, model.config.task))
    return model, prefix_segments, lead_in, tokenization.description_ids(e2e_tokenizer, QUESTION)
