"""fp32 linears through oneDNN: same outputs as `F.linear`, only where no gradient is needed,
only for plain `nn.Linear`, and only in the parts a predictor routes."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch import nn

from segearth import cpu_linear
from segearth.config import SegEarthConfig
from segearth.model import SegEarthR1
from segearth import runtime

pytestmark = pytest.mark.skipif(not cpu_linear.available(), reason="this PyTorch build has no oneDNN linear")


def routed_layer() -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(48, 40)
    assert cpu_linear.route_linears(layer) == 1
    return layer


def onednn_calls() -> mock.MagicMock:
    return mock.patch.object(torch.ops.mkldnn, "_linear_pointwise", wraps=torch.ops.mkldnn._linear_pointwise)


def test_routed_layer_gives_the_same_outputs_through_onednn():
    layer = routed_layer()
    x = torch.randn(2, 7, 48)
    with torch.no_grad(), onednn_calls() as calls:
        ours = layer(x)
        no_bias = nn.Linear(48, 40, bias=False)
        cpu_linear.route_linears(no_bias)
        plain = no_bias(x[:, ::2])  # strided input, no bias
    assert calls.call_count == 2
    torch.testing.assert_close(ours, nn.functional.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, x[:, ::2] @ no_bias.weight.T, rtol=1e-5, atol=1e-5)


def test_gradients_and_other_dtypes_take_f_linear():
    layer = routed_layer()
    x = torch.randn(3, 48, requires_grad=True)
    with onednn_calls() as calls:
        layer(x).sum().backward()  # training: autograd needs F.linear
        torch.testing.assert_close(x.grad, layer.weight.detach().sum(0).expand(3, -1))
        with torch.no_grad():
            layer.bfloat16()(torch.randn(3, 48, dtype=torch.bfloat16))
    assert calls.call_count == 0


def test_only_plain_linears_in_the_routed_parts():
    class EightBit(nn.Linear):  # as bitsandbytes' layers: a subclass, with its own forward
        pass

    block = nn.Sequential(nn.Linear(4, 4), EightBit(4, 4), nn.MultiheadAttention(4, 2))
    assert cpu_linear.route_linears(block) == 1
    assert cpu_linear.route_linears(block) == 0  # routing twice changes nothing
    model, _ = runtime.place(SegEarthR1(SegEarthConfig.tiny()), "fp32", "cpu")
    routed = {name for name, m in model.named_modules() if "forward" in vars(m)}
    assert any(n.startswith("encoder.") for n in routed) and any(n.startswith("llm.") for n in routed)
    assert not any(n.startswith(("pixel_decoder.", "mask_decoder.", "d_projector.", "connector.")) for n in routed)
