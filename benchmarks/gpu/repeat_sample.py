"""Write a CIFAR-shaped training set of 50,000 images by repeating the shipped sample.

The full CIFAR-10 (163 MB) cannot travel to the GPU machine; the shipped sample (5,085 training
images) can. This tiles the sample's training images (in their order, cut at 50,000) into five
official-format python batches of 10,000 and copies the test batch and meta file, so the run
has the paper's epoch length (391 steps of 128) and GPU cost. The folder's name says what it is:
``data/cifar10-sample-repeated-50000/cifar-10-batches-py``; its md5 sums go to
``cifar-10-batches-py.md5`` beside it (``prepare_data`` checks them). Accuracies from it say
nothing about CIFAR-10: each image is seen ~10 times per epoch.

    python benchmarks/gpu/repeat_sample.py [--source data/cifar10-sample] [--total 50000]
"""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

import numpy as np

from compreps.core.data_files import write_manifest
from compreps.core.files import atomic_write
from compreps.model.data.cifar10 import CIFAR10_TRAIN_FILES, read_cifar10_batch

ROOT = Path(__file__).resolve().parents[2]
BATCHES = "cifar-10-batches-py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(ROOT / "data" / "cifar10-sample"))
    parser.add_argument("--total", type=int, default=50_000)
    args = parser.parse_args()
    source = Path(args.source) / BATCHES
    dest = ROOT / "data" / f"{Path(args.source).name}-repeated-{args.total}" / BATCHES
    parts = [read_cifar10_batch(source / name) for name in CIFAR10_TRAIN_FILES]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3 * 32 * 32)
    labels = np.concatenate([p[1] for p in parts])
    repeats = -(-args.total // len(labels))
    images = np.tile(images, (repeats, 1))[: args.total]
    labels = np.tile(labels, repeats)[: args.total]
    dest.mkdir(parents=True, exist_ok=True)
    per_file = -(-args.total // len(CIFAR10_TRAIN_FILES))
    for k, name in enumerate(CIFAR10_TRAIN_FILES):
        chunk = slice(k * per_file, (k + 1) * per_file)
        batch = {"data": images[chunk], "labels": labels[chunk].tolist()}
        with atomic_write(dest / name) as tmp, open(tmp, "wb") as handle:
            pickle.dump(batch, handle, protocol=4)  # raw bytes: no latin-1 blow-up
    for name in ("test_batch", "batches.meta"):
        if (source / name).exists():
            shutil.copy2(source / name, dest / name)
    write_manifest("cifar10", dest.parent)  # its own md5 sums, checked by prepare_data
    print(f"{dest}: {len(labels)} training images ({repeats}x the sample, cut), test set copied")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
