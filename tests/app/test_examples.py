"""The examples gallery tells the truth: real photographs say the demo model never saw one."""
from __future__ import annotations

import json

import pytest

from app.examples import PHOTO_NOTE, load_examples


def test_photographs_carry_the_demo_note_and_synthetic_scenes_do_not():
    examples = load_examples()
    assert all(e.image.is_file() for e in examples)
    photos = [e for e in examples if e.kind == "photograph"]
    synthetic = [e for e in examples if e.kind == "synthetic"]
    assert len(photos) == 4 and len(synthetic) == 4
    assert all(e.image.name.startswith("neon_") and e.caption == f"{e.question}\n{PHOTO_NOTE}" for e in photos)
    assert all(e.image.name.startswith("synthetic_") and e.caption == e.question for e in synthetic)


def test_an_entry_without_a_known_kind_is_refused(tmp_path):
    (tmp_path / "examples.json").write_text(json.dumps([{"image": "a.png", "question": "Where?", "kind": "drawing"}]))
    with pytest.raises(ValueError, match="kind"):
        load_examples(tmp_path)
