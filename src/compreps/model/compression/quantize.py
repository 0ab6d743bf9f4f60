"""Post-training weight quantization, emulated in plain torch (the ``quantize`` step is
:mod:`compreps.model.compression.step`).

Weights are quantized and stored dequantized (float32), so a quantized model runs on any device
with ordinary kernels. Biases stay in float and BatchNorm is untouched in every scheme.

Schemes (``SCHEMES``), for ``bits`` in 1..8:

- ``paper``: the paper's protocol. ``bits == 8`` is PyTorch's dynamic int8 quantization
  (``torch.ao.quantization.quantize_dynamic(model, dtype=torch.qint8)``) of the Linear layers
  only (in ResNet-18: ``fc``), reproduced exactly: weights per-tensor symmetric qint8 as the
  default ``MinMaxObserver`` does it (scale ``max|w| / 127.5``, zero point 0, values clamped to
  [-128, 127]); activations quantized on the fly per batch (min/max over the whole input
  tensor), per-tensor affine quint8 with ``reduce_range=True`` (levels 0..127), as the x86/fbgemm
  kernel ``quantized::linear_dynamic`` chooses them (``ChooseQuantizationParams``). The
  activation part is a forward pre-hook (:func:`attach_activation_quantization`), described in
  the checkpoint meta so :func:`compreps.model.checkpoints.load_model` re-attaches it.
  ``bits < 8``: the study's "uniform min-max quantization" after Jacob et al. 2018 (study 000,
  section 3, "Quantization Setup"), i.e. affine quantization with an integer zero point
  (:func:`zero_point_quantize`; Jacob et al., "Quantization and training of neural networks for
  efficient integer-arithmetic-only inference": ``r = S (q - Z)``, real zero exactly
  representable) of every Conv2d and Linear weight, per tensor: the qparams of
  ``MinMaxObserver(quant_min=0, quant_max=2**bits - 1, qscheme=per_tensor_affine)`` and the
  rounding of ``torch.quantize_per_tensor``.
- ``uniform``: min-max per tensor *without* a zero point, ``2**bits`` levels from ``min(w)`` to
  ``max(w)`` (``scale = (max - min) / (2**bits - 1)``; round to nearest, clamp, dequantize by
  ``lerp``), every bit width including 8; no activation quantization. ``bits == 1`` keeps two
  values, min and max. Zero is in general not a level. This was the ``paper`` scheme's rule
  below 8 bits before; zero is not a level of its grid (docs/metrics.md, "Quantization").
- ``per_channel``: the same min-max per output channel (dim 0) of every Conv2d and Linear weight.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.networks import compressible_modules

SCHEMES = ("paper", "uniform", "per_channel")
BITS = tuple(range(1, 9))

# quantize_dynamic's defaults (torch/ao/quantization/{qconfig,observer}.py, x86/fbgemm engine).
WEIGHT_QMIN, WEIGHT_QMAX = -128, 127  # default_weight_observer: qint8, per_tensor_symmetric
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # MinMaxObserver's lower bound on the scale
ACTIVATION_QMIN, ACTIVATION_QMAX = 0, 255  # quint8 (default_dynamic_quant_observer)
ACTIVATION_REDUCE_RANGE = True  # nnqd.Linear.forward calls linear_dynamic(reduce_range=True)
SMALL_SCALE_THRESHOLD = float(np.float32(6.1e-5))  # ATen QuantUtils.h
ACTIVATION_SPEC_KEYS = {"modules", "dtype", "reduce_range", "scheme"}

_HOOK_HANDLES = "_compreps_activation_quant_handle"


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def minmax_quantize(weight: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Affine min-max quantization to ``2**bits`` levels, returned dequantized (float32).

    ``q = clamp(round((w - min) / scale), 0, 2**bits - 1)`` with
    ``scale = (max - min) / (2**bits - 1)`` per tensor, or per output channel (dim 0) when
    ``per_channel``. The value is ``lerp(min, max, q / (2**bits - 1))``, which gives min and max
    exactly at both ends. A constant tensor (or row) is returned unchanged.
    """
    w = weight.detach().float()
    rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    low = rows.amin(dim=1, keepdim=True)
    high = rows.amax(dim=1, keepdim=True)
    levels = 2**bits - 1
    scale = (high - low) / levels
    safe_scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round((rows - low) / safe_scale), 0, levels)
    return torch.lerp(low, high, q / levels).reshape(w.shape)


def zero_point_qparams(low: torch.Tensor, high: torch.Tensor, bits: int):
    """``(scale, zero_point)`` of ``MinMaxObserver(quant_min=0, quant_max=2**bits - 1)``.

    As ``MinMaxObserver._calculate_qparams`` (per_tensor_affine): the range is widened to
    contain 0, ``scale = max((max(high, 0) - min(low, 0)) / (2**bits - 1), eps)`` and the
    integer ``zero_point = clamp(0 - round(min(low, 0) / scale), 0, 2**bits - 1)``
    (Jacob et al. 2018: the real value 0 is the level ``zero_point``).
    """
    zero = torch.zeros_like(low)
    low, high = torch.minimum(low, zero), torch.maximum(high, zero)
    scale = torch.clamp((high - low) / float(2**bits - 1), min=FLOAT32_EPS)
    zero_point = torch.clamp(-torch.round(low / scale), 0, 2**bits - 1)
    return scale, zero_point


