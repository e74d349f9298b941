"""The run's metrics: one CSV row per logged step or validation, and a PNG of the curves.

A CSV needs no extra package and survives a crash row by row; a resumed run appends to it.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

FIELDS = ("step", "epoch", "lr", "loss", "mask", "answer", "score", "grad_norm", "val_gIoU", "val_cIoU",
          "seconds")


class MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as file:
                csv.writer(file).writerow(FIELDS)

    def write(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown metric columns {sorted(unknown)}")
        with self.path.open("a", newline="") as file:
            csv.writer(file).writerow(_format(row.get(name)) for name in FIELDS)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows with their filled columns as floats."""
    with path.open(newline="") as file:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(file)]


def plot_metrics(csv_path: Path, png_path: Path) -> Path:
    """Training losses and learning rate against step, and validation gIoU/cIoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    fig, (ax_loss, ax_lr, ax_val) = plt.subplots(1, 3, figsize=(15, 4))
    for name in ("loss", "mask", "answer", "score"):
        points = [(r["step"], r[name]) for r in rows if name in r]
        if points:
            ax_loss.plot(*zip(*points), label=name)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="losses")
    lrs = [(r["step"], r["lr"]) for r in rows if "lr" in r]
    if lrs:
        ax_lr.plot(*zip(*lrs))
    ax_lr.set(xlabel="step", ylabel="learning rate", title="schedule")
    for name in ("val_gIoU", "val_cIoU"):
        points = [(r["step"], r[name]) for r in rows if name in r]
        if points:
            ax_val.plot(*zip(*points), marker="o", label=name[4:])
    ax_val.set(xlabel="step", ylabel="IoU", ylim=(0, 1), title="validation (canvas)")
    for ax in (ax_loss, ax_val):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
