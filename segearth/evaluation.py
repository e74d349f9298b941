"""Scoring a checkpoint on a dataset: the authors' numbers, and the ones they leave out.

The authors score on the padded 1024x1024 canvas (`Result.canvas_mask` against the label
resized and padded the same way), so their numbers count the padding: a prediction that spills
into it is penalised, and a small image is scored at the canvas' resolution. That frame is the
one to quote next to the papers. Users get masks at their image's own size, so each item is also
scored there, and empty-target items (where the only right answer is "nothing") are summarised
on their own, because the IoU rule for them (1 if nothing is predicted, else 0) behaves nothing
like the IoU of a real target.

The model is causal and the answer text comes after the question, so the mask never depends on
the answer the authors splice in at evaluation time; `predict(..., answer=False)` gives the same
mask without generating text (``answers=True`` generates them anyway, for the report).
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .data.types import Sample
from .errors import InputError
from .image_processing import mask_to_canvas
from .metrics import PRECISION_THRESHOLDS, SegmentationMetrics, intersection_union, sample_iou

#: Summary frames, in the order tables and reports show them.
FRAMES = ("canvas", "image", "empty_target", "target_present")
METRICS = ("gIoU", "cIoU") + tuple(f"P@{x}" for x in PRECISION_THRESHOLDS)
RESULT_FILE = "metrics.json"
MASKS_FILE = "masks.npz"


@dataclass(frozen=True)
class PackedMask:
    """A boolean mask stored at one bit per pixel: a 1024 canvas takes 128 KB, so a whole
    validation split's predictions fit in memory for the report and run comparisons."""

    shape: tuple[int, int]
    bits: np.ndarray

    @classmethod
    def pack(cls, mask: np.ndarray) -> "PackedMask":
        return cls(tuple(mask.shape), np.packbits(np.asarray(mask, bool)))

    def unpack(self) -> np.ndarray:
        return np.unpackbits(self.bits, count=self.shape[0] * self.shape[1]).reshape(self.shape).astype(bool)


@dataclass
class ItemRecord:
    """One scored (image, question). As in the authors' records, ``target_fraction`` is the share
    of the image the target covers and ``predicted_fraction`` the share of the canvas predicted
    positive (so a prediction spilling into the padding shows)."""

    id: str  # the stem, suffixed with #k when several questions share an image stem
    stem: str
    image_path: str
    question: str
    reference_answer: str | None  # the dataset's answer
    answer: str | None  # the model's, only when answers were generated
    category: str | None
    width: int
    height: int
    empty_target: bool
    iou_canvas: float
    iou_image: float
    intersection_canvas: int
    union_canvas: int
    intersection_image: int
    union_image: int
    target_fraction: float
    predicted_fraction: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def summarize(items: Iterable[ItemRecord], frame: str = "canvas") -> dict[str, float]:
    """gIoU, cIoU, P@X and count over ``items`` with the intersections of one frame."""
    metrics = SegmentationMetrics()
    for item in items:
        metrics.intersections.append(getattr(item, f"intersection_{frame}"))
        metrics.unions.append(getattr(item, f"union_{frame}"))
    return metrics.summary()


