"""EarthReason reader: pairing by stem, masks, empty targets, question lists, root forms."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from segearth.data.earthreason import category_from_stem, read_earthreason
from segearth.errors import InputError

from .builders import box_mask, write_image, write_label, write_qa

# stem -> (image suffix, width, height, target rows); rows 0 = empty target.
ITEMS = {
    "zulu_7": (".jpg", 40, 30, 3),
    "alpha": (".png", 24, 24, 5),
    "lake_12": (".png", 32, 20, 0),
    "m": (".jpeg", 20, 36, 9),
}


def build_split(split_dir: Path, items: dict = ITEMS) -> None:
    """Writes each folder in its own shuffled order: directory order must not matter."""
    for seed, kind in enumerate(("images", "labels", "QAs")):
        stems = list(items)
        random.Random(seed).shuffle(stems)
        for stem in stems:
            suffix, width, height, rows = items[stem]
            if kind == "images":
                write_image(split_dir / "images" / f"{stem}{suffix}", width, height)
            elif kind == "labels":
                write_label(split_dir / "labels" / f"{stem}.png", box_mask(height, width, rows))
            else:
                answers = [f"answer one for {stem}", f"answer two for {stem}"] if rows else []
                questions = [f"q0 {stem}", f"q1 {stem}", f"q2 {stem}"]
                write_qa(split_dir / "QAs" / f"{stem}.json", questions, answers)


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    build_split(tmp_path / "rs_reason_seg" / "RSReasonSeg" / "val")
    return tmp_path / "rs_reason_seg" / "RSReasonSeg"


def test_pairs_every_file_by_stem(dataset_root: Path) -> None:
    samples = read_earthreason(dataset_root, "val")
    assert [s.stem for s in samples] == ["alpha", "lake_12", "m", "zulu_7"]
    for sample in samples:
        suffix, width, height, rows = ITEMS[sample.stem]
        assert sample.image_path.name == sample.stem + suffix
        assert sample.questions == [f"q0 {sample.stem}", f"q1 {sample.stem}", f"q2 {sample.stem}"]
        assert sample.question == f"q0 {sample.stem}"
        mask = sample.mask
        assert mask.dtype == bool and mask.shape == (height, width)
        assert int(mask.sum()) == rows * width  # the label of this stem, not a neighbour's
        assert mask[:rows].all()


def test_empty_target_has_no_answer_and_an_all_false_mask(dataset_root: Path) -> None:
    by_stem = {s.stem: s for s in read_earthreason(dataset_root, "val")}
    assert by_stem["lake_12"].answers == []
    assert by_stem["lake_12"].answer is None
    assert by_stem["lake_12"].is_empty_target
    assert not by_stem["alpha"].is_empty_target
    assert by_stem["alpha"].answers == ["answer one for alpha", "answer two for alpha"]


@pytest.mark.parametrize("level", ["RSReasonSeg", "above", "split"])
def test_root_may_be_given_at_several_levels(dataset_root: Path, level: str) -> None:
    root = {
        "RSReasonSeg": dataset_root,
        "above": dataset_root.parent.parent,
        "split": dataset_root / "val",
    }
    assert len(read_earthreason(root[level], "val")) == 4


def test_all_questions_gives_one_sample_per_question(dataset_root: Path) -> None:
    samples = read_earthreason(dataset_root, "val", all_questions=True)
    assert len(samples) == 12
    alpha = [s for s in samples if s.stem == "alpha"]
    assert [s.questions for s in alpha] == [["q0 alpha"], ["q1 alpha"], ["q2 alpha"]]
    # Answers cycle through the item's answers.
    assert [s.answers for s in alpha] == [
        ["answer one for alpha"],
        ["answer two for alpha"],
        ["answer one for alpha"],
    ]
    assert all(s.answers == [] for s in samples if s.stem == "lake_12")
    assert int(alpha[2].mask.sum()) == 5 * 24


def test_category_comes_from_the_qa_file_else_the_file_name(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    write_qa(tmp_path / "val" / "QAs" / "alpha.json", ["q"], ["a"], category="stadium")
    by_stem = {s.stem: s for s in read_earthreason(tmp_path, "val")}
    assert by_stem["alpha"].category == "stadium"
    assert by_stem["lake_12"].category == "lake"
    assert by_stem["zulu_7"].category is None  # not a known scene name


def test_category_from_stem() -> None:
    assert category_from_stem("basketball_court_0042") == "basketball court"
    assert category_from_stem("Ground-Track-Field_3") == "ground track field"
    assert category_from_stem("image_001") is None
    assert category_from_stem("P0224_0_800_0_800") is None
    assert category_from_stem("lake") is None  # no number: not an image name of that form


def test_any_non_zero_label_value_is_target(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    write_label(tmp_path / "val" / "labels" / "alpha.png", box_mask(24, 24, 2), value=1)
    alpha = next(s for s in read_earthreason(tmp_path, "val") if s.stem == "alpha")
    assert int(alpha.mask.sum()) == 2 * 24


@pytest.mark.parametrize("folder, name", [("labels", "alpha.png"), ("QAs", "m.json")])
def test_missing_partner_file_is_an_error_naming_the_stem(
    tmp_path: Path, folder: str, name: str
) -> None:
    build_split(tmp_path / "val")
    (tmp_path / "val" / folder / name).unlink()
    with pytest.raises(InputError, match=Path(name).stem):
        read_earthreason(tmp_path, "val")


def test_extra_label_without_image_is_an_error(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    write_label(tmp_path / "val" / "labels" / "aaa_extra.png", box_mask(4, 4, 1))
    with pytest.raises(InputError, match="aaa_extra"):
        read_earthreason(tmp_path, "val")


def test_two_images_with_one_stem_are_an_error(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    write_image(tmp_path / "val" / "images" / "alpha.jpg", 24, 24)
    with pytest.raises(InputError, match="alpha"):
        read_earthreason(tmp_path, "val")


def test_label_of_another_size_is_an_error_when_read(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    write_label(tmp_path / "val" / "labels" / "alpha.png", box_mask(10, 24, 2))
    alpha = next(s for s in read_earthreason(tmp_path, "val") if s.stem == "alpha")
    with pytest.raises(InputError, match="size of its image"):
        alpha.mask


def test_malformed_qa_is_an_error(tmp_path: Path) -> None:
    build_split(tmp_path / "val")
    (tmp_path / "val" / "QAs" / "m.json").write_text('{"questions": []}')
    with pytest.raises(InputError, match="no question"):
        read_earthreason(tmp_path, "val")
    (tmp_path / "val" / "QAs" / "m.json").write_text("not json")
    with pytest.raises(InputError, match="m.json"):
        read_earthreason(tmp_path, "val")


def test_missing_split_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="images/.*labels/.*QAs/"):
        read_earthreason(tmp_path, "test")


def test_masks_are_read_lazily_each_access(dataset_root: Path) -> None:
    sample = read_earthreason(dataset_root, "val")[0]
    first, second = sample.mask, sample.mask
    assert first is not second and np.array_equal(first, second)
