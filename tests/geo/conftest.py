"""Fixtures for the geo tests: one loopback tile server for the whole session (127.0.0.1 only)."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from .synthetic import TileServer


@pytest.fixture(scope="session")
def tile_server() -> Iterator[TileServer]:
    server = TileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A tile URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ok/{{z}}/{{x}}/{{y}}.png"
