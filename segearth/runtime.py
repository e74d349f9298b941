"""Where and in what precision a model runs: the device, the `auto` precision rule (read from the
CPU's flags), 8/4-bit quantisation of the LLM, and `place`, which puts a built model there.

This is `build_sam`'s half of segment-anything's split: the predictor is handed a placed model
and keeps only the image's state.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import cpu_linear
from .errors import InputError
from .model import SegEarthR1

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "int4")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: CPU flags of native bf16 matrix units: AVX-512 BF16 dot products, AMX tiles.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Yardstick:
    """When a precision is good enough for `auto` on a CPU (issue 27): on the bundled demo model's
    validation scenes (synthetic, at least `present_scenes` with the target at two sizes and
    `absent_scenes` without it), against fp32 on the same items. `benchmarks/bf16_agreement.py`
    measures it; the parity e2e split must also stay within the bound
    `tests/inference/test_bf16_parity.py` holds against the authors' masks (`MIN_BF16_IOU`).

    Why not every item's IoU against fp32: on a small target a one-pixel ring is a few percent of
    the mask, so any rounding at all fails such a rule while nothing a user or the paper measures
    changes (docs/speed.md, "bf16 on a CPU")."""

    present_scenes: int = 100
    absent_scenes: int = 50
    max_score_gap: float = 0.005  # gIoU and cIoU against the ground truth, each: 0.5 points
    min_found_agreement: float = 0.99  # found / not found as fp32 decides it, share of items
    min_mean_iou: float = 0.99  # mean mask IoU against fp32 (1 where both are empty)


YARDSTICK = Yardstick()
#: The CPU precisions measured to pass `YARDSTICK` (docs/speed.md, "bf16 on a CPU"): `auto` on
#: a CPU picks the fastest of these (`cpu_auto`), else fp32. bf16: on an AMD EPYC with
#: `avx512_bf16` (issue 27). int8 (the LLM's decoder linears in int8, the vision in bf16 where
#: the CPU has bf16 units, fp32 elsewhere) is not: with bf16 vision its worst parity item fell
#: 0.0007 under the bound, and with fp32 vision it has not been measured faster than fp32.
PASSES_YARDSTICK = frozenset({"bf16"})


@dataclass(frozen=True)
class Placement:
    """A model's device and resolved precision (never `auto`)."""

    device: torch.device
    precision: str


def on_zerogpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (the variable its `spaces` package reads). There a GPU
    is promised but attached only inside `@spaces.GPU` calls, and the main process must make no
    CUDA call: placement on "cuda" is recorded by `spaces` and made real when a call starts."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


#: Where a compiled decoding step measured faster than eager decoding, by (device type,
#: precision): on a GPU the step is launch-bound (docs/speed.md: 110 ms a token on an H200 for
#: weights read in under 1 ms); on this project's CPU the measurement is in docs/speed.md,
#: "Compiled decoding". int8/int4 decode eagerly: their quantised linears are not compiled here.
COMPILED_DECODING_PAYS = {
    ("cuda", "fp32"): True, ("cuda", "bf16"): True, ("cuda", "fp16"): True,
    ("cpu", "fp32"): False, ("cpu", "bf16"): False,
}


