"""The deformable-attention sampler: its inference kernel (`embedding_bag`) and its training
kernel (`grid_sample`) give the same numbers, and both follow the bilinear rule of the authors'
CUDA op (zero padding, align_corners=False), checked on a value map that is a linear function of
the position, where bilinear sampling is exact."""
from __future__ import annotations

import torch

from segearth.model.pixel_decoder import deformable_sample

SHAPES = [(3, 5), (6, 10), (12, 20)]  # three levels, not square
B, HEADS, D, POINTS, Q = 2, 4, 8, 3, 50


def inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(B, s, HEADS, D, generator=generator, dtype=torch.float64)
    # [-0.15, 1.15]: a share of samples falls partly or wholly outside the map (zero padding)
    locations = torch.rand(B, Q, HEADS, len(SHAPES), POINTS, 2, generator=generator, dtype=torch.float64) * 1.3 - 0.15
    locations[0, 0, 0, :, 0] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # on the maps' edges
    weights = torch.rand(B, Q, HEADS, len(SHAPES), POINTS, generator=generator, dtype=torch.float64)
    return value, locations, weights


def sample_both_ways(value, locations, weights):
    """(inference kernel's output, training kernel's output and input gradients)."""
    with torch.no_grad():
        inferred = deformable_sample(value, SHAPES, locations, weights)
    leaves = [t.clone().requires_grad_() for t in (value, locations, weights)]
    trained = deformable_sample(leaves[0], SHAPES, leaves[1], leaves[2])
    return inferred, trained, leaves


def test_inference_and_training_kernels_agree():
    inferred, trained, _ = sample_both_ways(*inputs())
    assert inferred.shape == trained.shape == (B, Q, HEADS * D)
    torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=1e-12)
    value, locations, weights = inputs()
    with torch.no_grad():
        outside = deformable_sample(value, SHAPES, torch.full_like(locations, 1.2), weights)
    assert torch.count_nonzero(outside) == 0


def linear_map(a: float, c: float) -> torch.Tensor:
    """Value a*x + c*y at every pixel centre (x, y in pixels, from 0), the same for every
    batch item, head and channel: (B, S, heads, d)."""
    rows = []
    for h, w in SHAPES:
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
        rows.append((a * x + c * y).flatten())
    return torch.cat(rows)[None, :, None, None].expand(B, -1, HEADS, D).contiguous()


def test_bilinear_rule_on_a_linear_map():
    """Inside the pixel centres' hull a bilinear sample of a*x + c*y is exact: with
    align_corners=False a location u in [0, 1] is at pixel u * size - 0.5."""
    value = linear_map(2.0, -3.0)
    generator = torch.Generator().manual_seed(4)
    size = torch.tensor([(w, h) for h, w in SHAPES], dtype=torch.float64)  # (levels, 2) as (x, y)
    pixels = torch.rand(B, Q, HEADS, len(SHAPES), POINTS, 2, generator=generator, dtype=torch.float64) * (size[:, None] - 1)
    locations = (pixels + 0.5) / size[:, None]
    weights = torch.zeros(B, Q, HEADS, len(SHAPES), POINTS, dtype=torch.float64)
    weights[..., 1, 2] = 1.0  # read level 1, point 2 only
    expected = 2.0 * pixels[..., 1, 2, 0] - 3.0 * pixels[..., 1, 2, 1]  # (B, Q, heads)
    expected = expected[..., None].expand(-1, -1, -1, D).flatten(2)
    inferred, trained, _ = sample_both_ways(value, locations, weights)
    torch.testing.assert_close(inferred, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(trained.detach(), expected, rtol=0, atol=1e-9)


def test_training_kernel_gradients_are_right():
    """The location gradient of a sample of a*x + c*y is (a * width, c * height) per unit of
    location, times the weight; the weight gradient is the sample itself."""
    value = linear_map(2.0, -3.0)
    _, locations, _ = inputs(1)
    locations = locations.clamp(0.2, 0.8)  # inside the pixel centres' hull of every level
    weights = torch.rand(B, Q, HEADS, len(SHAPES), POINTS, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    _, trained, (_, location_leaf, weight_leaf) = sample_both_ways(value, locations, weights)
    trained.sum().backward()
    size = torch.tensor([(w, h) for h, w in SHAPES], dtype=torch.float64)
    slope = torch.tensor([2.0, -3.0], dtype=torch.float64) * size  # (levels, 2)
    torch.testing.assert_close(location_leaf.grad, D * weights[..., None] * slope[:, None], rtol=1e-9, atol=1e-9)
    pixel = locations * size[:, None] - 0.5
    torch.testing.assert_close(weight_leaf.grad, D * (2.0 * pixel[..., 0] - 3.0 * pixel[..., 1]), rtol=1e-9, atol=1e-9)


def test_bf16_values_are_sampled_in_float32_and_returned_in_bf16():
    value, locations, weights = inputs(3)
    with torch.no_grad():
        ours = deformable_sample(value.bfloat16(), SHAPES, locations.float(), weights.bfloat16())
        exact = deformable_sample(value.bfloat16().double(), SHAPES, locations, weights.bfloat16().double())
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.double(), exact, rtol=1e-2, atol=2e-2)


def test_locations_far_outside_or_nan_read_zeros():
    """The inference kernel clamps locations onto a zero border around each map; a location
    far outside (or NaN, from a broken checkpoint) must read zeros, never another map's rows."""
    value, locations, weights = inputs(6)
    locations[0, :5] = float("nan")
    locations[1, :5], locations[1, 5:10] = 1e6, -1e6
    locations[1, 10:15, ..., 0] = 1.0 + 0.6 / 5  # >= 0.6 px past every map's right edge
    with torch.no_grad():
        ours = deformable_sample(value, SHAPES, locations, weights)
    assert torch.count_nonzero(ours[0, :5]) == 0 and torch.count_nonzero(ours[1, :15]) == 0
    kept = locations.clone()
    kept[0, :5] = 0.5
    trained = deformable_sample(value.requires_grad_(), SHAPES, kept, weights).detach()
    torch.testing.assert_close(ours[0, 5:], trained[0, 5:], rtol=0, atol=1e-12)
    torch.testing.assert_close(ours[1, 15:], trained[1, 15:], rtol=0, atol=1e-12)
