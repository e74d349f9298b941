"""Start-up: the app loads and warms its default model before the first visitor asks, and says
so in a status line; the first run then finds it loaded (no second load, no cold start)."""
from __future__ import annotations

import time

from app.config import AppConfig
from app.handlers import Handlers
from app.ui import build_app
from segearth.predictor import Predictor


def test_the_default_model_is_loaded_and_warmed_at_start_up(app_environ, monkeypatch):
    loads = []
    load = Predictor.from_pretrained.__func__

    def from_pretrained(cls, checkpoint, precision="auto", device=None, **options):
        loads.append((str(checkpoint), precision, options))
        return load(cls, checkpoint, precision, device, **options)

    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(from_pretrained))
    config = AppConfig.from_env(app_environ)
    handlers = Handlers(config)
    build_app(config, handlers)  # nobody has asked anything yet

    deadline = time.monotonic() + 120
    while not handlers.models.is_loaded(config.checkpoint, config.precision):
        assert time.monotonic() < deadline, handlers.models.status
        time.sleep(0.2)
    assert loads == [(config.checkpoint, config.precision, {"warm_up": True})]
    assert handlers.models.status.startswith(f"Model ready: {config.name_of(config.checkpoint)}")
    assert app_environ["SEGEARTH_DEMO_CHECKPOINT"] not in handlers.models.status  # no server path
    precision = handlers.models.get(config.checkpoint, config.precision).predictor.precision
    assert f"({precision} on the CPU, loaded and warmed in " in handlers.models.status  # where it runs

    handlers.models.get(config.checkpoint, config.precision)  # what the first run asks for
    assert len(loads) == 1
