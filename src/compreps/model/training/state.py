"""Crash-safe resume of training: ``results/train_state/<id>.pt``.

At an epoch end (at most every ``train.state_interval_s`` seconds) the full training state
(model, optimizer, scheduler, every RNG, epoch, elapsed time and a fingerprint of the inputs) is
written atomically; a rerun with the same inputs resumes from it and ends with bit-identical
weights on CPU. A state written for other inputs (hyper-parameters, data, indices, device or
precision) is ignored: training starts fresh. On CUDA the resumed run continues from the same
weights and RNG states, but the result is bit-identical only with ``train.deterministic: true``
and the same GPU model, driver and torch build (docs/performance.md, "Determinism on CUDA").
The file is not a Snakemake output, so Snakemake never deletes it; the training step deletes it
once the final checkpoint is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compreps.core.files import atomic_write, log
from compreps.core.settings import ModelSettings, TrainSettings

STATE_FORMAT = 2  # bump when the layout of the resume state changes


def training_fingerprint(
    model: ModelSettings,
    train: TrainSettings,
    dataset: str,
    indices: np.ndarray,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
    init_seed: int | None = None,
) -> str:
    """sha256 over everything that shapes the weights: model and training settings, dataset
    name, the training indices, the training images and labels themselves, device type,
    precision and an initialisation seed of its own (``init_seed``; None: the train seed)."""
    digest = hashlib.sha256()
    header = {
        "format": STATE_FORMAT,
        "model": asdict(model),
        # how often the state is saved does not shape the weights
        "train": {k: v for k, v in asdict(train).items() if k != "state_interval_s"},
        "dataset": dataset,
        "n_train": int(indices.size),
        "device_type": device.type,
        "precision": precision,
    }
    if init_seed is not None:
        header["init_seed"] = init_seed
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state as plain types and tensors (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "python": random.getstate(),
        "data": generator.get_state(),
    }


def restore_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(states["data"])


def capture_state(
    parts: dict[str, nn.Module | Any],
    generator: torch.Generator,
    epoch: int,
    fingerprint: str,
    elapsed: float,
) -> dict[str, Any]:
    """The resume state: ``parts`` maps a name to anything with ``state_dict()`` (model,
    optimizer, scheduler)."""
    return {
        "format": STATE_FORMAT,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "wall_time_s": elapsed,
        "parts": {name: part.state_dict() for name, part in parts.items()},
        "rng": rng_states(generator),
    }


def restore_state(
    state: dict[str, Any], parts: dict[str, Any], generator: torch.Generator
) -> tuple[int, float]:
    """Load ``state`` into ``parts`` and the RNGs; returns ``(epoch, elapsed seconds)``."""
    for name, part in parts.items():
        part.load_state_dict(state["parts"][name])
    restore_rng_states(state["rng"], generator)
    return int(state["epoch"]), float(state["wall_time_s"])


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_matching_state(path: str | os.PathLike | None, fingerprint: str) -> dict | None:
    """The saved state when it exists and its fingerprint matches; ``None`` otherwise (logged)."""
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file: training from scratch is always safe
        log(f"resume state {path} is unreadable ({type(err).__name__}); starting fresh")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log(
            f"resume state {path} was written for other training inputs (fingerprint differs: "
            "hyper-parameters, data, indices, device or precision changed); starting fresh"
        )
        return None
    return state
