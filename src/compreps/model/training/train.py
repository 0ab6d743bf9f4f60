"""The training loop: one model (base or coreset) from a config's model and train settings.

Measured (``benchmarks/train_throughput.py``, docs/performance.md) on the build machine (AMD
EPYC, 2 CPU cores, no GPU, torch 2.13.0 CPU, batch 128, CIFAR-10 sample): ResNet-18 width 16
trains at 851 img/s in fp32 and 1546 img/s in bf16; width 64 at 81 / 186 img/s. GPU: not
measured yet; the commands are in docs/performance.md. The step itself and its speed choices:
:mod:`compreps.model.training.step`; the machine-dependent choices (precision ``auto``,
compile, determinism): :mod:`compreps.model.runtime`.

Schedule: SGD with momentum, weight decay on every parameter, learning rate annealed by a cosine
over all *steps* (not per epoch) down to 0 (``cosine``) or kept (``constant``). Every epoch
visits all training images in a fresh seeded order; the last partial batch is kept.

Crash safety (:mod:`compreps.model.training.state`): the state is saved at the first epoch end after
``train.state_interval_s`` seconds since the last save (0 = every epoch; a 90 MB state at width
64 takes a measurable stall to write), and a rerun with the same inputs resumes from it, ending
with bit-identical weights on CPU.

The ``train`` step (:func:`main`) takes its options from the config's ``model`` and ``train``
sections (:mod:`compreps.core.settings`, all required: ``config.yaml`` holds the defaults), plus the
model id, the data summary, the evaluation batch size (``probe.batch_size``), the coreset
indices, the resume state and the output path.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compreps.core.families import names
from compreps.core.files import CompRepsError, log, progress_bar
from compreps.core.settings import ModelSettings, TrainSettings, add_arguments, from_arguments
from compreps.core.vocabulary import CORESET_INITS, parse_model_id
from compreps.model.checkpoints import checkpoint_meta, cpu_state_dict, save_checkpoint
from compreps.model.data.coreset import read_coreset
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.networks import (
    accuracy,
    build_model,
    describe_device,
    pick_device,
    predict_logits,
)
from compreps.model.runtime import (
    configure_determinism,
    resolve_compile,
    resolve_precision,
    run_environment,
    share_inductor_cache,
)
from compreps.model.training.state import (
    capture_state,
    load_matching_state,
    restore_state,
    save_state,
    training_fingerprint,
)
from compreps.model.training.step import StepContext, make_optimizer, make_step_context, run_epoch

# cuBLAS picks non-deterministic reduction kernels unless this is set before CUDA starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class StateClock:
    """When the resume state is due: at the first epoch end ``interval_s`` seconds after the
    last save (or the start); ``interval_s`` 0 = every epoch end. ``clock`` is injectable."""

    def __init__(self, interval_s: float, clock=time.monotonic) -> None:
        self.interval_s, self.clock = interval_s, clock
        self.last = clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.interval_s

    def saved(self) -> None:
        self.last = self.clock()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


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
    resumed_from: int | None = None  # the epoch a resumed run started after
    setup: dict[str, Any] = field(default_factory=dict)  # precision, compile, fingerprint, ...

    def parts(self) -> dict[str, Any]:
        """What the resume state holds besides the RNGs."""
        return {
            "model": self.ctx.model,
            "optimizer": self.ctx.optimizer,
            "scheduler": self.ctx.scheduler,
        }


def start_run(
    data,
    model: ModelSettings,
    train: TrainSettings,
    images,
    labels,
    device,
    precision: str,
    compile_model: bool = False,
    init_seed: int | None = None,
) -> Run:
    seed_everything(train.seed)
    if init_seed is not None:
        torch.manual_seed(init_seed)  # initial weights of their own; data order stays seeded
    # The whole (subset of the) training set stays on the device as uint8.
    images, labels = images.to(device), labels.to(device)
    network = build_model(model.arch, model.width, images.shape[1], len(data.classes)).to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(images.shape[0] / train.batch_size)
    optimizer, scheduler = make_optimizer(network, train, steps_per_epoch)
    generator = torch.Generator(device=device)
    generator.manual_seed(train.seed)
    ctx = make_step_context(
        network, optimizer, scheduler, data.mean, data.std, precision, device, compile_model
    )
    return Run(ctx, generator, images, labels, steps_per_epoch)


def train_epoch(run: Run, batch_size: int, show_progress: bool) -> tuple[float, float, float]:
    """One epoch; returns (mean loss, train accuracy, images per second)."""
    epoch_start = time.perf_counter()
    bar = None
    if show_progress:
        bar = progress_bar(
            total=run.steps_per_epoch, desc=f"epoch {run.epoch + 1}", unit="batch", leave=False
        )
    try:
        loss_sum, correct, seen = run_epoch(
            run.ctx, run.images, run.labels, run.generator, batch_size, progress=bar
        )
    finally:
        if bar is not None:
            bar.close()
    # The only host-device synchronisation of the epoch.
    loss_total, correct_total = torch.stack([loss_sum.double(), correct.double()]).tolist()
    run.epoch += 1
    return loss_total / seen, correct_total / seen, seen / (time.perf_counter() - epoch_start)


def _start(data, model, train, indices, device, out, model_id, state_path, init_seed=None):
    """Precision, compile, the training subset and the run, resumed from a matching state."""
    precision, precision_reason = resolve_precision(train.precision, device)
    compile_model = resolve_compile(train.compile, device)
    if compile_model and out is not None:
        # results/seed-<seed>/checkpoints/<id>.pt -> results/inductor_cache, shared by all
        # training jobs of every seed
        results = Path(out).resolve().parent.parent
        share_inductor_cache(
            results.parent / "inductor_cache"
            if results.name.startswith("seed-")
            else results / "inductor_cache"
        )
    if train.epochs < 1 or train.batch_size < 1:
        raise CompRepsError("epochs and batch size must be at least 1")
    indices, images, labels = training_subset(data, indices)
    fingerprint = training_fingerprint(
        model, train, data.name, indices, images, labels, device, precision, init_seed
    )
    configure_determinism(device, train.deterministic)
    run = start_run(data, model, train, images, labels, device, precision, compile_model, init_seed)
    state = load_matching_state(state_path, fingerprint)
    if state is not None:
        run.epoch, run.previous_wall_s = restore_state(state, run.parts(), run.generator)
        run.resumed_from = run.epoch
        log(f"{model_id}: resuming from {state_path} after epoch {run.epoch}/{train.epochs}")
    log(
        f"{model_id}: training {model.arch} width {model.width} on {len(indices)} {data.name} "
        f"images, {train.epochs} epochs x {run.steps_per_epoch} steps, batch {train.batch_size}, "
        f"lr {train.lr} ({train.schedule}), {precision} ({precision_reason}), "
        f"compile {compile_model}, {describe_device(device)}"
    )
    run.setup = dict(precision=precision, precision_reason=precision_reason)
    run.setup.update(compiled=compile_model, fingerprint=fingerprint, n_train=len(indices))
    run.setup["in_channels"] = images.shape[1]
    run.setup["init_seed"] = train.seed if init_seed is None else init_seed
    return run


def _epochs(run, train, model_id, state_path, started, show_progress) -> tuple[float, float]:
    """Train the remaining epochs, saving the state when due; the last loss and accuracy."""
    state_clock = StateClock(train.state_interval_s)
    loss = train_accuracy = math.nan
    while run.epoch < train.epochs:
        loss, train_accuracy, speed = train_epoch(run, train.batch_size, show_progress)
        elapsed = run.previous_wall_s + time.perf_counter() - started
        log(
            f"{model_id} epoch {run.epoch}/{train.epochs}: loss {loss:.4f} train acc "
            f"{train_accuracy:.4f} lr {run.ctx.optimizer.param_groups[0]['lr']:.5f} "
            f"{speed:.0f} img/s elapsed {elapsed:.1f}s"
        )
        if state_path is not None and run.epoch < train.epochs and state_clock.due():
            fingerprint = run.setup["fingerprint"]
            state = capture_state(run.parts(), run.generator, run.epoch, fingerprint, elapsed)
            save_state(state_path, state)
            state_clock.saved()
    return float(loss), float(train_accuracy)


def _test_accuracy(network, data, device, precision, eval_batch_size) -> tuple[float, bool]:
    """Test accuracy, and whether it was measured in bf16. On CUDA the test set is evaluated
    in the training precision (bf16 tensor cores); on a CPU in fp32 as always. The dumps
    (activations step) measure the accuracy that the tables use."""
    eval_bf16 = device.type == "cuda" and precision == "bf16"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=eval_bf16):
        logits = predict_logits(
            network, data.test_images, data.mean, data.std, device, eval_batch_size
        )
    return accuracy(logits, data.test_labels), eval_bf16


def _training_meta(run, data, model, train, device, model_id, eval_batch_size, measured):
    """The checkpoint meta of a finished training (``measured``: what the run measured)."""
    setup, indices_path = run.setup, measured["indices_path"]
    return checkpoint_meta(
        model_id=model_id,
        arch=model.arch,
        width=model.width,
        in_channels=setup["in_channels"],
        num_classes=len(data.classes),
        dataset=data.name,
        config={"model": asdict(model), "train": asdict(train), "eval_batch_size": eval_batch_size},
        device=device,
        precision=setup["precision"],
        test_accuracy=measured["test_accuracy"],
        wall_time_s=measured["wall_time_s"],
        seed=train.seed,
        init_seed=setup["init_seed"],
        epochs=train.epochs,
        train_loss=measured["train_loss"],
        train_accuracy=measured["train_accuracy"],
        n_train=setup["n_train"],
        train_indices=None if indices_path is None else str(indices_path),
        resumed_from_epoch=run.resumed_from,
        precision_reason=setup["precision_reason"],
        compiled=setup["compiled"],
        deterministic=train.deterministic,
        eval_precision="bf16" if measured["eval_bf16"] else "fp32",
        **run_environment(device),
    )


def train_model(
    data,
    model: ModelSettings,
    train: TrainSettings,
    *,
    model_id: str,
    eval_batch_size: int,
    indices: np.ndarray | None = None,
    indices_path: str | None = None,
    state_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    show_progress: bool = True,
    init_seed: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` on ``data`` (an :class:`~compreps.model.data.image_data.ImageData`),
    optionally on the training subset ``indices``; returns ``(model in eval mode, meta)``.

    With ``state_path`` the state is saved at the first epoch end ``train.state_interval_s``
    seconds after the last save (never after the last epoch: the checkpoint follows) and a
    matching saved state is resumed. With ``out`` the checkpoint is written and the state file
    deleted afterwards. ``init_seed``: initial weights drawn with a seed of their own (a
    coreset model under ``coreset.init: independent``); None draws them with ``train.seed``.
    """
    started = time.perf_counter()
    device = torch.device(device) if device is not None else pick_device()
    run = _start(data, model, train, indices, device, out, model_id, state_path, init_seed)
    loss, train_accuracy = _epochs(run, train, model_id, state_path, started, show_progress)
    network = run.ctx.model.eval()
    setup = run.setup
    test_accuracy, eval_bf16 = _test_accuracy(
        network, data, device, setup["precision"], eval_batch_size
    )
    wall_time = run.previous_wall_s + time.perf_counter() - started
    measured = dict(test_accuracy=test_accuracy, wall_time_s=wall_time, train_loss=loss)
    measured.update(train_accuracy=train_accuracy, eval_bf16=eval_bf16, indices_path=indices_path)
    meta = _training_meta(run, data, model, train, device, model_id, eval_batch_size, measured)
    log(f"{model_id}: test accuracy {test_accuracy:.4f} after {wall_time:.1f}s")
    if out is not None:
        meta = save_checkpoint(out, cpu_state_dict(network), meta)
        if state_path is not None:
            Path(state_path).unlink(missing_ok=True)  # only once the checkpoint is safely written
    return network, meta


