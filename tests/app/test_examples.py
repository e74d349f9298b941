"""The examples gallery tells the truth: it opens on what the loaded model can do."""
from __future__ import annotations

import json

import pytest

from app.examples import load_examples


def test_the_gallery_opens_on_what_the_loaded_model_can_do():
    """The demo model (issue 28): the synthetic scenes only, each with the word its answer
    names; a released checkpoint: the four real photographs first, then the same scenes."""
    demo, released = load_examples(demo=True), load_examples(demo=False)
    assert all(e.image.is_file() for e in released)
    assert [e.kind for e in released] == ["photograph"] * 4 + ["synthetic"] * 4
    assert all(e.image.name.startswith("neon_") for e in released[:4])
    assert all(e.image.name.startswith("synthetic_") and e.demo_answer for e in released[4:])
    assert demo == released[4:]


def test_an_entry_without_a_known_kind_is_refused(tmp_path):
    (tmp_path / "examples.json").write_text(json.dumps([{"image": "a.png", "question": "Where?", "kind": "drawing"}]))
    with pytest.raises(ValueError, match="kind"):
        load_examples(tmp_path)

