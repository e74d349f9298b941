"""Tiled mode: a small target in a large raster that the single resize loses is found at native
resolution, with the raster read window by window."""
from __future__ import annotations

import resource
import tracemalloc

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from segearth.geo.raster import GeoImage, read_raster
from segearth.pipelines import predict_tiled

from .synthetic import BACKGROUND, RED, RedPredictor

SIZE = 4096  # 4x the model input: a 2x2 px target becomes a quarter of one pixel
SMALL = (2501, 1703)  # (row, col) of a 2x2 red target
SEAM = (301, 1020)  # a 4x4 target across the right edge of the first 1024 px window


def probability_fn(predictor: RedPredictor):
    def predict_probability(rgb: np.ndarray) -> np.ndarray:
        predictor.set_image(rgb)
        return predictor.predict("where is the red thing?").probability
    return predict_probability


@pytest.fixture(scope="module")
def large_raster(tmp_path_factory):
    """4096x4096 RGB GeoTIFF, written in strips so the test never holds it whole either."""
    path = tmp_path_factory.mktemp("tiled") / "large.tif"
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="uint8",
                   crs="EPSG:32633", transform=from_origin(500_000, 5_330_000, 0.5, 0.5),
                   tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    strip = 512
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, SIZE, strip):
            block = np.empty((3, strip, SIZE), np.uint8)
            block[:] = np.array(BACKGROUND, np.uint8)[:, None, None]
            for (r, c), side in ((SMALL, 2), (SEAM, 4)):
                if row <= r < row + strip:
                    block[:, r - row:r - row + side, c:c + side] = np.array(RED)[:, None, None]
            dst.write(block, window=Window(0, row, SIZE, strip))
    return path


def test_tiled_mode_finds_the_small_target_that_the_single_resize_loses(large_raster):
    predictor = RedPredictor(input_size=1024)
    tracemalloc.start()
    probability = predict_tiled(probability_fn(predictor), large_raster, window=1024, overlap=128)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    raster_rgb_bytes = SIZE * SIZE * 3
    print(f"\ntiled mode on {SIZE}x{SIZE}: {predictor.calls} windows, peak traced memory "
          f"{peak / 2**20:.1f} MiB (output map {probability.nbytes / 2**20:.0f} MiB, the raster "
          f"as RGB would be {raster_rgb_bytes / 2**20:.0f} MiB), process max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    assert probability.shape == (SIZE, SIZE) and probability.dtype == np.float32
    expected = np.zeros((SIZE, SIZE), bool)
    expected[SMALL[0]:SMALL[0] + 2, SMALL[1]:SMALL[1] + 2] = True
    expected[SEAM[0]:SEAM[0] + 4, SEAM[1]:SEAM[1] + 4] = True
    assert np.array_equal(probability >= 0.5, expected)  # both, exactly, seam included
    assert predictor.calls == 25  # windows start at 0, 896, 1792, 2688, 3072 on each axis
    # Windowed reading: beyond the output map, less than the raster itself was ever held.
    assert peak - probability.nbytes < raster_rgb_bytes

    whole = read_raster(large_raster)  # the paper's default: the whole image, resized once
    single = RedPredictor(input_size=1024)
    single.set_image(whole.image)
    assert not single.predict("where is the red thing?").mask.any()


def test_geoimage_input_merges_by_maximum_and_zeroes_nodata():
    image = np.empty((300, 500, 3), np.uint8)
    image[:] = RED
    valid = np.ones((300, 500), bool)
    valid[:, :250] = False
    predictor = RedPredictor()
    probability = predict_tiled(probability_fn(predictor), GeoImage(image=image, valid=valid),
                                window=200, overlap=50)
    assert np.array_equal(probability == 1.0, valid)
    # Windows start at rows 0, 100 and cols 0, 150, 300; the two at col 0 are all nodata.
    assert predictor.calls == 2 * 3 - 2


def test_wrong_probability_size_is_a_programming_error():
    geo = GeoImage(image=np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="window's own size"):
        predict_tiled(lambda rgb: np.zeros((8, 8), np.float32), geo, window=32, overlap=8)
