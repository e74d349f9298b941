"""One run: a question about one image, asked of one checkpoint (two in compare mode).

A `Run` keeps each checkpoint's `Result` (its probability and answer), so `Run.at(threshold)`
re-thresholds without the model: the same `Result`, the same rule, the command line uses, and
the page and the downloads are rendered from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from segearth import Result
from segearth.geo import GeoImage
from segearth.metrics import intersection_union, sample_iou
from segearth.visualize import QUESTION_COLORS


@dataclass(frozen=True)
class RunRequest:
    """Everything the page sends for one run, in the order of the page's run inputs (the `/run`
    API's parameters): the handlers pass this one object, not eleven arguments."""

    source: str  # "map" (the drawn area) or "upload"
    area: str  # the drawn area, GeoJSON in lon/lat ("" when none)
    upload: str | None  # the uploaded file's path
    question: str
    checkpoint: str
    precision: str
    compare: bool  # run a second checkpoint or precision too
    checkpoint_b: str
    precision_b: str
    threshold: float
    opacity: float

    @property
    def models(self) -> list[tuple[str, str]]:
        """(checkpoint, precision) of each model asked: one, or two to compare."""
        first = (self.checkpoint, self.precision)
        return [first, (self.checkpoint_b, self.precision_b)] if self.compare else [first]


@dataclass
class CheckpointRun:
    """What one checkpoint at one precision gave for the run's question (its `Result`: the mask
    and the text answer), and the app-side seconds each stage took."""

    checkpoint: str
    precision: str
    result: Result  # at the run's threshold
    timings: dict[str, float | None]  # load / encode / mask / answer; None: a cache served it


@dataclass
class Run:
    question: str
    geo: GeoImage
    name: str  # file-name stem of the downloads: the upload's stem, or "area"
    checkpoint_runs: list[CheckpointRun] = field(default_factory=list)  # 1, or 2 to compare
    timings: dict[str, float | None] = field(default_factory=dict)  # before the model
    backdrop: dict | None = None  # map layer of a georeferenced upload, shown under the mask
    #: Threshold -> the download files written for it, by kind (`segearth.write_result`'s keys).
    downloads: dict[float, dict[str, Path]] = field(default_factory=dict)
    #: Where the images the page shows are written (`downloads.page_image`), once one is.
    folder: Path | None = None
    time_utc: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    #: Its mask's and outlines' colour among the questions about its place (`Questions`).
    color: str = QUESTION_COLORS[0]

    @property
    def georeferenced(self) -> bool:
        return self.geo.is_georeferenced

    def same_place(self, other: Run) -> bool:
        """Whether `other` asked about the very same pixels (the same drawn area or upload):
        then its mask can be laid over this one's."""
        a, b = self.geo, other.geo
        return (a is b or a.image.shape == b.image.shape and a.transform == b.transform
                and a.crs == b.crs and np.array_equal(a.image, b.image))

    def at(self, threshold: float) -> RunView:
        """The run at `threshold`: one segearth Result per checkpoint."""
        return RunView(self, threshold, [
            replace(model.result, threshold=threshold, geo=self.geo, checkpoint=model.checkpoint,
                    time_utc=self.time_utc)
            for model in self.checkpoint_runs])


@dataclass
class RunView:
    """A run at one threshold."""

    run: Run
    threshold: float
    results: list[Result]  # one per checkpoint

    @property
    def result(self) -> Result:
        return self.results[0]

    @property
    def iou(self) -> float | None:
        """IoU between the two compared masks (compare mode only)."""
        if len(self.results) < 2:
            return None
        return sample_iou(*intersection_union(self.results[0].mask, self.results[1].mask))

    def record_extra(self) -> dict[str, Any]:
        """What the app adds to the run record (`Result.record`) of the first checkpoint: the
        app's timings and, in compare mode, the second checkpoint's record and the IoU."""
        run = self.run
        extra: dict[str, Any] = {"app_timings_s": {**run.timings, **run.checkpoint_runs[0].timings}}
        if len(run.checkpoint_runs) > 1:
            extra["compare"] = {**self.results[1].record(),
                                "app_timings_s": run.checkpoint_runs[1].timings, "iou": self.iou}
        return extra


@dataclass
class Questions:
    """A visitor's questions about one place, oldest first (at most `keep`), each a layer of its
    own colour on the map; `selected` is the one whose regions table, answer and downloads the
    page shows. A question about another place starts afresh."""

    runs: list[Run]
    selected: int = 0  # an index into `runs`

    @property
    def run(self) -> Run:
        return self.runs[self.selected]

    def asked(self, run: Run, keep: int) -> Questions:
        """These questions plus `run` (selected), the oldest dropped past `keep`. `run` takes the
        first colour its kept predecessors do not use, so a layer never changes colour."""
        kept = [r for r in self.runs if r.same_place(run)][-(keep - 1):] if keep > 1 else []
        used = {r.color for r in kept}
        run.color = next((c for c in QUESTION_COLORS if c not in used), QUESTION_COLORS[0])
        return Questions([*kept, run], len(kept))

    def select(self, index: int) -> Questions:
        """The same questions with another one shown (an index out of range keeps the shown one)."""
        return Questions(self.runs, index if 0 <= index < len(self.runs) else self.selected)
