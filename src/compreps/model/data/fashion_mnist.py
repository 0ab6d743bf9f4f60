"""Fashion-MNIST from its official IDX files (numpy only), never downloaded.

The four files (optionally ``.gz``) are taken from ``<root>/fashion-mnist`` or, file by file,
from the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``); the
folders are :func:`compreps.core.data_files.dataset_folders`'s, which the config checker uses too.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from compreps.core import data_files
from compreps.core.files import CompRepsError
from compreps.model.data.image_data import ImageData, check_splits, warn_if_partial

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_FULL_COUNTS = {"train": 60_000, "test": 10_000}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MEAN = (0.2860,)
FASHION_STD = (0.3530,)

# IDX type codes (http://yann.lecun.com/exdb/mnist/): code -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed): the MNIST/Fashion-MNIST array format.

    Header: two zero bytes, a type code, the number of dimensions, then each dimension as a
    big-endian uint32; the values follow in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise CompRepsError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise CompRepsError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise CompRepsError(f"{path} is a malformed IDX file (truncated header)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise CompRepsError(
            f"{path} is a malformed IDX file: header says {shape} "
            f"({expected} bytes of data), file has {len(raw) - header}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _first_existing(folders: list[Path], name: str) -> Path | None:
    candidates = (folder / file for folder in folders for file in (name, f"{name}.gz"))
    return next((path for path in candidates if path.is_file()), None)


def _fashion_paths(root: str | os.PathLike) -> dict[str, Path]:
    """The four IDX files, each from the first folder that has it."""
    folders = data_files.dataset_folders("fashion_mnist", root)
    paths = {key: _first_existing(folders, name) for key, name in FASHION_FILES.items()}
    missing = [FASHION_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise CompRepsError(
            f"Fashion-MNIST not found: {', '.join(missing)} (or .gz) missing from "
            f"{' and '.join(str(f) for f in folders)}. Put the official IDX files in "
            f"{folders[0]} or install the Debian package dataset-fashion-mnist "
            "(automatic download is for CIFAR-10 only)"
        )
    return paths  # type: ignore[return-value]


def load_fashion_mnist(
    root: str | os.PathLike, splits: Sequence[str] = ("train", "test")
) -> ImageData:
    """Load the requested splits of Fashion-MNIST (1×28×28, 10 classes) from its IDX files."""
    splits = check_splits(splits)
    paths = _fashion_paths(root)
    tensors: dict[str, torch.Tensor] = {}
    for split in splits:
        images = read_idx(paths[f"{split}_images"])
        labels = read_idx(paths[f"{split}_labels"])
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise CompRepsError(
                f"{paths[f'{split}_images']}: expected N×28×28 uint8 images, "
                f"got {images.shape} {images.dtype}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise CompRepsError(
                f"{paths[f'{split}_labels']}: {labels.shape} labels for {images.shape[0]} images"
            )
        if labels.size and labels.max() >= len(FASHION_CLASSES):
            raise CompRepsError(f"{paths[f'{split}_labels']}: labels outside 0..9")
        tensors[f"{split}_images"] = torch.from_numpy(np.ascontiguousarray(images[:, None]))
        tensors[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
    counts = {split: len(tensors[f"{split}_labels"]) for split in splits}
    warn_if_partial("fashion_mnist", paths["test_images"].parent, counts, FASHION_FULL_COUNTS)
    return ImageData(
        name="fashion_mnist",
        train_images=tensors.get("train_images"),
        train_labels=tensors.get("train_labels"),
        test_images=tensors.get("test_images"),
        test_labels=tensors.get("test_labels"),
        classes=list(FASHION_CLASSES),
        mean=FASHION_MEAN,
        std=FASHION_STD,
    )


def dataset_files(root: str | os.PathLike) -> list[Path]:
    """The four IDX files ``load_fashion_mnist(root)`` reads (for the data summary)."""
    return list(_fashion_paths(root).values())
