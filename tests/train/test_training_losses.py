"""The losses on hand-made logits and masks, values computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from segearth.losses import (
    LossConfig,
    answer_loss,
    dice_loss,
    mask_loss,
    pixel_loss,
    point_sample,
    training_loss,
    uncertain_points,
)
from segearth.model import MaskOutput, SegEarthOutput
from segearth.model.segearth_r1 import answer_rows

SMALL = LossConfig(num_points=256)


def test_bce_and_dice_at_zero_logits():
    logits = torch.zeros(1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert pixel_loss(logits, target, SMALL).item() == pytest.approx(math.log(2))
    # P = 0.5 everywhere: 1 - (2 * 1 + 1) / (2 + 2 + 1)
    assert dice_loss(logits, target).item() == pytest.approx(0.4)


def test_focal_at_zero_logits():
    logits = torch.zeros(1, 2)
    target = torch.tensor([[1.0, 0.0]])
    focal = LossConfig(mask_kind="focal")
    # p_t = 0.5 for both; alpha_t 0.25 and 0.75; (1 - p_t)^2 = 0.25
    expected = (0.25 + 0.75) / 2 * math.log(2) * 0.25
    assert pixel_loss(logits, target, focal).item() == pytest.approx(expected)


def test_dice_smoothing_makes_empty_on_empty_zero():
    logits = torch.full((1, 8), -30.0)
    assert dice_loss(logits, torch.zeros(1, 8)).item() == pytest.approx(0.0, abs=1e-6)


def test_point_sample_reads_pixel_centres():
    values = torch.arange(16.0).view(1, 1, 4, 4)
    # pixel (row 1, col 2) has its centre at x = 2.5 / 4, y = 1.5 / 4
    coords = torch.tensor([[[2.5 / 4, 1.5 / 4], [0.5 / 4, 3.5 / 4]]])
    assert point_sample(values, coords).tolist() == [[[6.0, 12.0]]]


def test_uncertain_points_prefer_the_decision_boundary():
    torch.manual_seed(0)
    logits = torch.full((2, 1, 16, 16), 10.0)
    logits[:, :, :, :4] = 0.0  # uncertain strip: x < 0.25
    config = LossConfig(num_points=400)
    coords = uncertain_points(logits, config)
    assert coords.shape == (2, 400, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    important = coords[:, : int(400 * config.importance_sample_ratio)]
    assert (important[..., 0] < 0.26).float().mean() > 0.95
    assert not coords.requires_grad


def test_mask_loss_perfect_and_wrong_on_an_empty_target():
    torch.manual_seed(0)
    target = torch.zeros(2, 32, 32)
    right = mask_loss(torch.full((2, 8, 8), -20.0), target, SMALL)
    # not exactly 0: the most uncertain points are at the corners, where zero padding halves logits
    assert right.item() == pytest.approx(0.0, abs=0.1)
    logits = torch.full((2, 8, 8), 20.0, requires_grad=True)
    wrong = mask_loss(logits, target, SMALL)
    # an empty target is still supervised: BCE about 20 (less where the border pads with zeros)
    assert 5.0 * 15 < wrong.item() < 5.0 * 20 + 5.0
    wrong.backward()
    assert logits.grad.abs().sum() > 0


def test_answer_rows_are_shifted_by_one_and_their_loss():
    labels = torch.tensor([[-100, 3, 1, -100]])
    hidden = torch.arange(4.0)[None, :, None]  # (1, 4, 1): each state holds its position
    rows, targets = answer_rows(hidden, labels)
    assert rows[:, 0].tolist() == [0.0, 1.0] and targets.tolist() == [3, 1]  # the state at p predicts p + 1
    assert answer_rows(hidden, torch.full((1, 4), -100))[0].shape == (0, 1)

    right = torch.full((2, 5), -10.0)
    right[0, 3] = right[1, 1] = 10.0
    assert answer_loss(right, targets).item() < 1e-3
    assert answer_loss(right.flip(0), targets).item() > 10
    assert answer_loss(torch.zeros(0, 5, requires_grad=True), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_total_sums_every_prediction_and_the_answer():
    torch.manual_seed(0)
    target = torch.zeros(1, 16, 16)
    prediction = torch.full((1, 1, 4, 4), 20.0)
    masks = MaskOutput([prediction, prediction, prediction], None)
    output = SegEarthOutput(masks, torch.zeros(2, 4), torch.tensor([2, 2]), torch.zeros(1, 1, 2),
                            torch.ones(1, 1, dtype=torch.bool))
    losses = training_loss(output, target, SMALL, with_answer=True)
    single = mask_loss(prediction[:, 0], target, SMALL)
    assert losses["mask"].item() == pytest.approx(3 * single.item(), rel=0.05)  # random points
    assert losses["answer"].item() == pytest.approx(math.log(4))
    assert losses["loss"].item() == pytest.approx(losses["mask"].item() + losses["answer"].item())
    assert "answer" not in training_loss(output, target, SMALL, with_answer=False)
