"""The ``paper`` quantization scheme below 8 bits: an integer zero point (Jacob et al. 2018, as
study 000 cites it): hand-worked values, zero exactly representable, extremes within half a
step, and bit-identity with ``torch.quantize_per_tensor``."""

from __future__ import annotations

import warnings

import pytest
import torch
from test_quantize import small_model, weights

from compreps.model.compression.quantize import (
    quantize_model,
    zero_point_qparams,
    zero_point_quantize,
)
from compreps.model.networks import compressible_modules


@pytest.mark.parametrize(
    ("weight", "bits", "expected"),
    [
        # scale 3/3 = 1, zero point -round(-1/1) = 1: levels -1, 0, 1, 2
        ([-1.0, -0.3, 0.0, 0.45, 2.0], 2, [-1.0, 0.0, 0.0, 0.0, 2.0]),
        # scale 1.5/3 = 0.5, zero point 1: levels -0.5, 0, 0.5, 1
        ([-0.5, 0.1, 1.0], 2, [-0.5, 0.0, 1.0]),
        # scale 0.5, zero point -round(-0.5) = 0 (half to even): min and max move by half a step
        ([-0.25, 1.25], 2, [0.0, 1.0]),
        # one bit: scale 1.5, zero point -round(-1/1.5) = 1: levels -1.5 and 0
        ([-1.0, -0.5, 0.5], 1, [-1.5, 0.0, 0.0]),
    ],
)
def test_zero_point_quantize_hand_worked(weight, bits, expected):
    result = zero_point_quantize(torch.tensor(weight), bits)
    assert result.tolist() == expected


@pytest.mark.parametrize("bits", range(1, 8))
def test_paper_scheme_keeps_zero_exact_and_extremes_within_half_a_step(bits):
    torch.manual_seed(bits)
    model = small_model(bits)
    for _, module in compressible_modules(model):
        module.weight.data.view(-1)[::7] = 0.0  # exact zeros in every tensor
    before = weights(model)
    assert quantize_model(model, bits, "paper")["weight_quantizer"] == "zero_point"
    for name, module in compressible_modules(model):
        original, result = before[name], module.weight.detach()
        assert torch.all(result[original == 0] == 0), name  # real zero is a level
        low, high = original.min(), original.max()
        assert low < 0 < high, name
        scale, zero_point = zero_point_qparams(low, high, bits)
        half_step = float(scale) / 2 * (1 + 1e-6)
        assert abs(float(result.min() - low)) <= half_step, name
        assert abs(float(result.max() - high)) <= half_step, name
        assert torch.unique(result).numel() <= 2**bits
        # every value is an integer multiple of the scale: (q - zero_point) * scale
        steps = result / scale
        assert torch.allclose(steps, torch.round(steps), rtol=0, atol=1e-4), name
        assert 0 <= int(zero_point) <= 2**bits - 1


@pytest.mark.parametrize("bits", range(1, 9))
def test_zero_point_quantize_equals_torch_quantize_per_tensor(bits):
    observer_class = torch.ao.quantization.MinMaxObserver
    torch.manual_seed(100 + bits)
    for shift in (-0.05, 0.0, 0.07):
        weight = torch.randn(32, 16, 3, 3) * 0.1 + shift
        observer = observer_class(
            dtype=torch.quint8, quant_min=0, quant_max=2**bits - 1, qscheme=torch.per_tensor_affine
        )
        observer(weight)
        scale, zero_point = observer.calculate_qparams()
        mine_scale, mine_zero_point = zero_point_qparams(weight.min(), weight.max(), bits)
        assert float(mine_scale) == float(scale) and int(mine_zero_point) == int(zero_point)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation warning of quantized tensors
            q = torch.quantize_per_tensor(weight, float(scale), int(zero_point), torch.quint8)
        # quint8 clamps to 0..255; the observer's range is 0..2**bits - 1
        levels = torch.clamp(q.int_repr().long(), 0, 2**bits - 1)
        reference = (levels - int(zero_point)).float() * float(scale)
        assert torch.equal(zero_point_quantize(weight, bits), reference)
