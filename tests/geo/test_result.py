"""Regions and the Result: constructed probability maps with known regions give the expected
scores, ranks and dropped counts; the record and the GeoJSON carry them; polygons are clipped
exactly to the drawn area (against the loopback tile server)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon, box, shape

from segearth.errors import InputError
from segearth import Result, write_result
from segearth.geo import GeoImage
from segearth.pipelines import predict_geo
from segearth.result import mask_regions
from segearth.regions import find_regions

from .synthetic import RED_BOX, RedPredictor
from .test_pipeline import QUESTION, loopback


def known_map() -> np.ndarray:
    """12 x 14 probability: A (3x4, 0.8 with one 0.95), B (2x2, 0.6), C (1 px, 0.9), D (3 px in
    a row, 0.7), E (1 px touching B only at a corner, 0.7): A and B are kept, C, D, E dropped."""
    p = np.zeros((12, 14), np.float32)
    p[1:4, 2:6] = 0.8
    p[2, 3] = 0.95
    p[7:9, 8:10] = 0.6
    p[0, 12] = 0.9
    p[10, 0:3] = 0.7
    p[9, 10] = 0.7  # diagonal to B's (8, 9): not 4-connected
    return p


def test_known_regions_scores_ranks_and_dropped_count():
    probability = known_map()
    found = find_regions(probability > 0.5, probability, min_px=4)

    assert [r.rank for r in found.regions] == [1, 2]
    a, b = found.regions
    assert a.pixels == 12 and a.score == pytest.approx((11 * 0.8 + 0.95) / 12, abs=1e-6)
    assert a.peak == pytest.approx(0.95) and a.bbox == (2, 1, 6, 4)
    assert b.pixels == 4 and b.score == pytest.approx(0.6) and b.peak == pytest.approx(0.6)
    assert b.bbox == (8, 7, 10, 9)
    assert found.dropped == 3
    assert found.mask.sum() == 16 and not found.mask[0, 12] and not found.mask[9, 10]
    assert (found.labels[1:4, 2:6] == 1).all() and (found.labels[7:9, 8:10] == 2).all()

    every = find_regions(probability > 0.5, probability, min_px=1)
    assert [r.pixels for r in every.regions] == [12, 4, 3, 1, 1] and every.dropped == 0
    assert [r.peak for r in every.regions[3:]] == pytest.approx([0.9, 0.7])  # tie: score first


def test_result_regions_are_largest_first():
    result = Result("q", known_map(), 0.5, None, GeoImage(np.zeros((12, 14, 3), np.uint8)))
    assert [(r.rank, r.pixels) for r in result.regions] == [(1, 12), (2, 4)]


def test_a_checkpoints_noise_floor_drops_small_regions_everywhere():
    """min_region_fraction 0.03 of a 12 x 14 map is round(0.03 * 14**2) = 6 px: B (4 px) goes from
    the result's mask, its re-thresholded copies and its canvas mask; A stays."""
    probability = known_map()
    only_a = np.zeros_like(probability, bool)
    only_a[1:4, 2:6] = True
    assert np.array_equal(mask_regions(probability, 0.5, 6).mask, only_a)
    assert np.array_equal(mask_regions(probability, 0.5, 1).mask, probability > 0.5)
    result = Result("q", probability, 0.5, None, GeoImage(np.zeros((12, 14, 3), np.uint8)),
                    min_region_fraction=0.03, canvas_probability=np.pad(probability, ((1, 1), (0, 0))))
    assert result.smallest_region_px == 6 and [r.pixels for r in result.regions] == [12]
    assert np.array_equal(result.at(0.5).mask, only_a)
    assert np.array_equal(result.canvas_mask[1:-1], only_a)  # a 14 x 14 canvas: 6 px too
    nothing = result.at(0.85)  # only A's 0.95 pixel and C's 0.9 pixel are left
    assert not nothing.found and not nothing.canvas_mask.any()


def test_a_checkpoints_confidence_floor_drops_unsure_regions_everywhere():
    """min_region_score 0.7: B (mean 0.6) goes from the mask, its re-thresholded copies, its canvas
    mask and the record's regions, and counts as dropped; A (mean 0.8125) stays. At 0.85 no
    region is sure enough: "no target"."""
    probability = known_map()
    only_a = np.zeros_like(probability, bool)
    only_a[1:4, 2:6] = True
    assert np.array_equal(mask_regions(probability, 0.5, 4, min_score=0.7).mask, only_a)
    assert mask_regions(probability, 0.5, 4, min_score=0.7).dropped == 4
    result = Result("q", probability, 0.5, None, GeoImage(np.zeros((12, 14, 3), np.uint8)),
                    min_region_score=0.7, canvas_probability=np.pad(probability, ((1, 1), (0, 0))))
    assert [r.pixels for r in result.regions] == [12] and np.array_equal(result.mask, only_a)
    assert np.array_equal(result.at(0.4).mask, only_a)
    assert np.array_equal(result.canvas_mask[1:-1], only_a)
    assert result.record()["min_region_score"] == 0.7 and result.record()["dropped_regions"] == 4
    unsure = Result("q", probability, 0.5, None, GeoImage(np.zeros((12, 14, 3), np.uint8)),
                    min_region_score=0.85)
    assert not unsure.found and not unsure.mask.any()


