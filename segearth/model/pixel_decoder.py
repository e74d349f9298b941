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
    2.5-3x faster at the released size on a CPU (README, "Speed and memory"). Training keeps
    `grid_sample`, whose backward is about 5x faster than embedding_bag's.
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


def _sample_with_embedding_bag(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                               weights: torch.Tensor) -> torch.Tensor:
    b, s, heads, d = value.shape
    q = locations.shape[1]
    index, corner_weights = _bilinear_corners(locations, shapes)  # (B, Q, heads, levels*points*4)
    corner_weights = corner_weights * weights.flatten(3).repeat_interleave(4, dim=-1)
    # one table row per (batch, head, position): (B*heads*S, d); one bag per (batch, head, query)
    table = value.transpose(1, 2).reshape(b * heads * s, d)
    index = index + (torch.arange(b * heads, device=value.device) * s).view(b, 1, heads, 1)
    sampled = F.embedding_bag(index.transpose(1, 2).flatten(0, 2), table, mode="sum",
                              per_sample_weights=corner_weights.transpose(1, 2).flatten(0, 2))
    return sampled.view(b, heads, q, d).transpose(1, 2).reshape(b, q, heads * d)


def _bilinear_corners(locations: torch.Tensor, shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The four neighbours of each location as rows of the levels' concatenated maps, and their
    bilinear weights (0 for a neighbour outside its map): (..., levels * points * 4) each."""
    size = torch.tensor([(w, h) for h, w in shapes], dtype=locations.dtype, device=locations.device)
    width = size[:, 0].long()[:, None]  # (levels, 1), to broadcast over points
    height = size[:, 1].long()[:, None]
    first_row = torch.tensor([0] + [h * w for h, w in shapes[:-1]], device=locations.device).cumsum(0)[:, None]
    pixel = locations * size[:, None, :] - 0.5  # align_corners=False: pixel centres at k + 0.5
    corner = pixel.floor()
    fraction = pixel - corner
    x0, y0 = corner[..., 0].long(), corner[..., 1].long()  # (..., levels, points)
    indices, weights = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        wx = fraction[..., 0] if dx else 1 - fraction[..., 0]
        wy = fraction[..., 1] if dy else 1 - fraction[..., 1]
        indices.append(torch.where(inside, first_row + y * width + x, 0))
        weights.append(wx * wy * inside)
    return torch.stack(indices, -1).flatten(-3), torch.stack(weights, -1).flatten(-3)


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
        b, q, _ = query.shape
        value = self.value_proj(source).unflatten(-1, (self.heads, -1))
        offsets = self.sampling_offsets(query).view(b, q, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(b, q, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(b, q, self.heads, self.levels, self.points)
        # locations in float32 whatever the model's dtype (see `deformable_sample`)
        normaliser = torch.tensor([(w, h) for h, w in shapes], dtype=torch.float32, device=query.device)
        locations = reference[:, :, None, :, None, :] + offsets.float() / normaliser[None, None, None, :, None, :]
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

    def forward(self, sources: list[torch.Tensor], positions: list[torch.Tensor]) -> torch.Tensor:
        shapes = [tuple(s.shape[-2:]) for s in sources]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in sources], 1)
        pos = torch.cat([p.flatten(1).transpose(0, 1)[None] + self.level_embed[i]
                         for i, p in enumerate(positions)], 1).to(src.dtype)
        reference = self._reference_points(shapes, src.device)  # float32, as the sampling
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
