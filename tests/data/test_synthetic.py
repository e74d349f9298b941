"""Synthetic generator: determinism, layout, held-out split and phrasings, the question
grammar, empty targets, masks that match what was drawn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segearth.data import read_earthreason
from segearth.data.synthetic import (
    CATEGORIES,
    HELD_OUT_CATEGORIES,
    HELD_OUT_QUESTIONS,
    PHOTO_CATEGORIES,
    QUESTIONS,
    SEEN_CATEGORIES,
    TEMPLATES,
    ask,
    conflicts,
    generate_dataset,
)
from segearth.errors import InputError

N_TRAIN, N_VAL, SIZE = 42, 36, 96


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(
        tmp_path_factory.mktemp("syn"), n_train=N_TRAIN, n_val=N_VAL, image_size=SIZE, seed=7
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = _files(generate_dataset(tmp_path / "a", n_train=6, n_val=4, image_size=64, seed=3))
    second = _files(generate_dataset(tmp_path / "b", n_train=6, n_val=4, image_size=64, seed=3))
    other = _files(generate_dataset(tmp_path / "c", n_train=6, n_val=4, image_size=64, seed=4))
    assert len(first) == 3 * 10 + 1  # image, label, QA per item + synthetic.json
    assert first == second
    images = [name for name in first if name.startswith("train/images")]
    assert any(first[name] != other[name] for name in images)


def test_layout_reads_back_with_the_earthreason_reader(generated: Path) -> None:
    train, val = read_earthreason(generated, "train"), read_earthreason(generated, "val")
    assert len(train) == N_TRAIN and len(val) == N_VAL
    assert train[0].stem == "train_00000" and val[-1].stem == f"val_{N_VAL - 1:05d}"
    for sample in train + val:
        assert sample.category in CATEGORIES
        assert 1 <= len(sample.questions) <= 3
        assert sample.mask.shape == (SIZE, SIZE)
    meta = json.loads((generated / "synthetic.json").read_text())
    assert meta["seed"] == 7 and meta["held_out_categories"] == list(HELD_OUT_CATEGORIES)


def test_held_out_categories_and_phrasings_appear_only_in_val(generated: Path) -> None:
    train, val = read_earthreason(generated, "train"), read_earthreason(generated, "val")
    assert not {s.category for s in train} & set(HELD_OUT_CATEGORIES)
    assert set(HELD_OUT_CATEGORIES) <= {s.category for s in val}
    train_questions = {q for s in train for q in s.questions}
    val_questions = {q for s in val for q in s.questions}
    assert not train_questions & val_questions
    held_out = {q for c in HELD_OUT_CATEGORIES for q in QUESTIONS[c]}
    held_out |= {q for qs in HELD_OUT_QUESTIONS.values() for q in qs}
    assert not train_questions & held_out
    mentioned = " ".join(train_questions).lower()
    assert not any(category in mentioned for category in HELD_OUT_CATEGORIES)


def _template_pattern(template: str) -> re.Pattern:
    """A template as a regular expression whose slots match anything."""
    return re.compile(".*".join(re.escape(part) for part in re.split(r"\{\w+\}", template)), re.I)


def _templates_of(question: str) -> set[str]:
    """Which splits' templates could have produced ``question``."""
    return {split for split, templates in TEMPLATES.items()
            if any(_template_pattern(t).fullmatch(question) for t in templates)}


def test_seen_categories_are_asked_with_disjoint_templates_over_one_vocabulary() -> None:
    rng = np.random.default_rng(0)
    asked = {"train": set(), "val": set()}
    for category in SEEN_CATEGORIES:
        fixed = {"train": QUESTIONS[category], "val": HELD_OUT_QUESTIONS[category]}
        for split in asked:
            for _ in range(300):
                question = ask(category, split, rng, noisy=False)
                assert question in fixed[split] or _templates_of(question) == {split}, question
                asked[split].add(question.lower())
    words = {split: set(re.findall(r"[a-z0-9'-]+", " ".join(qs))) for split, qs in asked.items()}
    assert words["val"] <= words["train"]
    # no training sentence holds a held-out fixed phrasing (with a tail or a lead added)
    training = "\n".join(asked["train"])
    leaked = [q for qs in HELD_OUT_QUESTIONS.values() for q in qs if q.lower().rstrip("?.") in training]
    assert not leaked


def test_questions_get_typos_and_casing_at_a_minority_rate() -> None:
    clean, noisy = zip(*[(ask("runway", "train", np.random.default_rng([1, i]), noisy=False),
                          ask("runway", "train", np.random.default_rng([1, i])))
                         for i in range(400)])
    changed = sum(a != b for a, b in zip(clean, noisy)) / len(clean)
    assert 0.25 < changed < 0.6
    assert any(q == q.lower() for q in noisy) and any(q == q.upper() for q in noisy)
    assert len(set(clean)) > 200  # a grammar, not a list


