"""Predictor behaviour on a tiny random checkpoint: sizes, geometry, caching, precision, errors."""
from __future__ import annotations

from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segearth import constants
from segearth.errors import CheckpointError, InputError
from segearth.predictor import Predictor
from segearth.image_processing import Geometry, canvas_to_image, load_image, pad_to_canvas

QUESTION = "Where could residents gather safely after an earthquake?"


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(300, 500), (500, 300), (256, 256), (3, 5), (2500, 1900)])
def test_mask_has_the_image_size(predictor, size):
    predictor.set_image(scene(*size))
    prediction = predictor.predict(QUESTION, answer=False)
    assert prediction.mask.shape == size
    assert prediction.probability.shape == size and prediction.probability.dtype == np.float32
    assert 0.0 <= prediction.probability.min() and prediction.probability.max() <= 1.0
    assert prediction.canvas_probability.shape == (128, 128)
    assert prediction.found == bool(prediction.mask.any())


@pytest.mark.parametrize("size", [(300, 500), (500, 300), (97, 1000)])
def test_geometry_round_trip_puts_a_mask_back_where_it_was(size):
    """A mask drawn in the image goes onto the canvas like the image does, and our
    postprocessing brings it back to the same place."""
    h, w = size
    drawn = np.zeros(size, np.uint8)
    drawn[h // 5: h // 2, w // 3: 4 * w // 5] = 1
    geometry = Geometry.of(h, w, constants.IMAGE_SIZE)
    canvas = pad_to_canvas(drawn, geometry, cv2.INTER_NEAREST).astype(np.float32)
    back = canvas_to_image(canvas, geometry) > 0.5
    assert back.shape == size
    rows, cols = np.where(back.any(1))[0], np.where(back.any(0))[0]
    expected = (h // 5, h // 2 - 1, w // 3, 4 * w // 5 - 1)
    assert np.abs(np.array([rows[0], rows[-1], cols[0], cols[-1]]) - expected).max() <= 1  # edges within 1 px


def test_follow_up_questions_reuse_the_image_features(predictor):
    with mock.patch.object(predictor.model, "encode_image", wraps=predictor.model.encode_image) as encoder:
        predictor.set_image(scene(200, 320, seed=1))
        first = predictor.predict(QUESTION, answer=False)
        predictor.predict("Which areas are covered by water?", answer=True)
        again = predictor.predict(QUESTION, answer=False)
    assert encoder.call_count == 1  # no encoder run for follow-ups
    assert "image_features" in first.timings and "question" in first.timings
    # the cache holds only the prompt prefix between questions: same question, same mask
    np.testing.assert_allclose(again.probability, first.probability, atol=1e-5)


def test_cached_prefix_matches_a_fresh_image(predictor, tiny_checkpoint):
    image = scene(180, 240, seed=2)
    predictor.set_image(image)
    predictor.predict("Where are the sports grounds?", answer=True)
    cached = predictor.predict(QUESTION, answer=False)
    fresh = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")
    fresh.set_image(image)
    np.testing.assert_allclose(fresh.predict(QUESTION, answer=False).probability, cached.probability, atol=1e-5)


def test_answer_and_provenance(predictor):
    predictor.set_image(scene(64, 64))
    prediction = predictor.predict(QUESTION)
    assert isinstance(prediction.answer, str)
    assert prediction.provenance["precision"] == "fp32" and prediction.provenance["device"] == "cpu"
    assert prediction.provenance["task"] == "reasoning"
    assert "answer" in prediction.timings


def test_the_answer_follows_the_mask(predictor):
    """An empty mask is answered with the empty-target sentence, without generating; a mask with
    something in it gets generated text."""
    from segearth.model import generation

    predictor.set_image(scene(64, 64))
    with mock.patch.object(generation, "generate_answer", wraps=generation.generate_answer) as spy:
        empty = predictor.predict(QUESTION, threshold=1 - 1e-7)
        assert not empty.found and empty.answer == constants.EMPTY_TARGET_ANSWER
        assert spy.call_count == 0
        full = predictor.predict(QUESTION, threshold=1e-7)
        assert full.found and spy.call_count == 1
        assert full.answer != constants.EMPTY_TARGET_ANSWER


def test_a_mask_of_specks_under_the_noise_floor_is_no_target(predictor, monkeypatch):
    """With `min_region_fraction` 0.99 a mask of scattered pixels (threshold at the median
    probability) has no region large enough: not found, and answered as absent without
    generating; at 0 the same threshold finds half the pixels."""
    from dataclasses import replace

    from segearth.model import generation

    predictor.set_image(scene(64, 64))
    median = float(np.median(predictor.predict(QUESTION, answer=False).probability))
    assert predictor.predict(QUESTION, threshold=median, answer=False).mask.mean() == pytest.approx(0.5, abs=0.01)
    monkeypatch.setattr(predictor, "config", replace(predictor.config, min_region_fraction=0.99))
    with mock.patch.object(generation, "generate_answer", wraps=generation.generate_answer) as spy:
        specks = predictor.predict(QUESTION, threshold=median)
    assert not specks.found and not specks.canvas_mask.any() and spy.call_count == 0
    assert specks.answer == constants.EMPTY_TARGET_ANSWER


def test_without_a_threshold_the_checkpoint_s_own_is_used(predictor, monkeypatch):
    """`SegEarthConfig.mask_threshold` is the default: here the median probability, so half the
    pixels; a threshold given by the caller still wins."""
    from dataclasses import replace

    predictor.set_image(scene(64, 64))
    assert predictor.predict(QUESTION, answer=False).threshold == 0.5  # the authors' logit > 0
    median = float(np.median(predictor.predict(QUESTION, answer=False).probability))
    monkeypatch.setattr(predictor, "config", replace(predictor.config, mask_threshold=median))
    own = predictor.predict(QUESTION, answer=False)
    assert own.threshold == median and own.mask.mean() == pytest.approx(0.5, abs=0.01)
    assert predictor.predict(QUESTION, threshold=0.999999, answer=False).mask.mean() == 0.0


def test_referring_checkpoints_say_they_give_no_answer(tmp_path, e2e_tokenizer):
    from segearth.config import SegEarthConfig
    from segearth.model import SegEarthR1

    model = SegEarthR1(SegEarthConfig.tiny(task="referring_short", answers=False))
    predictor = Predictor(model.eval(), e2e_tokenizer, precision="fp32", device="cpu")
    predictor.set_image(scene(48, 64))
    prediction = predictor.predict("the tennis court at right")
    assert prediction.answer is None and "answer" not in prediction.timings
    assert prediction.provenance["task"] == "referring_short"
    record = prediction.record()
    assert "without an answer loss" in record["answer_note"]


def test_threshold_changes_the_mask_without_rerunning(predictor):
    predictor.set_image(scene(120, 90))
    prediction = predictor.predict(QUESTION, answer=False)
    low, high = prediction.at(0.05), prediction.at(0.95)
    assert low.mask.sum() >= prediction.mask.sum() >= high.mask.sum()
    assert np.array_equal(low.mask, prediction.probability > 0.05)


# --- images of every kind --------------------------------------------------------------------------
def test_load_image_accepts_every_mode(tmp_path):
    rgb = scene(20, 30)
    gray = rgb[..., 0]
    cases = {
        "rgb.png": Image.fromarray(rgb),
        "gray.png": Image.fromarray(gray),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((20, 30), 255, np.uint8)])),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "sixteen.png": Image.fromarray((gray.astype(np.uint16) * 257)),
    }
    for name, pil in cases.items():
        pil.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.shape == (20, 30, 3) and out.dtype == np.uint8, name
    assert np.array_equal(load_image(tmp_path / "rgb.png"), rgb)
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgb)  # opaque alpha changes nothing
    assert np.array_equal(load_image(tmp_path / "gray.png")[..., 1], gray)
    sixteen = load_image(tmp_path / "sixteen.png")[..., 0].astype(int)
    assert np.corrcoef(sixteen.ravel(), gray.ravel())[0, 1] > 0.99  # stretched, order kept


