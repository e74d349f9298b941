"""The words the page shows: result summary, regions table, timings, the demo-model banner."""
from __future__ import annotations

import pandas as pd

from segearth import Result
from segearth.result import NO_ANSWER_NOTE, NO_TARGET

from .runs import Run, RunView

#: Longest question text in the question picker (the map's layer switch shows it whole).
PICKER_CHARS = 60
REGION_COLUMNS = ["#", "area", "score", "peak"]
#: The answer box of a checkpoint without answers (in brackets: it is not the model's text).
NO_ANSWER = f"({NO_ANSWER_NOTE})"
ANSWER_COMING = "(the mask is ready; the answer is being written …)"
#: An earlier question's answer that a newer question stopped before it was complete.
ANSWER_STOPPED = "(the answer was not finished: a newer question was asked while it was written)"
#: In the summary while an answer is decoded (the stage timings come with the answer).
ANSWER_PENDING_NOTE = "_The answer is being written; the time each stage took follows with it._"
DEMO_BANNER = (
    "⚠️ **Demo model.** This is the tiny checkpoint bundled with the app so that it runs "
    "without internet, trained briefly on synthetic scenes. It is *not* the released "
    "SegEarth-R1: its masks and answers only show that the pipeline works. Pick a released "
    "checkpoint under **Model** for real results.")

_TIMING_LABELS = {"imagery": "imagery", "load": "load model", "encode": "encode image",
                  "mask": "mask", "answer": "answer text"}


def seconds(value: float | None) -> str:
    return "reused (cached)" if value is None else f"{value:.2f} s"


def timings_line(view: RunView) -> str:
    """Where the time went, stage by stage (each checkpoint's in turn), 'reused' where a
    cache served it. The model's own per-stage timings are in the JSON record."""
    def stages(timings: dict[str, float | None]) -> str:
        return ", ".join(f"{_TIMING_LABELS[k]} {seconds(v)}" for k, v in timings.items())

    parts = [stages(view.run.timings)]
    models = view.run.checkpoint_runs
    names = [""] if len(models) == 1 else ["first model: ", "second model: "]
    parts += [name + stages(model.timings) for name, model in zip(names, models)]
    return "Timings: " + " · ".join(parts)


def area_text(view: RunView) -> str:
    result = view.result
    regions = len(result.regions)
    if result.area is not None:
        return (f"{regions} region{'s' if regions != 1 else ''}, area "
                f"{result.area['m2']:,.1f} m² ({result.area['ha']:,.4f} ha)")
    pixels = int(result.mask.sum())
    return (f"{regions} region{'s' if regions != 1 else ''}, {pixels:,} px (the image has no georeferencing, so no area in m²; upload a GeoTIFF "
            f"or draw on the map for m²/ha)")


def summary(view: RunView, is_demo: bool) -> str:
    """Markdown: found or not, area, model, timings."""
    first = view.run.checkpoint_runs[0]
    head = (f"**Target found**: {area_text(view)}." if view.result.found
            else f"**{NO_TARGET}** (threshold {view.threshold:.2f})")
    model = f"Checkpoint `{first.checkpoint}` ({first.precision})"
    if is_demo:
        model += " — demo model, results are not meaningful"
    pending = any(r.answer is None and r.provenance.get("answers", True) for r in view.results)
    return "\n\n".join([head, model + ".", ANSWER_PENDING_NOTE if pending else timings_line(view)])


def compare_text(view: RunView) -> str:
    a, b = view.run.checkpoint_runs
    return (f"**IoU between the two masks: {view.iou:.3f}** at threshold {view.threshold:.2f} "
            f"(left: `{a.checkpoint}` {a.precision}, right: `{b.checkpoint}` {b.precision}).")


def answer_text(view: RunView, newest: bool = True) -> str:
    """The answer; while it is being decoded, that it is coming; for a checkpoint trained
    without answers, that there is none. Only the `newest` question's answer can still be
    coming: an earlier one without its answer was stopped by a newer question."""
    answer = view.result.answer
    if answer is not None:
        return answer
    if not view.result.provenance.get("answers", True):
        return NO_ANSWER
    return ANSWER_COMING if newest else ANSWER_STOPPED


def streaming_answer(text: str) -> str:
    """The answer decoded so far, marked as unfinished."""
    return f"{text.strip()} …"


def question_choices(runs: list[Run]) -> list[tuple[str, int]]:
    """The question picker's choices, in asking order: the question (shortened), by index."""
    def short(text: str) -> str:
        return text if len(text) <= PICKER_CHARS else text[:PICKER_CHARS - 1].rstrip() + "…"
    return [(f"{i + 1}. {short(run.question)}", i) for i, run in enumerate(runs)]


def region_table(result: Result) -> pd.DataFrame:
    """One row per region, largest first: rank, area (m² and ha, or pixels without
    georeferencing), score (mean probability) and peak (max probability)."""
    rows = []
    for row in result.region_rows():
        area = (f"{row['area_m2']:,.1f} m² ({row['area_ha']:,.4f} ha)" if "area_m2" in row
                else f"{row['pixels']:,} px")
        rows.append([row["rank"], area, f"{row['score']:.3f}", f"{row['peak']:.3f}"])
    return pd.DataFrame(rows, columns=REGION_COLUMNS)
