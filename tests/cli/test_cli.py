"""The `segearth` command: real process for the happy path, in-process for the error paths."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

from segearth.cli import main
from segearth.runtime import resolve_precision

QUESTION = "Where could a seaplane land?"


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 140, 3), dtype=np.uint8)).save(path)
    return path


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "segearth", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("predict", "eval", "redundancy"):
        assert command in out.stdout


def test_predict_writes_mask_overlay_probability_and_record(tiny_checkpoint, photo, tmp_path):
    out_dir = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "segearth", "predict", str(photo), "-q", QUESTION,
                          "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--out", str(out_dir),
                          "--threshold", "0.6", "--min-region-px", "2"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    mask = np.asarray(Image.open(out_dir / "scene_mask.png"))
    assert mask.shape == (90, 140) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(out_dir / "scene_overlay.png")).shape == (90, 140, 3)
    assert np.asarray(Image.open(out_dir / "scene_probability.png")).shape == (90, 140)
    record = json.loads((out_dir / "scene.json").read_text())
    assert record["question"] == QUESTION
    assert record["found"] == bool(mask.any())
    assert record["provenance"]["checkpoint"] == str(tiny_checkpoint)
    # no --precision: `auto`, which is bf16 on CPUs with native bf16 units and fp32 elsewhere
    assert record["provenance"]["precision"] == resolve_precision("auto", torch.device("cpu"))
    assert isinstance(record["answer"], str)
    assert ("Target found" in run.stdout) or ("No target" in run.stdout)
    # one line per region, as in the record, whose regions make up the mask
    assert record["min_region_px"] == 2 and record["threshold"] == 0.6
    lines = [line for line in run.stdout.splitlines() if line.startswith("region ")]
    assert len(lines) == len(record["regions"]) and sum(r["pixels"] for r in record["regions"]) == (mask > 0).sum()
    for line, region in zip(lines, record["regions"]):
        assert line.startswith(f"region {region['rank']}: {region['pixels']:,} px, score {region['score']:.3f}")


def test_predict_geotiff_writes_georeferenced_outputs(tiny_checkpoint, tmp_path):
    path = tmp_path / "ortho.tif"
    data = np.random.default_rng(1).integers(0, 255, (3, 64, 80), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=80, height=64, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(500000, 5200000, 0.5, 0.5)) as dst:
        dst.write(data)
    code = main(["predict", str(path), "-q", QUESTION, "--checkpoint", str(tiny_checkpoint),
                 "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    with rasterio.open(tmp_path / "out" / "ortho_mask.tif") as mask:
        assert mask.crs.to_epsg() == 32632 and (mask.width, mask.height) == (80, 64)
        assert mask.transform == from_origin(500000, 5200000, 0.5, 0.5)
    assert (tmp_path / "out" / "ortho_mask.geojson").is_file()


@pytest.mark.parametrize("args, message", [
    (["predict", "missing.png", "-q", QUESTION], "not found"),
    (["predict", "{photo}", "-q", "  "], "question is empty"),
    (["predict", "{photo}", "-q", QUESTION, "--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
    (["predict", "-q", QUESTION], "either an IMAGE or --bbox"),
    (["predict", "{photo}", "-q", QUESTION, "--bands", "red"], "--bands"),
    (["predict", "{photo}", "-q", QUESTION, "--min-region-px", "0"], "--min-region-px"),
])
def test_bad_input_gives_a_message_and_exit_2(tiny_checkpoint, photo, capsys, args, message):
    args = [a.replace("{photo}", str(photo)) for a in args] + ["--checkpoint", str(tiny_checkpoint)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_checkpoint(photo, capsys, tmp_path):
    assert main(["predict", str(photo), "-q", QUESTION, "--checkpoint", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_predict_bbox_fetches_tiles_and_writes_georeferenced_outputs(tiny_checkpoint, tmp_path):
    """--bbox with --tile-url against a loopback tile server: imagery, mask and polygons land
    at the box."""
    import threading

    from ..geo.synthetic import TileServer

    server = TileServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        west, south, east, north = 11.4970, 48.0985, 11.5060, 48.1040
        code = main(["predict", "--bbox", str(west), str(south), str(east), str(north), "-q", QUESTION,
                     "--tile-url", server.url("ok"), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                     "--out", str(tmp_path / "out")])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    with rasterio.open(tmp_path / "out" / "area_image.tif") as image:
        assert image.crs.to_epsg() == 3857 and image.count == 3
        from pyproj import Transformer

        left, bottom, right, top = image.bounds
        to_lonlat = Transformer.from_crs(3857, 4326, always_xy=True)
        (w, e), (s, n) = to_lonlat.transform([left, right], [bottom, top])
        assert abs(w - west) < 1e-4 and abs(e - east) < 1e-4 and abs(s - south) < 1e-4 and abs(n - north) < 1e-4
    with rasterio.open(tmp_path / "out" / "area_mask.tif") as mask:
        assert mask.crs.to_epsg() == 3857 and mask.bounds == image.bounds
    record = json.loads((tmp_path / "out" / "area.json").read_text())
    assert record["geo"]["imagery"] == server.url("ok") and record["geo"]["zoom"] >= 12


def test_bbox_across_the_antimeridian_is_refused(tiny_checkpoint, capsys, tmp_path):
    assert main(["predict", "--bbox", "179.9", "-1", "-179.9", "1", "-q", QUESTION,
                 "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out")]) == 2
    assert "antimeridian" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_convert_writes_our_layout_that_loads_identically(parity_checkpoint, tmp_path):
    import torch

    from segearth.checkpoints import load

    out = tmp_path / "converted"
    assert main(["convert", str(parity_checkpoint), str(out), "--dtype", "bf16"]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == "segearth_r1"
    assert (out / "tokenizer.json").is_file()
    converted, _, _ = load(out, torch.bfloat16)
    original, _, _ = load(parity_checkpoint, torch.bfloat16)
    ours, theirs = converted.state_dict(), original.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_predict_prints_the_regions_before_the_answer_is_decoded(tiny_checkpoint, photo, tmp_path, monkeypatch,
                                                                 capsys):
    """The files and the region lines are out before the first answer token is decoded; the
    answer is then streamed, and the record gets the same text."""
    from segearth.model import generation

    out_dir, seen = tmp_path / "out", {}
    decode = generation.generate_answer

    def watched(*args, **kwargs):
        seen["stdout"], seen["mask_file"] = capsys.readouterr().out, (out_dir / "scene_mask.png").is_file()
        return decode(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_answer", watched)
    code = main(["predict", str(photo), "-q", QUESTION, "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--precision", "fp32", "--out", str(out_dir), "--threshold", "0.05"])  # found: an answer is decoded
    after = capsys.readouterr().out
    assert code == 0 and seen["mask_file"]
    assert "region 1:" in seen["stdout"] and "Answer" not in seen["stdout"]
    record = json.loads((out_dir / "scene.json").read_text())
    assert record["found"] and record["answer"] and "answer" in record["timings_s"]
    answer_line = next(line for line in after.splitlines() if line.startswith("Answer: "))
    assert answer_line == f"Answer: {record['answer']}" or after.count("Answer") == 2  # a cut loop is re-printed


def test_a_checkpoint_without_answers_streams_nothing_and_says_so_once(tmp_path, photo, e2e_tokenizer, capsys):
    from segearth.checkpoints import save
    from segearth.config import SegEarthConfig
    from segearth.model import SegEarthR1

    folder = save(SegEarthR1(SegEarthConfig.tiny(task="referring_short", answers=False)).eval(),
                  tmp_path / "referring", e2e_tokenizer)
    code = main(["predict", str(photo), "-q", "the pond at left", "--checkpoint", str(folder), "--device", "cpu",
                 "--precision", "fp32", "--out", str(tmp_path / "out"), "--threshold", "0.05"])
    out = capsys.readouterr().out
    assert code == 0 and "Answer" not in out
    assert out.count("No answer: ") == 1 and "without an answer loss" in out
