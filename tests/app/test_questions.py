"""Questions as layers: each question about one place keeps its mask and outlines as a map layer
of its own colour (the last few), and the regions table, answer and downloads follow the
question the visitor picks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from app.config import AppConfig
from app.handlers import Handlers
from app.runs import CheckpointRun, Questions, Run
from segearth import Result
from segearth.geo import GeoImage
from segearth.visualize import QUESTION_COLORS

from .conftest import UTM_ORIGIN


def place(seed: int = 0) -> GeoImage:
    """A 40x60 georeferenced image (UTM 32N, 1 m pixels); another seed is another place."""
    rng = np.random.default_rng(seed)
    return GeoImage(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), crs=CRS.from_epsg(32632),
                    transform=Affine(1.0, 0, UTM_ORIGIN[0] + 100 * seed, 0, -1.0, UTM_ORIGIN[1]),
                    source={"kind": "geotiff"})


def asked(question: str, geo: GeoImage, box: tuple[slice, slice]) -> Run:
    """A run whose mask is `box` (probability 0.9 there)."""
    probability = np.zeros(geo.shape, np.float32)
    probability[box] = 0.9
    result = Result(question, probability, 0.5, f"{question} There.", geo, checkpoint="demo")
    return Run(question, geo, "area", checkpoint_runs=[CheckpointRun("demo", "fp32", result, {"mask": 0.1})])


def test_questions_about_one_place_are_kept_with_a_colour_each():
    geo = place()
    questions = Questions([])
    for i in range(7):
        questions = questions.asked(asked(f"Q{i}?", geo, np.s_[2:10, 2:10]), keep=5)
    assert [r.question for r in questions.runs] == ["Q2?", "Q3?", "Q4?", "Q5?", "Q6?"]
    colors = [r.color for r in questions.runs]
    assert len(set(colors)) == 5 and questions.run.question == "Q6?"  # the newest is shown
    kept = {r.question: r.color for r in questions.runs}
    questions = questions.asked(asked("Q7?", geo, np.s_[2:10, 2:10]), keep=5)
    # a layer never changes colour; the new one takes the colour of the one that dropped out
    assert all(kept[r.question] == r.color for r in questions.runs[:-1])
    assert questions.run.color not in {r.color for r in questions.runs[:-1]}

    # the same pixels fetched anew (another GeoImage object) are the same place
    same = GeoImage(geo.image.copy(), crs=geo.crs, transform=geo.transform)
    assert len(questions.asked(asked("Q8?", same, np.s_[0:4, 0:4]), keep=5).runs) == 5
    # another place starts afresh, in the first colour
    elsewhere = questions.asked(asked("There?", place(1), np.s_[0:4, 0:4]), keep=5)
    assert [r.question for r in elsewhere.runs] == ["There?"]
    assert elsewhere.run.color == QUESTION_COLORS[0]
    assert len(Questions([]).asked(asked("Only?", geo, np.s_[0:4, 0:4]), keep=1).runs) == 1


@pytest.fixture
def handlers(app_environ) -> Handlers:
    return Handlers(AppConfig.from_env(app_environ))


def test_the_map_shows_every_question_and_the_page_follows_the_picked_one(handlers):
    geo = place()
    first = asked("Where is the field?", geo, np.s_[2:10, 2:12])  # 80 px
    second = asked("Where is the pond?", geo, np.s_[20:36, 30:55])  # 400 px
    questions = Questions([]).asked(first, keep=5).asked(second, keep=5)

    shown = handlers.show(questions, 0.5, 0.5)
    layers = shown.map["layers"]
    assert layers["name"] == "Where is the pond?" and layers["color"] == second.color
    (other,) = layers["others"]
    assert other["name"] == "Where is the field?" and other["color"] == first.color != second.color
    assert other["overlay"]["url"].startswith("data:image/png") and other["outlines"]["features"]
    assert shown.answer == "Where is the pond? There."
    assert shown.picker["value"] == 1 and shown.picker["visible"]
    assert [label for label, _ in shown.picker["choices"]] == [
        "1. Where is the field?", "2. Where is the pond?"]
    assert record(shown.downloads)["question"] == "Where is the pond?"

    picked = handlers.pick(shown.questions, 0, 0.5, 0.5)  # the visitor picks the first question
    assert picked.answer == "Where is the field? There."
    assert picked.map["layers"]["name"] == "Where is the field?"
    assert [o["name"] for o in picked.map["layers"]["others"]] == ["Where is the pond?"]
    assert list(picked.regions["#"]) == [1] and picked.regions["area"][0].startswith("80.0 m²")
    assert record(picked.downloads)["question"] == "Where is the field?"
    assert picked.picker["value"] == 0
    # the sliders re-render the picked question, the others at the same threshold
    above = handlers.show(picked.questions, 0.95, 0.5)
    assert above.answer == "Where is the field? There." and above.regions.empty
    assert not above.map["layers"]["others"][0]["outlines"]["features"]


def test_a_single_question_hides_the_picker(handlers):
    shown = handlers.show(Questions([]).asked(asked("Where?", place(), np.s_[2:10, 2:12]), 5),
                          0.5, 0.5)
    assert not shown.picker["visible"] and shown.map["layers"]["others"] == []


def record(downloads: list[str]) -> dict:
    (path,) = [Path(p) for p in downloads if p.endswith(".json")]
    return json.loads(path.read_text())


def test_an_earlier_answer_stopped_by_a_newer_question_says_so(handlers):
    from app.messages import ANSWER_COMING, ANSWER_STOPPED

    geo = place()
    stopped = asked("Where is the field?", geo, np.s_[2:10, 2:12])
    stopped.checkpoint_runs[0].result.answer = None  # the visitor asked again while it was written
    streaming = asked("Where is the pond?", geo, np.s_[20:36, 30:55])
    streaming.checkpoint_runs[0].result.answer = None  # being written now
    questions = Questions([]).asked(stopped, keep=5).asked(streaming, keep=5)
    assert handlers.show(questions, 0.5, 0.5).answer == ANSWER_COMING
    assert handlers.pick(questions, 0, 0.5, 0.5).answer == ANSWER_STOPPED
