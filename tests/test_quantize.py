"""Weight quantization: level counts, min-max properties, the 8-bit emulation of PyTorch's
dynamic int8 quantization, checkpoint round trip and the CLI step."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import random_bn_model
from torch import nn

import compreps.model.compression.step as compress_module
from compreps.core.files import CompRepsError, sha256_file
from compreps.model.checkpoints import load_model, save_checkpoint
from compreps.model.compression.quantize import (
    activation_qparams,
    attach_activation_quantization,
    minmax_quantize,
    quantize_model,
)
from compreps.model.networks import build_model, compressible_modules

SCHEMES = ("paper", "uniform", "per_channel")
ARCH = {"arch": "resnet18", "width": 4, "in_channels": 3, "num_classes": 10}


def small_model(seed: int = 0, width: int = 4) -> nn.Module:
    return random_bn_model(seed, width, mean=0.5, bias=0.2, scale=False).eval()


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: m.weight.detach().clone() for name, m in compressible_modules(model)}


def rows(tensor: torch.Tensor, per_channel: bool) -> list[torch.Tensor]:
    return list(tensor.reshape(tensor.shape[0], -1)) if per_channel else [tensor.flatten()]


def quantize_dynamic_reference(model: nn.Module) -> nn.Module:
    """PyTorch's own dynamic int8 quantization (CPU, x86/fbgemm engine), or skip."""
    quantization = getattr(torch, "ao", None) and getattr(torch.ao, "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        pytest.skip("torch.ao.quantization.quantize_dynamic is not available in this torch")
    if torch.backends.quantized.engine not in ("x86", "fbgemm"):
        pytest.skip(
            f"quantized engine {torch.backends.quantized.engine!r}: the emulation follows "
            "the x86/fbgemm kernel (qnnpack ignores reduce_range)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation warning of torch.ao.quantization
        return quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


# --- level counts and min-max properties ----------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("bits", range(1, 8))
def test_at_most_two_to_the_bits_values(bits, scheme):
    model = small_model()
    info = quantize_model(model, bits, scheme)
    per_channel = scheme == "per_channel"
    most = 0
    for name, module in compressible_modules(model):
        for row in rows(module.weight.detach(), per_channel):
            assert torch.unique(row).numel() <= 2**bits, name
        most = max(most, torch.unique(module.weight.detach()).numel())
    assert info["max_distinct_values"] == most
    assert info["bits"] == bits and info["scheme"] == scheme and info["activation_quant"] is None
    assert len(info["quantized_modules"]) == 21  # 20 convolutions + fc


@pytest.mark.parametrize("scheme", ["uniform", "per_channel"])
def test_eight_bit_minmax_schemes(scheme):
    model = small_model(1, width=8)
    info = quantize_model(model, 8, scheme)
    assert info["activation_quant"] is None
    for module in model.modules():
        assert not module._forward_pre_hooks
    for _, module in compressible_modules(model):
        for row in rows(module.weight.detach(), scheme == "per_channel"):
            assert torch.unique(row).numel() <= 256


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_minmax_keeps_extremes_and_bounds_error(bits, per_channel):
    torch.manual_seed(bits)
    weight = torch.randn(16, 8, 3, 3) * torch.rand(16, 1, 1, 1) * 3
    quantized = minmax_quantize(weight, bits, per_channel)
    assert quantized.shape == weight.shape and quantized.dtype == torch.float32
    for original, result in zip(
        rows(weight, per_channel), rows(quantized, per_channel), strict=True
    ):
        low, high = original.min(), original.max()
        assert result.min() == low and result.max() == high  # exact, not approximate
        half_step = float(high - low) / (2**bits - 1) / 2
        assert (result - original).abs().max().item() <= half_step * (1 + 1e-5)
        if bits == 1:
            assert set(result.tolist()) == {low.item(), high.item()}
        # hand check of one value: the level index is round((w - min) / scale)
        scale = (high - low) / (2**bits - 1)
        index = torch.round((original[5] - low) / scale)
        assert result[5].item() == pytest.approx((low + index * scale).item(), abs=1e-6)


def test_minmax_on_constant_tensor_and_rows():
    constant = torch.full((4, 5), 0.7)
    for bits in (1, 4, 8):
        assert torch.equal(minmax_quantize(constant, bits), constant)
    mixed = torch.stack([torch.full((6,), -1.25), torch.linspace(-1, 2, 6)])
    result = minmax_quantize(mixed, 1, per_channel=True)
    assert torch.equal(result[0], mixed[0])
    assert torch.equal(result[1], torch.tensor([-1.0, -1.0, -1.0, 2.0, 2.0, 2.0]))


@pytest.mark.parametrize(("bits", "scheme"), [(4, "paper"), (3, "per_channel"), (8, "paper")])
def test_biases_and_batchnorm_untouched(bits, scheme):
    model = small_model(2)
    model.fc.bias.data.uniform_(-1, 1)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    info = quantize_model(model, bits, scheme)
    quantized_keys = {f"{name}.weight" for name in info["quantized_modules"]}
    after = model.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        if key not in quantized_keys:
            assert torch.equal(after[key], value), key
        else:
            assert not torch.equal(after[key], value), key


# --- the paper's 8-bit scheme vs torch.ao.quantization.quantize_dynamic ----------------------
def test_activation_qparams_match_aten():
    # torch._choose_qparams_per_tensor calls ATen's ChooseQuantizationParams(0, 255, ...) and
    # returns the scale before its cast to float32.
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(100, generator=generator),
        torch.rand(100, generator=generator) * 3,
        torch.rand(9, generator=generator) + 5,  # all positive: range widened to 0
        -torch.rand(9, generator=generator) - 1,  # all negative
        torch.zeros(5),  # zero range -> scale 0.1
        torch.randn(50, generator=generator) * 1e-4,  # scale below 6.1e-5 is raised
        torch.rand(50, generator=generator) * 1e-3,
        -torch.rand(50, generator=generator) * 1e-3,
    ]
    for x in inputs:
        for reduce_range in (True, False):
            ref_scale, ref_zero_point = torch._choose_qparams_per_tensor(x, reduce_range)
            scale, zero_point = activation_qparams(x.min().item(), x.max().item(), reduce_range)
            assert scale == float(np.float32(ref_scale))
            assert zero_point == ref_zero_point


def test_eight_bit_weights_equal_quantize_dynamic():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(512, 100), nn.ReLU(), nn.Linear(100, 10)).eval()
    for layer in (model[0], model[2]):
        layer.weight.data[0, 0] = -2.0  # negative extreme: maps to -128
    reference = quantize_dynamic_reference(model)
    info = quantize_model(model, 8, "paper")
    assert info["quantized_modules"] == ["0", "2"]
    assert info["activation_quant"] == {
        "modules": ["0", "2"],
        "dtype": "quint8",
        "reduce_range": True,
        "scheme": "per_tensor_affine",
    }
    for index in (0, 2):
        expected = reference[index].weight().dequantize()
        assert torch.equal(model[index].weight.detach(), expected)


