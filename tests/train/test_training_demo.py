"""The bundled demo model: it loads in the Predictor and scores what its training recorded."""
from __future__ import annotations

import json
import re

import pytest

from segearth.data.registry import load_dataset
from segearth.data.synthetic import generate_dataset
from segearth.evaluation import evaluate
from segearth.predictor import Predictor

from training_helpers import REPO

DEMO = REPO / "assets" / "demo-checkpoint"
README = REPO / "README.md"
#: New scenes asked with training phrasings: the generator's training split with another seed.
SEEN_PHRASINGS = {"n_train": 100, "n_val": 0, "seed": 1}
#: What the README records for them: "... with training phrasings ... **0.1234** gIoU".
SEEN_GIOU = re.compile(r"with training phrasings[^*]*\*\*(\d\.\d{4})\*\* gIoU")


def test_demo_checkpoint_is_small_and_records_its_training():
    assert sum(f.stat().st_size for f in DEMO.iterdir()) < 30 * 2**20
    training = json.loads((DEMO / "config.json").read_text())["training"]
    assert training["step"] == training["config"]["max_steps"]
    assert f"{training['validation']['gIoU']:.4f}" in README.read_text()


def test_demo_checkpoint_segments_heldout_scenes_with_the_recorded_giou(tmp_path):
    training = json.loads((DEMO / "config.json").read_text())["training"]
    config = training["config"]
    # the validation split alone: its items do not depend on the training split's size
    generate_dataset(tmp_path, **{**config["synthetic"], "n_train": 0})
    samples = load_dataset(config["dataset"], tmp_path, config["val_split"])[: config["val_limit"]]
    predictor = Predictor.from_pretrained(DEMO, precision="fp32", device="cpu")
    result = evaluate(predictor, samples, progress=False)
    assert result.summary()["canvas"]["gIoU"] == pytest.approx(training["validation"]["gIoU"], abs=0.005)
    assert result.summary()["canvas"]["cIoU"] == pytest.approx(training["validation"]["cIoU"], abs=0.005)

    predictor.set_image(samples[0].image_path)
    prediction = predictor.predict(samples[0].question)
    assert prediction.mask.shape == samples[0].mask.shape
    assert isinstance(prediction.answer, str)


def test_demo_checkpoint_answers_training_phrasings_with_training_answers(tmp_path):
    """On new scenes asked as in training: the README's gIoU, and every answer about a present
    target is word for word one of that category's training answers."""
    config = json.loads((DEMO / "config.json").read_text())["training"]["config"]
    generate_dataset(tmp_path, **{**config["synthetic"], **SEEN_PHRASINGS})
    samples = load_dataset(config["dataset"], tmp_path, config["train_split"])
    predictor = Predictor.from_pretrained(DEMO, precision="fp32", device="cpu")
    result = evaluate(predictor, samples, progress=False, answers=True)
    recorded = float(SEEN_GIOU.search(README.read_text()).group(1))
    assert result.summary()["canvas"]["gIoU"] == pytest.approx(recorded, abs=0.005)
    wrong = [(s.category, item.answer) for item, s in zip(result.items, samples)
             if s.answers and item.answer not in s.answers]
    assert not wrong
