"""The paper's image-redundancy analysis (Sec. 4.2.1, Eq. 1-3, Figure 3) on a user's own images.

Why: the paper justifies compressing 1024 visual tokens to 64 by showing that aerial images are
more redundant than natural ones. Running the same measures on one's own imagery tells whether
that argument holds there too.

Definitions (the paper leaves the details open; these are ours, fixed here):

* Grayscale: PIL's ITU-R 601-2 luma, L = R*299/1000 + G*587/1000 + B*114/1000, rounded to
  8 bits (after `load_image`, so 16-bit or float rasters are first percentile-stretched).
* Images whose long side exceeds ``max_side`` (default 1024, the model's canvas) are first
  downscaled with area averaging, so the SSIM matrix stays at most ~1024 x 1024 patches.
* Entropy redundancy (Eq. 1): R_e = 1 - H / log2(L), H = -sum p(l) log2 p(l) over the 256-bin
  histogram, L = 256 (all 8-bit levels, present or not).
* Patch SSIM matrix (Eq. 2): the image is cut into non-overlapping ``patch`` x ``patch`` tiles
  (the right and bottom remainders are dropped). Per tile the mean mu_i and the population
  variance sigma_i^2 = mean((x - mu_i)^2); between tiles the population covariance
  sigma_ij = mean((x_i - mu_i)(x_j - mu_j)) over corresponding pixels.
  M(i,j) = (2 mu_i mu_j + C1)(2 sigma_ij + C2) / ((mu_i^2 + mu_j^2 + C1)(sigma_i^2 + sigma_j^2 + C2)),
  C1 = (0.01*255)^2, C2 = (0.03*255)^2 (the usual SSIM constants for 8-bit data, K1=0.01, K2=0.03).
* Self-similarity redundancy (Eq. 3): R_s = mean of M over i != j.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import InputError
from ..image_processing import load_image

LEVELS = 256
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
DEFAULT_PATCH = 32
DEFAULT_MAX_SIDE = 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> 8-bit luma (H, W), PIL's ITU-R 601-2 conversion."""
    return np.asarray(Image.fromarray(image).convert("L"))


def entropy_redundancy(gray: np.ndarray) -> float:
    """Eq. 1: 1 - H / log2(256) on the 8-bit histogram (1 = constant image, 0 = flat histogram)."""
    counts = np.bincount(np.asarray(gray, np.uint8).ravel(), minlength=LEVELS)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    return 1.0 - entropy / math.log2(LEVELS)


def patches(gray: np.ndarray, patch: int) -> np.ndarray:
    """Non-overlapping patch x patch tiles, row-major, as an (N, patch*patch) float64 array."""
    rows, cols = gray.shape[0] // patch, gray.shape[1] // patch
    if rows * cols < 2:
        raise InputError(
            f"An image of {gray.shape[1]}x{gray.shape[0]} holds fewer than two {patch}x{patch} "
            "patches; use a smaller --patch-size."
        )
    tiles = np.asarray(gray[: rows * patch, : cols * patch], np.float64)
    tiles = tiles.reshape(rows, patch, cols, patch).transpose(0, 2, 1, 3)
    return tiles.reshape(rows * cols, patch * patch)


def ssim_matrix(gray: np.ndarray, patch: int = DEFAULT_PATCH) -> np.ndarray:
    """Eq. 2 for every pair of patches at once: one (N, P^2) x (P^2, N) product gives all
    covariances, broadcasting gives the rest."""
    x = patches(gray, patch)
    mu = x.mean(axis=1)
    centred = x - mu[:, None]
    var = (centred**2).mean(axis=1)
    cov = centred @ centred.T / x.shape[1]
    luminance = (2 * np.outer(mu, mu) + C1) / (mu[:, None] ** 2 + mu[None, :] ** 2 + C1)
    structure = (2 * cov + C2) / (var[:, None] + var[None, :] + C2)
    return luminance * structure


def self_similarity_redundancy(gray: np.ndarray, patch: int = DEFAULT_PATCH) -> float:
    """Eq. 3: the mean off-diagonal entry of the patch SSIM matrix."""
    m = ssim_matrix(gray, patch)
    n = m.shape[0]
    return float((m.sum() - np.trace(m)) / (n * (n - 1)))


@dataclass(frozen=True)
class ImageRedundancy:
    path: str
    width: int
    height: int
    entropy: float  # R_e
    self_similarity: float  # R_s


def analyse_image(path: Path, patch: int = DEFAULT_PATCH,
                  max_side: int | None = DEFAULT_MAX_SIDE) -> ImageRedundancy:
    gray = to_gray(load_image(path))
    height, width = gray.shape
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return ImageRedundancy(str(path), width, height, entropy_redundancy(gray),
                           self_similarity_redundancy(gray, patch))


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images.")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def analyse_folder(folder: Path, patch: int = DEFAULT_PATCH, max_side: int | None = DEFAULT_MAX_SIDE,
                   limit: int | None = None) -> dict:
    """Per-image values and their mean and standard deviation for one folder."""
    images = [analyse_image(p, patch, max_side) for p in image_files(folder)[:limit]]
    summary = {"folder": str(folder), "label": folder.name, "count": len(images)}
    for key in ("entropy", "self_similarity"):
        values = np.array([getattr(item, key) for item in images])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std())}
    summary["images"] = [asdict(item) for item in images]
    return summary


def plot_redundancy(summaries: list[dict], path: Path) -> Path:
    """Figure-3-like chart: one bar per folder for R_e and for R_s, with the spread over images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [s["label"] for s in summaries]
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(labels) + 3), 3.6))
    for ax, key, title in ((axes[0], "entropy", "Entropy redundancy $R_e$"),
                           (axes[1], "self_similarity", "Self-similarity $R_s$")):
        means = [s[key]["mean"] for s in summaries]
        stds = [s[key]["std"] for s in summaries]
        bars = ax.bar(labels, means, yerr=stds, capsize=4, color="#4c72b0")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, max(1.0, max(m + s for m, s in zip(means, stds)) * 1.1))
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(summaries: list[dict]) -> str:
    lines = [f"{'folder':<28} {'images':>6} {'R_e mean':>9} {'R_e std':>8} {'R_s mean':>9} {'R_s std':>8}"]
    for s in summaries:
        lines.append(f"{s['label'][:28]:<28} {s['count']:>6} {s['entropy']['mean']:>9.4f} "
                     f"{s['entropy']['std']:>8.4f} {s['self_similarity']['mean']:>9.4f} "
                     f"{s['self_similarity']['std']:>8.4f}")
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------
