"""Faults a public server meets, each against the real app on loopback: the visitor it hits gets a
clear message, the run log says what kind of failure it was, and the next visitor is served."""
from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from app.models import ModelCache
from segearth.predictor import Predictor

from .servers import serve
from .test_api import files, run


@pytest.fixture(scope="module")
def models() -> ModelCache:
    """One set of loaded models shared by this module's servers (loads once)."""
    return ModelCache()


@pytest.fixture
def run_log(caplog) -> Callable[[], list[dict]]:
    """The run log's JSON lines so far."""
    caplog.set_level("INFO", logger="segearth.app.runs")

    def lines() -> list[dict]:
        time.sleep(0.2)  # the last line is written as the run's thread ends
        return [json.loads(r.getMessage()) for r in caplog.records
                if r.name == "segearth.app.runs"]

    return lines


def served_normally(client: Client, checkpoint: str, image: Path) -> None:
    """The next visitor uploads a plain image and gets an answer and a mask of its size."""
    result = run(client, checkpoint, source="upload", upload=image)
    assert result.answer.strip()
    assert Image.open(files(result)["plain_mask.png"]).size == (300, 200)


# --- the tile server ------------------------------------------------------------------------
@pytest.mark.parametrize("mode, message", [
    ("missing", r"Tile server 127.0.0.1:\d+ answered HTTP 404 Not Found for tile \d+/\d+/\d+"),
    ("error", r"answered HTTP 500 .* \(3 tries\)\. It may be down or overloaded"),
    ("junk", r"returned something that is not an image .*Content-Type text/html"),
    ("drop", r"cannot be reached \(ChunkedEncodingError\) .* \(3 tries\)"),
])
def test_tile_server_faults(mode, message, tiles, app_environ, models, checkpoint, plain_image,
                            run_log):
    with serve({**app_environ, "SEGEARTH_TILE_URL": tiles.url(mode)}, models) as url:
        visitor, next_visitor = Client(url, verbose=False), Client(url, verbose=False)
        with pytest.raises(AppError, match=message):
            run(visitor, checkpoint)
        served_normally(next_visitor, checkpoint, plain_image)
    assert [(line["outcome"], line["error_kind"]) for line in run_log()] == [
        ("error", "GeoError"), ("ok", None)]


def test_slow_tile_server_is_waited_for(tiles, app_environ, models, checkpoint, run_log):
    from tests.geo.synthetic import SLOW_SECONDS

    with serve({**app_environ, "SEGEARTH_TILE_URL": tiles.url("slow")}, models) as url:
        result = run(Client(url, verbose=False), checkpoint)
    assert result.answer.strip() and files(result)["area_mask.png"].is_file()
    (line,) = run_log()
    assert line["outcome"] == "ok" and line["stages_s"]["imagery"] >= SLOW_SECONDS


# --- checkpoints that do not load -----------------------------------------------------------
@pytest.fixture(scope="module")
def corrupt_checkpoint(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The tiny checkpoint with its weights cut to a third (an interrupted download)."""
    folder = tmp_path_factory.mktemp("ckpts") / "half-downloaded"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    return folder


def test_a_corrupt_checkpoint_leaves_the_loaded_model_serving(app_environ, models, checkpoint,
                                                              corrupt_checkpoint, plain_image,
                                                              run_log):
    environ = {**app_environ, "SEGEARTH_CHECKPOINTS": str(corrupt_checkpoint)}
    with serve(environ, models) as url:
        visitor, next_visitor = Client(url, verbose=False), Client(url, verbose=False)
        run(visitor, checkpoint)  # the demo model is loaded
        with pytest.raises(AppError, match=r"model.safetensors is damaged or incomplete") as err:
            run(visitor, "Configured: half-downloaded")
        assert str(corrupt_checkpoint.parent) not in str(err.value)
        result = run(next_visitor, checkpoint, source="upload", upload=plain_image)
    assert "load model reused (cached)" in result.summary  # the loaded model was kept
    assert [(line["outcome"], line["error_kind"]) for line in run_log()] == [
        ("ok", None), ("error", "CheckpointError"), ("ok", None)]


@pytest.mark.parametrize("error", [MemoryError, torch.OutOfMemoryError])
def test_a_model_load_out_of_memory(error, app_environ, models, checkpoint, plain_image,
                                    monkeypatch, run_log):
    load = Predictor.from_pretrained.__func__

    def from_pretrained(cls, checkpoint, precision="auto", device=None, **options):
        if precision == "bf16":
            raise error("CUDA out of memory. Tried to allocate 7.00 GiB")
        return load(cls, checkpoint, precision, device, **options)

    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(from_pretrained))
    with serve(app_environ, models) as url:
        visitor, next_visitor = Client(url, verbose=False), Client(url, verbose=False)
        with pytest.raises(AppError, match=r"The server ran out of memory loading Bundled demo "
                                           r"model \(bf16\)\. Try again later, or pick the int8"):
            run(visitor, checkpoint, precision="bf16")
        served_normally(next_visitor, checkpoint, plain_image)
    assert not models.is_loaded(str(app_environ["SEGEARTH_DEMO_CHECKPOINT"]), "bf16")
    assert [(line["outcome"], line["error_kind"]) for line in run_log()] == [
        ("error", "CheckpointError"), ("ok", None)]


# --- a full disk ----------------------------------------------------------------------------
def test_disk_full_while_writing_outputs_leaves_no_partial_file(app_environ, models, checkpoint,
                                                                plain_image, monkeypatch,
                                                                tmp_path, run_log):
    import segearth.outputs

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(outputs))  # where the run folders go
    with serve(app_environ, models) as url:
        visitor, next_visitor = Client(url, verbose=False), Client(url, verbose=False)
        # The PNGs and the JSON record are written; the GeoTIFF is next, and the disk is full.
        monkeypatch.setattr(segearth.outputs, "write_mask_geotiff", no_space)
        with pytest.raises(AppError, match=r"could not write this run's files \(its disk is "
                                           r"full\), so there is nothing to download"):
            run(visitor, checkpoint)
        assert not list(outputs.glob("segearth-run-*"))  # no partial set, not even its folder
        monkeypatch.undo()
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(outputs))
        served_normally(next_visitor, checkpoint, plain_image)
        # (while the server runs: the files are in Gradio's cache, which it clears as it closes)
        assert len(list(outputs.glob("segearth-run-*/plain_mask.png"))) == 1
    assert [(line["outcome"], line["error_kind"]) for line in run_log()] == [
        ("error", "OutputError"), ("ok", None)]
