"""In-process app servers for the tests that need their own configuration (limits, extra
checkpoints, a faulty tile server) or to patch the process (a failing load, a full disk)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.config import AppConfig
from app.handlers import Handlers
from app.models import ModelCache
from app.ui import build_app, launch_options

from .conftest import free_port


@contextmanager
def serve(environ: dict[str, str], models: ModelCache | None = None) -> Iterator[str]:
    """The app configured by `environ` on a free loopback port; `models` lets several such apps
    share loaded models (as one server would)."""
    config = AppConfig.from_env(environ)
    demo = build_app(config, Handlers(config, models=models))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(config))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