# --------------------------------------------------------------------------- the train step


def train_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Train one model (base or coreset).")
    parser.add_argument("--model-id", required=True, help="base or coreset-<fraction>")
    add_data_argument(parser)
    add_arguments(parser, ModelSettings)
    add_arguments(parser, TrainSettings)
    parser.add_argument("--eval-batch-size", required=True, type=int)
    parser.add_argument("--indices", help="coreset CSV (index,label); without it: all images")
    parser.add_argument("--state", help="resume state file (every train.state_interval_s)")
    parser.add_argument(
        "--coreset-init",
        choices=CORESET_INITS,
        default="shared",
        help="a coreset model's initial weights: its seed's base's (shared) or its own",
    )
    parser.add_argument("--out", required=True)
    return parser


def main(argv: list[str]) -> int:
    """``train``: train the base model or one coreset model and write its checkpoint."""
    args = train_parser(f"compreps {argv[0]}").parse_args(argv[1:])
    try:
        family, _ = parse_model_id(args.model_id)
    except ValueError as err:
        raise CompRepsError(str(err)) from err
    if family not in ("base", *names(step="train")) or (family != "base") != bool(args.indices):
        raise CompRepsError(
            f"train makes base (without --indices) or coreset-<fraction> models (with "
            f"--indices), not {args.model_id!r}{' with' if args.indices else ' without'} indices"
        )
    if args.eval_batch_size < 1:
        raise CompRepsError(f"--eval-batch-size must be >= 1, got {args.eval_batch_size}")
    indices = read_coreset(args.indices) if args.indices else None
    train = from_arguments(TrainSettings, args)
    train_model(
        load_prepared(args.data, splits=("train", "test")),
        from_arguments(ModelSettings, args),
        train,
        model_id=args.model_id,
        eval_batch_size=args.eval_batch_size,
        indices=indices,
        indices_path=args.indices,
        state_path=args.state,
        out=args.out,
        init_seed=independent_init_seed(train.seed, args.model_id)
        if args.coreset_init == "independent" and family != "base"
        else None,
    )
    return 0


def independent_init_seed(seed: int, model_id: str) -> int:
    """The initialisation seed of a model that does not share its base's initial weights:
    a 31-bit hash of the replicate seed and the model id (stable across machines)."""
    return zlib.crc32(f"{seed}/{model_id}".encode()) & 0x7FFFFFFF
