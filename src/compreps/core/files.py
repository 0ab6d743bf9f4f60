"""Atomic writes, CSV tables, progress bars, logging and clear errors for damaged result files.

Every result file is written to a temporary name in the same folder, flushed to disk and
then renamed over the target (``os.replace`` is atomic on POSIX), so a killed job never
leaves a half-written checkpoint or HDF5 file behind under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from compreps.core import families

_UMASK = os.umask(0)
os.umask(_UMASK)


class CompRepsError(Exception):
    """An error meant for the user: the CLI prints its message alone, without a traceback."""


# The Snakemake rule behind each family's step (the registry says which step makes a family).
STEP_RULES = {
    "train": "train_coreset",
    "prune": "prune",
    "quantize": "quantize",
    "structured": "compress_structured",
}


def rebuilding_rule(path: str | os.PathLike) -> str:
    """Which Snakemake rule rebuilds a result file, from its name (for error messages)."""
    name = Path(path).name
    if name.endswith(".h5"):
        return "activations"
    if name.endswith(".pt"):
        stem = name[: -len(".pt")]
        if stem == "base":
            return "train_base (or import_base when base_checkpoint is set)"
        prefix = stem.rpartition("-")[0]
        if prefix in families.REGISTRY:
            return STEP_RULES.get(families.REGISTRY[prefix].step, "the family's rule")
    return "the rule that wrote it"


def damaged_file_error(path: str | os.PathLike, reason: str) -> CompRepsError:
    """One clear message naming the file and the rule that rebuilds it."""
    return CompRepsError(
        f"{path} is truncated or corrupt ({reason}). Delete it and rerun the workflow; "
        f"Snakemake's rule '{rebuilding_rule(path)}' rebuilds it "
        f"(e.g. `snakemake --cores all --forcerun {path}`)."
    )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm`` as hashlib names it; md5 only where an
    external source publishes md5, e.g. the CIFAR-10 archive)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


# --------------------------------------------------------------------------- CSV tables
FLOAT_FORMAT = "%.10g"  # every CSV the project writes: 10 significant digits


def write_csv(frame, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame atomically, without the index, floats as ``%.10g``."""
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)


def read_table(
    path: str | os.PathLike, what: str, columns=None, rule: str | None = None, leading=False
):
    """Read a CSV written by :func:`write_csv`; a missing or unreadable file, or one without
    the expected ``columns`` (in that order; with ``leading`` they come first and further
    columns may follow), raises one :class:`CompRepsError`."""
    import pandas as pd

    path = Path(path)
    written_by = f" (rule '{rule}' writes it)" if rule else ""
    if not path.is_file():
        raise CompRepsError(f"{what} {path} does not exist{written_by}")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CompRepsError(f"cannot read {what} {path}: {err}") from err
    found = list(frame.columns)[: len(columns)] if leading and columns else list(frame.columns)
    if columns is not None and found != list(columns):
        raise CompRepsError(
            f"{what} {path} has columns {list(frame.columns)}, expected {list(columns)}"
            + (" first" if leading else "")
            + (f"; rerun rule '{rule}'" if rule else "")
        )
    return frame


# --------------------------------------------------------------------------- progress and log
def progress_bar(iterable=None, *, total: int | None = None, desc: str = "", **options):
    """A tqdm bar on stderr that suits log files: when stderr is not a terminal it redraws at
    most every 10 s (a job log gets a few lines, not thousands of carriage returns)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    options.setdefault("mininterval", 0.5 if interactive else 10.0)
    return tqdm(
        iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=interactive, **options
    )


def log(message: str) -> None:
    """One progress line on stderr (the rules send stderr to the job's log file)."""
    print(message, file=sys.stderr, flush=True)
