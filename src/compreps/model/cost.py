"""Parameter and multiply-accumulate (MAC) counts of a model, measured by one forward pass.

MACs count the multiply-accumulates of ``Conv2d`` and ``Linear`` layers only (the usual
convention: BatchNorm, ReLU, pooling and residual additions are left out). A convolution costs
``out_elements * in_channels / groups * kernel_h * kernel_w``; a linear layer
``out_elements * in_features``; both per sample. Structured pruning shrinks both counts, so the
counts are taken from the module as it is, not from its original widths.
"""

from __future__ import annotations

import torch
from torch import nn


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample_out = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample_out * (module.in_channels // module.groups) * kh * kw
    return per_sample_out * module.in_features


def count_params_macs(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(parameters, MACs per sample)`` of ``model`` for one input of shape ``input_shape``.

    ``input_shape`` is the shape of one sample (``C, H, W``). Parameters are every element of
    ``model.parameters()`` (buffers such as BatchNorm running statistics are not parameters).
    The forward pass runs in eval mode under ``no_grad``, so BatchNorm statistics are untouched;
    the model's training flag is restored afterwards.
    """
    params = sum(p.numel() for p in model.parameters())
    macs = 0

    def hook(module, _inputs, output):
        nonlocal macs
        macs += _layer_macs(module, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(params), int(macs)
