"""Checkpoint files ``results/checkpoints/<id>.pt``: write, read, verify, rebuild the model.

A checkpoint is ``torch.save({"state_dict": ..., "meta": {...}})`` written atomically; meta holds
plain types only (``torch.load`` uses ``weights_only=True``) and, under ``content_sha256``, a
sha256 over every tensor (name, dtype, shape, bytes). :func:`load_checkpoint` recomputes it, so a
flipped byte anywhere in the tensor data is one error naming the file and the rule that
rebuilds it. :func:`checkpoint_meta` is the one place that builds the metadata, for every
family. Weights that do not fit an architecture give a short error listing the first
mismatches instead of torch's size-mismatch listing of every tensor. Non-finite weights (NaN or
Inf) are never written, loaded or accepted as a base: the error names the file and the first
such tensor.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compreps.core.files import CompRepsError, atomic_write, damaged_file_error, rebuilding_rule
from compreps.core.vocabulary import parse_model_id
from compreps.model.compression.quantize import attach_activation_quantization
from compreps.model.networks import ARCHITECTURES, build_model, describe_device

HASH_KEY = "content_sha256"
SHOWN_PROBLEMS = 4  # mismatching tensors named in a fit error; the rest are counted


def content_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order: name, dtype, shape and raw bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def first_nonfinite(state_dict: dict) -> str | None:
    """``"tensor <name> holds n NaN and m Inf of k values"`` for the first floating-point
    tensor (in state-dict order) that is not all finite, or None."""
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            nan = int(torch.isnan(tensor).sum())
            inf = int((~finite).sum()) - nan
            return f"tensor {name} holds {nan} NaN and {inf} Inf of {tensor.numel()} values"
    return None


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights as contiguous CPU tensors (channels_last ones back in the default layout)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def checkpoint_meta(
    *,
    model_id: str,
    arch: str,
    width: int,
    in_channels: int,
    num_classes: int,
    dataset: str,
    config: dict[str, Any],
    device: torch.device,
    precision: str,
    test_accuracy: float,
    wall_time_s: float,
    **entries: Any,
) -> dict[str, Any]:
    """The metadata of a checkpoint (plain types only, docs/architecture.md).

    ``entries`` adds what a family or step records (``seed, epochs, n_train, sparsity, bits,
    parent_sha256`` ...). The run environment is recorded here for every family: device,
    precision, torch version and, on CUDA, the CUDA version.
    """
    family, level = parse_model_id(model_id)
    meta = {
        "model_id": model_id,
        "family": family,
        "level": float(level),
        "arch": arch,
        "width": int(width),
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "dataset": dataset,
        "config": config,
        "device": describe_device(device),
        "precision": precision,
        "torch_version": str(torch.__version__),
        "test_accuracy": float(test_accuracy),
        "wall_time_s": float(wall_time_s),
    }
    if device.type == "cuda":
        meta["cuda_version"] = str(torch.version.cuda)
    meta.update(entries)
    return meta


def save_checkpoint(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]
) -> dict[str, Any]:
    """Write ``{"state_dict", "meta"}`` atomically, with the tensors' content hash added to
    meta; returns the meta as written."""
    state_dict = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    problem = first_nonfinite(state_dict)
    if problem is not None:
        raise CompRepsError(
            f"{path} not written: its weights are not finite ({problem}): the step diverged or "
            "started from non-finite weights; check the checkpoint it started from (for a "
            "training: lower train.lr)"
        )
    meta = {**meta, HASH_KEY: content_sha256(state_dict)}
    with atomic_write(path) as tmp:
        torch.save({"state_dict": state_dict, "meta": meta}, tmp)
    return meta


def _torch_load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CompRepsError(
            f"{what} {path} does not exist (rule '{rebuilding_rule(path)}' writes it)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError/EOFError/UnpicklingError/zip errors
        raise damaged_file_error(path, f"torch.load failed: {type(err).__name__}") from err


def verify_content(path: Path, state_dict: dict, meta: dict[str, Any]) -> None:
    """Raise when the tensors are not the ones the checkpoint was written with."""
    expected = meta.get(HASH_KEY)
    if expected is None:
        print(
            f"warning: {path} has no content hash (older compreps); not verified", file=sys.stderr
        )
    elif content_sha256(state_dict) != expected:
        raise damaged_file_error(path, "tensor data differ from the content hash in its meta")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a verified compreps checkpoint; a missing, truncated, foreign
    or altered file raises one :class:`CompRepsError` naming the file and its rule."""
    path = Path(path)
    payload = _torch_load(path, "checkpoint")
    if not isinstance(payload, dict) or "state_dict" not in payload or "meta" not in payload:
        raise damaged_file_error(path, "not a compreps checkpoint: no state_dict/meta")
    state_dict, meta = payload["state_dict"], payload["meta"]
    if not isinstance(state_dict, dict) or not isinstance(meta, dict):
        raise damaged_file_error(path, "not a compreps checkpoint: malformed state_dict/meta")
    verify_content(path, state_dict, meta)
    problem = first_nonfinite(state_dict)
    if problem is not None:
        raise CompRepsError(
            f"{path}: its weights are not finite ({problem}); delete it and rerun rule "
            f"'{rebuilding_rule(path)}' from finite weights"
        )
    return state_dict, meta


