"""load_dataset: dispatch by name, the all-questions option, errors that describe layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from segearth.data import DATASET_NAMES, load_dataset
from segearth.errors import InputError

from .test_earthreason import build_split
from .test_refsegrs import build_refsegrs
from .test_rrsisd import build_rrsisd


def test_names() -> None:
    assert DATASET_NAMES == ("earthreason", "rrsisd", "refsegrs", "folder")


def test_dispatches_to_each_reader(tmp_path: Path) -> None:
    build_split(tmp_path / "er" / "RSReasonSeg" / "val")
    build_rrsisd(tmp_path / "rr")
    build_refsegrs(tmp_path / "rs")
    build_split(tmp_path / "mine")
    assert len(load_dataset("earthreason", tmp_path / "er", "val")) == 4
    assert len(load_dataset("EarthReason", tmp_path / "er", "val", all_questions=True)) == 12
    assert [s.stem for s in load_dataset("rrsisd", tmp_path / "rr", "val")] == [
        "00002_ref11",
        "00001_ref10",
    ]
    assert len(load_dataset("rrsisd", tmp_path / "rr", "val", all_questions=True)) == 3
    assert [s.stem for s in load_dataset("refsegrs", tmp_path / "rs", "val")] == ["17", "3", "250"]
    assert len(load_dataset("folder", tmp_path / "mine")) == 4


def test_unknown_name_lists_the_known_layouts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Unknown dataset 'coco'.*earthreason:.*refsegrs:"):
        load_dataset("coco", tmp_path, "val")


def test_missing_root_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist.*refs\\(unc\\).p"):
        load_dataset("rrsisd", tmp_path / "nowhere", "val")


def test_split_is_required_except_for_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a split"):
        load_dataset("refsegrs", tmp_path)
