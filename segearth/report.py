"""HTML reports of an evaluation run, or of two runs compared: one self-contained folder
(``index.html``, ``charts/*.png``, ``gallery/*.png``) that opens from disk in any browser and
can be zipped or attached as is.

Why a gallery: averages say *whether* a checkpoint is good, the worst cases say *where* it
fails (missed small objects, spills into the padding, answers to the wrong question).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from .data.types import Sample
from .evaluation import FRAMES, METRICS, Comparison, EvalResult, ItemRecord, PackedMask, run_label
from .image_processing import Geometry, canvas_to_image, load_image
from .templates import render
from .visualize import blend

THUMBNAIL = 320
#: Overlay colours (RGB) and their opacity.
TARGET_COLOUR = (0, 200, 80)
PREDICTION_COLOUR = (230, 40, 160)
OTHER_PREDICTION_COLOUR = (30, 120, 255)
ALPHA = 0.5


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- pictures ----------------------------------------------------------------------------------
def prediction_at_image_size(record: ItemRecord, canvas_mask: np.ndarray) -> np.ndarray:
    """The stored canvas mask mapped back onto the image (crop the padding, resize)."""
    geometry = Geometry.of(record.height, record.width, canvas_mask.shape[0])
    return canvas_to_image(canvas_mask.astype(np.float32), geometry) >= 0.5


def overlay(image: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int]) -> Image.Image:
    """A thumbnail of ``image`` with ``mask`` (at image size) tinted in ``colour``."""
    thumb = Image.fromarray(image)
    thumb.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR)
    if mask is None:
        return thumb
    small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(thumb.size, Image.Resampling.NEAREST)) > 0
    return Image.fromarray(blend(np.asarray(thumb), small, ALPHA, colour, edges=False))


def _save_panels(folder: Path, name: str, image: np.ndarray,
                 masks: Sequence[tuple[np.ndarray | None, tuple[int, int, int]]]) -> list[str]:
    """One PNG per panel (the plain image first); returns paths relative to the report."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (mask, colour) in enumerate([(None, (0, 0, 0)), *masks]):
        path = folder / f"{name}_{k}.png"
        overlay(image, mask, colour).save(path)
        paths.append(f"{folder.name}/{path.name}")
    return paths


def _iou_histogram(values: Mapping[str, Sequence[float]], path: Path, xlabel: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.linspace(0, 1, 21)
    for label, v in values.items():
        ax.hist(v, bins=bins, alpha=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.legend()
    return _save_figure(fig, path)


def _category_bars(categories: Mapping[str, Mapping[str, float]], path: Path) -> str:
    """Horizontal bars, so that long category names stay readable."""
    plt = _pyplot()
    names = list(categories)[::-1]  # first category on top
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4))
    for offset, metric in ((0.2, "gIoU"), (-0.2, "cIoU")):
        ax.barh(y + offset, [categories[n][metric] for n in names], height=0.4, label=metric)
    ax.set_yticks(y, [f"{n} ({categories[n]['count']})" for n in names])
    ax.set_xlim(0, 1)
    ax.legend()
    return _save_figure(fig, path)