def test_eight_bit_weights_equal_quantize_dynamic_on_many_layers():
    # The extreme weight sits at +-127.5 steps: whether it becomes -128 or -127 depends on
    # w * (1 / scale) vs w / scale; 13 of these 100 layers tell the two apart.
    layers = []
    for seed in range(100):
        torch.manual_seed(seed)
        layers.append(nn.Linear(32, 8))
    model = nn.Sequential(*layers)
    reference = quantize_dynamic_reference(model)
    quantize_model(model, 8, "paper")
    for index, layer in enumerate(model):
        assert torch.equal(layer.weight.detach(), reference[index].weight().dequantize()), index


def max_output_difference(model: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float]:
    reference = quantize_dynamic_reference(model)
    quantize_model(model, 8, "paper")
    worst, scale = 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            expected, got = reference(x), model(x)
            worst = max(worst, (got - expected).abs().max().item())
            scale = max(scale, expected.abs().max().item())
    return worst, scale


def test_eight_bit_outputs_match_quantize_dynamic_on_mlp():
    # Signed inputs, two dynamically quantized layers, batch sizes 1..300, degenerate inputs.
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 10)).eval()
    generator = torch.Generator().manual_seed(5)
    inputs = [torch.randn(n, 64, generator=generator) * s for n, s in ((1, 1), (7, 3), (300, 1))]
    inputs += [torch.zeros(4, 64), torch.randn(5, 64, generator=generator) * 1e-5]
    worst, scale = max_output_difference(model, inputs)
    # measured: ~5e-7 on outputs of magnitude ~1 (float32 summation order only)
    assert worst <= 5e-6 * max(scale, 1.0)


def test_eight_bit_outputs_match_quantize_dynamic_on_resnet():
    model = small_model(6, width=16)
    generator = torch.Generator().manual_seed(7)
    inputs = [torch.randn(n, 3, 16, 16, generator=generator) for n in (1, 32)]
    worst, scale = max_output_difference(model, inputs)
    assert worst <= 5e-6 * max(scale, 1.0)


def test_eight_bit_conv_layers_untouched():
    model = small_model(8)
    before = weights(model)
    info = quantize_model(model, 8, "paper")
    assert info["quantized_modules"] == ["fc"]
    assert info["max_distinct_values"] <= 256
    for name, weight in weights(model).items():
        assert torch.equal(weight, before[name]) == (name != "fc"), name


