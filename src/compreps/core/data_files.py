"""Which files a dataset root must hold, and how many test images it has, without torch.

The config checker runs at Snakefile parse time, before any job, so it must stay cheap and
torch-free: it only looks at file names, at the ``labels`` of CIFAR-10's ``test_batch`` (the
image array is skipped, never rebuilt) and at the 8-byte header of Fashion-MNIST's
``t10k-labels`` IDX file. The loaders themselves live in :mod:`compreps.model.data.cifar10` and
:mod:`compreps.model.data.fashion_mnist`.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

from compreps.core.files import CompRepsError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
FASHION_DIR = "fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")
FASHION_TEST_LABELS = "t10k-labels-idx1-ubyte"
FULL_TEST_COUNTS = {"cifar10": 10_000, "fashion_mnist": 10_000}
DATASET_SHAPES = {"cifar10": (3, 10), "fashion_mnist": (1, 10)}  # (channels, classes)
DOWNLOADABLE = ("cifar10",)


class _Skipped:
    """Stands in for every numpy object of a batch: accepts its state and keeps nothing."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


class _LabelsOnlyUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch with every numpy array replaced by :class:`_Skipped`:
    no array is built and no other global can be loaded (a batch cannot run code)."""

    def find_class(self, module: str, name: str):
        if (
            module == "numpy"
            or module.startswith("numpy.")
            or (module, name)
            == (
                "_codecs",
                "encode",
            )
        ):
            return _Skipped
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def dataset_folders(dataset: str, root: str | os.PathLike) -> list[Path]:
    """Folders searched for the dataset's files, first match wins."""
    if dataset == "cifar10":
        return [Path(root) / CIFAR10_DIR]
    return [Path(root) / FASHION_DIR, FASHION_SYSTEM_DIR]


def _find(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def missing_files(dataset: str, root: str | os.PathLike) -> list[str]:
    """Names of the dataset files not found under ``root`` (empty when all are there)."""
    folders = dataset_folders(dataset, root)
    if dataset == "cifar10":
        return [name for name in CIFAR10_BATCHES if not (folders[0] / name).is_file()]
    names = (*FASHION_NAMES, FASHION_TEST_LABELS)
    return [name for name in names if _find(folders, name) is None]


def _cifar10_test_count(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            batch = _LabelsOnlyUnpickler(handle, encoding="bytes").load()
        labels = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
        return len(labels["labels"])
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CompRepsError(f"{path} is not a valid CIFAR-10 python batch ({err})") from err
    except KeyError as err:
        raise CompRepsError(f"{path} is not a valid CIFAR-10 python batch (no labels)") from err


def _idx_count(path: Path) -> int:
    """First dimension of an IDX file, from its 8-byte header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(8)
    except (OSError, EOFError) as err:
        raise CompRepsError(f"cannot read IDX file {path}: {err}") from err
    if len(header) < 8 or header[:2] != b"\0\0":
        raise CompRepsError(f"{path} is not an IDX file (bad header {header.hex()})")
    return int.from_bytes(header[4:8], "big")


def count_test_images(dataset: str, root: str | os.PathLike) -> int:
    """Number of test images the dataset under ``root`` holds (its files must exist)."""
    folders = dataset_folders(dataset, root)
    if dataset == "cifar10":
        return _cifar10_test_count(folders[0] / "test_batch")
    path = _find(folders, FASHION_TEST_LABELS)
    if path is None:
        raise CompRepsError(f"{FASHION_TEST_LABELS} not found in {folders[0]}")
    return _idx_count(path)