def zero_point_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor affine quantization with an integer zero point, returned dequantized.

    ``q = clamp(round(w · (1 / scale) + zero_point), 0, 2**bits - 1)``, value
    ``(q - zero_point) * scale`` (:func:`zero_point_qparams`; Jacob et al. 2018), which
    is what ``torch.dequantize(torch.quantize_per_tensor(w, scale, zero_point, torch.quint8))``
    gives for 8 bits. Real 0 is a level, so zero weights stay exactly 0. When ``min(w) < 0 <
    max(w)``, min and max are each reproduced within half a step (``scale / 2``): the zero point
    is rounded, which shifts the grid by less than half a step; a tensor of one sign has its
    range widened to reach 0, and its extreme on the far side of 0 is kept within half a step.
    """
    w = weight.detach().float()
    scale, zero_point = zero_point_qparams(w.min(), w.max(), bits)
    # fbgemm's AVX2 Quantize rounds fma(w, 1 / scale, zero_point) once to float32: the
    # product of two float32 is exact in float64, so this reproduces it bit for bit.
    inverse_scale = torch.reciprocal(scale).double()
    shifted = (w.double() * inverse_scale + zero_point.double()).float()
    q = torch.clamp(torch.round(shifted), 0, 2**bits - 1)
    return (q - zero_point) * scale


def symmetric_int8_weight(weight: torch.Tensor) -> torch.Tensor:
    """``quantize_dynamic``'s weight quantization (per-tensor symmetric qint8), dequantized.

    Same float32 arithmetic as ``MinMaxObserver._calculate_qparams`` and
    ``torch.quantize_per_tensor``: ``scale = max(max(|min|, |max|) / 127.5, eps)``,
    ``q = clamp(round(w · (1 / scale)), -128, 127)``, value ``q · scale``.
    """
    w = weight.detach().float()
    zero = torch.zeros((), dtype=w.dtype, device=w.device)
    max_abs = torch.maximum(-torch.minimum(w.min(), zero), torch.maximum(w.max(), zero))
    scale = max_abs / ((WEIGHT_QMAX - WEIGHT_QMIN) / 2)
    scale = torch.clamp(scale, min=FLOAT32_EPS)
    # fbgemm's Quantize multiplies by the float32 reciprocal; w / scale can round the other way
    # at the extreme (-127.5 -> -128 instead of -127).
    inverse_scale = torch.reciprocal(scale)
    return torch.clamp(torch.round(w * inverse_scale), WEIGHT_QMIN, WEIGHT_QMAX) * scale


def distinct_values(tensor: torch.Tensor) -> int:
    return int(torch.unique(tensor).numel())


# ---------------------------------------------------------------------------------------------
# Activations (8-bit ``paper`` scheme)
# ---------------------------------------------------------------------------------------------
def activation_qparams(x_min: float, x_max: float, reduce_range: bool) -> tuple[float, int]:
    """``(scale, zero_point)`` for a quint8 tensor with range ``[x_min, x_max]``.

    A transcription of ATen's ``quant_utils::ChooseQuantizationParams`` (no sparsity
    preservation, no power-of-two scale), which ``quantized::linear_dynamic`` calls on each
    input: the range is widened to contain 0, the scale is computed in double and returned as
    float32, tiny scales are raised to 6.1e-5, and the zero point is taken from whichever end
    gives the smaller rounding error.
    """
    f32 = np.float32
    qmin, qmax = ACTIVATION_QMIN, ACTIVATION_QMAX
    if reduce_range:
        qmin, qmax = qmin // 2, qmax // 2
    low, high = f32(min(x_min, 0.0)), f32(max(x_max, 0.0))
    scale = (float(high) - float(low)) / (qmax - qmin)
    if f32(scale) == 0 or math.isinf(f32(1.0) / f32(scale)):
        scale = 0.1
    if scale < SMALL_SCALE_THRESHOLD:
        original = f32(scale)
        scale = SMALL_SCALE_THRESHOLD
        if low == 0:
            high = f32(f32(SMALL_SCALE_THRESHOLD) * f32(qmax - qmin))
        elif high == 0:
            low = f32(-f32(SMALL_SCALE_THRESHOLD) * f32(qmax - qmin))
        else:
            amplifier = f32(f32(SMALL_SCALE_THRESHOLD) / original)
            low, high = f32(low * amplifier), f32(high * amplifier)
    from_min = qmin - float(low) / scale
    from_max = qmax - float(high) / scale
    error_min = abs(qmin) - abs(float(low) / scale)
    error_max = abs(qmax) - abs(float(high) / scale)
    initial = from_min if error_min < error_max else from_max
    zero_point = qmin if initial < qmin else qmax if initial > qmax else round(initial)
    return float(f32(scale)), int(zero_point)


def fake_quantize_activation(x: torch.Tensor, reduce_range: bool) -> torch.Tensor:
    """Quantize ``x`` to quint8 with per-tensor qparams from its own min/max, and dequantize.

    As fbgemm packs the input: ``q = clamp(round(x · (1 / scale) + zero_point), 0, 255)``.
    """
    if x.numel() == 0:
        return x
    xf = x.float()
    x_min, x_max = torch.aminmax(xf)
    scale, zero_point = activation_qparams(float(x_min), float(x_max), reduce_range)
    inverse_scale = float(np.float32(1.0) / np.float32(scale))
    q = torch.clamp(torch.round(xf * inverse_scale + zero_point), 0, 255)
    return ((q - zero_point) * scale).to(x.dtype)


def check_activation_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or set(spec) != ACTIVATION_SPEC_KEYS:
        raise CompRepsError(
            f"activation_quant must be a dict with keys {sorted(ACTIVATION_SPEC_KEYS)}, "
            f"got {spec!r}"
        )
    if spec["dtype"] != "quint8" or spec["scheme"] != "per_tensor_affine":
        raise CompRepsError(
            "activation_quant supports dtype 'quint8' with scheme 'per_tensor_affine' only, got "
            f"{spec['dtype']!r} / {spec['scheme']!r}"
        )
    if not isinstance(spec["reduce_range"], bool) or not isinstance(spec["modules"], list):
        raise CompRepsError(f"activation_quant has a malformed reduce_range or modules: {spec!r}")
    return spec


def attach_activation_quantization(model: nn.Module, spec: dict[str, Any]) -> None:
    """Quantize the input of each Linear named in ``spec["modules"]`` on every forward call.

    ``spec`` is the plain dict stored in meta as ``activation_quant``
    (``{"modules": ["fc"], "dtype": "quint8", "reduce_range": True,
    "scheme": "per_tensor_affine"}``). Attaching again replaces the previous hook.
    """
    spec = check_activation_spec(spec)
    modules = dict(model.named_modules())
    reduce_range = spec["reduce_range"]

    def quantize_input(module: nn.Module, args: tuple) -> tuple:
        return (fake_quantize_activation(args[0], reduce_range), *args[1:])

    for name in spec["modules"]:
        module = modules.get(name)
        if not isinstance(module, nn.Linear):
            raise CompRepsError(f"activation_quant names {name!r}, which is not a Linear module")
        previous = getattr(module, _HOOK_HANDLES, None)
        if previous is not None:
            previous.remove()
        setattr(module, _HOOK_HANDLES, module.register_forward_pre_hook(quantize_input))


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def check_bits_scheme(bits: Any, scheme: Any) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in BITS:
        raise CompRepsError(
            f"bits must be an integer in 1..8 (allowed: {', '.join(map(str, BITS))}), got {bits!r}"
        )
    if scheme not in SCHEMES:
        raise CompRepsError(
            f"unknown quantization scheme {scheme!r}; allowed: {', '.join(SCHEMES)}"
        )


@torch.no_grad()
def quantize_model(model: nn.Module, bits: int, scheme: str) -> dict[str, Any]:
    """Quantize the Conv2d/Linear weights of ``model`` in place (see the module docstring).

    Returns the meta entries: ``bits, scheme, activation_quant`` (the spec dict, or None),
    ``weight_quantizer`` (``symmetric_int8``, ``zero_point`` or ``minmax``: which rule made the
    weights), ``quantized_modules`` (names) and ``max_distinct_values`` (the most distinct values
    in one quantized weight tensor). Biases are left in float; BatchNorm is untouched.
    """
    check_bits_scheme(bits, scheme)
    paper_int8 = scheme == "paper" and bits == 8
    quantizer = "symmetric_int8" if paper_int8 else "zero_point" if scheme == "paper" else "minmax"
    targets = [
        (name, module)
        for name, module in compressible_modules(model)
        if not paper_int8 or isinstance(module, nn.Linear)
    ]
    max_distinct = 0
    for _, module in targets:
        if paper_int8:
            quantized = symmetric_int8_weight(module.weight)
        elif scheme == "paper":
            quantized = zero_point_quantize(module.weight, bits)
        else:
            quantized = minmax_quantize(module.weight, bits, per_channel=scheme == "per_channel")
        module.weight.copy_(quantized)
        max_distinct = max(max_distinct, distinct_values(module.weight))
    activation_quant = None
    if paper_int8:
        activation_quant = {
            "modules": [name for name, _ in targets],
            "dtype": "quint8",
            "reduce_range": ACTIVATION_REDUCE_RANGE,
            "scheme": "per_tensor_affine",
        }
        attach_activation_quantization(model, activation_quant)
    return {
        "bits": bits,
        "scheme": scheme,
        "weight_quantizer": quantizer,
        "activation_quant": activation_quant,
        "quantized_modules": [name for name, _ in targets],
        "max_distinct_values": max_distinct,
    }
