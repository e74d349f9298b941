"""RRSIS-D reader: REFER refs pickle + COCO instances, polygons and RLE, safe unpickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segearth.data.rrsisd import load_plain_pickle, read_rrsisd
from segearth.errors import InputError

from .builders import write_image, write_pickle

HEIGHT, WIDTH = 30, 40


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's column-major run lengths, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"size": [HEIGHT, WIDTH], "counts": ([0] if flat[0] else []) + runs}


def expected_masks() -> dict[int, np.ndarray]:
    polygon = np.zeros((HEIGHT, WIDTH), bool)
    polygon[5:15, 10:30] = True  # what the polygon below rasterises to
    rle = np.zeros((HEIGHT, WIDTH), bool)
    rle[20:, :7] = True
    compressed = np.zeros((HEIGHT, WIDTH), bool)
    compressed[2:4, 30:] = True
    return {101: polygon, 102: rle, 103: compressed}


def build_rrsisd(root: Path) -> None:
    masks = expected_masks()
    annotations = [
        {
            "id": 101,
            "image_id": 1,
            "category_id": 7,
            "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]],
        },
        {"id": 102, "image_id": 2, "category_id": 8, "segmentation": _uncompressed_rle(masks[102])},
        {"id": 103, "image_id": 2, "category_id": 7, "segmentation": _compressed_rle(masks[103])},
    ]
    images = [
        {"id": 1, "file_name": "00001.jpg", "height": HEIGHT, "width": WIDTH},
        {"id": 2, "file_name": "00002.jpg", "height": HEIGHT, "width": WIDTH},
    ]
    categories = [{"id": 7, "name": "vehicle"}, {"id": 8, "name": "lake"}]
    refs = [
        {
            "ref_id": 11,
            "image_id": 2,
            "ann_id": 102,
            "category_id": 8,
            "split": "val",
            "sentences": [
                {"raw": "The lake on the left.", "sent": "the lake on the left"},
                {"raw": "Left lake", "sent": "left lake"},
            ],
        },
        {
            "ref_id": 10,
            "image_id": 1,
            "ann_id": 101,
            "category_id": 7,
            "split": "val",
            "sentences": [{"raw": "A white vehicle", "sent": "a white vehicle"}],
        },
        {
            "ref_id": 12,
            "image_id": 2,
            "ann_id": 103,
            "category_id": 7,
            "split": "testB",
            "sentences": [{"raw": "The car at the top", "sent": "the car at the top"}],
        },
        {
            "ref_id": 13,
            "image_id": 1,
            "ann_id": 101,
            "category_id": 7,
            "split": "train",
            "sentences": [{"raw": "train only", "sent": "train only"}],
        },
    ]
    write_pickle(root / "rrsisd" / "refs(unc).p", refs)
    (root / "rrsisd" / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    for image in images:
        write_image(root / "images" / "rrsisd" / "JPEGImages" / image["file_name"], WIDTH, HEIGHT)


def test_val_refs_in_file_order_with_decoded_masks(tmp_path: Path) -> None:
    build_rrsisd(tmp_path / "RRSIS-D")
    samples = read_rrsisd(tmp_path, "val")
    assert [s.stem for s in samples] == ["00002_ref11", "00001_ref10"]
    assert samples[0].questions == ["The lake on the left.", "Left lake"]
    assert samples[0].question == "The lake on the left."
    assert [s.category for s in samples] == ["lake", "vehicle"]
    assert samples[1].image_path.name == "00001.jpg"
    masks = expected_masks()
    assert np.array_equal(samples[0].mask, masks[102])
    assert np.array_equal(samples[1].mask, masks[101])


def test_test_split_takes_testA_and_testB(tmp_path: Path) -> None:
    build_rrsisd(tmp_path)
    samples = read_rrsisd(tmp_path, "test")
    assert [s.stem for s in samples] == ["00002_ref12"]
    assert np.array_equal(samples[0].mask, expected_masks()[103])


def test_missing_image_is_an_error(tmp_path: Path) -> None:
    build_rrsisd(tmp_path)
    (tmp_path / "images" / "rrsisd" / "JPEGImages" / "00001.jpg").unlink()
    with pytest.raises(InputError, match="00001.jpg"):
        read_rrsisd(tmp_path, "val")


def test_missing_annotations_describe_the_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"refs\(unc\).p"):
        read_rrsisd(tmp_path, "val")


class _RunsCode:
    """Unpickling this would call open(marker, "w")."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickle_naming_a_callable_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "was_run"
    write_pickle(tmp_path / "evil.p", [{"ref_id": 1, "payload": _RunsCode(marker)}])
    with pytest.raises(InputError, match="io.open"):
        load_plain_pickle(tmp_path / "evil.p")
    assert not marker.exists()


def test_plain_pickles_of_any_protocol_load(tmp_path: Path) -> None:
    value = [{"ref_id": 1, "tags": {"a", "b"}, "box": (1.5, 2), "raw": "caf\u00e9"}]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.p"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        assert load_plain_pickle(path) == value
