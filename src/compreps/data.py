"""Dataset loaders (CIFAR-10, Fashion-MNIST), class-stratified selection and ``prepare-data``.

Both datasets are read from their official on-disk formats with numpy alone (no torchvision):
CIFAR-10 from the python-batch pickles under ``<root>/cifar-10-batches-py``, Fashion-MNIST from
the IDX files under ``<root>/fashion-mnist`` (or the Debian package's folder). Images stay
``torch.uint8`` N×C×H×W on the CPU; normalisation happens in the model-running steps.

Only ``prepare-data`` (``main``) may download; every other step calls
``load_dataset(..., download=False)`` and gets one clear error when the data are missing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pickle
import sys
import tarfile
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compreps.files import CompRepsError, atomic_write, sha256_file

DATASETS = ("cifar10", "fashion_mnist")

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FULL_COUNTS = (50_000, 10_000)
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

FASHION_DIR = "fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_FULL_COUNTS = (60_000, 10_000)
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


@dataclass
class ImageData:
    """A labelled image dataset: uint8 images N×C×H×W and int64 labels, both on the CPU.

    ``mean``/``std`` are per channel in [0, 1] pixel units: normalise with
    ``(x / 255 - mean) / std``.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_dataset(name: str, root: str | os.PathLike, download: bool = False) -> ImageData:
    """Load dataset ``name`` (``cifar10`` or ``fashion_mnist``) from under ``root``.

    ``download=True`` fetches the official CIFAR-10 archive when it is missing (md5-checked);
    Fashion-MNIST is never downloaded. Missing data raise one :class:`CompRepsError`.
    """
    if name == "cifar10":
        return load_cifar10(root, download=download)
    if name == "fashion_mnist":
        return load_fashion_mnist(root)
    raise CompRepsError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


def dataset_files(name: str, root: str | os.PathLike) -> list[Path]:
    """The source files ``load_dataset(name, root)`` reads (for checksums in the summary)."""
    if name == "cifar10":
        folder = Path(root) / CIFAR10_DIR
        names = [*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE]
        return [folder / n for n in names if (folder / n).exists()]
    if name == "fashion_mnist":
        return list(_fashion_paths(root).values())
    raise CompRepsError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


# --------------------------------------------------------------------------- CIFAR-10


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


