"""RefSegRS reader: phrase lines, .tif images and masks with 255 = target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segearth.data.refsegrs import read_refsegrs
from segearth.errors import InputError

from .builders import box_mask, write_grey, write_image

TARGET_ROWS = {"17": 2, "3": 5, "250": 0}


def build_refsegrs(root: Path) -> None:
    for image_id, rows in TARGET_ROWS.items():
        write_image(root / "images" / f"{image_id}.tif", 16, 12)
        grey = np.where(box_mask(12, 16, rows), 255, 0).astype(np.uint8)
        grey[-1, :4] = 128  # only 255 is target
        write_grey(root / "masks" / f"{image_id}.tif", grey)
    (root / "output_phrase_val.txt").write_text(
        "17 vehicle along the road\n\n3 the lake on the left  \n250 building\n"
    )


def test_reads_phrases_in_file_order_with_255_masks(tmp_path: Path) -> None:
    build_refsegrs(tmp_path / "RefSegRS")
    samples = read_refsegrs(tmp_path, "val")
    assert [s.stem for s in samples] == ["17", "3", "250"]
    assert [s.question for s in samples] == [
        "vehicle along the road",
        "the lake on the left",
        "building",
    ]
    for sample in samples:
        assert sample.image_path == tmp_path / "RefSegRS" / "images" / f"{sample.stem}.tif"
        assert sample.mask.shape == (12, 16)
        assert int(sample.mask.sum()) == TARGET_ROWS[sample.stem] * 16
    assert samples[2].is_empty_target and samples[2].answers == []


def test_missing_mask_is_an_error(tmp_path: Path) -> None:
    build_refsegrs(tmp_path)
    (tmp_path / "masks" / "3.tif").unlink()
    with pytest.raises(InputError, match="3.tif"):
        read_refsegrs(tmp_path, "val")


def test_malformed_line_is_an_error_with_its_number(tmp_path: Path) -> None:
    build_refsegrs(tmp_path)
    (tmp_path / "output_phrase_val.txt").write_text("17 road\nroad without id\n")
    with pytest.raises(InputError, match="line 2"):
        read_refsegrs(tmp_path, "val")


def test_missing_split_file_describes_the_layout(tmp_path: Path) -> None:
    build_refsegrs(tmp_path)
    with pytest.raises(InputError, match="output_phrase_test.txt"):
        read_refsegrs(tmp_path, "test")
