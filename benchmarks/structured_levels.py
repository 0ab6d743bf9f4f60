"""Achieved compression and wall time of the structured families (struct_l1, nexp, fold) per level.

For a ResNet-18 (CIFAR variant) of the given width, random-init or trained for a few epochs on
the shipped CIFAR-10 sample, each family compresses a fresh copy of the same model at every
level; the table shows the removed-channel fraction reached, the parameter and MAC fractions of
the dense model, the wall time of the compression call and, when trained, the test accuracy
on the sample's test split (no fine-tuning). NEXP scores and the fold's optional BN
calibration use 60 training images.

    .venv/bin/python benchmarks/structured_levels.py [--width 8] [--epochs 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from compreps.model.compression.apply import apply_family  # noqa: E402
from compreps.model.compression.structured import STRUCTURED_FAMILIES  # noqa: E402
from compreps.model.data.datasets import load_dataset  # noqa: E402
from compreps.model.networks import accuracy, build_model, normalize, predict_logits  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=0, help="0: random init, no accuracy")
    parser.add_argument(
        "--levels", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    )
    parser.add_argument("--bn-repair", default="variance", help="fold's BN repair")
    parser.add_argument("--data-root", default=str(ROOT / "data/cifar10-sample"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def train(model, data, epochs: int, seed: int) -> None:
    """Plain SGD with a cosine schedule and random flips: enough for a non-trivial model."""
    gen = torch.Generator().manual_seed(seed)
    images, labels = data.train_images, data.train_labels
    steps = epochs * ((len(images) + 127) // 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(images), 128):
            idx = order[start : start + 128]
            x = normalize(images[idx], data.mean, data.std)
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x[flip] = x[flip].flip(3)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_dataset("cifar10", args.data_root)
    model = build_model("resnet18", args.width, 3, len(data.classes)).eval()
    started = time.perf_counter()
    if args.epochs:
        train(model, data, args.epochs, args.seed)
    train_s = time.perf_counter() - started
    calib = normalize(data.train_images[:60], data.mean, data.std)

    def test_accuracy(m) -> float:
        logits = predict_logits(m, data.test_images, data.mean, data.std)
        return accuracy(logits, data.test_labels)

    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"# resnet18 width {args.width}, {args.epochs} epochs on {len(data.train_images)} "
        f"images ({train_s:.1f} s), fold bn_repair={args.bn_repair}"
    )
    header = "family     level  achieved  params   param_frac  macs      macs_frac  time_s"
    if args.epochs:
        header += "  test_acc"
        print(f"# dense: test accuracy {test_accuracy(model):.4f} on {len(data.test_images)}")
    print(header)
    for family in STRUCTURED_FAMILIES:
        for level in args.levels:
            m = copy.deepcopy(model)
            options = {"bn_repair": args.bn_repair} if family == "fold" else {}
            t0 = time.perf_counter()
            rec = apply_family(m, family, level, calib, **options)
            seconds = time.perf_counter() - t0
            row = (
                f"{family:<10} {level:<6} {rec['achieved_level']:<9.4f} {rec['params']:<8} "
                f"{rec['param_fraction']:<11.4f} {rec['macs']:<9} {rec['macs_fraction']:<10.4f} "
                f"{seconds:<7.2f}"
            )
            if args.epochs:
                row += f" {test_accuracy(m):.4f}"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
