"""Config files hold the paper's numbers; overrides, accumulation and the resumable batch stream."""
from __future__ import annotations

from pathlib import Path

import pytest

from segearth.errors import InputError
from segearth.training.config import load_config
from segearth.training.data import StepBatchSampler

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"


@pytest.mark.parametrize("name, steps, task, answer_loss", [
    ("earthreason", 2220, "reasoning", True),
    ("rrsisd", 7610, "referring", False),
    ("refsegrs", 5400, "referring", False),
])
def test_dataset_configs_hold_table_8(name, steps, task, answer_loss):
    config = load_config(CONFIGS / f"{name}.json", ["data_root=/data"])
    assert (config.max_steps, config.task, config.answer_loss) == (steps, task, answer_loss)
    assert config.learning_rate == 1e-4 and config.weight_decay == 0.0
    assert config.adam_betas == (0.9, 0.999)
    assert (config.lr_schedule, config.warmup_ratio) == ("cosine", 0.03)
    assert config.effective_batch_size == 16 and config.mixed_precision == "bf16"
    assert config.loss.mask_kind == "bce" and config.loss.num_points == 12544
    assert config.model.preset == "released" and config.init.pretrained_llm
    assert config.init.mask2former.endswith("model_final_54b88a.pkl")
    assert config.warmup_steps == round(0.03 * steps)


def test_overrides_and_accumulation():
    config = load_config(CONFIGS / "earthreason.json",
                         ["data_root=/data", "loss.mask_kind=focal", "per_device_batch_size=2", "init.mask2former=null"])
    assert config.loss.mask_kind == "focal" and config.init.mask2former is None
    assert config.accumulation_steps(1) == 8 and config.accumulation_steps(8) == 1
    with pytest.raises(InputError):
        config.accumulation_steps(3)
    with pytest.raises(InputError, match="data-root"):
        load_config(CONFIGS / "earthreason.json")
    with pytest.raises(InputError):
        load_config(CONFIGS / "earthreason.json", ["data_root=/data", "no_such_field=1"])


def test_model_config_of_the_presets():
    released = load_config(CONFIGS / "rrsisd.json", ["data_root=/data"]).model_config(vocab_size=50297)
    assert released.llm.hidden_size == 2048 and released.encoder.embed_dim == 128
    assert (released.task, released.answers) == ("referring", False)
    demo = load_config(CONFIGS / "demo.json").model_config(vocab_size=300)
    assert demo.llm.vocab_size == 300 and demo.image_size == 128 and demo.answers


def _stream(sampler, count):
    batches = iter(sampler)
    return [next(batches) for _ in range(count)]


def test_batch_stream_resumes_in_place_and_shards():
    full = _stream(StepBatchSampler(10, 2, num_processes=1, rank=0, seed=3), 12)
    assert all(sorted(sum(full[i:i + 5], [])) == list(range(10)) for i in (0, 5))  # epochs
    assert full[:5] != full[5:10]  # reshuffled each epoch
    assert _stream(StepBatchSampler(10, 2, 1, 0, seed=3, start=7), 5) == full[7:12]
    ranks = [_stream(StepBatchSampler(10, 2, 2, r, seed=3), 2) for r in (0, 1)]
    seen = sorted(sum(ranks[0] + ranks[1], []))
    assert seen == sorted(set(seen)) and len(seen) == 8  # disjoint shards, tail dropped
