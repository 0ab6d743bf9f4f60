"""The GPU protocol on CUDA (``pytest -m gpu``; every test skips without CUDA).

Not yet run on a GPU; docs/performance.md has the command for the GPU machine. Tolerances
are stated choices, not measured values.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import copy_workflow
from test_train import MODEL, TINY, assert_same_weights, subset, train_command, write_indices

from compreps.model.checkpoints import load_checkpoint
from compreps.model.data.datasets import load_dataset
from compreps.model.training.step import run_epoch
from compreps.model.training.train import start_run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
# bf16 keeps 8 mantissa bits: over 30 SGD steps of width 16 the loss curves may drift apart by
# rounding, not by a bug; a wrong cast (e.g. labels or loss in bf16) or a wrong layout gives
# differences of the size of the loss itself.
LOSS_TOLERANCE = 0.15  # nats, per step


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset("cifar10", ROOT / "data" / "cifar10-sample")


def step_losses(sample, precision: str, steps: int = 30) -> list[float]:
    """Per-step mean loss of the project's CUDA step (channels_last, fused SGD, eager)."""
    train = dataclasses.replace(TINY, epochs=10, batch_size=128, precision=precision)
    images, labels = sample.train_images[:1024], sample.train_labels[:1024]
    run = start_run(sample, dataclasses.replace(MODEL, width=16), train, images, labels, CUDA,
                    precision)  # fmt: skip
    losses = []
    for _ in range(steps):
        loss_sum, _, seen = run_epoch(run.ctx, run.images, run.labels, run.generator, 128, 1)
        losses.append(float(loss_sum) / seen)
    return losses


def test_bf16_steps_track_fp32(sample):
    fp32, bf16 = step_losses(sample, "fp32"), step_losses(sample, "bf16")
    differences = [abs(a - b) for a, b in zip(fp32, bf16, strict=True)]
    assert max(differences) < LOSS_TOLERANCE, differences
    assert fp32[-1] < fp32[0] and bf16[-1] < bf16[0]  # both learn


def test_kill_and_resume_on_cuda(sample, tmp_path, sample_summary):
    """SIGKILL once the first state exists, rerun: with train.deterministic (the command's
    ``true``) the resumed weights equal an uninterrupted run's on the same GPU."""
    indices = write_indices(tmp_path / "coreset.csv", sample, subset(300))
    state, out = tmp_path / "state.pt", tmp_path / "killed.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        train_command(sample_summary, indices, state, out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    for command in (
        train_command(sample_summary, indices, state, out),
        train_command(sample_summary, indices, tmp_path / "s.pt", tmp_path / "straight.pt"),
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    (resumed, meta), (straight, _) = load_checkpoint(out), load_checkpoint(tmp_path / "straight.pt")
    assert meta["device"].startswith("cuda") and meta["resumed_from_epoch"] in (1, 2)
    assert meta["precision"] == "bf16" and meta["deterministic"] is True
    assert_same_weights(resumed, straight)


def test_ci_dag_completes_on_cuda(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "--cores", "4", "--resources", "gpu=1"]
    done = subprocess.run(
        [*command, "--configfile", "presets/ci.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert (workdir / "results" / "report.md").is_file()
    _, meta = load_checkpoint(workdir / "results" / "checkpoints" / "base.pt")
    assert meta["device"].startswith("cuda") and "cuda_version" in meta
