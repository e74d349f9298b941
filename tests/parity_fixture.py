"""The parity checkpoint: the authors' deterministic fixture weights in the released layout.

Shared by the test suite's `parity_checkpoint` fixture and the benchmarks (which must not import
pytest's conftest). The fixtures' root is `../shared` beside the checkout, or `SEGEARTH_SHARED`
(a GPU machine gets a copy elsewhere).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGEARTH_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "reference" / "parity"
E2E = PARITY / "e2e"
PARITY_SHA256 = "3971d4187a656f1bb7e421651448d95c5e661410ff447f8ce2598aaafb2bcdcb"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def build_parity_checkpoint(parity: Path = PARITY, folder: Path = REPO / ".cache" / "parity") -> Path:
    """config.json, model.safetensors and the e2e tokenizer in `folder`; the weights are made
    once by the fixtures' own `make_weights.py` and checked against their published sha256."""
    weights = folder / "model.safetensors"
    marker = folder / "sha256.ok"
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([sys.executable, str(parity / "make_weights.py"), str(folder)],
                              capture_output=True, text=True)
        if made.returncode:
            raise RuntimeError(f"make_weights.py failed:\n{made.stderr[-2000:]}")
        (folder / "weights.safetensors").replace(weights)
        assert _sha256(weights) == PARITY_SHA256, "make_weights.py produced different weights"
        marker.write_text(PARITY_SHA256)
    shutil.copy(parity / "config.json", folder / "config.json")
    for name in TOKENIZER_FILES:
        shutil.copy(parity / "e2e" / name, folder / name)
    return folder
