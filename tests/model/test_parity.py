"""Numerical parity with the authors' code, stage by stage, on the parity fixtures.

The checkpoint is laid out as a released one (`llava_phi` config, fused Phi attention, no
lm_head bias) and loaded through `segearth.checkpoints.load`, so this also proves the
released-checkpoint conversion. Tolerances are the "recommended atol" column of
../shared/reference/parity/README.md.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segearth.checkpoints import load
from segearth.model import ImageFeatures, SegEarthR1
from segearth.model.d_projector import pool_description
from segearth.image_processing import logits_to_canvas, preprocess_image
from segearth.model.prompt import PromptSegment, splice_prompt

from ..conftest import PARITY

ATOL = {
    "swin": 5e-5, "connector_out": 2e-4, "llm_inputs_embeds": 2e-4, "llm_last_hidden": 2e-4,
    "llm_refer_hidden": 2e-4, "description": 5e-5, "pixel_decoder": 1e-4, "masks": 5e-4,
}
MAX_FLIPS = 105  # 0.01 % of the 1024 canvas
FLIP_BAND = 5e-3  # a flipped pixel must sit where the golden logit is this close to 0
PLACEHOLDER_KIND = {-200: "image", -204: "refer", -201: "seg", -205: "answer"}
CASES = ("case0", "case1", "case2")


def segments_from_ids(ids: list[int]) -> list[PromptSegment]:
    """The collated ids of the fixtures (placeholders as negative ids) -> prompt segments."""
    segments, text = [], []
    for i in ids:
        if i in PLACEHOLDER_KIND:
            if text:
                segments.append(PromptSegment("text", tuple(text)))
                text = []
            segments.append(PromptSegment(PLACEHOLDER_KIND[i]))
        else:
            text.append(i)
    if text:
        segments.append(PromptSegment("text", tuple(text)))
    return segments


def assert_close(name: str, mine: torch.Tensor, golden, atol: float) -> None:
    golden = torch.as_tensor(np.asarray(golden))
    assert mine.shape == golden.shape, f"{name}: shape {tuple(mine.shape)} vs {tuple(golden.shape)}"
    diff = (mine.float() - golden.float()).abs().max().item()
    assert diff <= atol, f"{name}: max |diff| {diff:.2e} > {atol:.0e}"


def assert_sampled(name: str, mine: torch.Tensor, case, atol: float) -> None:
    """Stages stored as 4096 samples plus mean/std."""
    assert tuple(mine.shape) == tuple(case[f"{name}__shape"]), name
    idx = torch.from_numpy(case[f"{name}__sample_idx"])
    assert_close(name, mine.reshape(-1)[idx], case[f"{name}__sample_val"], atol)
    assert abs(mine.float().mean().item() - float(case[f"{name}__mean"])) < 1e-4, f"{name} mean"
    assert abs(mine.float().std().item() / float(case[f"{name}__std"]) - 1) < 1e-4, f"{name} std"


@pytest.fixture(scope="module")
def model(parity_checkpoint) -> SegEarthR1:
    return load(parity_checkpoint)[0]


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("name", CASES)
def test_preprocessing_is_bit_exact(name):
    case = np.load(PARITY / "cases" / f"{name}.npz")
    pixels, geometry = preprocess_image(case["image_rgb"])
    assert np.array_equal(pixels.numpy(), case["pixel_values"])
    assert geometry.resized_height * geometry.resized_width > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_every_stage_matches_the_authors(model, name):
    case = np.load(PARITY / "cases" / f"{name}.npz")
    pixels = torch.from_numpy(case["pixel_values"])

    # encoder, connector
    features = model.encoder(pixels)
    assert_close("swin_res5", features["res5"], case["swin_res5"], ATOL["swin"])
    for level in ("res2", "res3", "res4"):
        assert_sampled(f"swin_{level}", features[level], case, ATOL["swin"])
    tokens = model.connector(features["res5"])
    assert_close("connector_out", tokens, case["connector_out"], ATOL["connector_out"])

    # prompt splicing and LLM
    spliced = splice_prompt(segments_from_ids(case["input_ids"][0].tolist()), model.llm.get_input_embeddings(),
                            tokens[0], case["token_refer_id"].tolist(), case["token_answer_id"].tolist())
    assert spliced.embeds.shape[0] == int(case["expanded_seq_len"])
    assert_sampled("llm_inputs_embeds", spliced.embeds[None], case, ATOL["llm_inputs_embeds"])
    hidden = model.llm.model(inputs_embeds=spliced.embeds[None]).last_hidden_state
    assert_close("llm_last_hidden", hidden, case["llm_last_hidden"], ATOL["llm_last_hidden"])
    refer = hidden[:, spliced.refer]
    assert list(range(spliced.refer.start, spliced.refer.stop)) == case["refer_token_positions"].tolist()
    assert_close("llm_refer_hidden", refer[0], case["llm_refer_hidden"], ATOL["llm_refer_hidden"])

    # description projection, fed with the golden refer states (stage isolation)
    states = torch.from_numpy(case["llm_refer_hidden"])[None]
    mask = torch.ones(states.shape[:2], dtype=torch.bool)
    res5 = torch.from_numpy(case["swin_res5"])
    dp = model.d_projector
    pooled = pool_description(states, mask)
    assert_close("description_pooled", pooled, case["description_pooled"], ATOL["description"])
    assert_close("origin_seg_proj", dp.origin_projector(pooled)[:, None], case["origin_seg_proj"], ATOL["description"])
    latents = dp.text_projector(torch.cat([pooled[:, None], states], 1))
    assert_close("text_proj", latents, case["text_proj"], ATOL["description"])
    image_tokens = dp.image_projector(res5.flatten(2).transpose(1, 2))
    assert_sampled("local_vision_proj", image_tokens, case, ATOL["description"])
    assert_close("d_projector_out", dp.perceiver(image_tokens, latents)[:, :1], case["d_projector_out"],
                 ATOL["description"])
    assert_close("seg_embedding", model.describe(states, mask, res5), case["seg_embedding"], ATOL["description"])

    # pixel decoder on our own encoder features
    mask_features, multi_scale = model.pixel_decoder(features)
    memory = torch.cat([m.flatten(2).transpose(1, 2) for m in multi_scale], 1)
    assert_sampled("msda_memory", memory, case, ATOL["pixel_decoder"])
    for i, level in enumerate(multi_scale):
        assert_sampled(f"multi_scale_{i}", level, case, ATOL["pixel_decoder"])
    assert_sampled("mask_features", mask_features, case, ATOL["pixel_decoder"])

    # mask decoder from the golden query
    out = model.decode(torch.from_numpy(case["seg_embedding"]),
                       ImageFeatures(features["res5"], tokens, mask_features, multi_scale))
    assert len(out.predictions) == 10
    assert_close("aux_pred_masks", torch.stack(out.predictions[:-1]), case["aux_pred_masks"], ATOL["masks"])
    assert_close("pred_masks", out.predictions[-1], case["pred_masks"], ATOL["masks"])

    # final mask on the 1024 canvas
    upsampled = logits_to_canvas(out.predictions[-1])
    assert_sampled("upsampled_logits", upsampled, case, ATOL["masks"])
    golden_logits = logits_to_canvas(torch.from_numpy(case["pred_masks"]))[0, 0].numpy()
    golden_mask = np.unpackbits(case["final_mask_packbits"])[: 1024 * 1024].reshape(1024, 1024).astype(bool)
    flipped = (upsampled[0, 0].numpy() > 0) != golden_mask
    assert flipped.sum() <= MAX_FLIPS
    assert np.all(np.abs(golden_logits[flipped]) < FLIP_BAND)