def _scatter(a: Sequence[float], b: Sequence[float], labels: tuple[str, str], path: Path) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(a, b, s=12, alpha=0.7)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xlabel(f"IoU {labels[0]}")
    ax.set_ylabel(f"IoU {labels[1]}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _save_figure(fig, path)


def _save_figure(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return f"{path.parent.name}/{path.name}"


# --- html (templates in segearth/templates/, every value escaped) ------------------------------
Colour = tuple[int, int, int]


@dataclass
class GalleryItem:
    """One case in a gallery: its pictures (image, ground truth, each run's prediction), then its
    text: the id and size, question and answers (None shows as "none"), the scores."""

    id: str
    size: str
    category: str | None
    empty_target: bool
    texts: list[tuple[str, str | None]]
    scores: str
    panels: list[str]


def _metric_rows(summary: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
    return [[frame] + [f"{100 * summary[frame][m]:.2f}" for m in METRICS] + [str(summary[frame]["count"])]
            for frame in FRAMES if summary.get(frame)]


def _key(*entries: tuple[str, Colour]) -> list[dict[str, str]]:
    return [{"name": name, "css": f"rgb{colour}"} for name, colour in entries]


def worst_and_best(items: Sequence[ItemRecord], count: int) -> tuple[list[ItemRecord], list[ItemRecord]]:
    """The ``count`` lowest and highest canvas IoUs, without showing an item twice."""
    ranked = sorted(items, key=lambda i: (i.iou_canvas, i.id))
    worst = ranked[:count]
    best = ranked[len(worst):][::-1][:count]
    return worst, best


def write_report(result: EvalResult, samples: Mapping[str, Sample], folder: Path, gallery: int = 6) -> Path:
    """Metric table, IoU histogram, per-category bars (when categories are known) and the
    worst/best gallery. ``samples`` maps item ids to their samples (for ground-truth masks)."""
    folder = Path(folder)
    summary = result.summary()
    charts = [_iou_histogram({"canvas (authors)": [i.iou_canvas for i in result.items],
                              "image size": [i.iou_image for i in result.items]},
                             folder / "charts" / "iou_histogram.png", "IoU per item")]
    categories = result.by_category()
    if categories:
        charts.append(_category_bars(categories, folder / "charts" / "categories.png"))
    worst, best = worst_and_best(result.items, gallery)
    meta = result.meta
    provenance = meta.get("provenance", {})
    facts = [("checkpoint", meta.get("checkpoint")), ("dataset", meta.get("dataset")),
             ("split", meta.get("split")), ("precision", provenance.get("precision")),
             ("device", provenance.get("device")), ("items", str(len(result.items))),
             ("skipped (no ground truth)", str(meta.get("skipped_without_mask", 0))),
             ("seconds", str(meta.get("seconds"))), ("created", meta.get("created"))]
    galleries = [(heading, [_gallery_item(record, samples[record.id], [(result.masks, PREDICTION_COLOUR)], folder,
                                          f"IoU canvas {record.iou_canvas:.4f}, image size {record.iou_image:.4f}")
                            for record in chosen])
                 for heading, chosen in (("Worst cases", worst), ("Best cases", best))]
    page = render("evaluation.html", title=f"SegEarth-R1 evaluation: {run_label(result)}",
                  facts=[[k, str(v)] for k, v in facts if v is not None],
                  metric_header=["frame", *METRICS, "items"], metric_rows=_metric_rows(summary),
                  chart_paths=charts, category_header=["category", *METRICS, "items"],
                  category_rows=[[name] + [f"{100 * row[m]:.2f}" for m in METRICS] + [str(row["count"])]
                                 for name, row in categories.items()],
                  key_entries=_key(("ground truth", TARGET_COLOUR), ("prediction", PREDICTION_COLOUR)),
                  galleries=galleries)
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _gallery_item(record: ItemRecord, sample: Sample, runs: Sequence[tuple[Mapping[str, PackedMask], Colour]],
                  folder: Path, scores: str) -> GalleryItem:
    """Image, ground truth, then each run's prediction; question, answers and ``scores`` below."""
    image = load_image(record.image_path)
    panels = [(sample.mask, TARGET_COLOUR)]
    panels += [(prediction_at_image_size(record, masks[record.id].unpack()), colour) for masks, colour in runs]
    safe = "".join(c if c.isalnum() else "_" for c in record.id)
    texts = [("Question", record.question), ("Reference answer", record.reference_answer)]
    if record.answer is not None:
        texts.append(("Model answer", record.answer))
    return GalleryItem(record.id, f"{record.width}x{record.height}", record.category, record.empty_target,
                       texts, scores, _save_panels(folder / "gallery", safe, image, panels))


def write_compare_report(comparison: Comparison, samples: Mapping[str, Sample], folder: Path,
                         gallery: int = 6) -> Path:
    """Both runs' metrics and their deltas, an IoU scatter, the mask-agreement histogram, and
    the items where the two runs' masks disagree most."""
    folder = Path(folder)
    a, b = comparison.a, comparison.b
    label_a, label_b = run_label(a), run_label(b)
    summary_a, summary_b, deltas = a.summary(), b.summary(), comparison.deltas()
    rows = []
    for frame in deltas:
        for name, summary in ((label_a, summary_a), (label_b, summary_b)):
            rows.append([f"{frame}: {name}"] + [f"{100 * summary[frame][m]:.2f}" for m in METRICS])
        rows.append([f"{frame}: b - a"] + [f"{100 * deltas[frame][m]:+.2f}" for m in METRICS])
    charts = [
        _scatter([i["iou_a"] for i in comparison.items], [i["iou_b"] for i in comparison.items],
                 ("a", "b"), folder / "charts" / "iou_scatter.png"),
        _iou_histogram({"a vs b": [i["mask_iou"] for i in comparison.items]},
                       folder / "charts" / "mask_agreement.png", "IoU between the two runs' masks"),
    ]
    records_b = {r.id: r for r in b.items}
    items = []
    for item in sorted(comparison.items, key=lambda i: (i["mask_iou"], i["id"]))[:gallery]:
        record = records_b[item["id"]]
        items.append(_gallery_item(
            record, samples[record.id], [(a.masks, PREDICTION_COLOUR), (b.masks, OTHER_PREDICTION_COLOUR)],
            folder, f"IoU canvas a {item['iou_a']:.4f}, b {item['iou_b']:.4f}; masks a vs b {item['mask_iou']:.4f}"))
    page = render("comparison.html", title=f"SegEarth-R1 comparison: {label_a} vs {label_b}",
                  label_a=label_a, label_b=label_b, mean_mask_iou=comparison.mean_mask_iou,
                  item_count=len(comparison.items), metric_header=["", *METRICS], metric_rows=rows,
                  chart_paths=charts,
                  key_entries=_key(("ground truth", TARGET_COLOUR), ("a", PREDICTION_COLOUR),
                                   ("b", OTHER_PREDICTION_COLOUR)),
                  items=items)
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
