"""Shared fixtures: a private copy of the workflow and one finished run of presets/ci.yaml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"


def copy_workflow(dest: Path) -> Path:
    """Copy what a run needs (Snakefile, config, workflow/, presets/) and link the data."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copy2(ROOT / "config.yaml", dest / "config.yaml")
    for folder in ("workflow", "presets", "src", "envs"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "data").symlink_to(ROOT / "data", target_is_directory=True)
    return dest


def snakemake_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # jobs run `python -m compreps`
    env.pop("PYTHONPATH", None)
    return env


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 900, check: bool = True
) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "--cores", "2", "--configfile", "presets/ci.yaml", *args]
    proc = subprocess.run(
        cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Dry run; returns {rule: job count} from Snakemake's job stats ({} when nothing to do)."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def write_overlay(workdir: Path, name: str, overlay: dict) -> str:
    path = workdir / name
    path.write_text(yaml.safe_dump(overlay))
    return name


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh private copy of the workflow; results land inside it."""
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory) -> Path:
    """The whole presets/ci.yaml DAG run once through Snakemake (shared by the workflow tests)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("ci_run") / "wf")
    run_snakemake(workdir, timeout=1500)
    return workdir
