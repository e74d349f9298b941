"""Token-compression connector (paper Eq. 4): ``depth`` x (3x3 stride-2 conv, LayerNorm), then a
1x1 conv into the LLM's width. No activations, as in the released `SparseConv_1`.

The LayerNorms normalise jointly over (C, H, W) with a per-element affine, which is why a
checkpoint is tied to its canvas size. depth 0 is a plain 1x1 projection (1024 tokens at 1024).
"""
from __future__ import annotations

import torch
from torch import nn


class TokenCompressionConnector(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, depth: int, grid: int):
        """`grid` is the side of the res5 map (canvas / 32)."""
        super().__init__()
        self.depth = depth
        channels = in_channels
        for i in range(1, depth + 1):
            grid = (grid + 1) // 2
            self.add_module(f"proj{i}", nn.Conv2d(channels, out_channels, 3, stride=2, padding=1))
            self.add_module(f"norm{i}", nn.LayerNorm([out_channels, grid, grid]))
            channels = out_channels
        self.fc = nn.Conv2d(channels, out_channels, 1)

    def forward(self, res5: torch.Tensor) -> torch.Tensor:
        """(B, C5, g, g) -> visual tokens (B, (g / 2^depth)^2, D), row-major over the grid."""
        x = res5
        for i in range(1, self.depth + 1):
            x = getattr(self, f"norm{i}")(getattr(self, f"proj{i}")(x))
        return self.fc(x).flatten(2).transpose(1, 2)
