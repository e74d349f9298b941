"""`python app.py` as a visitor meets it: a separate process configured only through its
environment, on a free loopback port. Shared by the browser tests and benchmarks/load_app.py, so
it imports neither pytest nor the app."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 120  # the app loads and warms its default model before it answers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def python_app(environ: Mapping[str, str], log: Path, root: Path = REPO) -> Iterator[str]:
    """Start `python app.py` with `environ` added to this process's environment, wait until it
    answers, yield its URL, stop it. Its output goes to `log`, which errors quote. `root`: the
    checkout whose app.py runs (the load script compares this one with an older one)."""
    port = free_port()
    env = {**os.environ, **environ, "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not answer within {START_SECONDS} s:\n"
                                       f"{log.read_text()}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
