"""Training throughput: compreps' training step against the textbook PyTorch loop, one run.

Both train the same ResNet-18 (width 64, batch 128 by default) on the same device with the
same SGD hyper-parameters (config.yaml); they differ in everything below:

* ``compreps``: what ``compreps train`` runs (``compreps.model.training.train.start_run`` +
``run_epoch``):
  images resident on the device as uint8, whole-batch crop/flip on the device, the config's
  precision (``auto``: bf16 on CUDA), channels_last and torch.compile and fused SGD on CUDA
  (``train.compile: auto``), no host synchronisation inside the timed steps;
* ``conventional``: a per-sample ``Dataset`` (pad, crop, flip, normalise one image at a time, as
  torchvision's RandomCrop + RandomHorizontalFlip + ToTensor + Normalize), a ``DataLoader``
  with ``num_workers`` = the cores and ``pin_memory`` on CUDA, fp32, NCHW, eager, plain SGD.

It prints both speeds (images per second), their ratio and the fraction of the device's bf16
dense peak each reaches, counting 3.33 GFLOP per training image at width 64 on 32x32 images
(forward 1.11 GFLOP, backward twice that), scaled by width² and image area for other shapes.

The compreps step is timed on full batches only and compiles its one graph in the warm-up, so
no timed step compiles; ``--compile-modes default,reduce-overhead`` adds the step with CUDA
graphs (printed after the ratio).

    .venv/bin/python benchmarks/train_throughput.py                  # width 64, batch 128
    .venv/bin/python benchmarks/train_throughput.py --width 8 --steps 10 --num-workers 0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Dataset

from compreps.core.settings import ModelSettings, settings_from_config
from compreps.model.data.augment import PADDING
from compreps.model.data.datasets import load_dataset
from compreps.model.networks import build_model, describe_device
from compreps.model.runtime import resolve_compile, resolve_precision
from compreps.model.training.step import compiled_forward, run_epoch
from compreps.model.training.train import start_run

ROOT = Path(__file__).resolve().parents[1]
PAPER = settings_from_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
GFLOP_PER_IMAGE = 3.33  # ResNet-18 (CIFAR), width 64, 32x32: 3 x 1.11 GFLOP forward
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by device-name part.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L4": 121.0}


class PerSampleAugmented(Dataset):
    """uint8 images augmented and normalised one at a time, as a torchvision pipeline would."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = F.pad(self.images[i], (PADDING,) * 4)  # zero padding
        _, height, width = self.images[i].shape
        dy, dx = torch.randint(0, 2 * PADDING + 1, (2,)).tolist()
        image = image[:, dy : dy + height, dx : dx + width]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return (image.float() / 255 - self.mean) / self.std, self.labels[i]


def timed(steps, warmup: int, count: int, device: torch.device) -> float:
    """Seconds for ``steps(count)`` after ``steps(warmup)``, with the device synchronised."""
    steps(warmup)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    steps(count)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_compreps(args, data, device: torch.device, mode: str) -> tuple[float, str, bool]:
    """Seconds for ``args.steps`` steps of the project's step; also its precision and compile.

    Only full batches are stepped (each epoch is cut before its last partial batch), so the
    warm-up compiles the one graph and no timed step compiles or runs eager."""
    train = dataclasses.replace(PAPER.train, epochs=1000, batch_size=args.batch_size)
    precision, _ = resolve_precision(train.precision, device)
    compiled = resolve_compile(train.compile, device)
    model = ModelSettings(arch="resnet18", width=args.width)
    run = start_run(
        data, model, train, data.train_images, data.train_labels, device, precision, compiled
    )
    if compiled and mode != "default":
        run.ctx.forward = compiled_forward(run.ctx.model, mode=mode)
    full_batches = len(run.labels) // args.batch_size
    if full_batches < 1:
        raise SystemExit(f"{len(run.labels)} training images: fewer than one batch")

    def steps(count: int) -> None:
        while count > 0:
            chunk = min(count, full_batches)
            run_epoch(run.ctx, run.images, run.labels, run.generator, args.batch_size, chunk)
            count -= chunk

    return timed(steps, args.warmup, args.steps, device), precision, compiled


