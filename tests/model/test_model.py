"""Every ablation setting at toy size: shapes, a backward pass, a save/load round trip; and the
clear errors a bad checkpoint gets."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from segearth.checkpoints import load, save
from segearth.config import ConnectorConfig, LLMConfig, SegEarthConfig
from segearth.errors import CheckpointError
from segearth.losses import answer_loss
from segearth.model import PromptInputs, SegEarthR1
from segearth.model.prompt import PromptSegment

SEGMENTS = [PromptSegment("text", (1, 2, 3)), PromptSegment("image"), PromptSegment("text", (4,)),
            PromptSegment("refer"), PromptSegment("text", (5, 6)), PromptSegment("seg"),
            PromptSegment("answer"), PromptSegment("text", (7,))]
PROMPTS = [PromptInputs([8, 9, 10, 510], [11, 12, 510]), PromptInputs([8, 510], [13, 510])]

ABLATIONS = {
    # Table 7: connector depth d -> visual tokens at a 128 canvas (4x4 res5 grid)
    "d0": dict(connector=ConnectorConfig(depth=0)),
    "d1": dict(connector=ConnectorConfig(depth=1)),
    "d2": dict(connector=ConnectorConfig(depth=2)),
    # Table 5: components
    "no_d_projector": dict(use_d_projector=False),
    "learned_queries_with_d_projector": dict(use_description_query=False),
    "psalm_baseline": dict(use_description_query=False, use_d_projector=False),
    # Table 6: LLM family
    "qwen2": dict(llm=LLMConfig(family="qwen2", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                                intermediate_size=128, vocab_size=512, max_position_embeddings=512,
                                hidden_act="silu", layer_norm_eps=1e-6, tie_word_embeddings=True)),
}
VISUAL_TOKENS = {"d0": 16, "d1": 4, "d2": 1}


def build(name: str) -> SegEarthR1:
    torch.manual_seed(0)
    return SegEarthR1(SegEarthConfig.tiny(**ABLATIONS[name]))


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_shapes_backward_and_round_trip(name, tmp_path, e2e_tokenizer):
    model = build(name)
    pixels = torch.randn(2, 3, 128, 128)
    out = model(pixels, SEGMENTS, PROMPTS)

    queries = 1 if model.config.use_description_query else model.config.mask_decoder.num_learned_queries
    assert len(out.masks.predictions) == model.config.mask_decoder.num_layers + 1
    assert all(p.shape == (2, queries, 32, 32) for p in out.masks.predictions)
    assert out.masks.logits.shape == (2, 32, 32)
    assert (out.masks.scores is None) == model.config.use_description_query
    assert out.answer_logits.shape == (5, 512)  # the two answers and their [SEG]
    assert out.answer_targets.tolist() == [11, 12, 510, 13, 510]
    assert out.description_mask.sum(1).tolist() == [4, 2]
    if name in VISUAL_TOKENS:
        assert model.encode_image(pixels).visual_tokens.shape == (2, VISUAL_TOKENS[name], 64)

    loss = out.masks.logits.sigmoid().mean() + out.answer_logits.logsumexp(-1).mean()
    if out.masks.scores is not None:
        loss = loss + out.masks.scores.mean()
    loss.backward()
    trained = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    for part in ("encoder.", "connector.", "llm.", "d_projector.", "pixel_decoder.", "mask_decoder."):
        assert any(n.startswith(part) for n in trained), f"no gradient reaches {part}"

    model.eval()
    folder = save(model, tmp_path / name, e2e_tokenizer)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "segearth_r1"
    loaded, tokenizer, _ = load(folder)
    assert tokenizer.convert_tokens_to_ids("[SEG]") == 510
    assert loaded.config == model.config
    with torch.no_grad():
        a, b = model(pixels, SEGMENTS, PROMPTS), loaded(pixels, SEGMENTS, PROMPTS)
    for pa, pb in zip(a.masks.predictions, b.masks.predictions):
        assert torch.equal(pa, pb)
    assert torch.equal(a.answer_logits, b.answer_logits)


def test_released_architecture_matches_the_official_key_list():
    """Our conversion maps every official tensor onto a model built from the released config,
    and leaves nothing of ours unfilled: checked on names and shapes from the official list,
    without building a 1.6 B-parameter model (meta device)."""
    from segearth.checkpoints import RELEASED_UNUSED, convert_released

    from ..conftest import SHARED

    rows = [line.split("\t") for line in (SHARED / "reference" / "official_keys_full.tsv").read_text().splitlines()[1:]]
    official = {k: torch.empty(tuple(int(s) for s in shape.split(",")), device="meta") for k, shape, _ in rows}
    assert len(official) == 935
    with torch.device("meta"):
        model = SegEarthR1(SegEarthConfig.released())
    ours = {k: v.shape for k, v in model.state_dict().items()}
    converted = {k: v.shape for k, v in convert_released(official, num_heads=32).items()}
    assert set(ours) - set(converted) == {"llm.lm_head.bias"}  # zero-filled on load
    assert set(converted) <= set(ours)
    assert all(converted[k] == ours[k] for k in converted)
    dropped = [k for k in official if RELEASED_UNUSED.search(k)]
    assert len(dropped) == 24 + 1 + 4 + 2 * 2 * 2  # relative_position_index, seg_query, query tables, SEG/CLASS_proj
    assert sum(v.numel() for v in official.values()) == pytest.approx(1.589e9, rel=1e-3)


def test_fused_query_key_value_splits_into_q_k_v_per_head():
    """The released Phi layers fuse q, k and v with rows interleaved per head ([head][q|k|v]
    [head_dim]). Each row here holds 100 * head + 10 * part + row-in-head, so a swapped part or
    head shows in the slices' values (the slow parity test would be the only other witness)."""
    from segearth.checkpoints import convert_released

    heads, head_dim, hidden = 2, 3, 4
    codes = torch.tensor([100 * h + 10 * part + d for h in range(heads) for part in range(3)
                          for d in range(head_dim)], dtype=torch.float32)
    prefix = "model.layers.0.self_attn.query_key_value"
    state = {f"{prefix}.weight": codes[:, None].repeat(1, hidden), f"{prefix}.bias": codes.clone()}
    converted = convert_released(state, num_heads=heads)
    ours = "llm.model.layers.0.self_attn"
    for part, name in enumerate(("q_proj", "k_proj", "v_proj")):
        expected = torch.tensor([100 * h + 10 * part + d for h in range(heads) for d in range(head_dim)],
                                dtype=torch.float32)
        assert torch.equal(converted[f"{ours}.{name}.bias"], expected), name
        assert torch.equal(converted[f"{ours}.{name}.weight"], expected[:, None].repeat(1, hidden)), name
    assert len(converted) == 6


