"""Training step (``train``) and import of user-given baseline weights (``import-base``).

Measured (``benchmarks/train_throughput.py``, docs/performance.md) on the build machine (AMD
EPYC, 2 CPU cores, no GPU, torch 2.13.0 CPU, batch 128, CIFAR-10 sample): ResNet-18 width 16
trains at 851 img/s in fp32 and 1546 img/s in bf16; width 64 at 81 / 186 img/s. On CPU the
convolutions dominate (augmentation takes ~1 ms of a 150 ms step), so this pipeline and a
per-sample DataLoader run at the same speed there. GPU: not measured (no GPU was available to
the issue that wrote this module); the commands are in docs/performance.md.

The loop follows airbench (github.com/KellerJordan/cifar10-airbench) in spirit:

* the whole training set (or the coreset subset) lives on the training device as ``uint8``
  (4x smaller than float32; CIFAR-10 is 150 MB), so no DataLoader, no worker processes and no
  host-to-device copy per batch;
* augmentation runs on whole batches on that device (:func:`augment_batch`: one gather does the
  zero-padded random crop and the horizontal flip of every sample);
* loss and accuracy are summed on the device and read back once per epoch (a per-step
  ``.item()`` would stall the GPU queue every step);
* bf16 autocast and channels_last on CUDA (``--precision auto``).

Schedule: SGD with momentum, weight decay on every parameter, learning rate annealed by a cosine
over all *steps* (not per epoch) down to 0 (``--schedule cosine``) or kept (``constant``).
Every epoch visits all training images in a fresh seeded order; the last partial batch is kept.

Crash safety: at each epoch end the full training state (model, optimizer, scheduler, every RNG,
epoch, elapsed time and a fingerprint of the inputs) is written atomically to ``--state``; a rerun
with the same inputs resumes from it and ends with bit-identical weights on CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compreps.files import CompRepsError, atomic_write, save_checkpoint, sha256_file
from compreps.models import (
    ARCHITECTURES,
    accuracy,
    build_model,
    describe_device,
    normalize,
    parse_model_id,
    pick_device,
    predict_logits,
)

# cuBLAS picks non-deterministic reduction kernels unless this is set before CUDA starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

PADDING = 4
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
STATE_FORMAT = 1  # bump when the layout of the resume state changes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter that shapes the trained weights (all enter the fingerprint)."""

    arch: str = "resnet18"
    width: int = 64
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 42
    precision: str = "auto"


# --------------------------------------------------------------------------- augmentation


