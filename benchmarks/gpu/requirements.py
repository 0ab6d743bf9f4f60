"""Print, one per line, what the GPU machine must satisfy besides its own torch: the runtime
requirements of compreps (pyproject.toml) and of the installed Snakemake, without torch,
torch-pruning (installed without dependencies), PuLP (left out of the wheels) and extras.

``pip install --no-index --find-links .whl $(python3 benchmarks/gpu/requirements.py)`` then
keeps every package the machine has in a version that fits and installs only what is missing
(or does not fit, e.g. ``packaging<26``) from the carried wheels.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = {"torch", "torch-pruning", "pulp"}

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wanted(text: str) -> str | None:
    """The requirement without its marker when it applies here (no extra), else None."""
    requirement = Requirement(text)
    if normalized(requirement.name) in LEFT_OUT:
        return None
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return None
    return f"{requirement.name}{requirement.specifier}"


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    try:
        texts += importlib.metadata.requires("snakemake") or []
    except importlib.metadata.PackageNotFoundError:
        print("snakemake is not installed: its requirements are not listed", file=sys.stderr)
    seen: set[str] = set()
    for text in texts:
        line = wanted(text)
        if line and line not in seen:
            seen.add(line)
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
