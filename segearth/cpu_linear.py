"""fp32 linear layers through oneDNN on the CPU.

PyTorch runs an fp32 `nn.Linear` on the CPU with MKL's sgemm, and bf16 ones with oneDNN. On
this project's CPU (AMD EPYC, AVX-512) oneDNN's fp32 kernel is much faster for the shapes a
predictor meets, measured with plain (unpacked) weights: 2.5x for a question's 20 rows through
the LLM, 1.9x for the 129-row prompt prefix, 1.25x for the Swin's 4,096-row windows
(docs/speed.md). Same arithmetic, another summation order: outputs agree to a few units in the
last place. A predictor routes the Swin encoder and the LLM, where nearly all the fp32 time
is; the parity split's seven masks then differ from the authors' in 2 canvas pixels in all (12
before). The pixel decoder stays on `F.linear`: its sampling offsets decide where deformable
attention reads, and routed too it flipped 158 pixels of one parity mask, over the tolerance.

The op is `torch.ops.mkldnn._linear_pointwise`, the one PyTorch's own compiler emits for CPU
linears; where this build lacks it, nothing changes.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def route_linears(*parts: nn.Module) -> int:
    """Make every plain `nn.Linear` in `parts` use oneDNN for fp32 CPU inputs that need no
    gradient (anything else still takes `F.linear`, so training, CUDA and moves between devices
    are unaffected; so do graphs being compiled, where Inductor picks its own kernels and accepts
    this op only for frozen weights); returns how many were routed. Subclasses (bitsandbytes' 8-bit layers,
    `nn.MultiheadAttention`'s projection) are left alone."""
    if not available():
        return 0
    routed = 0
    for module in (m for part in parts for m in part.modules()):
        if type(module) is nn.Linear and "forward" not in vars(module):
            module.forward = types.MethodType(_forward, module)
            routed += 1
    return routed


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and not torch.compiler.is_compiling() \
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return torch.ops.mkldnn._linear_pointwise(x, weight, self.bias, "none", [], "")
    return F.linear(x, weight, self.bias)
