"""`evaluate`, run files, comparison and the report, with a predictor whose masks are known."""
from __future__ import annotations

import pytest

from segearth.data.types import Sample
from segearth.errors import InputError
from segearth.evaluation import (EvalResult, PackedMask, compare, evaluate, format_table, item_ids,
                                 read_run, write_run)
from segearth.report import worst_and_best, write_compare_report, write_report

from .fakes import CANVAS, FakePredictor, make_samples

EPS = 1e-5


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="module")
def result(samples) -> EvalResult:
    return evaluate(FakePredictor(), samples, progress=False, keep_masks=True)


def test_ids_are_unique_and_keep_the_stem():
    s = [Sample("a", "x", ["q"]), Sample("b", "x", ["q"]), Sample("a", "x", ["q"])]
    assert item_ids(s) == ["a#0", "b", "a#1"]


def test_items_are_scored_in_both_frames(result, samples):
    items = {i.id: i for i in result.items}
    assert list(items) == ["square#0", "square#1", "wide", "tall"]
    assert result.meta["skipped_without_mask"] == 1
    # left for left: perfect in both frames (the square fills the canvas exactly)
    n = 40 * 20
    assert items["square#0"].intersection_image == items["square#0"].union_image == n
    assert items["square#0"].iou_image == n / (n + EPS)
    # top for left: a quarter of the square is shared, three quarters are covered
    assert items["square#1"].iou_image == pytest.approx(400 / (1200 + EPS))
    assert items["square#1"].iou_canvas == pytest.approx(1024 / (3072 + EPS))
    # 'all' on an empty target: 0, and the canvas union is the resized image (64 x 32), not the padding
    wide = items["wide"]
    assert wide.empty_target and wide.iou_canvas == 0.0 and wide.union_canvas == 64 * 32
    assert wide.predicted_fraction == pytest.approx(0.5) and wide.target_fraction == 0.0
    # nothing on an empty target: 1 in both frames
    assert items["tall"].iou_canvas == items["tall"].iou_image == 1.0
    assert items["tall"].reference_answer is None and items["square#0"].answer is None


def test_summaries_per_frame_subset_and_category(result):
    s = result.summary()
    assert s["canvas"]["count"] == 4 and s["empty_target"]["count"] == 2
    assert s["empty_target"]["gIoU"] == 0.5
    assert s["target_present"]["P@0.9"] == 0.5
    assert s["canvas"]["cIoU"] == pytest.approx((4096 // 2 + 1024) / (2048 + 3072 + 2048 + 1e-10))
    assert s["image"]["cIoU"] == pytest.approx((800 + 400) / (800 + 1200 + 32 * 64 + 1e-10))
    cats = result.by_category()
    assert set(cats) == {"field", "lake"} and cats["lake"]["gIoU"] == 0.5
    table = format_table(s)
    assert "canvas" in table and "empty_target" in table and "P@0.9" in table


def test_each_image_is_encoded_once_per_run_of_questions(samples):
    predictor = FakePredictor()
    evaluate(predictor, samples, progress=False)
    assert [p.rsplit("/", 1)[-1] for p in predictor.images] == ["square.png", "wide.png", "tall.png"]


def test_answers_are_generated_only_on_request(samples):
    result = evaluate(FakePredictor(), samples[:1], progress=False, answers=True)
    assert result.items[0].answer == "I see the left" and result.meta["answers_generated"]


def test_single_process_accelerator_gives_the_same_result(samples, result):
    from accelerate import Accelerator

    sharded = evaluate(FakePredictor(), samples, progress=False, accelerator=Accelerator(cpu=True))
    assert [i.iou_canvas for i in sharded.items] == [i.iou_canvas for i in result.items]
    assert sharded.meta["processes"] == 1


def test_run_files_round_trip(result, tmp_path):
    write_run(result, tmp_path)
    back = read_run(tmp_path)
    assert back.items == result.items and back.summary() == result.summary()
    for key, mask in result.masks.items():
        assert (back.masks[key].unpack() == mask.unpack()).all()
        assert mask.shape == (CANVAS, CANVAS)
    with pytest.raises(InputError, match="metrics.json"):
        read_run(tmp_path / "nowhere")


def test_compare_reports_deltas_and_mask_agreement(samples, result):
    other = evaluate(FakePredictor(flip=True), samples, progress=False, keep_masks=True)
    comparison = compare(result, other)
    agreement = {i["id"]: i["mask_iou"] for i in comparison.items}
    # square: left vs top on the full canvas -> 1024 / 3072; the others agree exactly
    assert agreement["square#0"] == pytest.approx(1024 / (3072 + EPS))
    assert agreement["square#1"] == pytest.approx(1.0, abs=1e-8) and agreement["tall"] == 1.0
    deltas = comparison.deltas()
    assert deltas["canvas"]["gIoU"] == pytest.approx(other.summary()["canvas"]["gIoU"]
                                                     - result.summary()["canvas"]["gIoU"])
    assert "empty_target" in deltas
    with pytest.raises(InputError, match="same items"):
        compare(result, EvalResult(result.items[:2], masks=result.masks))


def test_packed_masks_keep_odd_sizes():
    import numpy as np

    mask = np.random.default_rng(0).random((7, 13)) > 0.5
    assert (PackedMask.pack(mask).unpack() == mask).all()


def test_gallery_picks_distinct_worst_and_best(result):
    worst, best = worst_and_best(result.items, 3)
    assert [i.id for i in worst] == ["wide", "square#1", "square#0"]
    assert [i.id for i in best] == ["tall"]


def test_report_and_compare_report_are_written(samples, result, tmp_path):
    by_id = dict(zip(item_ids(samples), samples))
    index = write_report(result, by_id, tmp_path / "report", gallery=2)
    page = index.read_text()
    assert page.count("class='gallery-item'") == 4 and page.count("class='chart'") == 2  # histogram + categories
    assert "segment top" in page and (tmp_path / "report" / "charts" / "categories.png").is_file()
    assert len(list((tmp_path / "report" / "gallery").glob("*.png"))) == 4 * 3
    other = evaluate(FakePredictor(flip=True), samples, progress=False, keep_masks=True)
    index = write_compare_report(compare(result, other), by_id, tmp_path / "compare", gallery=1)
    page = index.read_text()
    assert page.count("class='gallery-item'") == 1 and "square#0" in page  # the biggest disagreement
    assert len(list((tmp_path / "compare" / "gallery").glob("*.png"))) == 4


#: Text from a dataset or a user that must reach a page as text: markup, and a template expression
#: (which a page rendered by string-built templates would evaluate).
HOSTILE = '<script>alert("x")</script> {{ 7*7 }} & \'quotes\''


def test_report_shows_hostile_text_as_text(samples, tmp_path):
    """Ids, questions, answers and categories come from dataset files: escaped in both reports."""
    hostile = [Sample(f"{HOSTILE} id", samples[0].image_path, [f"{HOSTILE} segment left"], [HOSTILE],
                      mask=samples[0].mask, category=HOSTILE)]
    run = evaluate(FakePredictor(), hostile, progress=False, keep_masks=True)
    by_id = dict(zip(item_ids(hostile), hostile))
    pages = [write_report(run, by_id, tmp_path / "report", gallery=1).read_text(),
             write_compare_report(compare(run, run), by_id, tmp_path / "compare", gallery=1).read_text()]
    escaped = '&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; {{ 7*7 }} &amp; &#39;quotes&#39;'
    for page in pages:
        assert "<script" not in page and escaped in page
        assert page.count(escaped) >= 3  # id, question, reference answer (and category in the report)
