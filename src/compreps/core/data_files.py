"""Which files a dataset root must hold, what their md5 sums must be, and how many test images
it has, without torch.

The config checker runs at Snakefile parse time, before any job, so it must stay cheap and
torch-free: it only looks at file names, at the ``labels`` of CIFAR-10's ``test_batch`` (the
image array is skipped, never rebuilt) and at the 8-byte header of Fashion-MNIST's
``t10k-labels`` IDX file. The loaders themselves live in :mod:`compreps.model.data.cifar10` and
:mod:`compreps.model.data.fashion_mnist`.

Identity: every data file is checked against a manifest of md5 sums (:func:`verify_sums`):
the official sums, or a copy's own manifest ``<root>/<folder>.md5`` (the shipped sample has
one). :func:`refresh_source_sums` keeps a small file of the sums for Snakemake, rewritten only
when a sum changes, so replacing a data file reruns ``prepare_data`` and everything after it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
from pathlib import Path

from compreps.core.files import CompRepsError, atomic_write

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
FASHION_DIR = "fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")
FASHION_TEST_LABELS = "t10k-labels-idx1-ubyte"
TEST_IMAGE_FILES = {"cifar10": "test_batch", "fashion_mnist": "t10k-images-idx3-ubyte"}
FULL_TEST_COUNTS = {"cifar10": 10_000, "fashion_mnist": 10_000}
DATASET_SHAPES = {"cifar10": (3, 10), "fashion_mnist": (1, 10)}  # (channels, classes)
DOWNLOADABLE = ("cifar10",)
CIFAR10_META = "batches.meta"
# The official per-file md5 sums, the values torchvision's CIFAR10 class checks
# (torchvision/datasets/cifar.py: train_list, test_list, meta).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    CIFAR10_META: "5ff9c542aee3614f3951f8cda6e48888",
}
# Fashion-MNIST publishes the sums of its .gz files (torchvision/datasets/mnist.py,
# FashionMNIST.resources: train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels
# 25c81989df183df01b3e8a0aad5dffbe, t10k-images bef4ecab320f06d8554ea6380940ec79, t10k-labels
# bb300cfdad3c16e7a12a480ee83cd310). Debian's dataset-fashion-mnist recompresses them, so the
# sums of the decompressed IDX bytes (identical in both, as listed beside torchvision's
# resources as raw_data) are checked, for plain and .gz files alike.
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
OFFICIAL_MD5 = {"cifar10": CIFAR10_MD5, "fashion_mnist": FASHION_MD5}
OFFICIAL_SOURCE = {
    "cifar10": "the official CIFAR-10 sums",
    "fashion_mnist": "the official Fashion-MNIST sums",
}


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
    """Folders searched for the dataset's files, first match wins; every function of this
    module that takes a dataset name starts here, so an unknown name is one clear error."""
    if dataset not in DATASET_SHAPES:
        raise CompRepsError(
            f"unknown dataset {dataset!r}: expected one of {', '.join(DATASET_SHAPES)}"
        )
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


# --------------------------------------------------------------------------- identity


def manifest_path(dataset: str, root: str | os.PathLike) -> Path:
    """``<root>/<folder>.md5``: a copy's own sums (``md5sum`` format), used instead of the
    official ones when present (the shipped sample has one)."""
    return Path(root) / f"{dataset_folders(dataset, root)[0].name}.md5"


def read_manifest(path: Path) -> dict[str, str]:
    """``{file name: md5}`` from an ``md5sum``-format file (``.gz`` names count as plain)."""
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 32:
            raise CompRepsError(f"{path}:{number}: not an md5sum line ({line!r})")
        name = Path(parts[1].strip().lstrip("*")).name
        sums[name.removesuffix(".gz")] = parts[0].lower()
    return sums


def write_manifest(dataset: str, root: str | os.PathLike) -> Path:
    """Write :func:`manifest_path` with the current sums of the data files under ``root``:
    for a copy made on purpose (e.g. a subset or a repeated sample), never to silence a
    mismatch."""
    lines = [
        f"{content_md5(path)}  {name}" for name, path in data_file_paths(dataset, root).items()
    ]
    path = manifest_path(dataset, root)
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def expected_sums(dataset: str, root: str | os.PathLike) -> tuple[dict[str, str], str]:
    """The sums the data files must have, and where they come from."""
    manifest = manifest_path(dataset, root)
    if manifest.is_file():
        return read_manifest(manifest), str(manifest)
    return OFFICIAL_MD5[dataset], OFFICIAL_SOURCE[dataset]


def data_file_paths(dataset: str, root: str | os.PathLike) -> dict[str, Path]:
    """``{name: path}`` of the dataset's files present under ``root`` (Fashion-MNIST: each from
    the first folder that has it, plain or ``.gz``)."""
    folders = dataset_folders(dataset, root)
    if dataset == "cifar10":
        names = (*CIFAR10_BATCHES, CIFAR10_META)
        return {name: folders[0] / name for name in names if (folders[0] / name).is_file()}
    found = {name: _find(folders, name) for name in (*FASHION_NAMES, FASHION_TEST_LABELS)}
    return {name: path for name, path in found.items() if path is not None}


def content_md5(path: Path) -> str:
    """md5 of a file's bytes; of the decompressed bytes for a ``.gz``."""
    digest = hashlib.md5()
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise CompRepsError(f"cannot read {path}: {err}") from err
    return digest.hexdigest()


