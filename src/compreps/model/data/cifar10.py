"""CIFAR-10 from its official python-batch pickles (numpy only, no torchvision), and download.

The files live under ``<root>/cifar-10-batches-py``. Only ``prepare-data`` may download (the
official archive, md5-checked, extracted into place atomically); every other step reads what
it prepared and gets one clear error when the data are missing.
"""

from __future__ import annotations

import os
import pickle
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from compreps.core.data_files import CIFAR10_DIR
from compreps.core.files import CompRepsError, file_digest, progress_bar
from compreps.model.data.image_data import ImageData, check_splits, warn_if_partial

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FULL_COUNTS = {"train": 50_000, "test": 10_000}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
DEMO_HINT = (
    "or run the demo, which uses the shipped sample data/cifar10-sample: "
    "`snakemake --cores all --configfile presets/demo.yaml`"
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays: a batch file cannot run arbitrary code."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "_frombuffer", "scalar"}

    def find_class(self, module: str, name: str):
        numpy_global = module == "numpy" or module.startswith("numpy.")
        if (numpy_global and name in self._ALLOWED) or (module, name) == ("_codecs", "encode"):
            # _codecs.encode: how Python 3 writes bytes in protocol-2 pickles
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name} in a CIFAR-10 batch")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            payload = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CompRepsError(
            f"{path} is not a valid CIFAR-10 python batch ({type(err).__name__}: {err}); "
            "delete the folder and prepare the data again"
        ) from err
    if not isinstance(payload, dict):
        raise CompRepsError(f"{path} is not a valid CIFAR-10 python batch (not a dict)")
    # Official files (pickled by Python 2) have bytes keys; re-pickled ones have str keys.
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in payload.items()}


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one python-batch file: images N×3×32×32 uint8 and labels int64.

    Each row of ``data`` holds 3072 bytes: the 1024 red values (row-major 32×32), then green,
    then blue, so a plain reshape gives channel, row, column.
    """
    path = Path(path)
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise CompRepsError(f"{path} is not a valid CIFAR-10 python batch (no data/labels keys)")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CompRepsError(f"{path}: data must be N×3072 uint8, got {data.shape} {data.dtype}")
    if labels.shape != (data.shape[0],):
        raise CompRepsError(f"{path}: {labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise CompRepsError(f"{path}: labels outside 0..{len(CIFAR10_CLASSES) - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10_classes(folder: Path) -> list[str]:
    meta_path = folder / CIFAR10_META_FILE
    if not meta_path.exists():
        return list(CIFAR10_CLASSES)
    names = _unpickle(meta_path).get("label_names", CIFAR10_CLASSES)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _missing_cifar10_error(folder: Path, reason: str) -> CompRepsError:
    return CompRepsError(
        f"CIFAR-10 not found: {reason}. Expected the python-batch files (data_batch_1..5, "
        f"test_batch) in {folder}. Set data.download: true to fetch {CIFAR10_URL} "
        f"(md5 {CIFAR10_MD5}), or download and extract it yourself into {folder.parent}, "
        f"{DEMO_HINT}"
    )


CIFAR10_SPLIT_FILES = {"train": CIFAR10_TRAIN_FILES, "test": (CIFAR10_TEST_FILE,)}


def _read_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    batches = [read_cifar10_batch(folder / name) for name in CIFAR10_SPLIT_FILES[split]]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


def load_cifar10(
    root: str | os.PathLike, download: bool, splits: Sequence[str] = ("train", "test")
) -> ImageData:
    """Load the requested splits of CIFAR-10 from ``<root>/cifar-10-batches-py``, downloading
    the archive first if allowed.

    Batches may hold any number of rows (e.g. the shipped sample); a warning names the counts
    when they are not the full 50,000 / 10,000.
    """
    splits = check_splits(splits)
    folder = Path(root) / CIFAR10_DIR
    if not folder.exists():
        if not download:
            raise _missing_cifar10_error(folder, f"{folder} does not exist and download is off")
        download_cifar10(root)
    names = [name for split in splits for name in CIFAR10_SPLIT_FILES[split]]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise _missing_cifar10_error(
            folder, f"{folder} lacks {', '.join(missing)} (delete the folder to download again)"
        )
    arrays = {split: _read_split(folder, split) for split in splits}
    counts = {split: len(labels) for split, (_, labels) in arrays.items()}
    warn_if_partial("cifar10", folder, counts, CIFAR10_FULL_COUNTS)
    train_images, train_labels = arrays.get("train", (None, None))
    test_images, test_labels = arrays.get("test", (None, None))
    return ImageData(
        name="cifar10",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=_cifar10_classes(folder),
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )


def dataset_files(root: str | os.PathLike) -> list[Path]:
    """The CIFAR-10 files present under ``root`` (for checksums in the data summary)."""
    folder = Path(root) / CIFAR10_DIR
    names = [*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE]
    return [folder / n for n in names if (folder / n).exists()]


def _fetch_url(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` with a log-friendly progress bar."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, desc="download CIFAR-10", unit="B", unit_scale=True) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def _safe_members(archive: tarfile.TarFile, top: str) -> list[tarfile.TarInfo]:
    """Archive members, refusing links, devices, absolute paths and anything outside ``top``."""
    members = archive.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if (
            member.name.startswith("/")
            or ".." in parts
            or not parts
            or parts[0] != top
            or not (member.isfile() or member.isdir())
        ):
            raise CompRepsError(
                f"unsafe or unexpected entry {member.name!r} in the CIFAR-10 "
                "archive; refusing to extract it"
            )
    return members


def download_cifar10(root: str | os.PathLike) -> Path:
    """Download, md5-check and extract the official archive into ``<root>/cifar-10-batches-py``.

    Extraction goes to a temporary folder under ``root`` that is renamed into place at the end,
    so an interrupted download never leaves a half-filled dataset folder behind.
    """
    root = Path(root)
    folder = root / CIFAR10_DIR
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-download.", dir=root) as tmp_name:
        tmp = Path(tmp_name)
        archive_path = tmp / "cifar-10-python.tar.gz"
        print(f"downloading {CIFAR10_URL} -> {folder}", file=sys.stderr)
        try:
            _fetch_url(CIFAR10_URL, archive_path)
        except (OSError, ValueError) as err:  # URLError, timeouts, DNS failures are OSErrors
            raise _missing_cifar10_error(
                folder, f"{folder} does not exist and the download failed ({err})"
            ) from err
        digest = file_digest(archive_path, "md5")
        if digest != CIFAR10_MD5:
            raise CompRepsError(
                f"downloaded {CIFAR10_URL} has md5 {digest}, expected "
                f"{CIFAR10_MD5}: the download is corrupt, try again"
            )
        extract_dir = tmp / "extract"
        with tarfile.open(archive_path, "r:gz") as archive:
            members = _safe_members(archive, CIFAR10_DIR)
            # members are already vetted; the "data" filter (Python >= 3.10.12) also drops
            # permissions and ownership from the archive
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(extract_dir, members=members, **extra)
        os.replace(extract_dir / CIFAR10_DIR, folder)
    print(f"extracted CIFAR-10 into {folder}", file=sys.stderr)
    return folder
