"""Global unstructured L1 pruning of a trained model, no fine-tuning (the ``prune`` step is
:mod:`compreps.model.compression.step`).

Every Conv2d and Linear weight (:func:`compreps.model.networks.compressible_modules`) competes in
one
pool: the ``round(ratio · total)`` weights of smallest magnitude are set to zero with
``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` and the masks are made
permanent, so the checkpoint holds plain ``weight`` tensors. Biases and BatchNorm are untouched.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from compreps.core.files import CompRepsError
from compreps.model.networks import compressible_modules

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
