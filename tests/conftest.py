"""Shared fixtures: the parity checkpoint built from the authors' fixture recipe, and a tiny
random checkpoint of our own layout."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
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


@pytest.fixture(scope="session")
def parity_checkpoint() -> Path:
    """A released-layout checkpoint folder with the parity weights (made once, cached in
    .cache/parity): config.json, model.safetensors and the e2e tokenizer."""
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    folder = REPO / ".cache" / "parity"
    weights = folder / "model.safetensors"
    marker = folder / "sha256.ok"
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(PARITY / "make_weights.py"), str(folder)], check=True,
                       capture_output=True)
        (folder / "weights.safetensors").replace(weights)
        assert _sha256(weights) == PARITY_SHA256, "make_weights.py produced different weights"
        marker.write_text(PARITY_SHA256)
    shutil.copy(PARITY / "config.json", folder / "config.json")
    for name in TOKENIZER_FILES:
        shutil.copy(E2E / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def e2e_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(E2E))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, e2e_tokenizer) -> Path:
    """A randomly initialised tiny model (our layout) with the e2e tokenizer (vocab 511 < 512)."""
    import torch

    from segearth.checkpoints import save
    from segearth.config import SegEarthConfig
    from segearth.model import SegEarthR1

    torch.manual_seed(0)
    model = SegEarthR1(SegEarthConfig.tiny()).eval()
    return save(model, tmp_path_factory.mktemp("tiny"), e2e_tokenizer)
