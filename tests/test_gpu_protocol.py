"""The one-call GPU protocol (benchmarks/gpu/protocol.sh) kept alive on the CPU, and the one
compiled graph per training job.

The protocol runs here with presets/ci.yaml in place of the paper's run and a short budget,
without network where the test may cut it (root with ``unshare``): its CUDA stages must be
recorded as skipped, the others must run, and the files it leaves must be the ones the GPU
machine returns.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
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
