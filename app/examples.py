"""The examples gallery: licence-clean images in assets/examples with implicit questions
(assets/examples/examples.json; licences in assets/examples/LICENSE.md).

Each entry says whether it is a real photograph or a synthetic scene. The page opens on what
the loaded model can do (issue 28). The bundled demo model knows only the drawn scenes'
categories: asked about a real photograph's road or dead trees it answers that there is no
target (docs/training.md, "The bundled demo model"), so with it the gallery holds the synthetic
scenes only, each asked a question it was trained for; ``demo_answer`` records a word its answer
holds, which the browser test that runs every example checks. With a released checkpoint the
photographs come first.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import EXAMPLES_DIR

KINDS = ("synthetic", "photograph")


@dataclass(frozen=True)
class Example:
    image: Path
    question: str
    kind: str  # one of KINDS
    #: A word the demo model's answer to ``question`` holds (synthetic scenes only).
    demo_answer: str | None = None


def load_examples(folder: Path = EXAMPLES_DIR, demo: bool = True) -> list[Example]:
    """The gallery in the order shown: for the demo model (``demo``) the synthetic scenes only;
    else the photographs first, then the synthetic scenes."""
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    examples = [Example(folder / e["image"], e["question"], e["kind"], e.get("demo_answer")) for e in entries]
    unknown = [e.image.name for e in examples if e.kind not in KINDS]
    if unknown:
        raise ValueError(f"examples.json: 'kind' must be one of {KINDS} (see {unknown})")
    if demo:
        return [e for e in examples if e.kind == "synthetic"]
    return sorted(examples, key=lambda e: e.kind != "photograph")  # stable: file order within a kind
