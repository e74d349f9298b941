"""Redundancy measures (paper Eq. 1-3) on images whose values can be worked out by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from segearth.analysis import redundancy as r
from segearth.cli import main
from segearth.errors import InputError


def test_constant_image_is_fully_redundant():
    gray = np.full((64, 64), 137, np.uint8)
    assert r.entropy_redundancy(gray) == 1.0  # H = 0
    # equal means, zero variances: both SSIM factors are (x + C)/(x + C) = 1
    assert r.self_similarity_redundancy(gray, patch=16) == pytest.approx(1.0, abs=1e-12)


def test_flat_histogram_has_no_entropy_redundancy():
    levels = np.repeat(np.arange(256, dtype=np.uint8), 64)  # each level exactly 64 times
    gray = np.random.default_rng(0).permutation(levels).reshape(128, 128)
    assert r.entropy_redundancy(gray) == pytest.approx(0.0, abs=1e-12)  # H = 8 bits


def test_uniform_noise_is_near_zero():
    gray = np.random.default_rng(1).integers(0, 256, (256, 256), dtype=np.uint8)
    assert r.entropy_redundancy(gray) == pytest.approx(0.0, abs=0.005)


def test_two_equal_levels_give_one_bit():
    gray = np.zeros((8, 8), np.uint8)
    gray[:, 4:] = 200
    assert r.entropy_redundancy(gray) == pytest.approx(1 - 1 / 8)  # H = 1 of log2(256) = 8


def test_repeated_tiles_are_fully_self_similar():
    tile = np.random.default_rng(2).integers(0, 256, (16, 16), dtype=np.uint8)
    gray = np.tile(tile, (4, 5))
    assert r.self_similarity_redundancy(gray, patch=16) == pytest.approx(1.0, abs=1e-12)


def test_black_and_white_patches_by_hand():
    gray = np.zeros((8, 16), np.uint8)
    gray[:, 8:] = 255
    # mu = 0 and 255, both variances and the covariance 0:
    # M = (0 + C1)(0 + C2) / ((0 + 255^2 + C1)(0 + C2)) = C1 / (255^2 + C1)
    expected = r.C1 / (255**2 + r.C1)
    m = r.ssim_matrix(gray, patch=8)
    assert m.shape == (2, 2)
    assert m[0, 1] == pytest.approx(expected) and m[1, 0] == pytest.approx(expected)
    assert r.self_similarity_redundancy(gray, patch=8) == pytest.approx(expected)


def test_vectorised_matrix_matches_the_formula_pair_by_pair():
    gray = np.random.default_rng(3).integers(0, 256, (24, 36), dtype=np.uint8)
    p = 12
    tiles = [gray[i:i + p, j:j + p].astype(np.float64).ravel()
             for i in range(0, 24, p) for j in range(0, 36, p)]
    m = r.ssim_matrix(gray, patch=p)
    for i, a in enumerate(tiles):
        for j, b in enumerate(tiles):
            cov = ((a - a.mean()) * (b - b.mean())).mean()
            expected = ((2 * a.mean() * b.mean() + r.C1) * (2 * cov + r.C2)) / (
                (a.mean() ** 2 + b.mean() ** 2 + r.C1) * (a.var() + b.var() + r.C2))
            assert m[i, j] == pytest.approx(expected, rel=1e-12)


def test_constants_and_grayscale():
    assert r.C1 == pytest.approx(6.5025) and r.C2 == pytest.approx(58.5225)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (0, 0, 255)
    rgb[1, 1] = (255, 255, 255)
    assert r.to_gray(rgb).tolist() == [[76, 150], [29, 255]]  # 0.299, 0.587, 0.114 of 255
    assert math.log2(r.LEVELS) == 8


def test_too_few_patches_is_a_user_error():
    with pytest.raises(InputError, match="patch"):
        r.self_similarity_redundancy(np.zeros((10, 10), np.uint8), patch=8)


def test_folder_command_writes_json_table_and_chart(tmp_path, capsys):
    rng = np.random.default_rng(4)
    for name, make in (("flat", lambda: np.full((64, 64, 3), 90, np.uint8)),
                       ("noise", lambda: rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))):
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.fromarray(make()).save(tmp_path / name / f"{k}.png")
    assert main(["redundancy", str(tmp_path / "flat"), str(tmp_path / "noise"), "--patch-size", "16",
                 "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "redundancy.json").read_text())
    flat, noise = data["folders"]
    assert flat["count"] == 2 and flat["entropy"]["mean"] == 1.0
    assert flat["self_similarity"]["mean"] == pytest.approx(1.0)
    assert noise["entropy"]["mean"] < 0.05 and noise["self_similarity"]["mean"] < 0.1
    with Image.open(tmp_path / "out" / "redundancy.png") as chart:
        assert chart.width > 300
    assert "noise" in capsys.readouterr().out


def test_large_images_are_downscaled_first(tmp_path):
    Image.fromarray(np.full((300, 200, 3), 5, np.uint8)).save(tmp_path / "a.png")
    result = r.analyse_image(tmp_path / "a.png", patch=16, max_side=100)
    assert (result.width, result.height) == (200, 300) and result.entropy == 1.0
