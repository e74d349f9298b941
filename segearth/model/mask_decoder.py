"""Mask2Former's masked-attention decoder, queried by the description.

SegEarth-R1 replaces the learned mask queries with a single query made from the description
(paper Sec. 4.3): one query, one mask, no class scores, no matching. The learned queries remain
for the PSALM-style baseline of Table 5, where the description picks one of them.
Layer i reads multi-scale level i % 3, in the order masked cross-attention, self-attention,
FFN (all post-norm); each layer's prediction masks the next layer's cross-attention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MaskDecoderConfig
from .pixel_decoder import sine_position_encoding


class CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt, memory, memory_mask, pos, query_pos):
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, attn_mask=memory_mask,
                                  need_weights=False)[0]
        return self.norm(tgt + out)


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt, query_pos):
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])


class FFNLayer(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt):
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    LEVELS = 3

    def __init__(self, config: MaskDecoderConfig, mask_dim: int, learned_queries: bool):
        super().__init__()
        d, heads = config.hidden_dim, config.num_heads
        self.num_heads = heads
        self.level_embed = nn.Embedding(self.LEVELS, d)
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(d, heads) for _ in range(config.num_layers))
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(d, heads) for _ in range(config.num_layers))
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(d, config.ffn_dim) for _ in range(config.num_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.mask_embed = MLP(d, 3)
        if mask_dim != d:
            raise ValueError(f"mask_dim ({mask_dim}) must equal the decoder width ({d})")
        if learned_queries:  # PSALM-style baseline: learned queries and their positions
            self.query_feat = nn.Embedding(config.num_learned_queries, d)
            self.query_embed = nn.Embedding(config.num_learned_queries, d)

    def forward(self, queries: torch.Tensor, mask_features: torch.Tensor,
                multi_scale: list[torch.Tensor], query_pos: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """queries (B, Q, d); mask_features (B, d, H, W); multi_scale 3 x (B, d, h_i, w_i).

        Returns the mask logits of every prediction (before layer 0 and after each layer; the
        last is the output), each (B, Q, H, W), and the final query embeddings (B, Q, d).
        """
        b = queries.shape[0]
        sizes = [tuple(x.shape[-2:]) for x in multi_scale]
        memory = [x.flatten(2).transpose(1, 2) + self.level_embed.weight[i] for i, x in enumerate(multi_scale)]
        pos = [sine_position_encoding(*x.shape[-2:], x.shape[1], x.device).flatten(1).t()[None]
               .to(x.dtype).expand(b, -1, -1) for x in multi_scale]
        if query_pos is None:
            query_pos = torch.zeros_like(queries)  # the description query has no position

        output = queries
        logits, attn_mask = self._predict(output, mask_features, sizes[0])
        predictions = [logits]
        for i, (cross, self_attn, ffn) in enumerate(zip(self.transformer_cross_attention_layers,
                                                       self.transformer_self_attention_layers,
                                                       self.transformer_ffn_layers)):
            level = i % self.LEVELS
            output = cross(output, memory[level], attn_mask, pos[level], query_pos)
            output = self_attn(output, query_pos)
            output = ffn(output)
            logits, attn_mask = self._predict(output, mask_features, sizes[(i + 1) % self.LEVELS])
            predictions.append(logits)
        return predictions, self.decoder_norm(output)

    def _predict(self, output: torch.Tensor, mask_features: torch.Tensor, size: tuple[int, int]):
        """Mask logits, and the next cross-attention mask: attend only where sigmoid >= 0.5,
        except that a query masked everywhere attends everywhere."""
        embed = self.mask_embed(self.decoder_norm(output))
        logits = torch.einsum("bqc,bchw->bqhw", embed, mask_features)
        resized = F.interpolate(logits.detach().float(), size=size, mode="bilinear", align_corners=False)
        blocked = resized.sigmoid().flatten(2) < 0.5  # (B, Q, h*w)
        blocked &= ~blocked.all(-1, keepdim=True)
        attn_mask = blocked.repeat_interleave(self.num_heads, dim=0)  # (B*heads, Q, h*w)
        return logits, attn_mask
