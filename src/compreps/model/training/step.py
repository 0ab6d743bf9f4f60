"""One training step and one epoch, written for speed on CUDA (each choice commented where it
lives, as airbench does) and exact on CPU.

* The training images stay on the device as ``uint8`` (4x smaller than float32), so there is no
  DataLoader, no worker process and no host-to-device copy per batch.
* Augmentation runs on whole batches on the device
(:func:`compreps.model.data.augment.augment_batch`).
* Loss and accuracy are summed on the device; nothing inside an epoch reads a value back to the
  host, so the CPU queues kernels ahead of the GPU without stalling.
* bf16 autocast and channels_last on CUDA, the model optionally ``torch.compile``-d, SGD fused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compreps.core.files import CompRepsError
from compreps.core.settings import TrainSettings
from compreps.model.data.augment import augment_batch
from compreps.model.networks import normalize

SCHEDULES = ("cosine", "constant")


def lr_factor(schedule: str, total_steps: int):
    """Multiplier of the base learning rate after ``step`` optimizer steps."""
    if schedule == "constant":
        return lambda step: 1.0
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    raise CompRepsError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


def make_optimizer(
    model: nn.Module, train: TrainSettings, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    on_cuda = next(model.parameters()).device.type == "cuda"
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        # One kernel updates every parameter instead of several per tensor (62 tensors). The
        # CPU keeps the default implementation (bit-identical to earlier checkpoints).
        fused=on_cuda,
    )
    total_steps = max(1, train.epochs * steps_per_epoch)
    # Stepped once per batch: the cosine runs over all steps of all epochs.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train.schedule, total_steps))
    return optimizer, scheduler


@dataclass
class StepContext:
    """What one optimisation step needs besides the batch."""

    model: nn.Module  # the module whose state is saved
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile-d form
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    mean: torch.Tensor  # 1×C×1×1 float32 on the device
    std: torch.Tensor
    precision: str  # resolved: fp32 | bf16
    channels_last: bool


class CompiledForward:
    """The model ``torch.compile``-d for ONE batch shape: the first one it is called with (the
    first batch of the first epoch: a full batch, or the whole training set when it is smaller
    than a batch). Any other shape, i.e. the last partial batch of each epoch, runs through the
    eager module, which shares the weights, buffers and optimizer state with the compiled one.

    Why: with ``dynamic=False`` every new shape compiles a new graph (the base's last batch of
    80 images, each coreset size another), so each training job compiled twice; dynamic shapes
    would give slower kernels for every step. Cost: one eager step per epoch (1 of 391 steps at
    50,000 images), and that step's arithmetic is eager's (same result up to rounding order).
    ``drop_last`` would skip images; padding would change BatchNorm's batch statistics.
    """

    def __init__(self, model: nn.Module, **options) -> None:
        # torch.compile fuses BatchNorm+ReLU and the residual adds into a few Triton kernels
        # (eager ResNet-18 launches ~300 kernels per step). Default mode unless ``options``
        # say otherwise: CUDA graphs (``mode="reduce-overhead"``) are measured by
        # benchmarks/train_throughput.py --compile-modes before they become the default.
        self.model = model
        self.compiled = torch.compile(model, **{"dynamic": False, **options})
        self.cuda_graphs = options.get("mode") in ("reduce-overhead", "max-autotune")
        self.shape: torch.Size | None = None

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.shape is None:
            self.shape = inputs.shape
        if inputs.shape != self.shape:
            return self.model(inputs)
        if self.cuda_graphs:
            # A new training step: the previous replay's outputs may be overwritten.
            torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(inputs)


def compiled_forward(model: nn.Module, **options) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` compiled for its first batch shape, eager for every other one."""
    return CompiledForward(model, **options)


def make_step_context(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    mean,
    std,
    precision: str,
    device: torch.device,
    compile_model: bool = False,
) -> StepContext:
    def as_column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    return StepContext(
        model,
        compiled_forward(model) if compile_model else model,
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
    # bf16 rather than fp16: same exponent range as fp32, so no loss scaling is needed.
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=ctx.precision == "bf16"):
        logits = ctx.forward(inputs)
        loss = F.cross_entropy(logits, labels)  # autocast computes it in float32
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ctx.optimizer.step()
    ctx.scheduler.step()  # a Python float per step: no device read
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
        seen += batch.numel()  # a host integer: the batch size is known without a device read
        if progress is not None:
            progress.update(1)
    return loss_sum, correct, seen
