"""The examples gallery: licence-clean images in assets/examples with implicit questions
(assets/examples/examples.json; licences in assets/examples/LICENSE.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import EXAMPLES_DIR


@dataclass(frozen=True)
class Example:
    image: Path
    question: str


def load_examples(folder: Path = EXAMPLES_DIR) -> list[Example]:
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [Example(folder / e["image"], e["question"]) for e in entries]
