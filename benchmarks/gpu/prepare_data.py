"""Put the data a preset names where it reads it, without network.

    python benchmarks/gpu/prepare_data.py [--show] presets/gpu-fashion.yaml [more config files]

* Fashion-MNIST (``data.dataset: fashion_mnist``): copies the four ``.gz`` files of the Debian
  package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist, 29.5 MiB) to
  ``<data.root>/fashion-mnist`` (``data/fashion-mnist``: git-ignored, it travels to the GPU
  machine in the device tool's ``carry``), unless the folder holds them already.
* The shipped sample repeated (``data.root`` named ``<source>-repeated-<total>``): writes it
  with ``repeat_sample.py`` unless it exists.
* Anything else: only checks that the files are there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def data_settings(config_files: list[str]) -> dict:
    """The ``data`` section of config.yaml overridden by each file in turn."""
    data = dict(yaml.safe_load((ROOT / "config.yaml").read_text())["data"])
    for name in config_files:
        data.update((yaml.safe_load(Path(name).read_text()) or {}).get("data") or {})
    return data


def present(folder: Path, name: str) -> bool:
    return (folder / name).is_file() or (folder / f"{name}.gz").is_file()


def prepare_fashion(root: Path) -> str:
    folder = root / "fashion-mnist"
    if all(present(folder, name) for name in FASHION_FILES):
        return f"{folder}: the four Fashion-MNIST files are there"
    if not all(present(DEBIAN_FASHION, name) for name in FASHION_FILES):
        raise SystemExit(
            f"{folder} lacks Fashion-MNIST and {DEBIAN_FASHION} does not hold it: "
            "apt-get install dataset-fashion-mnist, or copy the four .gz files there"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        shutil.copy2(DEBIAN_FASHION / f"{name}.gz", folder / f"{name}.gz")
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    return f"{folder}: copied from {DEBIAN_FASHION} ({size:.1f} MiB)"


def prepare_cifar(root: Path) -> str:
    repeated = re.fullmatch(r"(?P<source>.+)-repeated-(?P<total>\d+)", root.name)
    if (root / "cifar-10-batches-py" / "test_batch").is_file():
        return f"{root}: CIFAR-10 batches are there"
    if repeated is None:
        raise SystemExit(f"{root} holds no cifar-10-batches-py (the DAG downloads it if allowed)")
    source = root.parent / repeated["source"]
    command = [sys.executable, str(Path(__file__).with_name("repeat_sample.py"))]
    command += ["--source", str(source), "--total", repeated["total"]]
    subprocess.run(command, check=True)
    return f"{root}: written from {source}"


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    show = argv[0] == "--show"  # only print "<dataset> <root>" (benchmarks/gpu/protocol.sh)
    data = data_settings(argv[1:] if show else argv)
    if show:
        print(data["dataset"], data["root"])
        return 0
    root = Path(data["root"])
    root = root if root.is_absolute() else ROOT / root
    if data["dataset"] == "fashion_mnist":
        print(prepare_fashion(root))
    else:
        print(prepare_cifar(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
