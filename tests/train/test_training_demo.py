"""The bundled demo model: it loads in the Predictor, scores what its training and the README
record on freshly generated scenes, and says "nothing here" when nothing is there."""
from __future__ import annotations

import json
import re

import pytest

from segearth import constants
from segearth.data.registry import load_dataset
from segearth.data.synthetic import ANSWERS, generate_dataset
from segearth.evaluation import EvalResult, evaluate
from segearth.predictor import Predictor

from training_helpers import REPO

DEMO = REPO / "assets" / "demo-checkpoint"
README = REPO / "docs" / "training.md"  # where the demo model's figures are recorded
TRAINING = json.loads((DEMO / "config.json").read_text())["training"]
#: New scenes asked with training phrasings: the generator's training split with another seed.
SEEN_PHRASINGS = {"n_train": 100, "n_val": 0, "seed": 1}
#: What the README records: "... with training phrasings ... **0.1234** gIoU", and over both
#: generated sets "**27 of 30** absent targets ...", "**168 of 170** present targets ..." and
#: "on **195 of 200** items the answer agrees with the mask".
SEEN_GIOU = re.compile(r"with training phrasings[^*]*\*\*(\d\.\d{4})\*\* gIoU")
ABSENT = re.compile(r"\*\*(\d+) of (\d+)\*\* absent targets")
PRESENT = re.compile(r"\*\*(\d+) of (\d+)\*\* present targets")
RIGHT = re.compile(r"(\d+) of (\d+)\s+answers about a present target are word for word")
AGREES = re.compile(r"\*\*(\d+) of (\d+)\*\* items the answer agrees")
#: How far under a recorded figure a recomputed one may fall (another CPU, another BLAS).
GIOU_MARGIN = 0.01
SHARE_MARGIN = 0.03


def recorded(pattern: re.Pattern) -> tuple[str, ...]:
    match = pattern.search(README.read_text())
    assert match, f"{README.name} does not record {pattern.pattern!r}"
    return match.groups()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_pretrained(DEMO, precision="fp32", device="cpu")


def _scored(predictor, root, split: str, **settings) -> tuple[list, EvalResult]:
    config = TRAINING["config"]
    photos = [str(REPO / photo) for photo in config["synthetic"].get("photos", ())]  # relative to the repository
    generate_dataset(root, **{**config["synthetic"], "photos": photos, **settings})
    samples = load_dataset(config["dataset"], root, split)
    return samples, evaluate(predictor, samples, progress=False, answers=True)


@pytest.fixture(scope="module")
def held_out(predictor, tmp_path_factory) -> tuple[list, EvalResult]:
    """The validation split (held-out phrasings and categories) alone: its items do not depend
    on the training split's size."""
    return _scored(predictor, tmp_path_factory.mktemp("val"), TRAINING["config"]["val_split"], n_train=0)


@pytest.fixture(scope="module")
def seen(predictor, tmp_path_factory) -> tuple[list, EvalResult]:
    return _scored(predictor, tmp_path_factory.mktemp("seen"), TRAINING["config"]["train_split"],
                   **SEEN_PHRASINGS)


def test_demo_checkpoint_is_small_and_records_its_training():
    assert sum(f.stat().st_size for f in DEMO.iterdir()) < 30 * 2**20
    assert TRAINING["step"] == TRAINING["config"]["max_steps"]
    assert f"{TRAINING['validation']['gIoU']:.4f}" in README.read_text()


def test_held_out_phrasings_score_the_recorded_giou(held_out, predictor):
    samples, result = held_out
    canvas = result.summary()["canvas"]
    assert canvas["count"] == TRAINING["config"]["synthetic"]["n_val"]
    assert canvas["gIoU"] >= TRAINING["validation"]["gIoU"] - GIOU_MARGIN
    assert canvas["gIoU"] == pytest.approx(TRAINING["validation"]["gIoU"], abs=0.005)
    assert canvas["cIoU"] == pytest.approx(TRAINING["validation"]["cIoU"], abs=0.005)

    predictor.set_image(samples[0].image_path)
    prediction = predictor.predict(samples[0].question)
    assert prediction.mask.shape == samples[0].mask.shape
    assert isinstance(prediction.answer, str)


def test_training_phrasings_score_the_recorded_giou_and_answers(seen):
    """New scenes asked as in training: the README's gIoU, and as many answers about a present
    target as it records are word for word a training answer of the asked category."""
    samples, result = seen
    assert result.summary()["canvas"]["gIoU"] >= float(recorded(SEEN_GIOU)[0]) - GIOU_MARGIN
    right = [item.answer in ANSWERS[s.category] for item, s in zip(result.items, samples) if s.answers]
    recorded_right, total = map(int, recorded(RIGHT))
    assert len(right) == total
    assert sum(right) / total >= recorded_right / total - SHARE_MARGIN


def test_answers_say_nothing_is_there_exactly_when_nothing_is(held_out, seen):
    """Absent targets are answered with the absent-target answer, present ones are not, and the
    answer agrees with the mask: it says "nothing here" when the predicted mask is empty."""
    items = held_out[1].items + seen[1].items

    def says_absent(item) -> bool:
        return item.answer == constants.EMPTY_TARGET_ANSWER

    measured = {
        ABSENT: [says_absent(i) for i in items if i.empty_target],
        PRESENT: [not says_absent(i) for i in items if not i.empty_target],
        AGREES: [says_absent(i) == (i.predicted_fraction == 0) for i in items],
    }
    for pattern, hits in measured.items():
        recorded_hits, total = map(int, recorded(pattern))
        assert len(hits) == total
        assert sum(hits) / total >= recorded_hits / total - SHARE_MARGIN, (pattern.pattern, sum(hits))