def test_checkpoint_round_trip_reattaches_activation_quantization(tmp_path):
    model = small_model(9)
    info = quantize_model(model, 8, "paper")
    path = tmp_path / "quant-8.pt"
    save_checkpoint(path, model.state_dict(), {**ARCH, **info})
    loaded, meta = load_model(path, "cpu")
    assert meta["activation_quant"] == info["activation_quant"]
    assert len(loaded.fc._forward_pre_hooks) == 1
    x = torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), loaded(x)
        plain = build_model(**ARCH).eval()
        plain.load_state_dict(loaded.state_dict())
        without_hook = plain(x)
    assert torch.equal(got, expected)
    assert not torch.allclose(without_hook, expected, rtol=0, atol=1e-6)  # the hook matters


def test_attaching_twice_keeps_one_hook():
    model = small_model()
    spec = quantize_model(model, 8, "paper")["activation_quant"]
    attach_activation_quantization(model, spec)
    assert len(model.fc._forward_pre_hooks) == 1


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [0, 9, -1, 4.0, True, "8", None])
def test_bad_bits(bits):
    with pytest.raises(CompRepsError, match=r"1\.\.8"):
        quantize_model(small_model(), bits, "uniform")


@pytest.mark.parametrize("scheme", ["dynamic", "", None, "PAPER"])
def test_bad_scheme(scheme):
    with pytest.raises(CompRepsError, match="allowed: paper, uniform, per_channel"):
        quantize_model(small_model(), 4, scheme)


@pytest.mark.parametrize(
    "spec",
    [
        {
            "modules": ["layer1"],
            "dtype": "quint8",
            "reduce_range": True,
            "scheme": "per_tensor_affine",
        },
        {
            "modules": ["nope"],
            "dtype": "quint8",
            "reduce_range": True,
            "scheme": "per_tensor_affine",
        },
        {"modules": ["fc"], "dtype": "qint8", "reduce_range": True, "scheme": "per_tensor_affine"},
        {"modules": ["fc"], "dtype": "quint8", "reduce_range": True},
        {"modules": "fc", "dtype": "quint8", "reduce_range": True, "scheme": "per_tensor_affine"},
        ["fc"],
    ],
)
def test_bad_activation_spec(spec):
    with pytest.raises(CompRepsError, match="activation_quant"):
        attach_activation_quantization(small_model(), spec)


# --- CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("bits", "scheme"), [(8, "paper"), (3, "per_channel")])
def test_cli_writes_quantized_checkpoint(tmp_path, monkeypatch, bits, scheme, fake_data):
    data = fake_data(20)
    monkeypatch.setattr(compress_module, "load_prepared", lambda path, splits: data)
    base_path, out = tmp_path / "base.pt", tmp_path / f"quant-{bits}.pt"
    base_meta = {
        **ARCH,
        "model_id": "base",
        "family": "base",
        "level": math.nan,
        "dataset": "cifar10",
        "config": {"train": {"epochs": 1}},
        "seed": 42,
    }
    save_checkpoint(base_path, small_model(10).state_dict(), base_meta)
    argv = [
        "quantize",
        "--base",
        str(base_path),
        "--bits",
        str(bits),
        "--quantize-scheme",
        scheme,
        "--data",
        "unused.json",
        "--eval-batch-size",
        "6",
        "--out",
        str(out),
    ]
    assert compress_module.main(argv) == 0

    model, meta = load_model(out, "cpu")
    assert meta["model_id"] == f"quant-{bits}" and meta["family"] == "quant"
    assert meta["level"] == float(bits) and meta["bits"] == bits and meta["scheme"] == scheme
    assert meta["parent_sha256"] == sha256_file(base_path)
    assert meta["weight_quantizer"] == {8: "symmetric_int8", 3: "minmax"}[bits]
    assert meta["config"]["quantize"] == {"scheme": scheme, "bits": bits}
    assert meta["seed"] == 42 and isinstance(meta["torch_version"], str)
    assert (meta["activation_quant"] is not None) == (scheme == "paper" and bits == 8)
    assert len(model.fc._forward_pre_hooks) == (1 if meta["activation_quant"] else 0)
    # accuracy as stored = accuracy of the reloaded model, evaluated in the same batches of 6
    images = (data.test_images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        logits = torch.cat([model(images[i : i + 6]) for i in range(0, len(images), 6)])
    correct = (logits.argmax(1) == data.test_labels).float().mean().item()
    assert meta["test_accuracy"] == pytest.approx(correct)


def test_cli_rejects_bad_bits_and_scheme(tmp_path):
    common = ["--base", "b.pt", "--data", "x.json", "--eval-batch-size", "5", "--out", "o.pt"]
    for extra in (["--bits", "9", "--quantize-scheme", "paper"], ["--bits", "4"]):
        with pytest.raises(SystemExit):
            compress_module.main(["quantize", *common, *extra])
    with pytest.raises(SystemExit):
        compress_module.main(["quantize", *common, "--bits", "4", "--quantize-scheme", "fancy"])