# --- bad inputs -----------------------------------------------------------------------------------
def test_bad_images_give_clear_messages(predictor, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not found"):
        predictor.set_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="Cannot read notes.png"):
        predictor.set_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="shape"):
        predictor.set_image(np.zeros((5, 5, 7), np.uint8))
    monkeypatch.setattr(constants, "MAX_IMAGE_PIXELS", 100)
    Image.fromarray(scene(20, 20)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match="pixel limit"):
        predictor.set_image(tmp_path / "big.png")


def test_bad_questions_give_clear_messages(predictor):
    predictor.set_image(scene(32, 32))
    with pytest.raises(InputError, match="empty"):
        predictor.predict("   ")
    with pytest.raises(InputError, match="tokens long"):
        predictor.predict("where " * 2000)
    with pytest.raises(InputError, match="threshold"):
        predictor.predict(QUESTION, threshold=1.5)


def test_predict_before_set_image(tiny_checkpoint):
    with pytest.raises(InputError, match="set_image"):
        Predictor.from_pretrained(tiny_checkpoint, device="cpu").predict(QUESTION)


def test_bad_checkpoints_and_precisions(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="fp16 needs a GPU"):
        Predictor.from_pretrained(tiny_checkpoint, precision="fp16", device="cpu")
    with pytest.raises(InputError, match="Unknown precision"):
        Predictor.from_pretrained(tiny_checkpoint, precision="fp8", device="cpu")
    with pytest.raises(CheckpointError, match="neither a local folder nor"):
        Predictor.from_pretrained("no such checkpoint!", device="cpu")
    with pytest.raises(CheckpointError, match="config.json"):
        Predictor.from_pretrained(tmp_path, device="cpu")


def test_later_images_run_only_what_follows_the_system_prompt(tiny_checkpoint):
    """The text before the image is the same for every image: the first image's prefix leaves
    its cache behind, and a later image runs only its visual tokens and the rest, to the same
    prefix cache as a whole run."""
    predictor = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")
    llm = predictor.model.llm
    with mock.patch.object(llm.model, "forward", wraps=llm.model.forward) as body:
        predictor.set_image(scene(150, 200, seed=3))
        whole = body.call_args.kwargs["inputs_embeds"].shape[1]
        predictor.set_image(scene(210, 120, seed=4))
        later = body.call_args.kwargs["inputs_embeds"].shape[1]
    system = sum(len(s.ids) for s in predictor._prefix_segments[:1])
    assert predictor._prefix_segments[1].kind == "image" and system > 20
    assert whole == predictor._image.prefix.length and later == whole - system
    fresh = Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")
    fresh.set_image(scene(210, 120, seed=4))
    for ours, theirs in zip(predictor._image.prefix.cache.layers, fresh._image.prefix.cache.layers):
        torch.testing.assert_close(ours.keys, theirs.keys, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.values, theirs.values, atol=1e-5, rtol=0)
