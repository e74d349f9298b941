"""User folders: the EarthReason layout without a split, labels optional."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segearth.data.folder import read_folder
from segearth.errors import InputError

from .builders import write_qa
from .test_earthreason import ITEMS, build_split


def test_folder_with_labels_reads_like_a_split(tmp_path: Path) -> None:
    build_split(tmp_path)
    samples = read_folder(tmp_path)
    assert [s.stem for s in samples] == ["alpha", "lake_12", "m", "zulu_7"]
    for sample in samples:
        _, width, _, rows = ITEMS[sample.stem]
        assert int(sample.mask.sum()) == rows * width


def test_folder_without_labels_gives_no_masks(tmp_path: Path) -> None:
    build_split(tmp_path)
    shutil.rmtree(tmp_path / "labels")
    samples = read_folder(tmp_path)
    assert len(samples) == 4
    assert all(s.mask is None and not s.has_mask and not s.is_empty_target for s in samples)
    assert samples[0].questions == ["q0 alpha", "q1 alpha", "q2 alpha"]


def test_folder_qa_may_omit_the_answer(tmp_path: Path) -> None:
    build_split(tmp_path)
    (tmp_path / "QAs" / "m.json").write_text('{"questions": "Where is the river?"}')
    sample = next(s for s in read_folder(tmp_path) if s.stem == "m")
    assert sample.questions == ["Where is the river?"] and sample.answers == []


def test_folder_with_labels_still_needs_every_label(tmp_path: Path) -> None:
    build_split(tmp_path)
    (tmp_path / "labels" / "zulu_7.png").unlink()
    with pytest.raises(InputError, match="zulu_7"):
        read_folder(tmp_path)


def test_folder_without_qas_is_an_error_that_describes_the_layout(tmp_path: Path) -> None:
    write_qa(tmp_path / "elsewhere" / "a.json", ["q"], [])
    with pytest.raises(InputError, match="images/.*QAs/"):
        read_folder(tmp_path)
