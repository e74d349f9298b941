"""Sample: lazy masks and question expansion keep the mask undecoded until asked."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import numpy as np

from segearth.data.pairs import expand_question_pairs
from segearth.data.types import Sample


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return np.eye(3, dtype=bool)


def test_explicit_mask_and_default_still_work() -> None:
    assert Sample("a", Path("a.png"), ["q"]).mask is None
    sample = Sample("a", Path("a.png"), ["q"], mask=np.zeros((2, 2), bool))
    assert sample.is_empty_target and sample.has_mask


def test_lazy_mask_is_decoded_on_each_access_only() -> None:
    loader = CountingLoader()
    sample = Sample("a", Path("a.png"), ["q0", "q1"], ["a0"], mask_loader=loader)
    assert sample.has_mask and loader.calls == 0
    expanded = expand_question_pairs([sample])
    assert loader.calls == 0
    assert [s.questions for s in expanded] == [["q0"], ["q1"]]
    assert [s.answers for s in expanded] == [["a0"], ["a0"]]
    assert int(expanded[1].mask.sum()) == 3 and loader.calls == 1
    assert sample.questions == ["q0", "q1"]  # the original is untouched


def test_samples_with_partial_loaders_pickle_for_worker_processes() -> None:
    sample = Sample("a", Path("a.png"), ["q"], mask_loader=partial(np.ones, (2, 3), bool))
    restored = pickle.loads(pickle.dumps(sample))
    assert restored.mask.shape == (2, 3) and restored.mask.all()