def compiled_decoding_pays(device: torch.device, precision: str) -> bool:
    """Whether a predictor on `device` in `precision` decodes with a `CompiledDecoder` compiled
    by `torch.compile` at warm-up (`COMPILED_DECODING_PAYS`). Never on ZeroGPU, which does not
    allow `torch.compile`; there the app compiles ahead of time (`app.zerogpu.compile_decoder`)."""
    return not on_zerogpu() and COMPILED_DECODING_PAYS.get((device.type, precision), False)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if on_zerogpu() or torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"Unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'.") from None
    if resolved.type == "cuda" and not on_zerogpu() and not torch.cuda.is_available():
        raise InputError("No CUDA GPU is available here: use device 'cpu'.")
    return resolved


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere: no guessing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True on CPUs with bf16 matrix instructions (AVX-512 BF16 or AMX), where bf16 runs faster
    than fp32; elsewhere bf16 is emulated and slower."""
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type == "cuda":  # ZeroGPU's GPUs (H200 slices) all have bf16; asking is a CUDA call
            return "bf16" if on_zerogpu() or torch.cuda.is_bf16_supported() else "fp16"
        return cpu_auto(cpu_has_native_bf16())
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 needs a GPU; on the CPU use fp32, bf16 or int8.")
    if precision in ("int8", "int4") and device.type == "cuda" and on_zerogpu():
        # placed at start-up under spaces' CUDA emulation it quantises (CPU kernels), but its
        # state moved into a GPU worker has not run on a GPU yet (docs/server.md, ZeroGPU)
        raise InputError(f"{precision} is not available on ZeroGPU: use auto (bf16), fp16 or fp32.")
    if precision == "int4" or (precision == "int8" and device.type == "cuda"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise InputError(f"{precision} needs the bitsandbytes package: pip install bitsandbytes.") from None
    return precision


def cpu_auto(native_bf16: bool) -> str:
    """`auto` on a CPU: the fastest precision that passes `YARDSTICK`, else fp32. int8 (the LLM's
    decoder linears in int8) is faster than bf16 and fp32 in prefill and decoding alike, and
    bf16 than fp32 only with bf16 units (docs/speed.md)."""
    candidates = ("int8", "bf16") if native_bf16 else ("int8",)
    return next((p for p in candidates if p in PASSES_YARDSTICK), "fp32")


#: Said where bf16 is asked for on a CPU without bf16 units.
EMULATED_BF16 = ("bf16 on this CPU is emulated (no avx512_bf16 or amx_bf16): a question can take "
                 "minutes instead of seconds. Use fp32 (or auto) here.")


def emulated_bf16(placement: Placement) -> bool:
    """bf16 asked for on a CPU without bf16 units: tens of times slower than fp32 there
    (docs/speed.md), so people are told before they wait."""
    return (placement.precision == "bf16" and placement.device.type == "cpu"
            and not cpu_has_native_bf16())


def resolve(precision: str = "auto", device: str | None = None) -> Placement:
    """Check a precision and device before anything slow runs (a checkpoint's load)."""
    resolved = resolve_device(device)
    return Placement(resolved, resolve_precision(precision, resolved))


def part_dtypes(placement: Placement) -> tuple[torch.dtype, torch.dtype]:
    """(the vision and mask parts' dtype, the LLM's) for a placement. int8/int4 quantise the LLM's
    decoder linears and keep its other tensors in the compute dtype; int8 on a CPU runs the
    vision in bf16 where the CPU has bf16 units (faster there), in fp32 elsewhere."""
    if placement.precision in _DTYPES:
        return (_DTYPES[placement.precision],) * 2
    if placement.device.type == "cuda":
        return torch.float16, torch.float16
    vision = torch.bfloat16 if placement.precision == "int8" and cpu_has_native_bf16() else torch.float32
    return vision, torch.float32


def cast(model: SegEarthR1, placement: Placement) -> None:
    """Each part of `model` in its dtype (`part_dtypes`), in place."""
    vision, llm = part_dtypes(placement)
    for name, part in model.named_children():
        part.to(llm if name == "llm" else vision)


def quantizes_on_cpu(placement: Placement) -> bool:
    """Whether the LLM's decoder linears become PyTorch's dynamic int8 ones (`quantize_llm_cpu`)."""
    return placement.precision == "int8" and placement.device.type == "cpu"


def place(model: SegEarthR1, precision: str = "auto", device: str | None = None
          ) -> tuple[SegEarthR1, Placement]:
    """The model in eval mode on its device and in its precision, with the CPU's fp32 linears
    routed to oneDNN (see `cpu_linear`) and, for int8/int4, the LLM quantised. A model that
    `segearth.checkpoints.load` already read for this placement is left as it is."""
    placement = resolve(precision, device)
    if emulated_bf16(placement):
        warnings.warn(EMULATED_BF16, stacklevel=2)
    model = model.eval()
    cpu_linear.route_linears(model.encoder, model.llm)  # fp32 on a CPU: oneDNN's kernel (see there)
    cast(model, placement)
    if quantizes_on_cpu(placement):
        quantize_llm_cpu(model.llm)
    elif placement.precision in ("int8", "int4"):
        quantize_llm(model.llm, 8 if placement.precision == "int8" else 4, part_dtypes(placement)[1])
    return model.to(placement.device), placement


def quantize_llm_cpu(llm: nn.Module) -> None:
    """int8 on a CPU: the Linear layers inside the LLM's decoder layers become PyTorch's own
    dynamically quantised ones (int8 weights, activations quantised per call; fbgemm's kernels
    through the default `x86` engine), one decoder layer at a time (`quantize_layer_cpu`).
    Embeddings, norms and lm_head stay fp32, the vision/mask parts in `part_dtypes`' dtype.
    The mask's LLM pass (prefix, question) runs on the same int8 weights as decoding: a second,
    bf16 or fp32 copy for it alone would cost 1.2-4.8 GB at the released size.

    This is the fast CPU path for answers (docs/speed.md: decode per token against fp32);
    bitsandbytes' int8 on a CPU was slower than fp32 and stays the GPU path. `torch.ao.quantization`
    rather than torchao, its maintained successor: torchao's eager CPU int8 paths measured slower
    per token than fp32 (dynamic activations) or 5x slower (weight only). `torch.ao` and its
    quantised tensors warn that they are deprecated; the warnings are silenced here, where the
    choice is made, and a PyTorch without them fails `tests/inference/test_precision.py`.
    """
    for layer in llm.model.layers:
        quantize_layer_cpu(layer)


def quantize_layer_cpu(layer: nn.Module) -> None:
    """One decoder layer's `nn.Linear`s -> dynamic int8 ones, in place (see `quantize_llm_cpu`);
    `segearth.checkpoints.load` calls it as each layer is read, so the LLM is never whole in fp32."""
    from torch.ao.quantization import quantize_dynamic

    floats = [m for m in layer.modules() if type(m) is nn.Linear]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        quantize_dynamic(layer, {nn.Linear}, dtype=torch.qint8, inplace=True)
    for linear in floats:  # swapped out but left in a reference cycle: freed now, not at the next
        linear.weight.data = linear.weight.data.new_empty(0)  # garbage collection (4.5 GB of fp32)


def quantize_llm(llm: nn.Module, bits: int, compute_dtype: torch.dtype) -> None:
    """Replace the Linear layers inside the LLM's decoder layers by bitsandbytes 8/4-bit ones.

    Only the LLM is quantised: embeddings, norms, lm_head and every vision/mask part keep their
    precision. (The authors' 8-bit path quantised everything and failed on dtype errors.)
    """
    import bitsandbytes as bnb

    for layer in llm.model.layers:
        for name, module in list(layer.named_modules()):
            if not isinstance(module, nn.Linear):
                continue
            parent = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
            weight = module.weight.data.float()
            if bits == 8:
                new = bnb.nn.Linear8bitLt(module.in_features, module.out_features, module.bias is not None,
                                          has_fp16_weights=False, threshold=6.0)
                new.weight = bnb.nn.Int8Params(weight.to(compute_dtype), requires_grad=False,
                                               has_fp16_weights=False)
            else:
                new = bnb.nn.Linear4bit(module.in_features, module.out_features, module.bias is not None,
                                        compute_dtype=compute_dtype, quant_type="nf4")
                new.weight = bnb.nn.Params4bit(weight.to(compute_dtype), requires_grad=False, quant_type="nf4")
            if module.bias is not None:
                new.bias = nn.Parameter(module.bias.data.to(compute_dtype), requires_grad=False)
            setattr(parent, name.rpartition(".")[2], new)
