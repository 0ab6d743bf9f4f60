"""Shared fixtures: a private copy of the workflow and one finished run of presets/ci.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"


def copy_workflow(dest: Path, profiles: bool = False, data: bool = True) -> Path:
    """Copy what a run needs (Snakefile, config, workflow/, presets/; profiles/ when asked)
    and link the data (an empty data folder with ``data=False``)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copy2(ROOT / "config.yaml", dest / "config.yaml")
    for folder in ("workflow", "presets", "src", "envs") + (("profiles",) if profiles else ()):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    if data:
        (dest / "data").symlink_to(ROOT / "data", target_is_directory=True)
    else:
        (dest / "data").mkdir()
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


def planned_outputs(workdir: Path, *args: str) -> list[tuple[str, list[str]]]:
    """Dry run; (rule, output paths) of every planned job, from Snakemake's job listing."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    jobs = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append((match.group(1), []))
        elif jobs and (match := re.match(r"^\s+output: (.*)$", line)):
            jobs[-1][1].extend(match.group(1).split(", "))
    return jobs


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


# --------------------------------------------------------------------------- fake dumps
FAKE_LAYERS = {"layer4.1.conv2": (4, 2, 2), "fc": (10,)}
FAKE_WEIGHTS = {"conv1": 3 * 3 * 3 * 4, "layer1.0.conv1": 3 * 3 * 4 * 4, "fc": 4 * 10}


def fake_dump(
    model: str = "base",
    accuracy: float = 0.5,
    *,
    seed: int = 0,
    n_test: int = 60,
    n_probe: int = 20,
    classes: int = 10,
):
    """A small, fully populated :class:`compreps.core.dump.Dump` with seeded random content."""
    from compreps.core.dump import Dump
    from compreps.core.vocabulary import (
        DENSE_VIEWS,
        NO_DENSE_VIEW,
        STRUCTURED_FAMILIES,
        parse_model_id,
    )

    rng = np.random.default_rng(seed)
    family, level = parse_model_id(model)
    labels = np.arange(n_test, dtype=np.int64) % classes
    probe = np.sort(rng.choice(n_test, size=n_probe, replace=False)).astype(np.int64)
    layers = {
        name: rng.normal(size=(n_probe, int(np.prod(shape)))).astype(np.float32)
        for name, shape in FAKE_LAYERS.items()
    }
    return Dump(
        labels=labels,
        logits=rng.normal(size=(n_test, classes)).astype(np.float32),
        probe_indices=probe,
        probe_labels=labels[probe],
        layers=layers,
        layer_shapes=dict(FAKE_LAYERS),
        weights={n: rng.normal(size=size).astype(np.float32) for n, size in FAKE_WEIGHTS.items()},
        attrs={
            "accuracy": float(accuracy),
            "model": model,
            "family": family,
            "level": float(level),
            "checkpoint_sha256": f"{seed:064x}",
            "dataset": "cifar10",
            "arch": "resnet18",
            "width": 4,
            # a structured model keeps about (1 - level)^2 of the parameters and MACs
            "param_fraction": (1 - level) ** 2 if family in STRUCTURED_FAMILIES else 1.0,
            "params": 1000,
            "macs": 50_000,
            "dense_view": DENSE_VIEWS.get(family, NO_DENSE_VIEW),
        },
    )


@pytest.fixture
def write_fake_dump(tmp_path: Path):
    """``write_fake_dump(model, accuracy=0.5, folder=None, **fake_dump options) -> Path``:
    a fake dump written through compreps.core.dump.write_dump (default folder: tmp_path)."""
    from compreps.core.dump import write_dump

    def write(model: str, accuracy: float = 0.5, folder: Path | None = None, **options) -> Path:
        path = (folder or tmp_path) / f"{model}.h5"
        write_dump(path, fake_dump(model, accuracy, **options))
        return path

    return write


# --------------------------------------------------------------------------- model world (M)
SAMPLE_ROOT = ROOT / "data" / "cifar10-sample"


@pytest.fixture
def sample_summary(tmp_path: Path) -> Path:
    """A prepare-data summary for the shipped CIFAR-10 sample, as the model steps read it
    (``--data``): only the dataset name and its root matter to them."""
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"dataset": "cifar10", "root": str(SAMPLE_ROOT)}))
    return path


def fake_test_split(n: int, seed: int = 0):
    """What the compression steps read of the data (``load_prepared(..., splits=("test",))``):
    ``n`` random 3×8×8 uint8 test images with labels in 0..9 (torch imported lazily)."""
    from types import SimpleNamespace

    import torch

    generator = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        name="cifar10",
        test_images=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator),
        test_labels=torch.randint(0, 10, (n,), generator=generator),
        classes=[str(i) for i in range(10)],
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


@pytest.fixture
def fake_data():
    """``fake_data(n, seed=0)``: see :func:`fake_test_split`."""
    return fake_test_split


def random_bn_model(
    seed: int = 0, width: int = 4, mean: float = 1.0, bias: float = 0.5, scale: bool = True
):
    """A seeded ResNet-18 (CIFAR, 3×32×32, 10 classes) whose BatchNorm layers hold non-trivial
    state (running mean in ±``mean``, variance in [0.5, 2], bias in ±``bias``, weight in
    [0.5, 1.5] when ``scale``), so "BN untouched" and BN arithmetic are checked on real values.
    Returned in training mode, as ``build_model`` gives it."""
    import torch
    from torch import nn

    from compreps.model.networks import build_model

    torch.manual_seed(seed)
    model = build_model("resnet18", width=width, in_channels=3, num_classes=10)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-mean, mean)
            module.running_var.uniform_(0.5, 2)
            if scale:
                nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -bias, bias)
    return model