def remedy(dataset: str, root: str | os.PathLike) -> str:
    folder = dataset_folders(dataset, root)[0]
    if dataset == "cifar10":
        fetch = f"download it again (delete {folder} and set data.download: true)"
    else:
        fetch = f"put the official IDX files in {folder} (or reinstall dataset-fashion-mnist)"
    return f"{fetch}, or point data.root at an intact copy"


def _copies(found: dict[str, tuple[Path, str]]) -> list[str]:
    """One line per data file that is byte-identical to an earlier one (a batch copied over
    another); the class-names file is not a data file."""
    first: dict[str, Path] = {}
    lines = []
    for name, (path, md5) in found.items():
        if name == CIFAR10_META:
            continue
        if md5 in first:
            lines.append(
                f"{path} is identical to {first[md5]} (md5 {md5}): one data file was copied "
                "over another; restore it"
            )
        first.setdefault(md5, path)
    return lines


def verify_sums(dataset: str, root: str | os.PathLike) -> tuple[dict[Path, str], bool]:
    """Check every data file's md5 against :func:`expected_sums`; returns ``({path: md5},
    whether those were the official sums)``. Raises one :class:`CompRepsError`, a line per
    problem (each naming the file, both sums and the remedy)."""
    expected, source = expected_sums(dataset, root)
    found = {
        name: (path, content_md5(path)) for name, path in data_file_paths(dataset, root).items()
    }
    fix = remedy(dataset, root)
    if expected is OFFICIAL_MD5[dataset]:
        fix += f" (a copy of your own: list its md5 sums in {manifest_path(dataset, root)})"
    problems = [f"{line}: {fix}" for line in _copies(found)]
    for name, (path, md5) in found.items():
        if name not in expected:
            problems.append(f"{path}: not listed in {source}: add its md5 line or remove it")
        elif md5 != expected[name]:
            problems.append(
                f"{path}: md5 {md5}, expected {expected[name]} ({source}): the file is damaged "
                f"or not {dataset}'s; {fix}"
            )
    if problems:
        raise CompRepsError("\n".join(problems))
    return {path: md5 for path, md5 in found.values()}, expected is OFFICIAL_MD5[dataset]


# --------------------------------------------------------------------------- rerun trigger


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def source_sums_path(dataset: str, root: str | os.PathLike) -> str:
    """``results/data/sources-<dataset>-<hash of root>.md5``: one file per data source, so a
    dry run with another ``data.root`` leaves the current source's file alone."""
    key = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return f"results/data/sources-{dataset}-{key}.md5"


def refresh_source_sums(
    dataset: str, root: str | os.PathLike, out: str | os.PathLike | None = None
) -> str:
    """Write ``out`` (default :func:`source_sums_path`): one ``md5  path`` line per data file
    (and the copy's manifest), only when its content changes, so its time stamp moves only when
    the data do; returns ``out``.

    A file's md5 is recomputed only when its size, mtime, ctime or inode changed since the last
    call (cache ``<out>.stat.json``): a Snakefile parse costs a few ``stat`` calls.
    """
    out = Path(source_sums_path(dataset, root) if out is None else out)
    cache_path = out.with_name(f"{out.name}.stat.json")
    cache = _read_cache(cache_path)
    paths = list(data_file_paths(dataset, root).values())
    if manifest_path(dataset, root).is_file():
        paths.append(manifest_path(dataset, root))
    fresh, lines = {}, [f"# {dataset} under {root}"]
    for path in paths:
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        known = cache.get(str(path))
        md5 = known[1] if known and known[0] == signature else content_md5(path)
        fresh[str(path)] = [signature, md5]
        lines.append(f"{md5}  {path}")
    text = "\n".join(lines) + "\n"
    try:
        if not out.is_file() or out.read_text() != text:
            with atomic_write(out) as tmp:
                tmp.write_text(text)
        if fresh != cache:
            with atomic_write(cache_path) as tmp:
                tmp.write_text(json.dumps(fresh))
    except OSError as err:
        raise CompRepsError(f"cannot write the data checksums {out}: {err}") from err
    return str(out)
