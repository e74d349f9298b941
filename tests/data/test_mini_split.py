"""The real mini EarthReason split shipped in shared/reference/parity/e2e."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from segearth.data import load_dataset

E2E = Path("/work/shared/reference/parity/e2e")

pytestmark = pytest.mark.skipif(not E2E.is_dir(), reason="shared reference data not mounted")


def test_mini_split_matches_its_metrics_file() -> None:
    items = {item["stem"]: item for item in json.loads((E2E / "metrics.json").read_text())["items"]}
    samples = load_dataset("earthreason", E2E / "dataset", "val")
    assert [s.stem for s in samples] == sorted(items) and len(samples) == 7
    for sample in samples:
        item = items[sample.stem]
        with Image.open(sample.image_path) as image:
            assert image.size == (item["width"], item["height"])
        mask = sample.mask
        assert mask.shape == (item["height"], item["width"])
        assert mask.mean() == pytest.approx(item["target_fraction"], abs=1e-12)
        assert len(sample.questions) == 1
        assert sample.is_empty_target == (item["target_fraction"] == 0)
        assert (sample.answers == []) == sample.is_empty_target
    empty = [s.stem for s in samples if s.is_empty_target]
    assert empty == ["e2e_05"]  # the Swiss orthophoto, ``answer: []``
    assert samples[4].question == "Where could a seaplane land safely in this scene?"