def test_result_clips_to_valid_pixels_and_records_pixel_boxes(tmp_path):
    probability = known_map()
    valid = np.ones(probability.shape, bool)
    valid[1:4, 5] = False  # A loses its right column: 9 px left
    image = GeoImage(np.zeros((12, 14, 3), np.uint8), valid=valid, source={"kind": "image"})
    result = Result(QUESTION, probability, 0.5, "There.", image, checkpoint="ckpt")

    assert [r.pixels for r in result.regions] == [9, 4] and result.dropped_regions == 3
    assert not result.mask[~valid].any() and result.found
    written = write_result(result, tmp_path, "plain")
    assert set(written) == {"mask_png", "overlay_png", "probability_png", "json"}
    record = json.loads(written["json"].read_text())
    assert record["regions"] == [
        {"rank": 1, "pixels": 9, "score": 0.8167, "peak": 0.95, "bbox_px": [2, 1, 5, 4]},
        {"rank": 2, "pixels": 4, "score": 0.6, "peak": 0.6, "bbox_px": [8, 7, 10, 9]}]
    assert record["dropped_regions"] == 3 and record["min_region_px"] == 4
    assert record["geo"] is None and record["area"] is None
    assert record["positive_fraction"] == pytest.approx(13 / probability.size)

    higher = result.at(0.7)
    assert [r.pixels for r in higher.regions] == [9] and higher.dropped_regions == 1  # C; D, E = 0.7


@pytest.mark.parametrize("threshold, min_px", [(0.0, 4), (1.0, 4), (0.5, 0)])
def test_bad_threshold_or_minimum_is_a_message(threshold, min_px):
    with pytest.raises(InputError, match="threshold|smallest region"):
        Result("q", known_map(), threshold, None, GeoImage(np.zeros((12, 14, 3), np.uint8)),
               min_region_px=min_px)


#: A drawn box whose west and south edges cut through the red square.
CUT_BOX = (11.5006, 48.1004, 11.5040, 48.1025)


def vertices(geometry: dict) -> np.ndarray:
    return shapely.get_coordinates(shape(geometry))


def test_polygons_lie_inside_the_drawn_box_to_floating_point_precision(tile_server, tmp_path):
    out = predict_geo(RedPredictor(), CUT_BOX, QUESTION, tmp_path, max_tiles=20,
                      tile_source=loopback(tile_server))
    fc = json.loads(out["geojson"].read_text())
    (feature,) = fc["features"]
    xy = vertices(feature["geometry"])
    west, south, east, north = CUT_BOX
    assert (xy[:, 0] >= west).all() and (xy[:, 0] <= east).all()
    assert (xy[:, 1] >= south).all() and (xy[:, 1] <= north).all()
    # Clipped, not merely inside: the region reaches the box's west and south edges exactly.
    assert xy[:, 0].min() == west and xy[:, 1].min() == south
    assert xy[:, 0].max() == pytest.approx(RED_BOX[2], abs=2e-5)
    props = feature["properties"]
    assert props["rank"] == 1 and props["score"] == 1.0 and props["peak"] == 1.0
    assert props["pixels"] > 100 and fc["properties"]["dropped_regions"] == 0
    record = json.loads(out["json"].read_text())
    assert record["regions"][0]["area_m2"] == props["area_m2"]


def test_polygons_lie_inside_a_drawn_polygon(tile_server, tmp_path):
    triangle = Polygon([(11.4995, 48.0995), (11.5030, 48.0995), (11.4995, 48.1030)])
    out = predict_geo(RedPredictor(), triangle, QUESTION, tmp_path, max_tiles=20,
                      tile_source=loopback(tile_server))
    (feature,) = json.loads(out["geojson"].read_text())["features"]
    outline = shape(feature["geometry"])
    assert all(triangle.distance(Point(x, y)) < 1e-12 for x, y in vertices(feature["geometry"]))
    red_in_triangle = triangle.intersection(box(*RED_BOX))
    assert outline.symmetric_difference(red_in_triangle).area < 0.05 * red_in_triangle.area


def test_region_view_crops_to_the_region_and_highlights_its_outline():
    from segearth.visualize import HIGHLIGHT_COLOR, region_view

    probability = np.zeros((200, 300), np.float32)
    probability[20:80, 30:130] = 0.9  # region 1, 6000 px
    probability[150:160, 250:260] = 0.8  # region 2, 100 px
    result = Result("q", probability, 0.5, None, GeoImage(np.zeros((200, 300, 3), np.uint8)))

    view = region_view(result, 2, opacity=0.5)
    assert view.shape == (48, 48, 3)  # the 10 px square with 19 px of context on each side
    highlighted = (view == HIGHLIGHT_COLOR).all(axis=-1)
    assert highlighted.sum() == 36  # the square's one-pixel boundary, and nothing of region 1
    rows, cols = np.nonzero(highlighted)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (19, 28, 19, 28)

    big = region_view(result, 1, opacity=0.5)  # 60 x 100 px, 50 % margin, cut at the top
    assert big.shape == (80 + 30, 130 + 50, 3)
