"""`auto` precision: the fastest CPU precision that passes `YARDSTICK` (bf16 only on CPUs with
native bf16 matrix units, simulated both ways); int8 on a CPU through PyTorch's own kernels."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from segearth import runtime as runtime_module
from segearth.errors import InputError
from segearth.metrics import intersection_union, sample_iou
from segearth.predictor import Predictor
from segearth.runtime import cpu_has_native_bf16, resolve_precision

from ..conftest import REPO
from .test_predictor import QUESTION

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, native", [
    ({"avx512f", "avx512_bf16"}, True),   # AMD Zen 4, Intel Cooper Lake
    ({"avx512f", "amx_bf16", "amx_tile"}, True),  # Intel Sapphire Rapids and later
    ({"avx2", "avx512f", "avx512bw"}, False),  # AVX-512 without bf16: emulated, slower than fp32
    (set(), False),  # flags unknown (not Linux): no guessing
])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert cpu_has_native_bf16(flags) is native


def test_auto_on_a_cpu_with_native_bf16(monkeypatch):
    """The fastest precision that passes the yardstick: int8 (bf16 vision), then bf16, then fp32."""
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    for passing, expected in (({"bf16", "int8"}, "int8"), ({"bf16"}, "bf16"), (set(), "fp32")):
        monkeypatch.setattr(runtime_module, "PASSES_YARDSTICK", frozenset(passing))
        assert resolve_precision("auto", CPU) == expected


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "avx512f", "avx512_bf16"}, True),  # AMD Zen 4, Intel Cooper Lake
    ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, True),  # Intel Sapphire Rapids and later
    ({"avx2", "fma"}, False),  # this project's AMD EPYC: bf16 would be emulated
    (set(), False),  # flags unknown
])
def test_auto_as_shipped_follows_the_cpu(monkeypatch, tiny_checkpoint, flags, native):
    """The rule as released, under simulated CPU flags: the predictor built with `auto` really
    holds the parts in the dtypes of what `auto` resolved to (int8: its vision in bf16 only with
    bf16 units, its LLM's decoder linears int8 and other LLM tensors fp32)."""
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: flags)
    expected = runtime_module.cpu_auto(native)
    predictor = Predictor.from_pretrained(tiny_checkpoint, precision="auto", device="cpu")
    assert predictor.precision == expected
    vision = torch.bfloat16 if expected == "bf16" or (expected == "int8" and native) else torch.float32
    assert next(predictor.model.encoder.parameters()).dtype == vision
    assert next(predictor.model.mask_decoder.parameters()).dtype == vision
    assert predictor.model.llm.lm_head.weight.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)


def test_auto_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(runtime_module, "PASSES_YARDSTICK", frozenset({"bf16"}))
    assert resolve_precision("auto", CPU) == "fp32"  # emulated bf16 is slower than fp32
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly, it still runs
    with pytest.raises(InputError, match="fp16 needs a GPU"):
        resolve_precision("fp16", CPU)


# --- int8 on a CPU: PyTorch's own kernels ----------------------------------------------------------
#: Measured on 12 random 160x200 scenes with the tiny model: int8 vs fp32 mask IoU 0.986 at worst
#: (0.995-0.998 for the others), probability at most 0.011 apart. Bounds with a margin for
#: other CPUs' kernels.
MIN_INT8_IOU = 0.98
MAX_INT8_PROBABILITY_GAP = 0.03
SCENES = (3, 10, 11)  # seed 10 is the worst measured


