"""The one mask rule's edges, on every path that makes a mask.

A map with known values: a probability exactly at the threshold is outside the mask (the rule is
`>`, not `>=`), and a region of exactly the smallest size is kept while one of a pixel fewer is
dropped, whether that size comes from the caller's `min_region_px` or the checkpoint's noise
floor. The paths: a Result's mask (the page, the files), its re-thresholded copies, its canvas
mask (what evaluation scores), and the pipelines' single-pass and tiled runs. Then the answer
follows the same mask: a speck under the smallest region, or a region only in nodata pixels, is
"no target" and no answer is generated.
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import rasterio
from PIL import Image

from segearth import Result, constants, write_result
from segearth.geo import GeoImage
from segearth.model import generation
from segearth.pipelines import predict_geo
from segearth.predictor import Predictor
from segearth.regions import MIN_REGION_PX
from segearth.result import mask_regions, smallest_region_px

SIDE = 40
SMALLEST = 6
#: Dyadic values, exact in float32 and float64: no rounding decides a comparison here.
AT, ABOVE, HIGH = 128 / 256, 129 / 256, 192 / 256
QUESTION = "Where are the blocks?"


def known_map() -> tuple[np.ndarray, np.ndarray]:
    """(probability, the mask the rule must give at threshold AT with SMALLEST): a 2 x 3 region
    (6 px, kept), a 1 x 5 line (5 px, dropped), a 4 x 4 block exactly at the threshold
    (outside), a 1 px speck just above it (dropped)."""
    probability = np.zeros((SIDE, SIDE), np.float32)
    probability[2:4, 2:5] = HIGH  # 6 px
    probability[10, 2:7] = HIGH  # 5 px
    probability[20:24, 20:24] = AT
    probability[30, 30] = ABOVE
    expected = np.zeros((SIDE, SIDE), bool)
    expected[2:4, 2:5] = True
    return probability, expected


#: The smallest region as the caller's minimum, or as the checkpoint's noise floor on a canvas of
#: SIDE pixels (round(0.00375 * 40**2) = 6).
LIMITS = {"min_region_px": dict(min_region_px=SMALLEST),
          "noise_floor": dict(min_region_px=1, min_region_fraction=SMALLEST / SIDE ** 2)}


def test_the_rule_itself():
    probability, expected = known_map()
    assert np.array_equal(mask_regions(probability, AT, SMALLEST).mask, expected)
    assert np.array_equal(mask_regions(probability, AT, SMALLEST - 1).mask, expected | (probability == HIGH))
    assert smallest_region_px(4, SMALLEST / SIDE ** 2, SIDE) == SMALLEST
    assert smallest_region_px(SMALLEST + 1, SMALLEST / SIDE ** 2, SIDE) == SMALLEST + 1
    valid = np.ones((SIDE, SIDE), bool)
    valid[2, 2] = False  # the kept region loses a pixel: now too small
    assert not mask_regions(probability, AT, SMALLEST, valid).mask.any()


@pytest.mark.parametrize("limit", LIMITS)
def test_a_result_its_rethresholded_copies_and_its_canvas_mask(limit, tmp_path):
    probability, expected = known_map()
    result = Result(QUESTION, probability, 0.25, None, GeoImage(np.zeros((SIDE, SIDE, 3), np.uint8)),
                    canvas_probability=probability.copy(), **LIMITS[limit])
    at = result.at(AT)
    assert np.array_equal(at.mask, expected) and np.array_equal(at.canvas_mask, expected)
    assert [r.pixels for r in at.regions] == [SMALLEST] and at.found
    written = write_result(at, tmp_path, "known")
    assert np.array_equal(np.asarray(Image.open(written["mask_png"])) == 255, expected)
    # Just below AT the 4 x 4 block is in: the rule's edge is the threshold itself.
    below = result.at(AT - 2 ** -9)
    assert below.mask[20:24, 20:24].all() and below.canvas_mask[20:24, 20:24].all()


class MapPredictor:
    """A stand-in whose probability is the red channel / 256, so tests can draw exact maps."""

    def __init__(self, min_region_fraction: float = 0.0):
        self.min_region_fraction = min_region_fraction

    def set_image(self, image: np.ndarray | GeoImage) -> None:
        self.geo = image if isinstance(image, GeoImage) else GeoImage(np.asarray(image))

    def predict(self, question: str, threshold: float | None = None, answer: bool = True,
                min_region_px: int = 1) -> Result:
        probability = self.geo.image[..., 0].astype(np.float32) / 256
        result = Result(question, probability, AT if threshold is None else threshold, None, self.geo,
                        min_region_px=min_region_px, min_region_fraction=self.min_region_fraction)
        if answer:
            result.answer = self.answer(result)
        return result

    def answer(self, result: Result) -> str:
        return "There." if result.found else constants.EMPTY_TARGET_ANSWER


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("tiled", [False, True])
def test_single_pass_and_tiled_runs(limit, tiled, tmp_path):
    probability, expected = known_map()
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[..., 0] = np.round(probability * 256).astype(np.uint8)
    settings = LIMITS[limit]
    out = predict_geo(MapPredictor(settings.get("min_region_fraction", 0.0)), GeoImage(image), QUESTION,
                      tmp_path, tiled=tiled, window=SIDE, overlap=0, threshold=AT,
                      min_region_px=settings["min_region_px"])
    with rasterio.open(out["mask_geotiff"]) as src:
        assert np.array_equal(src.read(1) == 255, expected)


# --- the answer follows the same mask, with the real predictor ------------------------------------
@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.from_pretrained(tiny_checkpoint, precision="fp32", device="cpu")


def scene() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_a_probability_equal_to_the_threshold_is_outside_the_predictors_mask(predictor):
    predictor.set_image(scene())
    probability = predictor.predict(QUESTION, answer=False).probability
    threshold = float(np.sort(probability, axis=None)[probability.size // 2])  # a value the map holds
    result = predictor.predict(QUESTION, threshold=threshold, answer=False)
    assert (probability == threshold).any() and not result.mask[probability == threshold].any()
    assert np.array_equal(result.mask, probability > threshold)


def test_a_speck_under_the_smallest_region_is_no_target_and_no_answer(predictor):
    predictor.set_image(scene())
    probability = predictor.predict(QUESTION, answer=False).probability
    values = np.unique(probability)
    threshold = float(values[-2])  # only the pixels of the highest value are above it
    assert 1 <= (probability > threshold).sum() <= 3
    with mock.patch.object(generation, "generate_answer", wraps=generation.generate_answer) as spy:
        speck = predictor.predict(QUESTION, threshold=threshold, min_region_px=MIN_REGION_PX)
        assert (probability > threshold).any() and not speck.found and not speck.mask.any()
        assert speck.answer == constants.EMPTY_TARGET_ANSWER and spy.call_count == 0
        kept = predictor.predict(QUESTION, threshold=threshold)  # every region, as the authors
        assert kept.found and spy.call_count == 1 and kept.answer != constants.EMPTY_TARGET_ANSWER


def test_a_region_only_in_nodata_pixels_is_no_target_and_no_answer(predictor):
    image = scene()
    nodata = GeoImage(image, valid=np.zeros(image.shape[:2], bool))
    with mock.patch.object(generation, "generate_answer", wraps=generation.generate_answer) as spy:
        predictor.set_image(nodata)
        hidden = predictor.predict(QUESTION, threshold=1e-6)  # every pixel is above it
        assert (hidden.probability > 1e-6).all() and not hidden.found
        assert hidden.answer == constants.EMPTY_TARGET_ANSWER and spy.call_count == 0
        predictor.set_image(GeoImage(image))
        seen = predictor.predict(QUESTION, threshold=1e-6)
        assert seen.found and spy.call_count == 1
