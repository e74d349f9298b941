"""The prompt we build from text is the one the authors' collator built (e2e golden ids)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from segearth.tokenization import description_ids, prompt_segments

from ..conftest import E2E

SPLIT = E2E / "dataset" / "rs_reason_seg" / "RSReasonSeg" / "val"
PLACEHOLDER_ID = {"image": -200, "refer": -204, "seg": -201, "answer": -205}


@pytest.mark.parametrize("stem", sorted(p.stem for p in (SPLIT / "QAs").glob("*.json")))
def test_prompt_and_description_ids_match_the_authors(e2e_tokenizer, stem):
    golden = np.load(E2E / "golden.npz")
    qa = json.loads((SPLIT / "QAs" / f"{stem}.json").read_text())
    ids = []
    for segment in prompt_segments(e2e_tokenizer, "reasoning"):
        ids += list(segment.ids) if segment.kind == "text" else [PLACEHOLDER_ID[segment.kind]]
    assert ids == golden[f"{stem}__input_ids"].reshape(-1).tolist()
    assert description_ids(e2e_tokenizer, qa["questions"][0]) == golden[f"{stem}__token_refer_id"].tolist()
