"""The in-memory dataset every loader returns: :class:`ImageData`.

Images stay ``torch.uint8`` N×C×H×W on the CPU; normalisation happens in the model-running
steps. A loader asked for some splits only (``splits=("test",)``) leaves the others ``None``,
so a compression or activation job never reads the training set.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from compreps.core.files import CompRepsError

SPLITS = ("train", "test")
SPLIT_WORDS = {"train": "training", "test": "test"}


@dataclass
class ImageData:
    """A labelled image dataset: uint8 images N×C×H×W and int64 labels, both on the CPU.

    ``mean``/``std`` are per channel in [0, 1] pixel units: normalise with
    ``(x / 255 - mean) / std``. A split that was not loaded is ``None``.
    """

    name: str
    train_images: torch.Tensor | None
    train_labels: torch.Tensor | None
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def check_splits(splits: Sequence[str]) -> tuple[str, ...]:
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise CompRepsError(f"splits must be a non-empty subset of {SPLITS}, got {splits!r}")
    return tuple(split for split in SPLITS if split in splits)


def warn_if_partial(name: str, folder: Path, counts: dict[str, int], full: dict[str, int]) -> None:
    """Warn when a loaded split holds another number of images than the official dataset."""
    if all(counts[split] == full[split] for split in counts):
        return
    held = " and ".join(f"{n} {SPLIT_WORDS[split]}" for split, n in counts.items())
    official = " / ".join(str(full[split]) for split in counts)
    warnings.warn(
        f"{name} in {folder} holds {held} images, not the full {official}: a sample or "
        "partial copy (fine for demos, not for the paper's numbers)",
        stacklevel=4,  # the caller of load_dataset
    )


def image_digests(images: torch.Tensor) -> list[bytes]:
    """A 128-bit hash of each image's bytes: equal images, equal hashes."""
    rows = images.reshape(len(images), -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def split_overlap(data: ImageData) -> list[tuple[int, int]]:
    """``(test index, training index)`` of every test image byte-identical to a training image."""
    train = {}
    for index, key in enumerate(image_digests(data.train_images)):
        train.setdefault(key, index)
    return [
        (index, train[key])
        for index, key in enumerate(image_digests(data.test_images))
        if key in train
    ]
