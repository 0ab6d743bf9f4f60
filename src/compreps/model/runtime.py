"""Run-time choices of a model job that depend on the machine: precision, torch.compile,
determinism, TF32 and the shared inductor cache. Each choice is returned (and recorded in the
checkpoint by the caller), never guessed again later.

Precision ``auto`` (``train.precision``): bf16 autocast on CUDA; on a CPU bf16 only where the
CPU computes it natively (AVX512-BF16 or AMX), because elsewhere bf16 is emulated and ~9x
slower than fp32 (docs/performance.md: 42 vs 389 img/s at width 8 on an AVX2-only CPU). Where
torch cannot say (the private ``torch.cpu._is_*_supported`` probes are missing), a short timed
probe (< 1 s) decides. The choice depends only on the machine, so a given machine and
precision still train bit-identically on rerun and resume (the resume fingerprint holds the
resolved precision).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from compreps.core.files import CompRepsError, log

PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_CHOICES = ("auto", "true", "false")
# bf16 must beat fp32 by this factor in the probe: a near tie keeps the exact fp32.
PROBE_MARGIN = 1.2


def native_cpu_bf16() -> bool | None:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX tiles), False when torch
    says it does not, None when this torch build cannot tell."""
    probes = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    probes = [probe for probe in probes if callable(probe)]
    if not probes:
        return None
    return any(bool(probe()) for probe in probes)


def _seconds_per_step(dtype_enabled: bool, weight: torch.Tensor, inputs: torch.Tensor) -> float:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype_enabled):
        F.conv2d(inputs, weight, padding=1).sum().backward()  # warm-up (allocations, kernels)
        start = time.perf_counter()
        for _ in range(3):
            F.conv2d(inputs, weight, padding=1).sum().backward()
    return (time.perf_counter() - start) / 3


def bf16_probe_is_faster() -> bool:
    """Time a 3x3 convolution's forward and backward (32 channels, 16 images of 32x32, about
    0.2 s in all) in fp32 and under bf16 autocast; True when bf16 is PROBE_MARGIN x faster."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(32, 32, 3, 3, generator=generator, requires_grad=True)
    inputs = torch.randn(16, 32, 32, 32, generator=generator)
    fp32 = _seconds_per_step(False, weight, inputs)
    bf16 = _seconds_per_step(True, weight, inputs)
    return bf16 * PROBE_MARGIN < fp32


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """``(fp32 | bf16, why)`` for the setting ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise CompRepsError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, "set in the config"
    if device.type == "cuda":
        return "bf16", "auto: CUDA"
    native = native_cpu_bf16()
    if native is not None:
        return ("bf16", "auto: native CPU bf16") if native else ("fp32", "auto: no native bf16")
    faster = bf16_probe_is_faster()
    return ("bf16", "auto: probe, bf16 faster") if faster else ("fp32", "auto: probe, fp32")


def resolve_compile(setting: str | bool, device: torch.device) -> bool:
    """Whether to ``torch.compile`` the model: ``auto`` compiles on CUDA only (on a CPU the
    compile takes longer than the short runs it would speed up)."""
    text = {True: "true", False: "false"}.get(setting, setting)
    if text not in COMPILE_CHOICES:
        raise CompRepsError(f"unknown compile {setting!r}; allowed: auto, true, false")
    return device.type == "cuda" if text == "auto" else text == "true"


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    """CPU training is deterministic for a given machine, thread count and precision either
    way. On CUDA ``deterministic`` turns cuDNN autotuning off and asks for deterministic
    kernels; without it cuDNN benchmarks its algorithms once per shape and keeps the fastest."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not deterministic
    # warn_only: AdaptiveAvgPool2d's CUDA backward has no deterministic kernel.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def exact_fp32() -> None:
    """TF32 off: cuDNN convolutions use TF32 by default on Ampere and newer, which rounds fp32
    inputs to 10 mantissa bits. Call before dumping activations or measuring fp32 accuracy."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def share_inductor_cache(folder: str | os.PathLike) -> str:
    """Point torch.compile's on-disk cache at ``folder`` (unless TORCHINDUCTOR_CACHE_DIR is set
    already), so the nine training jobs compile the same graphs once, not nine times."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    chosen = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(folder).resolve()))
    log(f"torch.compile cache: {chosen}")
    return chosen


def run_environment(device: torch.device) -> dict[str, object]:
    """What the checkpoint records about the machine besides device and torch version."""
    env: dict[str, object] = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        env["cudnn_version"] = torch.backends.cudnn.version()
        env["tf32_conv"] = bool(torch.backends.cudnn.allow_tf32)
        env["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return env