@dataclass
class EvalResult:
    items: list[ItemRecord]
    meta: dict[str, Any] = field(default_factory=dict)
    #: Predicted canvas masks by item id (filled when ``keep_masks``), for reports and comparisons.
    masks: dict[str, PackedMask] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per frame: the authors' canvas, the image's own size, and the empty-target and
        target-present subsets (both on the canvas). A subset with no item is an empty dict."""
        return {
            "canvas": summarize(self.items, "canvas"),
            "image": summarize(self.items, "image"),
            "empty_target": summarize((i for i in self.items if i.empty_target), "canvas"),
            "target_present": summarize((i for i in self.items if not i.empty_target), "canvas"),
        }

    def by_category(self) -> dict[str, dict[str, float]]:
        """Canvas summaries per dataset category, for datasets that name them."""
        groups: dict[str, list[ItemRecord]] = defaultdict(list)
        for item in self.items:
            if item.category:
                groups[item.category].append(item)
        return {name: summarize(groups[name]) for name in sorted(groups)}

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "summary": self.summary(), "categories": self.by_category(),
                "items": [asdict(item) for item in self.items]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalResult":
        return cls([ItemRecord(**item) for item in data["items"]], dict(data.get("meta", {})))


# --- running -----------------------------------------------------------------------------------
def item_ids(samples: Sequence[Sample]) -> list[str]:
    """Unique ids in sample order: the stem, or ``stem#k`` for the k-th repeat of a stem (one
    image asked several questions)."""
    totals = Counter(s.stem for s in samples)
    seen: Counter[str] = Counter()
    ids = []
    for sample in samples:
        ids.append(sample.stem if totals[sample.stem] == 1 else f"{sample.stem}#{seen[sample.stem]}")
        seen[sample.stem] += 1
    return ids


def evaluate(predictor, samples: Sequence[Sample], *, progress: bool = True, keep_masks: bool = False,
             accelerator=None, threshold: float | None = None, answers: bool = False) -> EvalResult:
    """Score ``predictor`` on every sample that has ground truth (the others are counted in
    ``meta['skipped_without_mask']``), at ``threshold`` (None: the checkpoint's own).

    With an ``accelerate.Accelerator`` each process scores a contiguous share of the samples
    (contiguous, so questions about one image stay on one process and the image is encoded
    once) and every process gets the gathered result in sample order.
    """
    scored = [(item_id, s) for item_id, s in zip(item_ids(samples), samples) if s.has_mask]
    started = time.perf_counter()
    if accelerator is None:
        local, provenance, threshold = _score_all(predictor, scored, progress, threshold, answers)
    else:
        with accelerator.split_between_processes(scored) as share:
            local, provenance, threshold = _score_all(predictor, share,
                                                      progress and accelerator.is_main_process,
                                                      threshold, answers)
        from accelerate.utils import gather_object

        local = gather_object(local)
    order = {item_id: k for k, (item_id, _) in enumerate(scored)}
    local.sort(key=lambda pair: order[pair[0].id])
    meta = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threshold": threshold,
        "answers_generated": answers,
        "skipped_without_mask": len(samples) - len(scored),
        "seconds": round(time.perf_counter() - started, 3),
        "processes": accelerator.num_processes if accelerator is not None else 1,
        "provenance": provenance,
    }
    result = EvalResult([record for record, _ in local], meta)
    if keep_masks:
        result.masks = {record.id: mask for record, mask in local}
    return result


def _score_all(predictor, scored: Sequence[tuple[str, Sample]], progress: bool, threshold: float | None,
               answers: bool) -> tuple[list[tuple[ItemRecord, PackedMask]], dict[str, Any], float | None]:
    """(record and packed canvas mask per item, the provenance of the last prediction, the
    threshold the predictions used: the checkpoint's own when `threshold` is None)."""
    from tqdm.auto import tqdm

    out: list[tuple[ItemRecord, PackedMask]] = []
    running = SegmentationMetrics()
    current_image, provenance = None, {}
    bar = tqdm(scored, desc="eval", unit="item", disable=not progress, file=sys.stderr)
    for item_id, sample in bar:
        start = time.perf_counter()
        if sample.image_path != current_image:
            predictor.set_image(sample.image_path)
            current_image = sample.image_path
        prediction = predictor.predict(sample.question, threshold=threshold, answer=answers)
        record, canvas = _score(item_id, sample, prediction, time.perf_counter() - start)
        provenance, threshold = dict(prediction.provenance), prediction.threshold
        out.append((record, PackedMask.pack(canvas)))
        running.intersections.append(record.intersection_canvas)
        running.unions.append(record.union_canvas)
        bar.set_postfix(gIoU=f"{running.ious.mean():.4f}", refresh=False)
    bar.close()
    return out, provenance, threshold


def _score(item_id: str, sample: Sample, prediction, seconds: float) -> tuple[ItemRecord, np.ndarray]:
    target = sample.mask  # decoded once: lazy masks are re-read on every access
    canvas = prediction.canvas_mask
    if canvas is None:
        raise InputError("The predictor returned no canvas mask; evaluation needs the authors' frame.")
    canvas_target = mask_to_canvas(target, canvas=canvas.shape[0])
    ic, uc = intersection_union(canvas, canvas_target)
    ii, ui = intersection_union(prediction.mask, target)
    record = ItemRecord(
        id=item_id, stem=sample.stem, image_path=str(sample.image_path), question=sample.question,
        reference_answer=sample.answer, answer=prediction.answer, category=sample.category,
        width=int(target.shape[1]), height=int(target.shape[0]), empty_target=not target.any(),
        iou_canvas=sample_iou(ic, uc), iou_image=sample_iou(ii, ui),
        intersection_canvas=ic, union_canvas=uc, intersection_image=ii, union_image=ui,
        target_fraction=float(target.mean()), predicted_fraction=float(canvas.mean()),
        seconds=round(seconds, 4), timings={k: round(float(v), 4) for k, v in prediction.timings.items()},
    )
    return record, canvas


# --- comparing two runs ------------------------------------------------------------------------
@dataclass
class Comparison:
    """Run ``b`` against run ``a`` on the same items: metric deltas (b - a) and how much their
    masks agree."""

    a: EvalResult
    b: EvalResult
    items: list[dict[str, Any]]  # id, stem, question, iou_a, iou_b, delta, mask_iou

    def deltas(self) -> dict[str, dict[str, float]]:
        summary_a, summary_b = self.a.summary(), self.b.summary()
        return {frame: {m: summary_b[frame][m] - summary_a[frame][m] for m in METRICS}
                for frame in FRAMES if summary_a[frame] and summary_b[frame]}

    @property
    def mean_mask_iou(self) -> float:
        return float(np.mean([item["mask_iou"] for item in self.items]))

    def to_json(self) -> dict[str, Any]:
        return {"a": run_label(self.a), "b": run_label(self.b), "mean_mask_iou": self.mean_mask_iou,
                "summary_a": self.a.summary(), "summary_b": self.b.summary(),
                "deltas": self.deltas(), "items": self.items}


def compare(result_a: EvalResult, result_b: EvalResult) -> Comparison:
    """Match items by id; the mask IoU between runs is taken on the canvas, where both runs'
    masks live (1 when both are empty)."""
    ids_a, ids_b = [i.id for i in result_a.items], [i.id for i in result_b.items]
    if ids_a != ids_b:
        differ = sorted(set(ids_a) ^ set(ids_b))[:5]
        raise InputError(
            "The two runs did not score the same items"
            + (f" (e.g. {', '.join(differ)})" if differ else " in the same order")
            + ". Compare runs made on the same dataset, split and options."
        )
    missing = [i for i in ids_a if i not in result_a.masks or i not in result_b.masks]
    if missing:
        raise InputError(f"{len(missing)} item(s) have no stored mask (e.g. {missing[0]}); "
                         "evaluate with keep_masks=True or load the run with its masks.npz.")
    items = []
    for a, b in zip(result_a.items, result_b.items):
        agreement = intersection_union(result_a.masks[a.id].unpack(), result_b.masks[b.id].unpack())
        items.append({"id": a.id, "stem": a.stem, "question": a.question, "iou_a": a.iou_canvas,
                      "iou_b": b.iou_canvas, "delta": b.iou_canvas - a.iou_canvas,
                      "mask_iou": sample_iou(*agreement)})
    return Comparison(result_a, result_b, items)


def run_label(result: EvalResult) -> str:
    """How reports name a run: the checkpoint folder's name and the precision it ran in."""
    provenance = result.meta.get("provenance", {})
    checkpoint = Path(str(result.meta.get("checkpoint", provenance.get("checkpoint", "run")))).name
    precision = provenance.get("precision")
    return f"{checkpoint} ({precision})" if precision else checkpoint


# --- files and tables --------------------------------------------------------------------------
def write_run(result: EvalResult, folder: Path) -> Path:
    """``metrics.json`` (meta, summaries, categories, items) and, if kept, ``masks.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=1))
    if result.masks:
        arrays = {}
        for item_id, mask in result.masks.items():
            arrays[f"{item_id}__bits"] = mask.bits
            arrays[f"{item_id}__shape"] = np.asarray(mask.shape)
        np.savez_compressed(folder / MASKS_FILE, **arrays)
    return folder / RESULT_FILE


def read_run(folder: Path) -> EvalResult:
    """A run written by `write_run`, with its masks when ``masks.npz`` is there."""
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        raise InputError(f"{folder} holds no {RESULT_FILE}: give the --out folder of an earlier eval run.")
    result = EvalResult.from_json(json.loads(path.read_text()))
    masks_path = Path(folder) / MASKS_FILE
    if masks_path.is_file():
        with np.load(masks_path) as data:
            result.masks = {item.id: PackedMask(tuple(int(v) for v in data[f"{item.id}__shape"]),
                                                data[f"{item.id}__bits"])
                            for item in result.items if f"{item.id}__bits" in data}
    return result


def format_table(summary: dict[str, dict[str, float]]) -> str:
    """Frames as rows, metrics as columns, in percent as the papers print them."""
    header = f"{'frame':<15}" + "".join(f"{m:>8}" for m in METRICS) + f"{'items':>7}"
    lines = [header, "-" * len(header)]
    for frame in FRAMES:
        row = summary.get(frame) or {}
        if row:
            lines.append(f"{frame:<15}" + "".join(f"{100 * row[m]:>8.2f}" for m in METRICS)
                         + f"{row['count']:>7}")
    return "\n".join(lines)
