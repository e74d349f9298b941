"""Initialisation: the Mask2Former converter on a small detectron2-style pickle, the pretrained
LLM and tokenizer from a local folder (as from the hub), and the demo's own BPE tokenizer."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from segearth import constants
from segearth.config import EncoderConfig, SegEarthConfig
from segearth.errors import CheckpointError
from segearth.model import SegEarthR1
from segearth.tokenization import description_ids, prompt_segments
from segearth.training.config import load_config
from segearth.training.initialise import initialise
from segearth.training.mask2former import load_mask2former
from segearth.training.tokenizer import train_bpe_tokenizer, training_texts

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"
TEXTS = ["Where could a plane land safely in this area?", "The runway is suitable for landing.",
         "Where could ducks rest in this area?", "The pond holds water for animals and crops."] * 20


def detectron2_name(ours: str) -> str | None:
    """Our vision name -> Mask2Former's (the inverse of the converter, written out by hand)."""
    m = re.match(r"pixel_decoder\.(adapter_1|layer_1)\.(\d)\.(weight|bias)$", ours)
    if m:
        layer, index, kind = m.groups()
        if index == "0":
            return None if kind == "bias" else f"sem_seg_head.pixel_decoder.{layer}.weight"
        return f"sem_seg_head.pixel_decoder.{layer}.norm.{kind}"
    for ours_prefix, theirs in (("encoder.", "backbone."), ("pixel_decoder.", "sem_seg_head.pixel_decoder."),
                                ("mask_decoder.", "sem_seg_head.predictor.")):
        if ours.startswith(ours_prefix):
            return theirs + ours[len(ours_prefix):]
    return None


def write_fake_mask2former(path: Path, source: SegEarthR1, queries: int = 8) -> None:
    weights = {}
    for key, tensor in source.state_dict().items():
        name = detectron2_name(key)
        if name is not None:
            weights[name] = tensor.numpy().copy()
    d = source.config.mask_decoder.hidden_dim
    rng = np.random.default_rng(0)
    weights.update({  # what the real file has and no SegEarth-R1 variant uses (or only the baseline)
        "sem_seg_head.predictor.class_embed.weight": rng.standard_normal((134, d)).astype(np.float32),
        "sem_seg_head.predictor.class_embed.bias": np.zeros(134, np.float32),
        "sem_seg_head.predictor.query_feat.weight": rng.standard_normal((queries, d)).astype(np.float32),
        "sem_seg_head.predictor.query_embed.weight": rng.standard_normal((queries, d)).astype(np.float32),
        "backbone.layers.0.blocks.0.attn.relative_position_index": np.zeros((16, 16), np.int64),
        "criterion.empty_weight": np.ones(134, np.float32),
        "pixel_mean": np.zeros((3, 1, 1), np.float32),
    })
    with open(path, "wb") as file:
        pickle.dump({"model": weights, "__author__": "test", "matching_heuristics": True}, file, protocol=2)


def test_mask2former_vision_weights_load(tmp_path):
    torch.manual_seed(0)
    source = SegEarthR1(SegEarthConfig.tiny())
    write_fake_mask2former(tmp_path / "m2f.pkl", source)
    target = SegEarthR1(SegEarthConfig.tiny())
    llm_before = {k: v.clone() for k, v in target.llm.state_dict().items()}
    load_mask2former(target, str(tmp_path / "m2f.pkl"))
    theirs, ours = source.state_dict(), target.state_dict()
    for key in ours:
        if key.startswith(("encoder.", "pixel_decoder.", "mask_decoder.")):
            if key.endswith(("adapter_1.0.bias", "layer_1.0.bias")):
                assert not ours[key].any(), key  # detectron2 has no bias there
            else:
                assert torch.equal(ours[key], theirs[key]), key
    assert all(torch.equal(v, llm_before[k]) for k, v in target.llm.state_dict().items())

    baseline = SegEarthR1(SegEarthConfig.tiny(use_description_query=False, use_d_projector=False))
    load_mask2former(baseline, str(tmp_path / "m2f.pkl"))  # the baseline keeps the queries
    assert baseline.mask_decoder.query_feat.weight.abs().sum() > 0


def test_mask2former_mismatch_and_unsafe_pickles_are_refused(tmp_path):
    write_fake_mask2former(tmp_path / "m2f.pkl", SegEarthR1(SegEarthConfig.tiny()))
    wider = SegEarthR1(SegEarthConfig.tiny(image_size=256))
    wider_swin = SegEarthR1(SegEarthConfig.tiny(encoder=EncoderConfig(
        embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.0)))
    load_mask2former(wider, str(tmp_path / "m2f.pkl"))  # canvas size does not change the weights
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_mask2former(wider_swin, str(tmp_path / "m2f.pkl"))

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with open(tmp_path / "evil.pkl", "wb") as file:
        pickle.dump({"model": {"x": Exploit()}}, file)
    with pytest.raises(CheckpointError, match="refusing"):
        load_mask2former(SegEarthR1(SegEarthConfig.tiny()), str(tmp_path / "evil.pkl"))
    assert not marker.exists()


