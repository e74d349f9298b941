"""The examples gallery: licence-clean images in assets/examples with implicit questions
(assets/examples/examples.json; licences in assets/examples/LICENSE.md).

Each entry says whether it is a real photograph or a synthetic scene. The bundled demo model
was trained on synthetic scenes only, so real photographs carry a line saying so: a visitor
who runs it on one should not take its mask as what the method can do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import EXAMPLES_DIR

#: The line under every real photograph in the gallery.
PHOTO_NOTE = "Real photograph: the bundled demo model was not trained on real imagery."
KINDS = ("synthetic", "photograph")


@dataclass(frozen=True)
class Example:
    image: Path
    question: str
    kind: str  # one of KINDS

    @property
    def caption(self) -> str:
        """What the gallery shows under the image: the question, and for photographs the note."""
        return f"{self.question}\n{PHOTO_NOTE}" if self.kind == "photograph" else self.question


def load_examples(folder: Path = EXAMPLES_DIR) -> list[Example]:
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    examples = [Example(folder / e["image"], e["question"], e["kind"]) for e in entries]
    unknown = [e.image.name for e in examples if e.kind not in KINDS]
    if unknown:
        raise ValueError(f"examples.json: 'kind' must be one of {KINDS} (see {unknown})")
    return examples
