"""The training losses, as the authors' code computes them (not as the paper's text says).

Mask loss, per decoder prediction (the output and every auxiliary one, summed): Mask2Former's
criterion with one target per sample, ``mask_weight`` x sigmoid BCE + ``dice_weight`` x dice
(+1 smoothing), both on ``num_points`` points of which ``importance_sample_ratio`` are the most
uncertain (-|logit|) of ``oversample_ratio`` x as many random ones, and the rest uniform; the
target is sampled at the same points on the full-resolution canvas; averaged over the batch.
The paper names focal + dice instead: ``mask_kind="focal"`` selects that.

Answer loss (reasoning data): token cross-entropy on the teacher-forced answer and its [SEG].

PSALM-style baseline (learned queries, ``MaskOutput.scores`` present): the one target goes to
the query with the lowest mask cost (bipartite matching with one target is an argmin), the
scores get a cross-entropy towards that query and the mask loss applies to it alone.

Empty targets need no case of their own: an all-zero target mask is supervised like any other.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import MaskOutput, SegEarthOutput


@dataclass
class LossConfig:
    """The authors' code values; the training config files override fields only to ablate."""

    mask_kind: str = "bce"  # "bce" (code, released weights) or "focal" (paper text)
    mask_weight: float = 5.0  # BCE or focal term
    dice_weight: float = 5.0
    answer_weight: float = 1.0
    #: Baseline only: cross-entropy of the query scores (Mask2Former's classification weight).
    score_weight: float = 2.0
    num_points: int = 112 * 112
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.mask_kind not in ("bce", "focal"):
            raise ValueError(f"mask_kind must be 'bce' or 'focal', not {self.mask_kind!r}")


# --- point sampling ------------------------------------------------------------------------------
def point_sample(values: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """values (N, C, H, W), coords (N, P, 2) as (x, y) in [0, 1] -> (N, C, P).

    Bilinear with zero padding and align_corners=False, so one point means the same place on
    the 1/4-resolution logits and on the full-resolution target (Mask2Former's point_sample).
    """
    grid = 2.0 * coords[:, :, None, :] - 1.0
    return F.grid_sample(values, grid.to(values.dtype), mode="bilinear", align_corners=False)[..., 0]


def uncertain_points(logits: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """logits (N, 1, h, w) -> (N, num_points, 2): the most uncertain of oversampled random
    points, topped up with uniform ones. No gradient flows through the choice."""
    n = logits.shape[0]
    sampled = int(config.num_points * config.oversample_ratio)
    important = int(config.num_points * config.importance_sample_ratio)
    with torch.no_grad():
        candidates = torch.rand(n, sampled, 2, device=logits.device)
        uncertainty = -point_sample(logits, candidates)[:, 0].abs()
        top = uncertainty.topk(important, dim=1).indices
        chosen = candidates.gather(1, top[..., None].expand(-1, -1, 2))
        uniform = torch.rand(n, config.num_points - important, 2, device=logits.device)
        return torch.cat([chosen, uniform], 1)


# --- per-point losses --------------------------------------------------------------------------
def point_losses(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """Weighted mask + dice loss over the last (point) axis; broadcasts, so the same function is
    the loss (N, P) vs (N, P) -> (N,) and the matching cost (B, Q, P) vs (B, 1, P) -> (B, Q)."""
    return (config.mask_weight * pixel_loss(logits, targets, config)
            + config.dice_weight * dice_loss(logits, targets))


def pixel_loss(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """Sigmoid BCE (or focal) averaged over points."""
    targets = targets.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if config.mask_kind == "bce":
        return bce.mean(-1)
    prob = logits.sigmoid()
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = config.focal_alpha * targets + (1 - config.focal_alpha) * (1 - targets)
    return (alpha_t * bce * (1 - p_t) ** config.focal_gamma).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - (2|P.T| + 1) / (|P| + |T| + 1) over points, P = sigmoid(logits)."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(-1) + 1
    return 1 - numerator / (prob.sum(-1) + targets.sum(-1) + 1)


# --- the terms ----------------------------------------------------------------------------------
def match_queries(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """Baseline: logits (B, Q, h, w), targets (B, H, W) -> (B,) the query of lowest mask cost,
    measured on uniform random points shared by all queries of a sample (Mask2Former's matcher)."""
    with torch.no_grad():
        coords = torch.rand(logits.shape[0], config.num_points, 2, device=logits.device)
        point_logits = point_sample(logits.float(), coords)  # (B, Q, P)
        point_targets = point_sample(targets[:, None].float(), coords)  # (B, 1, P)
        return point_losses(point_logits, point_targets, config).argmin(-1)


def mask_loss(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """One prediction: logits (B, h, w) vs targets (B, H, W) in {0, 1} -> batch-mean loss."""
    logits = logits[:, None].float()
    coords = uncertain_points(logits, config)
    point_logits = point_sample(logits, coords)[:, 0]
    point_targets = point_sample(targets[:, None].float(), coords)[:, 0]
    return point_losses(point_logits, point_targets, config).mean()


def answer_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy of the answer rows (`SegEarthOutput.answer_logits` (N, vocab) against
    `answer_targets` (N,)). Zero (with a graph) when no position is supervised."""
    if not targets.numel():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)


def segmentation_losses(masks: MaskOutput, targets: torch.Tensor, config: LossConfig) -> dict[str, torch.Tensor]:
    """Mask loss summed over every prediction; for the baseline also the score cross-entropy
    towards the query matched in the final prediction. Each prediction is matched on its own,
    as Mask2Former matches its auxiliary outputs."""
    targets = targets.float()
    batch = torch.arange(targets.shape[0], device=targets.device)
    total = targets.new_zeros(())
    matched = None
    for prediction in masks.predictions:
        if masks.scores is None:
            chosen = prediction[:, 0]
        else:
            matched = match_queries(prediction, targets, config)
            chosen = prediction[batch, matched]
        total = total + mask_loss(chosen, targets, config)
    losses = {"mask": total}
    if masks.scores is not None:  # `matched` belongs to the final prediction here
        losses["score"] = config.score_weight * F.cross_entropy(masks.scores.float(), matched)
    return losses


def training_loss(output: SegEarthOutput, targets: torch.Tensor, config: LossConfig,
                  with_answer: bool) -> dict[str, torch.Tensor]:
    """Every term by name plus their sum under ``"loss"``. ``targets`` (B, S, S) on the canvas."""
    losses = segmentation_losses(output.masks, targets, config)
    if with_answer:
        losses["answer"] = config.answer_weight * answer_loss(output.answer_logits, output.answer_targets)
    losses["loss"] = sum(losses.values())
    return losses