def base_tokenizer():
    """A small byte-level BPE without SegEarth-R1's tokens, standing in for Phi-1.5's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(TEXTS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")


def test_pretrained_llm_and_tokenizer_from_a_folder(tmp_path):
    from transformers import AutoModelForCausalLM

    tokenizer = base_tokenizer()
    base_size = len(tokenizer)
    config = load_config(CONFIGS / "demo.json", [
        "init.bpe_vocab_size=null", "init.pretrained_llm=true", f"init.llm_source={tmp_path / 'llm'}"])
    torch.manual_seed(0)
    pretrained = AutoModelForCausalLM.from_config(config.model_config(vocab_size=base_size).llm.to_transformers())
    pretrained.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")

    model, tok = initialise(config, [])
    assert len(tok) == base_size + 2 == model.config.llm.vocab_size
    assert tok.convert_tokens_to_ids([constants.PAD_TOKEN, constants.SEG_TOKEN]) == [base_size, base_size + 1]
    assert tok.pad_token == constants.PAD_TOKEN
    ours, theirs = model.llm.state_dict(), pretrained.state_dict()
    for key, value in theirs.items():
        if key in ("model.embed_tokens.weight", "lm_head.weight", "lm_head.bias"):
            assert torch.equal(ours[key][:base_size], value), key
            assert ours[key].shape[0] == base_size + 2
        else:
            assert torch.equal(ours[key], value), key


def test_demo_tokenizer_saves_and_loads_with_auto_tokenizer(tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from segearth.data.types import Sample

    samples = [Sample("a", Path("a.png"), [TEXTS[0]], [TEXTS[1]])]
    tokenizer = train_bpe_tokenizer(training_texts(samples) + TEXTS, vocab_size=400)
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert isinstance(loaded, PreTrainedTokenizerFast)
    assert len(loaded) <= 400 and loaded.eos_token == "<|endoftext|>"
    assert loaded.convert_tokens_to_ids(constants.SEG_TOKEN) == len(loaded) - 1
    ids = description_ids(loaded, TEXTS[0])
    assert ids[-1] == len(loaded) - 1
    assert loaded.decode(ids[:-1]) == " " + TEXTS[0]
    assert loaded.decode(loaded("héllo wörld 42")["input_ids"]) == "héllo wörld 42"  # byte level: no unknowns
    assert [s.kind for s in prompt_segments(loaded, "reasoning")].count("refer") == 1


@pytest.mark.parametrize("train_encoder", [False, True])
def test_the_encoder_is_trained_only_when_the_config_asks(synthetic_root, tmp_path, train_encoder):
    """The authors freeze the Swin; the demo recipe trains it (``train_encoder``)."""
    from types import SimpleNamespace

    from segearth.data.registry import load_dataset
    from segearth.training.loop import _model_and_tokenizer

    from training_helpers import tiny_config

    config = tiny_config(synthetic_root, tmp_path, f"train_encoder={str(train_encoder).lower()}",
                         "all_questions=true")
    samples = load_dataset("earthreason", synthetic_root, "train", config.all_questions)
    assert len(samples) > 240  # every question of the 240 scenes is its own sample
    model, _ = _model_and_tokenizer(config, SimpleNamespace(is_main_process=False), tmp_path, None, samples)
    assert {p.requires_grad for p in model.encoder.parameters()} == {train_encoder}
    assert all(p.requires_grad for p in model.mask_decoder.parameters())


@pytest.mark.parametrize("answer_empty_targets", [True, False])
def test_empty_targets_teach_the_empty_answer_only_when_the_config_asks(synthetic_root, tmp_path,
                                                                         answer_empty_targets):
    """With ``answer_empty_targets`` off an empty target trains its mask alone: its prompt stops
    before the answer, so a batch mixing it with a present target supervises the present one's
    answer tokens only (the mask still is supervised for both)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from segearth.data.registry import load_dataset
    from segearth.tokenization import answer_ids, prompt_segments
    from segearth.training.data import SegmentationDataset, collate
    from segearth.training.loop import _model_and_tokenizer

    from training_helpers import tiny_config

    config = tiny_config(synthetic_root, tmp_path, f"answer_empty_targets={str(answer_empty_targets).lower()}")
    assert config.answer_empty_targets is answer_empty_targets
    present = load_dataset("earthreason", synthetic_root, "train")[0]
    empty = replace(present, answers=[], mask=np.zeros_like(present.mask))
    model, tokenizer = _model_and_tokenizer(config, SimpleNamespace(is_main_process=False), tmp_path, None, [present])
    dataset = SegmentationDataset([present, empty], tokenizer, model.config.image_size, True,
                                  config.answer_empty_targets)
    taught = dataset[1][2].answer_ids
    assert taught == (answer_ids(tokenizer, constants.EMPTY_TARGET_ANSWER) if answer_empty_targets else None)
    batch = collate([dataset[0], dataset[1]])
    output = model(batch.pixel_values, prompt_segments(tokenizer, config.task), batch.prompts)
    expected = answer_ids(tokenizer, present.answer) + (taught or [])
    assert output.answer_targets.tolist() == expected
    assert output.masks.logits.shape[0] == 2
