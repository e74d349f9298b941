"""Description projection (D-Projector): the description embeddings become one decoder query.

The pooled description and every description token are projected to latents; one
Perceiver-style block lets them attend to the res5 image tokens plus the pooled latent, and the
pooled latent's output, joined with its input projection, becomes the query. (The paper says
multi-scale features; the released code uses res5 only, and the weights expect that.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DProjectorConfig


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        inner = heads * dim_head
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """media (B, N, dim), latents (B, L, dim); latent 0 is the pooled description."""
        media = self.norm_media(media)
        latents = self.norm_latents(latents)
        context = torch.cat([media, latents[:, :1]], dim=1)  # keys: image tokens + pooled latent
        q = self.to_q(latents)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).flatten(2))


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class PerceiverBlocks(nn.Module):
    def __init__(self, config: DProjectorConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(config.dim, config.heads, config.dim_head),
                           _feed_forward(config.dim, config.ff_mult)])
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            latents = attn(media, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


def pool_description(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid description tokens (instruction and [SEG]): (B, L, D) -> (B, D)."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


class DProjector(nn.Module):
    """(description states, res5) -> one query (B, 1, query_dim)."""

    def __init__(self, config: DProjectorConfig, text_dim: int, image_dim: int, query_dim: int):
        super().__init__()
        self.text_projector = nn.Linear(text_dim, config.dim)
        self.origin_projector = nn.Linear(text_dim, config.dim)
        self.image_projector = nn.Linear(image_dim, config.dim)
        self.perceiver = PerceiverBlocks(config)
        self.query_projector = nn.Linear(2 * config.dim, query_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, res5: torch.Tensor) -> torch.Tensor:
        pooled = pool_description(states, mask)                          # (B, D)
        origin = self.origin_projector(pooled)[:, None]                   # (B, 1, dim)
        latents = self.text_projector(torch.cat([pooled[:, None], states], 1))  # (B, 1+L, dim)
        image = self.image_projector(res5.flatten(2).transpose(1, 2))     # (B, HW, dim)
        projected = self.perceiver(image, latents)[:, :1]                 # pooled latent only
        return self.query_projector(torch.cat([origin, projected], -1))   # (B, 1, query_dim)


class PooledProjector(nn.Module):
    """The D-Projector ablation (Table 5, off): a linear map of the pooled description."""

    def __init__(self, text_dim: int, query_dim: int):
        super().__init__()
        self.query_projector = nn.Linear(text_dim, query_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, res5: torch.Tensor) -> torch.Tensor:
        return self.query_projector(pool_description(states, mask))[:, None]