def test_empty_target_fraction_and_consistency(generated: Path) -> None:
    for split, count in (("train", N_TRAIN), ("val", N_VAL)):
        samples = read_earthreason(generated, split)
        empty = [s for s in samples if s.answers == []]
        assert len(empty) == round(count * 0.15)
        assert all(not s.mask.any() for s in empty)
        for sample in samples:
            if sample.answers:
                assert sample.mask.sum() >= 0.002 * SIZE * SIZE, sample.stem


def _mean_colour(sample) -> np.ndarray:
    image = np.asarray(Image.open(sample.image_path).convert("RGB"), np.float32)
    return image[sample.mask].mean(axis=0)


def test_masks_cover_the_drawn_feature(tmp_path: Path) -> None:
    root = generate_dataset(
        tmp_path, n_train=4 * 14, n_val=2 * 18, image_size=128, seed=1, empty_fraction=0
    )
    samples = read_earthreason(root, "train") + read_earthreason(root, "val")
    checked = set()
    for sample in samples:
        red, green, blue = _mean_colour(sample)
        if sample.category in ("river", "pond", "lake"):
            assert blue > red + 40 and blue > green + 15, (sample.stem, red, green, blue)
        elif sample.category in ("island", "bridge"):  # land or deck, not the water around it
            assert blue < green + 10, (sample.stem, red, green, blue)
        elif sample.category == "forest":
            assert green > red + 15 and green > blue + 15 and green < 110
        elif sample.category in ("greenhouse", "storage tank"):
            assert min(red, green, blue) > 170
        elif sample.category in ("runway", "road", "parking lot"):
            assert max(red, green, blue) - min(red, green, blue) < 25  # grey asphalt or concrete
        else:
            continue
        checked.add(sample.category)
    assert checked == {
        "river",
        "pond",
        "lake",
        "island",
        "bridge",
        "forest",
        "greenhouse",
        "storage tank",
        "runway",
        "road",
        "parking lot",
    }


def test_vary_size_gives_non_square_images_with_matching_masks(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, n_train=8, n_val=2, image_size=80, seed=2, vary_size=True)
    sizes = set()
    for sample in read_earthreason(root, "train"):
        with Image.open(sample.image_path) as image:
            width, height = image.size
        assert 56 <= width <= 112 and 56 <= height <= 112
        assert sample.mask.shape == (height, width)
        sizes.add((width, height))
    assert len(sizes) > 1 and any(w != h for w, h in sizes)


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    generate_dataset(tmp_path, n_train=2, n_val=1, image_size=48)
    with pytest.raises(InputError, match="overwrite"):
        generate_dataset(tmp_path, n_train=2, n_val=1, image_size=48)
    generate_dataset(tmp_path, n_train=3, n_val=1, image_size=48, overwrite=True)
    assert len(read_earthreason(tmp_path, "train")) == 3


def test_questions_that_two_categories_answer_never_share_a_scene() -> None:
    assert conflicts("lake", "river") and conflicts("bridge", "road") and conflicts("pond", "pond")
    assert conflicts("greenhouse", "farmland") and conflicts("stadium", "tennis court")
    assert not conflicts("runway", "road") and not conflicts("forest", "building")


PHOTO = Path(__file__).resolve().parents[2] / "assets" / "examples" / "neon_yell_road_forest.jpg"


def test_photo_backgrounds_replace_drawn_land_only_for_categories_a_photo_cannot_hold(tmp_path: Path) -> None:
    """With every item over the photograph where allowed: items about `PHOTO_CATEGORIES` keep
    drawn land, the others show the photograph's colours (its greens and shadows, not the drawn
    palette), and the bytes still follow the seed."""
    settings = dict(n_train=40, n_val=0, image_size=64, seed=5, empty_fraction=0.5,
                    photos=[str(PHOTO)], photo_fraction=1.0)
    root = generate_dataset(tmp_path / "a", **settings)
    assert _files(root) == _files(generate_dataset(tmp_path / "b", **settings))
    plain = generate_dataset(tmp_path / "c", **{**settings, "photos": (), "photo_fraction": 0.0})
    assert json.loads((root / "synthetic.json").read_text())["photos"] == [str(PHOTO)]
    changed = []
    for sample in read_earthreason(root, "train"):
        drawn = np.asarray(Image.open(plain / "train" / "images" / sample.image_path.name))
        image = np.asarray(Image.open(sample.image_path))
        if sample.category in PHOTO_CATEGORIES:
            assert (image == drawn).all()
        else:
            changed.append(not (image == drawn).all())
    assert changed and all(changed)
    with pytest.raises(InputError, match="photo_fraction"):
        generate_dataset(tmp_path / "d", n_train=2, n_val=0, image_size=64, photo_fraction=0.5)
