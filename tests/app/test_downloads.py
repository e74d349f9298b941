"""A slider release writes the downloads once per threshold: an opacity move or a threshold
already shown reuses the files, a new threshold writes files at that threshold."""
from __future__ import annotations

import json

import numpy as np

from app.downloads import downloads_at
from app.runs import CheckpointRun, Run
from segearth import Result
from segearth.geo import GeoImage


def a_run() -> Run:
    probability = np.zeros((40, 60), np.float32)
    probability[5:15, 5:25] = 0.9
    probability[25:35, 30:50] = 0.6
    geo = GeoImage(np.zeros((40, 60, 3), np.uint8), source={"kind": "image"})
    result = Result("Where?", probability, 0.5, "There.", geo, checkpoint="demo")
    return Run("Where?", geo, "scene", checkpoint_runs=[CheckpointRun("demo", "fp32", result, {"mask": 0.1})])


def test_downloads_are_written_once_per_threshold():
    run = a_run()
    first = downloads_at(run.at(0.5))
    stamps = {path: path.stat().st_mtime_ns for path in first}
    assert downloads_at(run.at(0.5)) == first  # an opacity release: the same threshold
    higher = downloads_at(run.at(0.7))
    assert set(higher).isdisjoint(first)
    record = json.loads(next(p for p in higher if p.suffix == ".json").read_text())
    assert record["threshold"] == 0.7 and [r["pixels"] for r in record["regions"]] == [200]
    assert downloads_at(run.at(0.5)) == first  # back to a threshold already shown
    assert {path: path.stat().st_mtime_ns for path in first} == stamps  # nothing rewritten
    assert json.loads(next(p for p in first if p.suffix == ".json").read_text())["threshold"] == 0.5


def test_superseded_and_old_sets_are_removed_and_written_anew_when_shown(tmp_path, monkeypatch):
    import time

    from app.downloads import DOWNLOADS_TTL_S, discard_downloads, sweep

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # Gradio's cache, where the sets go
    run = a_run()
    first = downloads_at(run.at(0.5))
    discard_downloads(run)  # the answer completed: the set written with the mask goes
    assert not first[0].parent.exists() and not run.downloads
    second = downloads_at(run.at(0.5))
    assert second[0].parent != first[0].parent and all(p.exists() for p in second)

    sweep(now=time.time() + DOWNLOADS_TTL_S - 60)  # not old enough
    assert all(p.exists() for p in second)
    sweep(now=time.time() + DOWNLOADS_TTL_S + 60)  # an hour on: gone ...
    assert not second[0].parent.exists()
    third = downloads_at(run.at(0.5))  # ... and written again if the page shows it again
    assert all(p.exists() for p in third) and len(list(tmp_path.glob("segearth-run-*"))) == 1


def test_writing_sets_sweeps_at_most_once_a_minute(tmp_path, monkeypatch):
    from app import downloads

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    sweeps: list[None] = []
    monkeypatch.setattr(downloads, "sweep", lambda: sweeps.append(None))
    monkeypatch.setattr(downloads, "_last_sweep", float("-inf"))
    run = a_run()
    for threshold in (0.3, 0.4, 0.5):
        downloads_at(run.at(threshold))
    assert len(sweeps) == 1  # the first write swept; the next ones within the minute did not
    monkeypatch.setattr(downloads, "_last_sweep", downloads._last_sweep - downloads.SWEEP_EVERY_S)
    downloads_at(run.at(0.6))
    assert len(sweeps) == 2
