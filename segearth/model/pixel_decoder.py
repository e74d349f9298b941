"""Mask2Former's multi-scale deformable-attention pixel decoder, in plain PyTorch.

Deformable attention's bilinear sampling (zero padding, align_corners=False) is done with
`grid_sample` and `embedding_bag` rather than the compiled CUDA op of the original code: same
numbers, no build step (see `deformable_sample`). Parameter names follow
Mask2Former so its COCO checkpoint and the released SegEarth-R1 weights load without renaming.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PixelDecoderConfig


def sine_position_encoding(height: int, width: int, channels: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised sine encoding, (channels, H, W), always computed in float32."""
    feats = channels // 2
    scale, eps = 2 * math.pi, 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, :].expand(height, width)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    dim_t = torch.arange(feats, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)
    pos_x, pos_y = x[..., None] / dim_t, y[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)


def deformable_sample(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
    """value (B, S, heads, d); locations (B, Q, heads, levels, points, 2) in [0, 1];
    weights (B, Q, heads, levels, points) -> (B, Q, heads * d).

    Each head's value map is sampled bilinearly at every location (zero padding,
    align_corners=False: `grid_sample`'s rule, and the CUDA op's) and the samples are summed
    with their attention weights. Sampled in the locations' dtype (float32 in a bf16 model:
    bf16's 8-bit mantissa would move a location on the finest level by up to half a pixel),
    returned in the value's dtype.

    Two kernels for the one formula, picked by whether gradients are wanted; both give the same
    numbers to 1e-6 (tests/model/test_deformable_sampling.py). Inference gathers with
    `embedding_bag`: `grid_sample` reads each channel strided by H*W and writes a
    (B*heads, d, Q, levels*points) tensor before weighting it, which is memory-bound, while
    embedding_bag reads each corner's d channels as one row and sums the weighted rows in place:
    the released size's deformable encoder runs 3.6x faster on a CPU (docs/speed.md). Training
    keeps `grid_sample`, whose backward is about 5x faster than embedding_bag's.
    """
    training = torch.is_grad_enabled() and any(t.requires_grad for t in (value, locations, weights))
    kernel = _sample_with_grid_sample if training else _sample_with_embedding_bag
    sampled = kernel(value.to(locations.dtype), shapes, locations, weights.to(locations.dtype))
    return sampled.to(value.dtype)


def _sample_with_grid_sample(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                             weights: torch.Tensor) -> torch.Tensor:
    b, _, heads, d = value.shape
    q = locations.shape[1]
    sampled = []
    for level, ((h, w), v) in enumerate(zip(shapes, value.split([h * w for h, w in shapes], dim=1))):
        v = v.flatten(2).transpose(1, 2).reshape(b * heads, d, h, w)
        grid = (2 * locations[:, :, :, level] - 1).transpose(1, 2).flatten(0, 1)  # (B*heads, Q, points, 2)
        sampled.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # (B*heads, d, Q, levels*points)
    w = weights.transpose(1, 2).reshape(b * heads, 1, q, -1)
    return (stacked * w).sum(-1).view(b, heads * d, q).transpose(1, 2)


#: Zero rows around each level's map in the inference kernel's table, (before, after) on each
#: axis: a location clamped to [-1, size] in pixels has all four corners on the map or its border.
_BORDER = (1, 2)


def _sample_with_embedding_bag(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                               weights: torch.Tensor) -> torch.Tensor:
    """One bag of levels*points*4 weighted table rows per (batch, query, head), in that order, so
    the output is already (B, Q, heads * d). Why it is shaped this way (each step was measured
    at the released size): the zero border replaces a mask per corner; every elementwise step
    runs on a contiguous (B*Q, heads*levels*points[*2]) view against a per-(head, level, point)
    pattern rather than broadcasting (levels, 1, 2) constants; indices are int32."""
    b, _, heads, d = value.shape
    q, levels, points = locations.shape[1], locations.shape[3], locations.shape[4]
    device = value.device
    table, rows, first_rows = _bordered_table(value, shapes)  # row ((b * rows + position) * heads + head)
    before, after = _BORDER
    padded_width = [w + before + after for _, w in shapes]

    size = _pattern([(w, h) for h, w in shapes], heads, points, locations.dtype, device)  # (x, y), as the locations
    line = _pattern(padded_width, heads, points, torch.int32, device) * heads  # rows from one line to the next
    origin = _pattern([(f + before * pw + before) * heads for f, pw in zip(first_rows, padded_width)], heads, points,
                      torch.int32, device, per_head=torch.arange(heads, dtype=torch.int32, device=device))
    step = torch.tensor([[0, heads, pw * heads, (pw + 1) * heads] for pw in padded_width],
                        dtype=torch.int32, device=device)  # the 4 corners from the top-left one
    step = step.T[:, :, None].expand(4, levels, points).reshape(4, -1)

    pixel = locations.reshape(b * q, -1) * size  # align_corners=False: pixel centres at k + 0.5
    pixel.sub_(0.5).nan_to_num_(nan=-1.0).clamp_(min=-1.0)  # NaN: zeros, and an index inside the table
    torch.minimum(pixel, size, out=pixel)
    corner = pixel.floor()
    fraction = pixel.sub_(corner).view(b * q, -1, 2)
    corner = corner.to(torch.int32).view(b * q, -1, 2)
    top_left = corner[..., 1] * line
    top_left.add_(corner[..., 0], alpha=heads).add_(origin)  # (B*Q, heads*levels*points)
    if b > 1:
        top_left.view(b, -1).add_(torch.arange(b, dtype=torch.int32, device=device)[:, None] * (rows * heads))
    bags = b * q * heads
    index = top_left.view(bags, 1, -1) + step  # (bags, 4, levels*points)
    fx, fy = fraction[..., 0].reshape(bags, -1), fraction[..., 1].reshape(bags, -1)
    attention = weights.reshape(bags, -1)
    wy0, wy1, wx0 = (1 - fy) * attention, fy * attention, 1 - fx
    corner_weights = torch.empty(bags, 4, fx.shape[-1], dtype=locations.dtype, device=device)
    for k, (wy, wx) in enumerate(((wy0, wx0), (wy0, fx), (wy1, wx0), (wy1, fx))):
        torch.mul(wy, wx, out=corner_weights[:, k])
    sampled = F.embedding_bag(index.view(bags, -1), table, mode="sum", per_sample_weights=corner_weights.view(bags, -1))
    return sampled.view(b, q, heads * d)


def _pattern(per_level: list, heads: int, points: int, dtype: torch.dtype, device: torch.device,
             per_head: torch.Tensor | int = 0) -> torch.Tensor:
    """Constants per level (plus one per head) laid out flat as (heads, levels, points, ...): an
    elementwise operand that lines up with a (..., heads, levels, points[, 2]) tensor's contiguous
    tail, which runs several times faster on a CPU than broadcasting a (levels, 1, 2) one."""
    t = torch.tensor(per_level, dtype=dtype, device=device)
    t = t.view(1, len(per_level), 1, -1) + torch.as_tensor(per_head, dtype=dtype, device=device).view(-1, 1, 1, 1)
    return t.expand(heads, len(per_level), points, t.shape[-1]).reshape(-1)


def _bordered_table(value: torch.Tensor, shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, int, list[int]]:
    """value (B, S, heads, d) with a zero border around each level's map (`_BORDER`), as one
    table of rows (B * rows * heads, d); also rows per batch item and each level's first row."""
    b, _, heads, d = value.shape
    before, after = _BORDER
    maps, first_rows, rows = [], [], 0
    for (h, w), v in zip(shapes, value.split([h * w for h, w in shapes], dim=1)):
        maps.append(F.pad(v.reshape(b, h, w, heads * d), (0, 0, before, after, before, after)).flatten(1, 2))
        first_rows.append(rows)
        rows += (h + before + after) * (w + before + after)
    return torch.cat(maps, 1).view(b * rows * heads, d), rows, first_rows


def _short_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, written out: on rows as short as levels * points (12) these
    three passes take a third of the time of `Tensor.softmax` on a CPU (same values to 2e-7)."""
    exp = (logits - logits.amax(-1, keepdim=True)).exp()
    return exp / exp.sum(-1, keepdim=True)


class MSDeformAttn(nn.Module):
    def __init__(self, dim: int, levels: int, heads: int, points: int):
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, reference: torch.Tensor, source: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        """reference: (1, Q, heads, levels, points, 2) in [0, 1], float32: expanded to every head
        and point by the caller, once for all layers (see `_pattern` for why)."""
        b, q, _ = query.shape
        value = self.value_proj(source).unflatten(-1, (self.heads, -1))
        offsets = self.sampling_offsets(query).view(b, q, self.heads, self.levels, self.points, 2)
        logits = self.attention_weights(query).view(b, q, self.heads, self.levels * self.points)
        # locations and weights in float32 whatever the model's dtype (see `deformable_sample`)
        weights = _short_softmax(logits.float()).view(b, q, self.heads, self.levels, self.points)
        normaliser = _pattern([(w, h) for h, w in shapes], self.heads, self.points, torch.float32, query.device)
        locations = reference + (offsets.float().view(b, q, -1) / normaliser).view_as(offsets)
        return self.output_proj(deformable_sample(value, shapes, locations, weights))


class DeformableEncoderLayer(nn.Module):
    """Post-norm: deformable self-attention, then a ReLU FFN."""

    def __init__(self, config: PixelDecoderConfig, levels: int):
        super().__init__()
        d = config.conv_dim
        self.self_attn = MSDeformAttn(d, levels, config.num_heads, config.num_points)
        self.norm1 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, d)
        self.norm2 = nn.LayerNorm(d)

    def forward(self, src, pos, reference, shapes):
        src = self.norm1(src + self.self_attn(src + pos, reference, src, shapes))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DeformableEncoder(nn.Module):
    def __init__(self, config: PixelDecoderConfig, levels: int):
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(config, levels) for _ in range(config.num_layers))


class DeformableTransformer(nn.Module):
    def __init__(self, config: PixelDecoderConfig, levels: int):
        super().__init__()
        self.level_embed = nn.Parameter(torch.zeros(levels, config.conv_dim))
        self.encoder = DeformableEncoder(config, levels)
        self.heads, self.points = config.num_heads, config.num_points

    def forward(self, sources: list[torch.Tensor], positions: list[torch.Tensor]) -> torch.Tensor:
        shapes = [tuple(s.shape[-2:]) for s in sources]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in sources], 1)
        pos = torch.cat([p.flatten(1).transpose(0, 1)[None] + self.level_embed[i]
                         for i, p in enumerate(positions)], 1).to(src.dtype)
        reference = self._reference_points(shapes, src.device)  # float32, as the sampling
        reference = reference[:, :, None, :, None].expand(-1, -1, self.heads, -1, self.points, -1).contiguous()
        for layer in self.encoder.layers:
            src = layer(src, pos, reference, shapes)
        return src

    @staticmethod
    def _reference_points(shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Pixel centres of every level, normalised to [0, 1]: (1, sum HW, levels, 2)."""
        points = []
        for h, w in shapes:
            ys, xs = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                    torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                                    indexing="ij")
            points.append(torch.stack((xs.reshape(-1) / w, ys.reshape(-1) / h), -1))
        return torch.cat(points, 0)[None, :, None].expand(-1, -1, len(shapes), -1)


