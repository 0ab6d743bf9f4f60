"""Dataset access for every step (``load_dataset``) and the ``prepare-data`` step.

CIFAR-10 (:mod:`compreps.model.data.cifar10`) and Fashion-MNIST
(:mod:`compreps.model.data.fashion_mnist`) are read
from their official on-disk formats with numpy alone (no torchvision) into an
:class:`~compreps.model.data.image_data.ImageData`. Only ``prepare-data`` may download; every other
step
calls ``load_dataset(..., download=False)``, asks for the splits it needs, and gets one clear
error when the data are missing. ``prepare-data`` also checks what the data are
(:func:`check_identity`): every file's md5, no file copied over another, no test image in the
training split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from compreps.core import data_files
from compreps.core.files import CompRepsError, atomic_write, file_digest, log
from compreps.core.settings import DataSettings, add_arguments, from_arguments
from compreps.model.data import cifar10, fashion_mnist
from compreps.model.data.image_data import SPLITS, ImageData, split_overlap

DATASETS = ("cifar10", "fashion_mnist")


def load_dataset(
    name: str, root: str | os.PathLike, download: bool = False, splits: Sequence[str] = SPLITS
) -> ImageData:
    """Load the ``splits`` of dataset ``name`` (``cifar10`` or ``fashion_mnist``) from ``root``.

    ``download=True`` fetches the official CIFAR-10 archive when it is missing (md5-checked);
    Fashion-MNIST is never downloaded. Missing data raise one :class:`CompRepsError`.
    """
    if name == "cifar10":
        return cifar10.load_cifar10(root, download, splits)
    if name == "fashion_mnist":
        return fashion_mnist.load_fashion_mnist(root, splits)
    raise CompRepsError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``: the ``prepare-data`` summary, which names the dataset and its folder."""
    parser.add_argument(
        "--data",
        required=True,
        metavar="JSON",
        help="the prepare-data summary (results/data/dataset.json): dataset name and root",
    )


def load_prepared(summary: str | os.PathLike, splits: Sequence[str]) -> ImageData:
    """Load the ``splits`` of the dataset a ``prepare-data`` summary describes (no download).

    Steps take the dataset through this summary, a listed input of their rule, so a change of
    ``data.dataset`` or ``data.root`` reruns them and ``data.download`` does not.
    """
    path = Path(summary)
    if not path.is_file():
        raise CompRepsError(f"data summary {path} does not exist (rule 'prepare_data' writes it)")
    try:
        content = json.loads(path.read_text())
        name, root = content["dataset"], content["root"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CompRepsError(
            f"data summary {path} is unreadable ({type(err).__name__}: {err}); "
            "rerun rule 'prepare_data'"
        ) from err
    return load_dataset(name, root, download=False, splits=splits)


def dataset_files(name: str, root: str | os.PathLike) -> list[Path]:
    """The source files ``load_dataset(name, root)`` reads (for checksums in the summary)."""
    if name == "cifar10":
        return cifar10.dataset_files(root)
    if name == "fashion_mnist":
        return fashion_mnist.dataset_files(root)
    raise CompRepsError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


# --------------------------------------------------------------------------- prepare-data


def class_counts(labels: torch.Tensor, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels.numpy(), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts, strict=True)}


def dataset_summary(data: ImageData, root: str | os.PathLike) -> dict:
    """Counts, shapes and source checksums of a loaded dataset (the ``prepare-data`` output)."""
    files = dataset_files(data.name, root)
    return {
        "dataset": data.name,
        "root": str(root),
        "n_train": int(data.train_labels.numel()),
        "n_test": int(data.test_labels.numel()),
        "image_shape": list(data.train_images.shape[1:]),
        "classes": data.classes,
        "mean": list(data.mean),
        "std": list(data.std),
        "train_class_counts": class_counts(data.train_labels, data.classes),
        "test_class_counts": class_counts(data.test_labels, data.classes),
        "source_files": {
            str(path): {
                "bytes": path.stat().st_size,
                "md5": file_digest(path, "md5"),
                "sha256": file_digest(path, "sha256"),
            }
            for path in files
        },
    }


def check_identity(data: ImageData, root: str | os.PathLike) -> None:
    """What ``prepare-data`` checks the data are: every file's md5
    (:func:`compreps.core.data_files.verify_sums`: no damaged, foreign or copied file) and no
    test image byte-identical to a training image. Official files are what they are: an
    overlap in them is reported, not refused."""
    _, official = data_files.verify_sums(data.name, root)
    pairs = split_overlap(data)
    if not pairs:
        return
    test_file = data_files.data_file_paths(data.name, root)[data_files.TEST_IMAGE_FILES[data.name]]
    text = (
        f"{test_file}: {len(pairs)} of {len(data.test_labels)} test images are byte-identical "
        f"to training images (first: test image {pairs[0][0]} = training image {pairs[0][1]})"
    )
    if official:
        log(f"note: {text}, in the official files")
        return
    raise CompRepsError(
        f"{text}: the test split overlaps the training split; {data_files.remedy(data.name, root)}"
    )


def main(argv: list[str]) -> int:
    """``prepare-data``: load (downloading CIFAR-10 if allowed), check the files' identity and
    write a JSON summary."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Check (and download) the dataset."
    )
    add_arguments(parser, DataSettings)
    parser.add_argument(
        "--sources",
        metavar="FILE",
        help="the data checksum file the Snakefile keeps (results/data/sources-*.md5): refreshed "
        "after a download, so the next run does not see the new files as a change",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    settings = from_arguments(DataSettings, args)
    data = load_dataset(settings.dataset, settings.root, download=settings.download)
    if args.sources:
        data_files.refresh_source_sums(settings.dataset, settings.root, args.sources)
    check_identity(data, settings.root)
    summary = dataset_summary(data, settings.root)
    print(
        f"{data.name}: {summary['n_train']} train / {summary['n_test']} test images of shape "
        f"{tuple(summary['image_shape'])}",
        file=sys.stderr,
    )
    for split in ("train", "test"):
        counts = summary[f"{split}_class_counts"]
        print(
            f"  {split} per class: " + ", ".join(f"{k}={v}" for k, v in counts.items()),
            file=sys.stderr,
        )
    with atomic_write(args.out) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
