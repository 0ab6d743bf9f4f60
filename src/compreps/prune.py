"""Global unstructured L1 pruning of a trained model (``prune`` step), no fine-tuning.

Every Conv2d and Linear weight (:func:`compreps.models.compressible_modules`) competes in one
pool: the ``round(ratio · total)`` weights of smallest magnitude are set to zero with
``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` and the masks are made
permanent, so the checkpoint holds plain ``weight`` tensors. Biases and BatchNorm are untouched.

The step also holds :func:`evaluate_and_save`, shared with the ``quantize`` step: test accuracy
of the compressed model and its checkpoint, with meta copied from the base's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from compreps.data import DATASETS, load_dataset
from compreps.files import CompRepsError, save_checkpoint, sha256_file
from compreps.models import (
    accuracy,
    compressible_modules,
    describe_device,
    load_model,
    pick_device,
    predict_logits,
)

METHODS = ("global_l1",)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every Conv2d and Linear, in definition order."""
    return [(module, "weight") for _, module in compressible_modules(model)]


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros over all Conv2d and Linear weights."""
    weights = [module.weight.detach() for module, _ in prunable_weights(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def prune_global_l1(model: nn.Module, ratio: float) -> float:
    """Zero the ``round(ratio · total)`` smallest-magnitude Conv2d/Linear weights, in place.

    The count is passed to torch as an integer: torch itself turns a float ``amount`` into
    ``round(amount · total)`` (Python's round, half to even), so both give the same count; the
    integer only makes that explicit. Ties at the threshold are broken by ``torch.topk``.
    The pruning is made permanent (no ``weight_orig`` / ``weight_mask`` remain).
    Returns the achieved sparsity (zeros / total over those weights).
    """
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 < ratio < 1.0:
        raise CompRepsError(f"pruning ratio must be a number in (0, 1), got {ratio!r}")
    parameters = prunable_weights(model)
    if not parameters:
        raise CompRepsError("the model has no Conv2d or Linear weights to prune")
    total = sum(module.weight.numel() for module, _ in parameters)
    n_prune = round(ratio * total)
    orders = [list(module._parameters) for module, _ in parameters]
    with torch.no_grad():
        prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=n_prune)
        for (module, name), order in zip(parameters, orders, strict=True):
            prune.remove(module, name)
            # prune.remove re-registers the weight last; keep the base's state-dict key order
            for key in order:
                module._parameters[key] = module._parameters.pop(key)
    return weight_sparsity(model)


def parse_level(text: str, what: str) -> float:
    """A level given on the command line, kept as typed for the model id (``0.05``)."""
    try:
        value = float(text)
    except ValueError:
        raise CompRepsError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CompRepsError(f"{what} must be finite, got {text!r}")
    return value


def evaluate_and_save(
    *,
    base_path: str,
    dataset: str,
    data_root: str,
    eval_batch_size: int,
    out: str,
    model_id: str,
    family: str,
    level: float,
    step_config: dict[str, Any],
    compress: Callable[[nn.Module], dict[str, Any]],
) -> dict[str, Any]:
    """Load the base, apply ``compress`` (returns meta entries), measure test accuracy, save.

    Meta is the base's meta updated with ``model_id, family, level, parent_sha256,
    test_accuracy, wall_time_s`` (compression + evaluation), ``device, torch_version`` and
    whatever ``compress`` returned; ``config`` is the base's config plus ``step_config``
    (e.g. ``{"prune": {"method": "global_l1", "ratio": 0.5}}``). Returns that meta.
    """
    if eval_batch_size < 1:
        raise CompRepsError(f"--eval-batch-size must be >= 1, got {eval_batch_size}")
    device = pick_device()
    model, base_meta = load_model(base_path, device)
    parent_sha256 = sha256_file(base_path)
    if base_meta.get("dataset") not in (None, dataset):
        raise CompRepsError(
            f"{base_path} was trained on {base_meta['dataset']!r}, not on {dataset!r}"
        )
    data = load_dataset(dataset, data_root, download=False)

    start = time.perf_counter()
    entries = compress(model)
    print(
        f"{model_id}: evaluating on {len(data.test_labels)} test images ({device})", file=sys.stderr
    )
    logits = predict_logits(model, data.test_images, data.mean, data.std, device, eval_batch_size)
    test_accuracy = accuracy(logits, data.test_labels)
    wall_time_s = time.perf_counter() - start

    meta = dict(base_meta)
    meta.update(entries)
    meta["config"] = {**(base_meta.get("config") or {}), **step_config}
    meta.update(
        model_id=model_id,
        family=family,
        level=float(level),
        parent_sha256=parent_sha256,
        test_accuracy=test_accuracy,
        wall_time_s=wall_time_s,
        device=describe_device(device),
        torch_version=str(torch.__version__),
    )
    state_dict = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    save_checkpoint(out, state_dict, meta)
    base_accuracy = base_meta.get("test_accuracy")
    was = f" (base {base_accuracy:.4f})" if isinstance(base_accuracy, float) else ""
    print(f"{model_id}: test accuracy {test_accuracy:.4f}{was} -> {out}", file=sys.stderr)
    return meta


def main(argv: list[str]) -> int:
    """``prune``: global L1 pruning of the base checkpoint, evaluated on the test set."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Prune the base model (global unstructured L1)."
    )
    parser.add_argument(
        "--base", required=True, help="base checkpoint (results/checkpoints/base.pt)"
    )
    parser.add_argument("--ratio", required=True, help="fraction of weights to zero, in (0, 1)")
    parser.add_argument("--method", default="global_l1", choices=METHODS)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    ratio = parse_level(args.ratio, "--ratio")
    if not 0.0 < ratio < 1.0:
        raise CompRepsError(f"--ratio must be in (0, 1), got {args.ratio}")

    def compress(model: nn.Module) -> dict[str, Any]:
        sparsity = prune_global_l1(model, ratio)
        print(f"prune-{args.ratio}: {args.method} sparsity {sparsity:.6f}", file=sys.stderr)
        return {"sparsity": sparsity, "method": args.method}

    evaluate_and_save(
        base_path=args.base,
        dataset=args.dataset,
        data_root=args.data_root,
        eval_batch_size=args.eval_batch_size,
        out=args.out,
        model_id=f"prune-{args.ratio}",
        family="prune",
        level=ratio,
        step_config={"prune": {"method": args.method, "ratio": ratio}},
        compress=compress,
    )
    return 0