def test_int8_llm_agrees_with_fp32_on_a_cpu(tiny_checkpoint):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    predictors = {p: Predictor.from_pretrained(tiny_checkpoint, precision=p, device="cpu") for p in ("fp32", "int8")}
    int8 = predictors["int8"].model
    layer = list(int8.llm.model.layers[0].modules())
    assert any(isinstance(m, DynamicInt8Linear) for m in layer)  # quantised,
    assert not any(type(m) is torch.nn.Linear for m in layer)  # every decoder linear of it
    assert type(int8.llm.lm_head) is torch.nn.Linear  # the rest of the LLM keeps fp32
    assert type(int8.encoder.layers[0].blocks[0].attn.qkv) is torch.nn.Linear  # vision untouched
    for seed in SCENES:
        image = np.random.default_rng(seed).integers(0, 256, (160, 200, 3), dtype=np.uint8)
        out = {}
        for name, predictor in predictors.items():
            predictor.set_image(image)
            out[name] = predictor.predict(QUESTION, answer=False)
        iou = sample_iou(*intersection_union(out["int8"].mask, out["fp32"].mask))
        gap = np.abs(out["int8"].probability - out["fp32"].probability).max()
        assert iou >= MIN_INT8_IOU and gap <= MAX_INT8_PROBABILITY_GAP, f"scene {seed}: IoU {iou:.4f}, gap {gap:.4f}"


def test_int8_on_a_cpu_imports_no_bitsandbytes(tiny_checkpoint):
    """In a fresh process where importing bitsandbytes would fail, int8 on a CPU loads, predicts
    and answers, and no bitsandbytes module was ever loaded."""
    script = f"""
import sys
sys.modules["bitsandbytes"] = None  # any import of it now raises ImportError
import numpy as np
from segearth.predictor import Predictor
predictor = Predictor.from_pretrained({str(tiny_checkpoint)!r}, precision="int8", device="cpu")
predictor.set_image(np.zeros((64, 64, 3), np.uint8))
prediction = predictor.predict({QUESTION!r})
loaded = sorted(name for name, module in sys.modules.items() if "bitsandbytes" in name and module is not None)
print("bitsandbytes modules:", loaded, "answer:", prediction.answer is not None)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "bitsandbytes modules: [] answer: True" in run.stdout, run.stdout


def test_int4_and_gpu_int8_still_need_bitsandbytes(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    assert resolve_precision("int8", CPU) == "int8"
    with pytest.raises(InputError, match="int4 needs the bitsandbytes package"):
        resolve_precision("int4", CPU)


@pytest.mark.parametrize("flags, warned", [({"avx2", "fma"}, True), ({"avx512_bf16"}, False)])
def test_bf16_asked_for_where_it_is_emulated_is_warned_about(monkeypatch, tiny_checkpoint,
                                                             flags, warned):
    """bf16 without bf16 units takes minutes a question: the Python API warns, the app's
    precision menu says so."""
    import warnings

    from app.ui import precision_label

    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: flags)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Predictor.from_pretrained(tiny_checkpoint, precision="bf16", device="cpu")
    assert any("emulated" in str(w.message) for w in caught) is warned
    assert ("emulated on this CPU" in precision_label("bf16")) is warned
    assert "emulated" not in precision_label("fp32")


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_weights_are_read_into_their_final_dtypes(tiny_checkpoint, precision):
    """`load` with a placement (each tensor read straight into its final dtype, int8 layers
    quantised as they are read) gives exactly the model that loading in fp32 and placing gives."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from segearth.checkpoints import load
    from segearth.runtime import place, resolve

    direct, _, _ = load(tiny_checkpoint, placement=resolve(precision, "cpu"))
    placed, _ = place(load(tiny_checkpoint)[0], precision, "cpu")
    ours, theirs = dict(direct.named_modules()), dict(placed.named_modules())
    assert {k: type(m) for k, m in ours.items()} == {k: type(m) for k, m in theirs.items()}
    for name, module in ours.items():
        if isinstance(module, DynamicInt8Linear):
            assert torch.equal(module.weight().int_repr(), theirs[name].weight().int_repr()), name
            assert torch.equal(module.bias(), theirs[name].bias()), name
    a, b = direct.state_dict(), placed.state_dict()
    tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor)]
    assert tensors and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in tensors)
    assert any(isinstance(m, DynamicInt8Linear) for m in ours.values()) == (precision == "int8")
