"""read_raster / RasterFile on real GeoTIFFs and TIFFs written to tmp_path."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

from segearth.errors import GeoError
from segearth.geo.raster import RasterFile, iter_windows, read_raster

from .synthetic import write_raster

UTM = "EPSG:32633"
UTM_TRANSFORM = from_origin(500_000, 5_330_000, 10, 10)  # 10 m pixels near zone 33's meridian


@pytest.fixture
def rgbn16(tmp_path):
    """64x80 uint16 RGBN: band b ramps over a different range; NIR is bright on the left half;
    a 4x4 block of nodata (0) in the corner."""
    height, width = 64, 80
    ramp = np.arange(height * width, dtype=np.float64).reshape(height, width) / (height * width)
    bands = np.stack([1000 + 1000 * ramp, 3000 + 500 * ramp, 200 + 5000 * ramp,
                      np.where(np.arange(width) < width // 2, 9000, 1000)[None, :]
                      .repeat(height, 0)]).astype(np.uint16)
    bands[:, :4, :4] = 0
    return write_raster(tmp_path / "rgbn.tif", bands, UTM, UTM_TRANSFORM, nodata=0), bands


def test_16bit_rgbn_keeps_georeferencing_nodata_and_stretches_by_percentiles(rgbn16):
    path, bands = rgbn16
    geo = read_raster(path)
    assert geo.is_georeferenced and geo.crs == CRS.from_string(UTM)
    assert geo.transform == UTM_TRANSFORM
    assert geo.image.shape == (64, 80, 3) and geo.image.dtype == np.uint8
    expected_valid = np.ones((64, 80), bool)
    expected_valid[:4, :4] = False
    assert np.array_equal(geo.valid, expected_valid)
    assert (geo.image[:4, :4] == 0).all()
    for channel in range(3):  # default bands 1, 2, 3, each stretched between its 2nd/98th pct
        values = bands[channel].astype(np.float64)
        lo, hi = np.percentile(values[expected_valid], (2, 98))
        expected = np.clip((values - lo) / (hi - lo) * 255, 0, 255)
        assert np.abs(geo.image[..., channel][expected_valid]
                      - expected[expected_valid]).max() <= 1.0
    assert geo.source["ground_resolution_m"] == pytest.approx(10.0, rel=1e-3)


def test_false_colour_band_choice(rgbn16):
    path, _ = rgbn16
    geo = read_raster(path, bands=(4, 3, 2))
    nir = geo.image[8:, :, 0]
    assert (nir[:, :40] == 255).all() and (nir[:, 40:] == 0).all()  # NIR -> red channel
    assert geo.source["bands"] == [4, 3, 2]


def test_windows_share_one_stretch(rgbn16):
    path, _ = rgbn16
    with RasterFile(path) as raster:
        whole = raster.read()
        windows = list(iter_windows(raster.height, raster.width, 32, 8))
        for window in windows:
            part = raster.read_window(window)
            rows, cols = window.toslices()
            assert np.array_equal(part.image, whole.image[rows, cols])
            assert part.transform == raster.transform @ type(raster.transform).translation(
                window.col_off, window.row_off)


def test_plain_tiff_without_georeferencing_is_a_plain_image(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "plain.tif")
    geo = read_raster(tmp_path / "plain.tif")
    assert not geo.is_georeferenced and geo.crs is None and geo.transform is None
    assert np.array_equal(geo.image, rgb) and geo.valid is None


def test_single_band_is_grey_and_float_nan_is_nodata(tmp_path):
    data = np.linspace(0.0, 1.0, 20 * 20, dtype=np.float32).reshape(1, 20, 20)
    data[0, 5, 5] = np.nan
    geo = read_raster(write_raster(tmp_path / "f.tif", data, UTM, UTM_TRANSFORM))
    assert (geo.image[..., 0] == geo.image[..., 1]).all() and (geo.image[..., 1]
                                                               == geo.image[..., 2]).all()
    assert not geo.valid[5, 5] and geo.valid.sum() == 399
    assert geo.image[0, 0, 0] == 0 and geo.image[-1, -1, 0] == 255


def test_max_size_decimates_and_scales_the_transform(tmp_path):
    data = np.full((3, 100, 200), 7, np.uint8)
    geo = read_raster(write_raster(tmp_path / "big.tif", data, UTM, UTM_TRANSFORM), max_size=50)
    assert geo.image.shape == (25, 50, 3) and (geo.image == 7).all()
    assert geo.transform @ (50, 25) == UTM_TRANSFORM @ (200, 100)  # same far corner
    assert geo.transform @ (0, 0) == UTM_TRANSFORM @ (0, 0)
    assert geo.source["ground_resolution_m"] == pytest.approx(40.0, rel=1e-3)


def test_iter_windows_cover_the_raster_exactly():
    height, width, size, overlap = 1000, 2100, 512, 64
    seen = np.zeros((height, width), np.int32)
    windows = list(iter_windows(height, width, size, overlap))
    for w in windows:
        assert w.width == size and w.height == size  # no slivers: the last ones shift back
        seen[w.toslices()] += 1
    assert seen.min() >= 1
    assert max(w.col_off + w.width for w in windows) == width
    assert list(iter_windows(100, 80, 512, 64))[0].toslices() == (slice(0, 100), slice(0, 80))


# --- bad input --------------------------------------------------------------------------------


def test_corrupt_file(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00" + b"not a tiff at all" * 50)
    with pytest.raises(GeoError, match="junk.tif cannot be read as a raster"):
        read_raster(junk)


def test_truncated_geotiff(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (3, 256, 256), dtype=np.uint8)
    full = write_raster(tmp_path / "full.tif", data, UTM, UTM_TRANSFORM, compress="deflate",
                        tiled=True, blockxsize=64, blockysize=64).read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(GeoError, match="cut.tif (is damaged|cannot be read)"):
        read_raster(cut)


def test_unknown_crs(tmp_path):
    local = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]')
    path = write_raster(tmp_path / "local.tif", np.zeros((3, 8, 8), np.uint8), local,
                        UTM_TRANSFORM)
    with pytest.raises(GeoError, match="cannot be related to longitude/latitude.*Reproject"):
        read_raster(path)


@pytest.mark.parametrize("bands, message", [((5,), "band 5 requested but .* 4 band"),
                                            ((1, 2), "give 3 band numbers")])
def test_bad_band_choice(rgbn16, bands, message):
    with pytest.raises(GeoError, match=message):
        read_raster(rgbn16[0], bands=bands)


def test_missing_file(tmp_path):
    with pytest.raises(GeoError, match="no such file"):
        read_raster(tmp_path / "nope.tif")
