"""Start-up configuration: the offline default, the explicit choice, and clear messages for bad
values."""
from __future__ import annotations

import pytest

from app.config import AppConfig
from segearth.constants import RELEASED_CHECKPOINTS
from segearth.errors import SegEarthError


def test_offline_start_uses_the_bundled_demo_model(app_environ):
    config = AppConfig.from_env(app_environ)  # HF_HUB_OFFLINE, empty hub cache, no checkpoint set
    assert config.checkpoint == app_environ["SEGEARTH_DEMO_CHECKPOINT"]
    assert config.is_demo(config.checkpoint)
    assert not config.is_demo(RELEASED_CHECKPOINTS["earthreason"])
    assert config.satellite.url == app_environ["SEGEARTH_TILE_URL"]
    assert config.satellite.attribution == "Synthetic test tiles"


def test_an_explicit_checkpoint_is_preselected_and_offered(app_environ, tmp_path):
    config = AppConfig.from_env({**app_environ, "SEGEARTH_CHECKPOINT": str(tmp_path)})
    assert config.checkpoint == str(tmp_path) and not config.is_demo(config.checkpoint)
    assert str(tmp_path) in config.checkpoints.values()
    assert RELEASED_CHECKPOINTS["rrsisd"] in config.checkpoints.values()


@pytest.mark.parametrize("name, value, message", [
    ("SEGEARTH_PRECISION", "fp8", "SEGEARTH_PRECISION='fp8'"),
    ("SEGEARTH_MAP_VIEW", "48.1,11.5", "lat,lon,zoom"),
    ("SEGEARTH_MAX_TILES", "0", "SEGEARTH_MAX_TILES"),
    ("SEGEARTH_TILE_URL", "ftp://tiles/{z}/{x}/{y}", "must be http"),
])
def test_bad_settings_say_what_to_fix(app_environ, name, value, message):
    with pytest.raises(SegEarthError, match=message):
        AppConfig.from_env({**app_environ, name: value})


def test_picking_a_checkpoint_sets_the_threshold_to_its_own(app_environ, tiny_checkpoint, tmp_path):
    """The slider follows the picked checkpoint's `mask_threshold` (0.5, the authors', when it
    has none on this machine); a typed custom value leaves the slider alone."""
    import json
    import shutil

    import gradio as gr

    from app.handlers import Handlers
    from segearth.constants import RELEASED_CHECKPOINTS

    calibrated = tmp_path / "calibrated"
    shutil.copytree(tiny_checkpoint, calibrated)
    config = json.loads((calibrated / "config.json").read_text())
    (calibrated / "config.json").write_text(json.dumps({**config, "mask_threshold": 0.35}))
    handlers = Handlers(AppConfig.from_env({**app_environ, "SEGEARTH_CHECKPOINT": str(calibrated)}))
    label = handlers.config.name_of(str(calibrated))

    banner, threshold = handlers.picked(label)
    assert threshold == 0.35 and banner["visible"] is False
    banner, threshold = handlers.picked(handlers.config.name_of(app_environ["SEGEARTH_DEMO_CHECKPOINT"]))
    assert threshold == 0.5 and banner["visible"] is True
    assert handlers.picked(handlers.config.name_of(RELEASED_CHECKPOINTS["earthreason"]))[1] == 0.5  # not cached
    assert isinstance(handlers.picked("/somewhere/typed")[1], type(gr.skip()))
