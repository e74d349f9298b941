"""Shared fixtures: the parity checkpoint built from the authors' fixture recipe, a tiny random
checkpoint of our own layout, the loopback tile server and headless Chromium."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import chromium
from tests.geo.synthetic import TileServer
from tests.parity_fixture import E2E, PARITY, REPO, SHARED, build_parity_checkpoint  # noqa: F401


@pytest.fixture(scope="session")
def parity_checkpoint() -> Path:
    """A released-layout checkpoint folder with the parity weights (made once, cached in
    .cache/parity): config.json, model.safetensors and the e2e tokenizer."""
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    return build_parity_checkpoint()


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


@pytest.fixture(scope="session")
def tiles() -> Iterator[TileServer]:
    """The synthetic XYZ tile server on 127.0.0.1 (`tests.geo.synthetic`), for the whole run."""
    server = TileServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium for one test module (playwright's sync API runs one at a time, and a
    few tests start their own next to a server they control)."""
    with chromium() as browser:
        yield browser