def time_conventional(args, data, device: torch.device) -> float:
    dataset = PerSampleAugmented(data.train_images, data.train_labels, data.mean, data.std)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.num_workers > 0,
        drop_last=True,
    )
    torch.manual_seed(0)
    shape = data.train_images.shape
    model = build_model("resnet18", args.width, shape[1], len(data.classes)).to(device).train()
    train = PAPER.train
    optimizer = torch.optim.SGD(
        model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
    )

    def batches():
        while True:
            yield from loader

    stream = batches()

    def steps(count: int) -> None:
        for _ in range(count):
            inputs, labels = next(stream)
            inputs = inputs.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            loss = F.cross_entropy(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return timed(steps, args.warmup, args.steps, device)


def bf16_peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None  # no single peak to quote for a CPU
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in BF16_PEAK_TFLOPS.items() if part in name), None)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda")
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak")
    parser.add_argument("--data-root", default=str(ROOT / "data" / "cifar10-sample"))
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument(
        "--compile-modes",
        default="default",
        help="torch.compile modes of the compreps step, comma-separated, the first one against "
        "the textbook loop (e.g. default,reduce-overhead: CUDA graphs); used where it compiles",
    )
    return parser.parse_args(argv)


def print_row(label: str, setting: str, speed: float, gflop: float, peak: float | None) -> None:
    share = "n/a" if peak is None else f"{100 * speed * gflop / (peak * 1000):.2f}"
    print(f"| {label:<12} | {setting:<36} | {speed:>10.1f} | {share:>11} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped sample is not the full dataset
        data = load_dataset(args.dataset, args.data_root)
    _, _, height, width = data.train_images.shape
    gflop = GFLOP_PER_IMAGE * (args.width / 64) ** 2 * (height * width / 1024)
    peak = bf16_peak_tflops(device, args.peak_tflops)
    print(
        f"ResNet-18 width {args.width}, batch {args.batch_size}, {describe_device(device)}, "
        f"torch {torch.__version__}, {args.steps} timed steps after {args.warmup} warm-up, "
        f"{args.dataset} ({len(data.train_labels)} train images), {gflop:.3g} GFLOP/image, "
        f"bf16 peak {'n/a' if peak is None else f'{peak:g} TFLOP/s'}",
        flush=True,
    )
    # Rows are printed as they are measured: a time-boxed run cut short keeps the first ones.
    print(f"| {'loop':<12} | {'setting':<36} | {'img/s':>10} | {'% bf16 peak':>11} |")
    print(f"| {'-' * 12} | {'-' * 36} | {'-' * 10}:| {'-' * 11}:|", flush=True)
    modes = args.compile_modes.split(",")
    seconds, precision, compiled = time_compreps(args, data, device, modes[0])
    ours = args.steps * args.batch_size / seconds
    mode_note = f" ({modes[0]})" if compiled else ""
    print_row("compreps", f"{precision}, compile {compiled}{mode_note}", ours, gflop, peak)
    textbook = args.steps * args.batch_size / time_conventional(args, data, device)
    print_row("conventional", f"fp32, DataLoader workers {args.num_workers}", textbook, gflop, peak)
    print(f"ratio compreps/conventional: {ours:.1f} / {textbook:.1f} = {ours / textbook:.3f}")
    for mode in modes[1:] if compiled else []:
        seconds, precision, _ = time_compreps(args, data, device, mode)
        speed = args.steps * args.batch_size / seconds
        print_row("compreps", f"{precision}, compile True ({mode})", speed, gflop, peak)
        print(f"ratio {mode}/{modes[0]}: {speed:.1f} / {ours:.1f} = {speed / ours:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
