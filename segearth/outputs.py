"""Pictures written as files: each PNG appears whole or not at all (`atomic_path`).

Which files a run becomes, and its JSON record, is `segearth.write_result`'s business.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .fileio import atomic_path


def save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path
