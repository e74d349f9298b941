"""Small generated data for the training tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segearth.data.synthetic import make_item, write_item

from training_helpers import IMAGE_SIZE


#: Large, distinct targets with distinct questions: a short run can learn them.
CATEGORIES = ("forest", "river", "farmland")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """EarthReason layout at 64x64 from the synthetic generator's scenes, restricted to
    `CATEGORIES` (distractors still come from every category): ``train/`` (240 scenes) and
    ``heldout/`` (24 new scenes asked with the training phrasings), every item with a target."""
    root = tmp_path_factory.mktemp("synthetic")
    for split, count, seed in (("train", 240, 0), ("heldout", 24, 1)):
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            category = CATEGORIES[index % len(CATEGORIES)]
            item = make_item(category, False, "train", (IMAGE_SIZE, IMAGE_SIZE), rng)
            write_item(root / split, f"{split}_{index:05d}", item)
    return root