def load_cifar10(root: str | os.PathLike, download: bool = False) -> ImageData:
    """Load CIFAR-10 from ``<root>/cifar-10-batches-py``, downloading it first if allowed.

    Batches may hold any number of rows (e.g. the shipped sample); a warning names the counts
    when they are not the full 50,000 / 10,000.
    """
    folder = Path(root) / CIFAR10_DIR
    if not folder.exists():
        if not download:
            raise _missing_cifar10_error(folder, f"{folder} does not exist and download is off")
        download_cifar10(root)
    names = [*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise _missing_cifar10_error(
            folder, f"{folder} lacks {', '.join(missing)} (delete the folder to download again)"
        )
    train = [read_cifar10_batch(folder / n) for n in CIFAR10_TRAIN_FILES]
    test_images, test_labels = read_cifar10_batch(folder / CIFAR10_TEST_FILE)
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    _warn_if_partial("cifar10", folder, len(train_labels), len(test_labels), CIFAR10_FULL_COUNTS)
    return ImageData(
        name="cifar10",
        train_images=torch.from_numpy(np.ascontiguousarray(train_images)),
        train_labels=torch.from_numpy(train_labels),
        test_images=torch.from_numpy(np.ascontiguousarray(test_images)),
        test_labels=torch.from_numpy(test_labels),
        classes=_cifar10_classes(folder),
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )


def _warn_if_partial(
    name: str, folder: Path, n_train: int, n_test: int, full: tuple[int, int]
) -> None:
    if (n_train, n_test) != full:
        warnings.warn(
            f"{name} in {folder} holds {n_train} training and {n_test} test images, not the "
            f"full {full[0]} / {full[1]}: a sample or partial copy (fine for demos, not for "
            "the paper's numbers)",
            stacklevel=4,  # the caller of load_dataset
        )


def _fetch_url(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` with a log-friendly progress bar."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc="download CIFAR-10",
            file=sys.stderr,
            mininterval=0.5 if sys.stderr.isatty() else 10.0,
        ) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def md5_file(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        digest = md5_file(archive_path)
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


# --------------------------------------------------------------------------- Fashion-MNIST


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


def _find_file(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _fashion_folders(root: str | os.PathLike) -> list[Path]:
    return [Path(root) / FASHION_DIR, FASHION_SYSTEM_DIR]


def _fashion_paths(root: str | os.PathLike) -> dict[str, Path]:
    """The four IDX files, each from the first folder that has it."""
    folders = _fashion_folders(root)
    paths = {key: _find_file(folders, name) for key, name in FASHION_FILES.items()}
    missing = [FASHION_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise CompRepsError(
            f"Fashion-MNIST not found: {', '.join(missing)} (or .gz) missing from "
            f"{' and '.join(str(f) for f in folders)}. Put the official IDX files in "
            f"{folders[0]} or install the Debian package dataset-fashion-mnist "
            "(automatic download is for CIFAR-10 only)"
        )
    return paths  # type: ignore[return-value]


def load_fashion_mnist(root: str | os.PathLike) -> ImageData:
    """Load Fashion-MNIST (1×28×28, 10 classes) from its IDX files."""
    paths = _fashion_paths(root)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
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
    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    _warn_if_partial(
        "fashion_mnist", paths["train_images"].parent, n_train, n_test, FASHION_FULL_COUNTS
    )

    def images(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arrays[key][:, None, :, :]))

    def labels(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key].astype(np.int64))

    return ImageData(
        name="fashion_mnist",
        train_images=images("train_images"),
        train_labels=labels("train_labels"),
        test_images=images("test_images"),
        test_labels=labels("test_labels"),
        classes=list(FASHION_CLASSES),
        mean=FASHION_MEAN,
        std=FASHION_STD,
    )


# --------------------------------------------------------------------------- selection


def stratified_allocation(class_counts: np.ndarray, n_select: int) -> np.ndarray:
    """How many examples to take per class: proportional, largest-remainder rounding.

    Exact integer arithmetic: class ``c`` gets ``floor(n·count_c / N)``; the leftover slots go
    to the largest remainders (ties: lower class first). When ``n_select`` is at least the
    number of non-empty classes, each such class gets at least one, taken from the class whose
    allocation most exceeds its exact quota.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    if not 1 <= n_select <= total:
        raise CompRepsError(f"cannot select {n_select} of {total} examples")
    numerators = n_select * counts
    allocation = numerators // total
    remainders = numerators % total
    leftover = n_select - int(allocation.sum())
    order = np.lexsort((np.arange(counts.size), -remainders))  # largest remainder first
    allocation[order[:leftover]] += 1
    present = counts > 0
    if n_select >= int(present.sum()):
        for cls in np.flatnonzero(present & (allocation == 0)):
            # excess over the exact quota, compared as numerators over ``total``
            excess = allocation * total - numerators
            excess[allocation <= 1] = np.iinfo(np.int64).min
            donor = int(np.argmax(excess))
            allocation[donor] -= 1
            allocation[cls] += 1
    return allocation


def stratified_indices(labels: np.ndarray, n_select: int, seed: int) -> np.ndarray:
    """Class-stratified random subset of ``range(len(labels))`` of exactly ``n_select`` items.

    Per-class sizes come from :func:`stratified_allocation`; within each class the examples are
    drawn without replacement with ``numpy.random.default_rng(seed)``. Returns sorted, unique
    int64 indices.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise CompRepsError(f"labels must be one-dimensional, got shape {labels.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    allocation = stratified_allocation(np.bincount(inverse, minlength=classes.size), n_select)
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=int(k), replace=False)
        for c, k in enumerate(allocation)
        if k > 0
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# --------------------------------------------------------------------------- CLI


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"true", "yes", "1", "on"}:
        return True
    if value in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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
                "md5": md5_file(path),
                "sha256": sha256_file(path),
            }
            for path in files
        },
    }


def main(argv: list[str]) -> int:
    """``prepare-data``: load (downloading CIFAR-10 if allowed) and write a JSON summary."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Check (and download) the dataset."
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--download", type=parse_bool, default=False, metavar="true|false")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    data = load_dataset(args.dataset, args.data_root, download=args.download)
    summary = dataset_summary(data, args.data_root)
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