# --- bad checkpoints --------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path, e2e_tokenizer):
    return save(build("d1").eval(), tmp_path / "ckpt", e2e_tokenizer)


def test_missing_tensor_is_named(saved):
    state = load_file(str(saved / "model.safetensors"))
    del state["mask_decoder.decoder_norm.weight"]
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing \(1\): mask_decoder\.decoder_norm\.weight"):
        load(saved)


def test_wrong_shape_and_unexpected_tensors_are_named(saved):
    state = load_file(str(saved / "model.safetensors"))
    state["connector.fc.bias"] = torch.zeros(3)
    state["not.a.tensor.of.ours"] = torch.zeros(1)
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load(saved)
    assert "connector.fc.bias: checkpoint (3,) vs model (64,)" in str(err.value)
    assert "unexpected (1): not.a.tensor.of.ours" in str(err.value)


def test_truncated_file(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        load(saved)


class Payload:
    """Anything that is not a tensor: unpickling it would run code."""

    def __reduce__(self):
        return (print, ("pickle executed",))


def test_pickle_with_objects_is_refused(saved, capsys):
    (saved / "model.safetensors").unlink()
    with open(saved / "pytorch_model.bin", "wb") as f:
        pickle.dump({"weights": Payload()}, f)
    with pytest.raises(CheckpointError, match="not a plain tensor file"):
        load(saved)
    assert "pickle executed" not in capsys.readouterr().out


def test_plain_tensor_bin_loads_with_weights_only(saved):
    state = load_file(str(saved / "model.safetensors"))
    (saved / "model.safetensors").unlink()
    torch.save(state, saved / "pytorch_model.bin")
    model, _, _ = load(saved)
    assert torch.equal(model.state_dict()["connector.fc.bias"], state["connector.fc.bias"])


def test_cached_config_reads_folders_and_the_hub_cache_without_downloading(saved, tmp_path, monkeypatch):
    """The config a UI shows before loading: a folder's, or a hub checkpoint's already in the
    cache (the hub's snapshot layout, built here); None for anything else, never a download."""
    import huggingface_hub

    from segearth.checkpoints import cached_config

    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "mask_threshold": 0.35}))
    assert cached_config(saved).mask_threshold == 0.35
    snapshot = tmp_path / "hub" / "models--owner--ours" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({**config, "mask_threshold": 0.4}))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", None)  # a download would fail loudly
    assert cached_config("owner/ours").mask_threshold == 0.4
    assert cached_config("owner/not-cached") is None
    assert cached_config("not a hub id!") is None
    assert cached_config(tmp_path) is None  # a folder without config.json


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="model_type 'bert'"):
        load(tmp_path)


def test_text_shared_by_the_batch_is_read_once_with_the_same_outputs_and_gradients(monkeypatch):
    """The batch reads the system prompt once (3 of SEGMENTS' tokens) and shares its cache;
    every output and every gradient equals the prompts read whole."""
    model = build("d0")
    pixels = torch.randn(2, 3, 128, 128)
    calls: list[int] = []
    model.llm.model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["inputs_embeds"].shape[:2]),
                                              with_kwargs=True)

    def run():
        model.zero_grad()
        torch.manual_seed(1)  # the same drop-path draws in the Swin
        out = model(pixels, SEGMENTS, PROMPTS)
        (out.masks.logits.sigmoid().mean() + answer_loss(out.answer_logits, out.answer_targets)).backward()
        return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    shared, shared_grads = run()
    assert calls[0] == (1, 3) and calls[1][0] == 2
    monkeypatch.setattr(SegEarthR1, "_shared_opening", lambda self, segments, batch: ([], segments))
    whole, whole_grads = run()
    assert calls[2] == (2, calls[1][1] + 3)

    assert torch.equal(whole.answer_targets, shared.answer_targets)
    torch.testing.assert_close(whole.answer_logits, shared.answer_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole.description_states, shared.description_states, atol=1e-5, rtol=1e-5)
    for a, b in zip(whole.masks.predictions, shared.masks.predictions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == whole_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
