"""Start-up: the app loads and warms its default model before the first visitor asks, and says
so in a status line; the first run then finds it loaded (no second load, no cold start). And
`python app.py` starts under the variables a Space sets (on ZeroGPU too: test_zerogpu.py)."""
from __future__ import annotations

import json
import time
import urllib.request

from app.config import AppConfig
from app.handlers import Handlers
from app.ui import build_app
from segearth.predictor import Predictor

from .process import python_app

#: What a Space sets for its app, here for the Space owner/segearth-r1: the helper variables of
#: the Hub's Spaces documentation, and SYSTEM=spaces, by which Gradio knows it runs on one.
SPACE_VARIABLES = {"SYSTEM": "spaces", "SPACE_ID": "owner/segearth-r1", "SPACE_AUTHOR_NAME": "owner",
                   "SPACE_REPO_NAME": "segearth-r1", "SPACE_TITLE": "SegEarth-R1",
                   "SPACE_HOST": "owner-segearth-r1.hf.space", "CPU_CORES": "2", "MEMORY": "16Gi"}


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


def test_python_app_starts_as_a_space_starts_it(app_environ, tmp_path):
    """A separate `python app.py` under the Space's variables: Gradio takes its Space path (its
    own reloader, the Space's id in the page config) and the app comes up without an error."""
    log = tmp_path / "app.log"
    with python_app({**app_environ, **SPACE_VARIABLES}, log) as url:
        with urllib.request.urlopen(f"{url}config", timeout=30) as response:
            config = json.load(response)
    assert config["space_id"] == SPACE_VARIABLES["SPACE_ID"]
    assert "Traceback" not in log.read_text(), log.read_text()
