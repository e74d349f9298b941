"""What writing a run's files costs (`segearth.write_result`: the mask, overlay and probability
PNGs and the JSON record of a plain image), CPU milliseconds of this process, median of
`--repeats`, at the PNG level in force (`segearth.outputs.PNG_COMPRESS_LEVEL`) against Pillow's
default 6 in the same run, for the demo model's image size and a 1024x768 upload.

The image is the bundled CC0 NEON orthophoto (the overlay of an aerial photograph is what PNG
compresses worst); the probability a smooth blob.

    python benchmarks/write_cost.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from segearth import Result, write_result  # noqa: E402
from segearth import outputs  # noqa: E402
from segearth.geo import GeoImage  # noqa: E402

PHOTO = REPO / "assets" / "examples" / "neon_yell_road_forest.jpg"
SIZES = [(322, 281), (1024, 768)]  # (width, height): a demo-model area, a large upload
PILLOW_DEFAULT_LEVEL = 6


def a_result(size: tuple[int, int]) -> Result:
    image = np.asarray(Image.open(PHOTO).convert("RGB").resize(size))
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    blob = 1 - np.hypot(yy - h / 2, xx - w / 2) / (0.4 * min(h, w))
    return Result(question="q", probability=np.clip(blob, 0, 1).astype(np.float32),
                  threshold=0.5, answer="a", geo=GeoImage(image))


def cost(result: Result, repeats: int) -> tuple[float, int]:
    """Median CPU ms of write_result, and the bytes it wrote."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="segearth-write-") as tmp:
        for i in range(repeats):
            start = time.process_time()
            written = write_result(result, Path(tmp) / str(i), "scene")
            samples.append(time.process_time() - start)
        return statistics.median(samples) * 1000, sum(p.stat().st_size for p in written.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    level = outputs.PNG_COMPRESS_LEVEL
    for size in SIZES:
        result = a_result(size)
        cost(result, 1)  # warm
        with mock.patch.object(outputs, "PNG_COMPRESS_LEVEL", PILLOW_DEFAULT_LEVEL):
            base_ms, base_bytes = cost(result, args.repeats)
        ms, size_bytes = cost(result, args.repeats)
        print(f"{size[0]}x{size[1]}: level {level} {ms:.1f} ms, {size_bytes:,} bytes; level "
              f"{PILLOW_DEFAULT_LEVEL} {base_ms:.1f} ms, {base_bytes:,} bytes: "
              f"{ms / base_ms:.2f}x the CPU, {size_bytes / base_bytes:.2f}x the bytes")


if __name__ == "__main__":
    main()