def read_foreign_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """``(state_dict, meta or None)`` from a compreps checkpoint (verified) or a plain saved
    state dict; the ``module.`` prefix of (Distributed)DataParallel weights is dropped."""
    path = Path(path)
    if not path.is_file():
        raise CompRepsError(f"base weights {path} do not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CompRepsError(
            f"cannot read base weights {path} ({type(err).__name__}): expected a compreps "
            "checkpoint or torch.save(model.state_dict())"
        ) from err
    meta = None
    if isinstance(payload, dict) and "state_dict" in payload and "meta" in payload:
        payload, meta = payload["state_dict"], payload["meta"]
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise CompRepsError(
            f"{path} is neither a compreps checkpoint nor a state dict (name -> tensor)"
        )
    if isinstance(meta, dict):
        verify_content(path, payload, meta)
    if payload and all(k.startswith("module.") for k in payload):
        payload = {k[len("module.") :]: v for k, v in payload.items()}
    return payload, meta


def weight_mismatches(state_dict: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Human-readable differences between ``state_dict`` and ``model``'s own state dict."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return problems


def fit_problems(
    state_dict: dict,
    arch: str,
    width: int,
    in_channels: int,
    num_classes: int,
    model: nn.Module | None = None,
) -> str | None:
    """One line describing why ``state_dict`` does not load strictly into the architecture
    (``model`` when given, else a fresh one), or None when it fits."""
    if arch not in ARCHITECTURES:
        raise CompRepsError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    # A real (CPU) model, not one on the "meta" device: initialising meta tensors imports
    # torch._dynamo, 2 s of every model job's start-up (measured), more than the init costs.
    model = build_model(arch, width, in_channels, num_classes) if model is None else model
    problems = weight_mismatches(state_dict, model)
    if not problems:
        return None
    hint = ""
    stem = state_dict.get("conv1.weight")
    if isinstance(stem, torch.Tensor) and stem.ndim == 4:
        hint = f" (the file looks like width {stem.shape[0]} with {stem.shape[1]} input channels)"
    more = len(problems) - SHOWN_PROBLEMS
    shown = "; ".join(problems[:SHOWN_PROBLEMS]) + (f"; ... {more} more" if more > 0 else "")
    return (
        f"does not fit `{arch} width {width}` ({in_channels} input channels, "
        f"{num_classes} classes){hint}: {shown}"
    )


def check_weights_fit(
    path, state_dict: dict, arch: str, width: int, in_channels: int, num_classes: int
) -> None:
    """Raise a one-line :class:`CompRepsError` unless the weights load strictly."""
    problem = fit_problems(state_dict, arch, width, in_channels, num_classes)
    if problem is not None:
        raise CompRepsError(f"{path} {problem}")


def verify_base_checkpoint(
    path: str | os.PathLike, arch: str, width: int, in_channels: int, num_classes: int
) -> None:
    """Raise :class:`CompRepsError` unless ``path`` holds weights that load strictly into
    ``build_model(arch, width, in_channels, num_classes)`` (used by the config checker)."""
    state_dict, _ = read_foreign_weights(path)
    check_weights_fit(path, state_dict, arch, width, in_channels, num_classes)
    problem = first_nonfinite(state_dict)
    if problem is not None:
        raise CompRepsError(
            f"{path} has non-finite weights ({problem}): every metric would be NaN; give "
            "weights with finite values, or null to train the base"
        )


def structured_model(path, state_dict: dict, shape: list, structure: dict) -> nn.Module:
    """The pruned or folded architecture ``meta["structure"]`` describes, with its weights
    (:func:`compreps.model.compression.structured.rebuild`); weights that do not fit are a damaged
    file."""
    from compreps.model.compression.structured import (
        rebuild,
    )  # Torch-Pruning: only for structured models

    try:
        model = rebuild(*shape, structure)
    except (CompRepsError, KeyError, TypeError) as err:
        raise damaged_file_error(path, f"its structure does not fit its metadata: {err}") from err
    problems = weight_mismatches(state_dict, model)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        raise damaged_file_error(path, f"its weights do not fit its structure: {shown}")
    model.load_state_dict(state_dict)
    return model


def load_model(path: str | os.PathLike, device: str | torch.device) -> tuple[nn.Module, dict]:
    """Rebuild a model from a compreps checkpoint; returns ``(model in eval mode, meta)``.

    A structured model (``meta["structure"]``, the widths of every layer) is rebuilt pruned.

    The 8-bit dynamic activation quantisation is re-attached when ``meta["activation_quant"]``
    describes it (:func:`compreps.model.compression.quantize.attach_activation_quantization`).
    """
    state_dict, meta = load_checkpoint(path)
    try:
        shape = [meta[key] for key in ("arch", "width", "in_channels", "num_classes")]
    except KeyError as err:
        raise damaged_file_error(path, f"no {err.args[0]!r} in its metadata") from err
    if meta.get("structure"):
        model = structured_model(path, state_dict, shape, meta["structure"])
    else:
        model = build_model(*shape)
        problem = fit_problems(state_dict, *shape, model=model)
        if problem is not None:
            raise damaged_file_error(path, f"its weights do not fit its metadata: {problem}")
        model.load_state_dict(state_dict)
    if meta.get("activation_quant"):
        attach_activation_quantization(model, meta["activation_quant"])
    return model.to(device).eval(), meta
