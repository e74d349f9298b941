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


def test_settings_are_read_from_the_process_environment(monkeypatch):
    """`AppConfig.from_env()` reads the variables through pydantic-settings, lists included."""
    from app.config import Settings

    monkeypatch.setenv("SEGEARTH_CHECKPOINT", "org/model")
    monkeypatch.setenv("SEGEARTH_CHECKPOINTS", " a/b , c/d ,")
    monkeypatch.setenv("SEGEARTH_MAP_VIEW", "48.1, 11.5, 12")
    monkeypatch.setenv("SEGEARTH_QUEUE_SIZE", "3")
    monkeypatch.setenv("segearth_max_tiles", "2")  # the names are case-sensitive
    config = AppConfig.from_env()
    assert (config.checkpoint, config.extra_checkpoints) == ("org/model", ("a/b", "c/d"))
    assert config.map_view == (48.1, 11.5, 12) and config.limits.queue_size == 3
    assert config.max_tiles == Settings.model_fields["max_tiles"].default == 16
    monkeypatch.setenv("SEGEARTH_MAX_UPLOAD_MB", "-5")
    with pytest.raises(SegEarthError, match="SEGEARTH_MAX_UPLOAD_MB='-5': give a whole number"):
        AppConfig.from_env()


def _tables(markdown: str) -> list[list[list[str]]]:
    """The Markdown tables of a page, as rows of cells (header first, separator dropped)."""
    tables, rows = [], []
    for line in markdown.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def test_the_docs_list_exactly_the_settings_with_their_defaults():
    """docs/server.md's settings and limits tables name every variable of `Settings` (and no
    other of the app's), and a default written as a literal is `Settings`' own."""
    import re
    from pathlib import Path

    from app.config import Settings

    page = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    documented: dict[str, str] = {}
    for header, *rows in _tables(page):
        if "environment variable" not in header:
            continue
        name_col, default_col = header.index("environment variable"), header.index("default")
        for row in rows:
            for name in re.findall(r"`((?:SEGEARTH|HF)_[A-Z_]+)`", row[name_col]):
                documented[name] = row[default_col]

    def shown(default: object) -> str:
        if isinstance(default, bool):
            return str(int(default))
        if isinstance(default, tuple):
            return ",".join(map(str, default))
        return str(default)

    fields = {info.alias: info.default for info in Settings.model_fields.values()}
    assert set(documented) == set(fields)
    for name, default in fields.items():
        literal = re.fullmatch(r"`([^`]*)`(?: \(.*)?", documented[name])
        if literal and default not in ("", None, ()):
            assert literal.group(1) == shown(default), name
