"""The one-call GPU protocol (benchmarks/gpu/protocol.sh) kept alive on the CPU, and the one
compiled graph per training job.

The protocol runs here with presets/ci.yaml in place of the paper's run and a short budget,
without network where the test may cut it (root with ``unshare``): its CUDA stages must be
recorded as skipped, the others must run, and the files it leaves must be the ones the GPU
machine returns.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounter

from compreps.model.training import step as train_step

ROOT = Path(__file__).resolve().parents[1]
OUT_FILES = {
    "summary.md",
    "stages.tsv",
    "env.txt",
    "gpu.txt",
    "jobs.tsv",
    "epochs.tsv",
    "accuracy.tsv",
    "logs.tar.gz",
}


def tiny_context(forward_options: dict | None) -> train_step.StepContext:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    forward = (
        model if forward_options is None else train_step.compiled_forward(model, **forward_options)
    )
    mean = torch.full((1, 3, 1, 1), 0.5)
    return train_step.StepContext(model, forward, optimizer, scheduler, mean, mean, "fp32", False)


def two_epochs(ctx: train_step.StepContext) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (70, 3, 8, 8), generator=generator, dtype=torch.uint8)
    labels = torch.arange(70) % 10
    for _ in range(2):  # batches of 32, 32 and the partial 6
        train_step.run_epoch(ctx, images, labels, generator, 32)
    return [p.detach().clone() for p in ctx.model.parameters()]


def test_one_graph_per_training_job_the_partial_batch_runs_eager():
    counter = CompileCounter()  # dynamo traces, nothing is code-generated: cheap on a CPU
    compiled = two_epochs(tiny_context({"backend": counter}))
    assert counter.frame_count == 1, "the last partial batch must not compile a second graph"
    eager = two_epochs(tiny_context(None))
    for a, b in zip(compiled, eager, strict=True):  # same weights: the eager module is shared
        torch.testing.assert_close(a, b)


def test_without_the_routing_the_partial_batch_recompiles():
    """What the routing prevents (so the test above would notice its loss)."""
    counter = CompileCounter()
    ctx = tiny_context(None)
    ctx.forward = torch.compile(ctx.model, dynamic=False, backend=counter)
    two_epochs(ctx)
    assert counter.frame_count == 2


def offline_prefix() -> list[str]:
    """``unshare -n`` (no network) where this process may use it, else nothing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return ["unshare", "-n"] if probe.returncode == 0 else []


def copy_tree(dest: Path) -> Path:
    """What the device tool carries that the protocol reads; the data linked, not copied."""
    dest.mkdir()
    for name in ("Snakefile", "config.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("workflow", "presets", "src", "envs", "profiles", "benchmarks", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "data").symlink_to(ROOT / "data", target_is_directory=True)
    return dest


def summary_lines(out: Path) -> dict[str, str]:
    lines = (out / "summary.md").read_text().splitlines()
    return {ln[2:].split(":")[0]: ln for ln in lines if ln.startswith("- ")}


@pytest.mark.workflow
def test_protocol_on_a_cpu_leaves_its_files(tmp_path):
    """The whole call with the ci preset and a budget that cuts the DAG short: CUDA stages
    skipped, the others run, the DAG stopped in time, the structured pass skipped or cut to the
    budget left, and the 8 result files there and filled."""
    tree, out = copy_tree(tmp_path / "tree"), tmp_path / "out"
    env = {
        **os.environ,
        "PY": sys.executable,
        "PRESET": "presets/ci.yaml",
        "BUDGET_S": "130",
        "BENCH_ARGS": "--width 4 --steps 2 --warmup 1 --num-workers 0 --threads 1",
        "TMPDIR": str(tmp_path),
    }
    env.pop("PYTHONPATH", None)
    command = [*offline_prefix(), "bash", "benchmarks/gpu/protocol.sh", str(out)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=240)
    assert time.monotonic() - start < 130 + 20  # the budget, and the last packing
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == OUT_FILES
    assert all((out / name).stat().st_size > 0 for name in OUT_FILES)
    stages = summary_lines(out)
    assert "CUDA no" in stages["facts"]
    for name in ("setup", "data", "bench"):
        assert stages[name].startswith(f"- {name}: ran, rc 0,"), stages[name]
    for name in ("bf16", "gpu_tests"):
        assert stages[name] == f"- {name}: skipped (no CUDA device)"
    assert stages["dag"].startswith("- dag: ran,")
    # how far the cut-off DAG got depends on the machine's speed: the structured pass is either
    # skipped for lack of budget or run under the cap that remains, never past the budget
    structured = stages["dag_structured"]
    assert "budget left" in structured or re.search(r"ran, rc \d+, \d+ s \(cap \d+ s", structured)
    assert int(stages["total"].split()[2]) <= 130
    assert "ratio compreps/conventional" in (out / "summary.md").read_text()
    with open(out / "stages.tsv") as handle:
        rows = {row["stage"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert rows["setup"]["rc"] == "0" and float(rows["bench"]["wall_s"]) > 0
    jobs = (out / "jobs.tsv").read_text()
    assert "prepare_data\tresults/data/dataset.json" in jobs
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert {"stages/setup.log", "stages/bench.log", "stages/dag.log"} <= set(names)


def load_pack():
    spec = importlib.util.spec_from_file_location("pack", ROOT / "benchmarks" / "gpu" / "pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_reads_epoch_lines_and_gpu_samples(tmp_path):
    pack = load_pack()
    logs = tmp_path / "results" / "seed-42" / "logs" / "train"
    logs.mkdir(parents=True)
    line = "base epoch 3/50: loss 0.4321 train acc 0.8512 lr 0.09950 24567 img/s elapsed 7.9s"
    (logs / "base.log").write_text(f"[12:00:00] {line}\n")
    pack.write_epochs(tmp_path, tmp_path)
    rows = (tmp_path / "epochs.tsv").read_text().splitlines()
    assert rows[1].split("\t") == ["base", "3", "50", "0.4321", "0.8512", "0.09950", "24567", "7.9"]
    dmon = (
        "#Date Time gpu pwr gtemp mtemp sm mem enc dec jpg ofa mclk pclk fb bar1 ccpm\n"
        "#YYYYMMDD HH:MM:SS Idx W C C % % % % % % MHz MHz MB MB MB\n"
        " 20261202 18:00:00 0 120 40 45 0 0 0 0 0 0 2619 1980 500 2 0\n"
        " 20261202 18:00:01 0 610 52 60 90 40 0 0 0 0 2619 1980 30000 2 0\n"
    )
    summary = pack.gpu_summary(dmon)
    assert "2 samples" in summary and "SM busy mean 45%" in summary
    assert "max memory 30000 MiB" in summary and "max power 610 W" in summary
    assert pack.gpu_summary("no nvidia-smi\n").startswith("GPU: no samples")