def _conv_gn(cin: int, cout: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout))


class PixelDecoder(nn.Module):
    """{res2..res5} -> mask features (B, mask_dim, S/4, S/4) and the multi-scale memory
    [S/32, S/16, S/8] (B, conv_dim, h, w) the mask decoder attends to."""

    def __init__(self, config: PixelDecoderConfig, channels: tuple[int, ...]):
        super().__init__()
        d, groups = config.conv_dim, config.num_groups
        self.transformer_channels = list(reversed(channels[1:]))  # res5, res4, res3
        self.input_proj = nn.ModuleList(_conv_gn(c, d, 1, groups) for c in self.transformer_channels)
        self.transformer = DeformableTransformer(config, len(self.transformer_channels))
        self.adapter_1 = _conv_gn(channels[0], d, 1, groups)
        self.layer_1 = _conv_gn(d, d, 3, groups)
        self.mask_features = nn.Conv2d(d, config.mask_dim, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        names = ["res5", "res4", "res3"]
        sources = [proj(features[n]) for proj, n in zip(self.input_proj, names)]
        positions = [sine_position_encoding(*s.shape[-2:], s.shape[1], s.device) for s in sources]
        memory = self.transformer(sources, positions)  # (B, sum HW, d)
        b = memory.shape[0]
        multi_scale = [m.transpose(1, 2).reshape(b, -1, *s.shape[-2:])
                       for m, s in zip(memory.split([s.shape[-2] * s.shape[-1] for s in sources], 1), sources)]
        lateral = F.relu(self.adapter_1(features["res2"]))
        finest = F.interpolate(multi_scale[-1].float(), size=lateral.shape[-2:], mode="bilinear",
                               align_corners=False).to(lateral.dtype)
        fpn = F.relu(self.layer_1(lateral + finest))
        return self.mask_features(fpn), multi_scale