def augment_batch(
    images: torch.Tensor, generator: torch.Generator, padding: int = PADDING
) -> torch.Tensor:
    """Random crop with ``padding`` zero pixels on every side, then a random horizontal flip.

    The same distribution as torchvision's ``RandomCrop(size, padding=4)`` followed by
    ``RandomHorizontalFlip()``: each sample gets its own offset ``(dy, dx)`` in
    ``[0, 2 * padding]`` and is mirrored with probability 1/2. ``images`` is uint8 N×C×H×W on
    any device (``generator`` must live on the same device); the result has the same shape and
    dtype. One advanced-indexing gather does crop and flip for the whole batch.
    """
    n, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))  # constant 0, as torchvision
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator, device=device)
    dx = torch.randint(0, span, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    row = torch.arange(height, device=device)
    col = torch.arange(width, device=device)
    rows = dy[:, None] + row  # n×H: source row of each output row
    # A mirrored crop reads the crop's columns right to left.
    cols = dx[:, None] + torch.where(flip[:, None], width - 1 - col, col)  # n×W
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


# --------------------------------------------------------------------------- training loop


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``fp32`` elsewhere; ``fp32``/``bf16`` stay as given."""
    if precision not in PRECISIONS:
        raise CompRepsError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def lr_factor(schedule: str, total_steps: int):
    """Multiplier of the base learning rate after ``step`` optimizer steps."""
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    raise CompRepsError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    total_steps = max(1, config.epochs * steps_per_epoch)
    # Stepped once per batch: the cosine runs over all steps of all epochs.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.schedule, total_steps)
    )
    return optimizer, scheduler


@dataclass
class StepContext:
    """What one optimisation step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    mean: torch.Tensor  # 1×C×1×1 float32 on the device
    std: torch.Tensor
    precision: str  # resolved: fp32 | bf16
    channels_last: bool


def make_step_context(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    mean,
    std,
    precision: str,
    device: torch.device,
) -> StepContext:
    def as_column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    return StepContext(
        model,
        optimizer,
        scheduler,
        as_column(mean),
        as_column(std),
        precision,
        channels_last=device.type == "cuda",
    )


def optimize_batch(
    ctx: StepContext, inputs: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on normalised float inputs; returns (summed loss, correct count) as
    device tensors, without synchronising."""
    if ctx.channels_last:
        # NHWC lets cuDNN use its tensor-core convolution kernels without layout transposes.
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    device_type = inputs.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=ctx.precision == "bf16"):
        logits = ctx.model(inputs)
        loss = F.cross_entropy(logits, labels)  # autocast computes it in float32
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ctx.optimizer.step()
    ctx.scheduler.step()
    with torch.no_grad():
        loss_sum = loss.detach().float() * labels.numel()
        correct = (logits.argmax(1) == labels).sum()
    return loss_sum, correct


def run_epoch(
    ctx: StepContext,
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    batch_size: int,
    max_steps: int | None = None,
    progress=None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One pass over ``images`` (uint8, on the device) in a seeded random order.

    Returns (summed loss, correct count) as device tensors and the number of images seen.
    ``max_steps`` stops early (benchmarks); ``progress`` is a tqdm bar updated per batch.
    """
    ctx.model.train()
    n = images.shape[0]
    order = torch.randperm(n, generator=generator, device=images.device)
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    seen = 0
    for step, start in enumerate(range(0, n, batch_size)):  # the last partial batch is kept
        if max_steps is not None and step >= max_steps:
            break
        batch = order[start : start + batch_size]
        inputs = normalize(augment_batch(images[batch], generator), ctx.mean, ctx.std)
        batch_loss, batch_correct = optimize_batch(ctx, inputs, labels[batch])
        loss_sum += batch_loss
        correct += batch_correct
        seen += batch.numel()
        if progress is not None:
            progress.update(1)
    return loss_sum, correct, seen


# --------------------------------------------------------------------------- resume state


def training_fingerprint(
    config: TrainConfig,
    dataset: str,
    indices: np.ndarray,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
) -> str:
    """sha256 over everything that shapes the weights: hyper-parameters, dataset name, the
    training indices, the training images and labels themselves, device type and precision."""
    digest = hashlib.sha256()
    header = {
        "format": STATE_FORMAT,
        "config": asdict(config),
        "dataset": dataset,
        "n_train": int(indices.size),
        "device_type": device.type,
        "precision": precision,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state as plain types and tensors (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "python": random.getstate(),
        "data": generator.get_state(),
    }


def restore_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(states["data"])


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_matching_state(path: str | os.PathLike | None, fingerprint: str) -> dict | None:
    """The saved state when it exists and its fingerprint matches; ``None`` otherwise (logged)."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file: training from scratch is always safe
        log(f"resume state {path} is unreadable ({type(err).__name__}); starting fresh")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log(
            f"resume state {path} was written for other training inputs (fingerprint differs: "
            "hyper-parameters, data, indices, device or precision changed); starting fresh"
        )
        return None
    return state


# --------------------------------------------------------------------------- train_model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def configure_determinism(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # autotuning may pick different kernels per run
        # warn_only: AdaptiveAvgPool2d's CUDA backward has no deterministic kernel.
        torch.use_deterministic_algorithms(True, warn_only=True)


def progress_bar(total: int, desc: str):
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    # In a log file: nothing for epochs under a minute (the epoch line says it all), then at
    # most one line a minute, each ending in a newline.
    return tqdm(
        total=total,
        desc=desc,
        unit="batch",
        file=sys.stderr,
        leave=not interactive,
        mininterval=0.5 if interactive else 60.0,
        delay=0.0 if interactive else 60.0,
    )


def training_subset(
    data, indices: np.ndarray | None
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """``(indices, images, labels)`` of the images trained on (all when ``indices`` is None)."""
    n_total = data.train_labels.numel()
    indices = np.arange(n_total) if indices is None else np.asarray(indices)
    indices = indices.astype(np.int64)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= n_total:
        raise CompRepsError(
            f"training indices must lie in 0..{n_total - 1} (the {data.name} training set); "
            f"got {indices.size} indices in [{indices.min(initial=0)}, {indices.max(initial=0)}]"
        )
    selected = torch.from_numpy(indices)
    return indices, data.train_images[selected].contiguous(), data.train_labels[selected]


@dataclass
class Run:
    """Everything that changes while training (and goes into the resume state)."""

    ctx: StepContext
    generator: torch.Generator
    images: torch.Tensor  # uint8, on the device
    labels: torch.Tensor
    steps_per_epoch: int
    epoch: int = 0
    previous_wall_s: float = 0.0  # time spent by earlier, interrupted segments


def start_run(
    data,
    config: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
) -> Run:
    seed_everything(config.seed)
    # The whole (subset of the) training set stays on the device as uint8.
    images, labels = images.to(device), labels.to(device)
    model = build_model(config.arch, config.width, images.shape[1], len(data.classes))
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(images.shape[0] / config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    ctx = make_step_context(model, optimizer, scheduler, data.mean, data.std, precision, device)
    return Run(ctx, generator, images, labels, steps_per_epoch)


def run_state(run: Run, fingerprint: str, elapsed: float) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "fingerprint": fingerprint,
        "epoch": run.epoch,
        "wall_time_s": elapsed,
        "model": run.ctx.model.state_dict(),
        "optimizer": run.ctx.optimizer.state_dict(),
        "scheduler": run.ctx.scheduler.state_dict(),
        "rng": rng_states(run.generator),
    }


def resume_run(run: Run, state: dict[str, Any]) -> None:
    run.ctx.model.load_state_dict(state["model"])
    run.ctx.optimizer.load_state_dict(state["optimizer"])
    run.ctx.scheduler.load_state_dict(state["scheduler"])
    restore_rng_states(state["rng"], run.generator)
    run.epoch, run.previous_wall_s = int(state["epoch"]), float(state["wall_time_s"])


def train_epoch(run: Run, config: TrainConfig, show_progress: bool) -> tuple[float, float, int]:
    """One epoch; returns (mean loss, train accuracy, images per second)."""
    epoch_start = time.perf_counter()
    bar = progress_bar(run.steps_per_epoch, f"epoch {run.epoch + 1}") if show_progress else None
    try:
        loss_sum, correct, seen = run_epoch(
            run.ctx, run.images, run.labels, run.generator, config.batch_size, progress=bar
        )
    finally:
        if bar is not None:
            bar.close()
    # The only host-device synchronisation of the epoch.
    loss_total, correct_total = torch.stack([loss_sum.double(), correct.double()]).tolist()
    run.epoch += 1
    return loss_total / seen, correct_total / seen, seen / (time.perf_counter() - epoch_start)


def checkpoint_meta(
    model_id: str,
    data,
    config: TrainConfig,
    *,
    n_train: int,
    indices_path,
    device,
    precision: str,
    eval_batch_size: int,
    test_accuracy: float,
    wall_time: float,
    last_epoch: tuple[float, float],
    resumed_from: int | None,
) -> dict[str, Any]:
    """The checkpoint's metadata (plain types only, docs/architecture.md)."""
    family, level = parse_model_id(model_id)
    return {
        "model_id": model_id,
        "family": family,
        "level": float(level),
        "arch": config.arch,
        "width": int(config.width),
        "in_channels": int(data.train_images.shape[1]),
        "num_classes": len(data.classes),
        "dataset": data.name,
        "config": {**asdict(config), "eval_batch_size": int(eval_batch_size)},
        "seed": int(config.seed),
        "epochs": int(config.epochs),
        "wall_time_s": float(wall_time),
        "device": describe_device(device),
        "precision": precision,
        "torch_version": str(torch.__version__),
        "test_accuracy": float(test_accuracy),
        "train_loss": float(last_epoch[0]),
        "train_accuracy": float(last_epoch[1]),
        "n_train": int(n_train),
        "train_indices": None if indices_path is None else str(indices_path),
        "resumed_from_epoch": resumed_from,
    }


def train_model(
    data,
    config: TrainConfig,
    *,
    model_id: str = "base",
    indices: np.ndarray | None = None,
    indices_path: str | None = None,
    state_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    eval_batch_size: int = 500,
    device: torch.device | str | None = None,
    show_progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``config.arch`` on ``data`` (a :class:`compreps.data.ImageData`), optionally on the
    training subset ``indices``; returns ``(model in eval mode, checkpoint meta)``.

    With ``state_path`` the state is saved at every epoch end and a matching saved state is
    resumed. With ``out`` the checkpoint is written (``compreps.files.save_checkpoint``) and the
    state file deleted afterwards.
    """
    started = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device()
    precision = resolve_precision(config.precision, device)
    if config.schedule not in SCHEDULES:
        raise CompRepsError(f"unknown schedule {config.schedule!r}; allowed: {SCHEDULES}")
    if config.epochs < 1 or config.batch_size < 1:
        raise CompRepsError("epochs and batch size must be at least 1")
    try:
        parse_model_id(model_id)
    except ValueError as err:
        raise CompRepsError(str(err)) from err
    indices, images, labels = training_subset(data, indices)
    fingerprint = training_fingerprint(
        config, data.name, indices, images, labels, device, precision
    )
    configure_determinism(device)
    run = start_run(data, config, images, labels, device, precision)
    state = load_matching_state(state_path, fingerprint)
    if state is not None:
        resume_run(run, state)
        log(f"{model_id}: resuming from {state_path} after epoch {run.epoch}/{config.epochs}")
    resumed_from = run.epoch if state is not None else None
    log(
        f"{model_id}: training {config.arch} width {config.width} on {len(indices)} "
        f"{data.name} images, {config.epochs} epochs x {run.steps_per_epoch} steps, batch "
        f"{config.batch_size}, lr {config.lr} ({config.schedule}), {precision}, "
        f"{describe_device(device)}"
    )
    loss = train_accuracy = math.nan
    while run.epoch < config.epochs:
        loss, train_accuracy, speed = train_epoch(run, config, show_progress)
        elapsed = run.previous_wall_s + time.perf_counter() - started
        log(
            f"{model_id} epoch {run.epoch}/{config.epochs}: loss {loss:.4f} train acc "
            f"{train_accuracy:.4f} lr {run.ctx.optimizer.param_groups[0]['lr']:.5f} "
            f"{speed:.0f} img/s elapsed {elapsed:.1f}s"
        )
        if state_path is not None:
            save_state(state_path, run_state(run, fingerprint, elapsed))

    model = run.ctx.model.eval()
    logits = predict_logits(
        model, data.test_images, data.mean, data.std, device=device, batch_size=eval_batch_size
    )
    test_accuracy = accuracy(logits, data.test_labels)
    wall_time = run.previous_wall_s + time.perf_counter() - started
    meta = checkpoint_meta(
        model_id,
        data,
        config,
        n_train=len(indices),
        indices_path=indices_path,
        device=device,
        precision=precision,
        eval_batch_size=eval_batch_size,
        test_accuracy=test_accuracy,
        wall_time=wall_time,
        last_epoch=(loss, train_accuracy),
        resumed_from=resumed_from,
    )
    log(f"{model_id}: test accuracy {test_accuracy:.4f} after {wall_time:.1f}s")
    if out is not None:
        save_checkpoint(out, cpu_state_dict(model), meta)
        if state_path is not None:
            Path(state_path).unlink(missing_ok=True)  # only once the checkpoint is safely written
    return model, meta


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights as contiguous CPU tensors (channels_last ones back in the default layout)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- import-base


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """``(state_dict, meta or None)`` from a compreps checkpoint or a plain saved state dict."""
    path = Path(path)
    if not path.is_file():
        raise CompRepsError(f"base weights {path} do not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CompRepsError(
            f"cannot read base weights {path} ({type(err).__name__}): expected a compreps "
            "checkpoint or torch.save(model.state_dict())"
        ) from err
    meta = None
    if isinstance(payload, dict) and "state_dict" in payload and "meta" in payload:
        payload, meta = payload["state_dict"], payload["meta"]
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise CompRepsError(
            f"{path} is neither a compreps checkpoint nor a state dict (name -> tensor)"
        )
    # Weights saved from nn.DataParallel / DistributedDataParallel carry a "module." prefix.
    if payload and all(k.startswith("module.") for k in payload):
        payload = {k[len("module.") :]: v for k, v in payload.items()}
    return payload, meta


def weight_mismatches(state_dict: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Human-readable differences between ``state_dict`` and ``model``'s own state dict."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return problems


def fit_error(
    path,
    arch: str,
    width: int,
    in_channels: int,
    num_classes: int,
    problems: list[str],
    state_dict: dict,
) -> CompRepsError:
    hint = ""
    stem = state_dict.get("conv1.weight")
    if isinstance(stem, torch.Tensor) and stem.ndim == 4:
        hint = f" (the file looks like width {stem.shape[0]} with {stem.shape[1]} input channels)"
    shown = "; ".join(problems[:4]) + (
        f"; ... {len(problems) - 4} more" if len(problems) > 4 else ""
    )
    return CompRepsError(
        f"{path} does not fit `{arch} width {width}` ({in_channels} input channels, "
        f"{num_classes} classes){hint}: {shown}"
    )


def check_weights_fit(
    path, state_dict: dict, arch: str, width: int, in_channels: int, num_classes: int
) -> None:
    if arch not in ARCHITECTURES:
        raise CompRepsError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_model(arch, width, in_channels, num_classes)
    problems = weight_mismatches(state_dict, model)
    if problems:
        raise fit_error(path, arch, width, in_channels, num_classes, problems, state_dict)


def verify_base_checkpoint(
    path: str | os.PathLike, arch: str, width: int, in_channels: int, num_classes: int
) -> None:
    """Raise :class:`CompRepsError` unless ``path`` holds weights that load strictly into
    ``build_model(arch, width, in_channels, num_classes)`` (used by the config checker)."""
    state_dict, _ = read_weights(path)
    check_weights_fit(path, state_dict, arch, width, in_channels, num_classes)


def import_base(
    source: str | os.PathLike,
    data,
    arch: str,
    width: int,
    out: str | os.PathLike,
    eval_batch_size: int = 500,
    device: torch.device | str | None = None,
) -> dict:
    """Load user-given baseline weights, evaluate them and write them as ``base`` checkpoint."""
    started = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device()
    in_channels, num_classes = int(data.train_images.shape[1]), len(data.classes)
    state_dict, source_meta = read_weights(source)
    check_weights_fit(source, state_dict, arch, width, in_channels, num_classes)
    model = build_model(arch, width, in_channels, num_classes)
    model.load_state_dict(state_dict, strict=True)
    model.to(device).eval()
    logits = predict_logits(
        model, data.test_images, data.mean, data.std, device=device, batch_size=eval_batch_size
    )
    test_accuracy = accuracy(logits, data.test_labels)
    source_meta = source_meta or {}
    meta = {
        "model_id": "base",
        "family": "base",
        "level": math.nan,
        "arch": arch,
        "width": int(width),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "dataset": data.name,
        "config": {"arch": arch, "width": int(width), "eval_batch_size": int(eval_batch_size)},
        "seed": source_meta.get("seed"),
        "epochs": source_meta.get("epochs"),
        "wall_time_s": float(time.perf_counter() - started),
        "device": describe_device(device),
        "torch_version": str(torch.__version__),
        "test_accuracy": float(test_accuracy),
        "n_train": source_meta.get("n_train"),
        "train_indices": None,
        "imported_from": str(source),
        "imported_sha256": sha256_file(source),
    }
    save_checkpoint(out, cpu_state_dict(model), meta)
    log(f"imported {source} as base: test accuracy {test_accuracy:.4f} -> {out}")
    return meta


# --------------------------------------------------------------------------- CLI


def data_arguments(parser: argparse.ArgumentParser) -> None:
    from compreps.data import DATASETS

    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--arch", default="resnet18", choices=ARCHITECTURES)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--out", required=True)


def train_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train one model (base or coreset).")
    defaults = TrainConfig()
    parser.add_argument("--model-id", required=True, help="base or coreset-<fraction>")
    data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--momentum", type=float, default=defaults.momentum)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--schedule", default=defaults.schedule, choices=SCHEDULES)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--precision", default=defaults.precision, choices=PRECISIONS)
    parser.add_argument("--indices", help="coreset CSV (index,label); default: all images")
    parser.add_argument("--state", help="resume state file, written at every epoch end")
    return parser


def main(argv: list[str]) -> int:
    """``train`` or ``import-base`` (``argv[0]``)."""
    from compreps.data import load_dataset

    step = argv[0]
    if step == "import-base":
        parser = argparse.ArgumentParser(
            prog=f"compreps {step}", description="Import user-given baseline weights."
        )
        parser.add_argument(
            "--source",
            required=True,
            help="compreps checkpoint or torch.save(model.state_dict()) file",
        )
        data_arguments(parser)
        args = parser.parse_args(argv[1:])
        data = load_dataset(args.dataset, args.data_root, download=False)
        import_base(args.source, data, args.arch, args.width, args.out, args.eval_batch_size)
        return 0

    args = train_parser(f"compreps {step}").parse_args(argv[1:])
    config = TrainConfig(
        arch=args.arch,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        precision=args.precision,
    )
    data = load_dataset(args.dataset, args.data_root, download=False)
    indices = None
    if args.indices:
        from compreps.coreset import read_coreset

        indices = read_coreset(args.indices)
    train_model(
        data,
        config,
        model_id=args.model_id,
        indices=indices,
        indices_path=args.indices,
        state_path=args.state,
        out=args.out,
        eval_batch_size=args.eval_batch_size,
    )
    return 0
