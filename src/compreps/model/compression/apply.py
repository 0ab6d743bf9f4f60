"""Apply a registered structured family to a model: the ``make`` function its registry entry
(:mod:`compreps.core.families`) names, imported only when asked for (Torch-Pruning is needed by
the structured families only)."""

from __future__ import annotations

import importlib
import inspect

import torch
from torch import nn

from compreps.core import families


def family_function(name: str):
    """The ``make`` function of family ``name`` (``module:function`` in its registry entry)."""
    module, _, function = families.family(name).make.partition(":")
    return getattr(importlib.import_module(module), function)


def apply_family(
    model: nn.Module,
    family: str,
    level: float,
    calib_images: torch.Tensor | None = None,
    **options,
) -> dict:
    """Compress ``model`` in place with structured family ``family`` at ``level``; the record
    (:func:`compreps.model.compression.structured.prune_structured`'s keys). ``options`` are
    the family's settings; each function receives those of them it names."""
    make = family_function(family)
    accepted = inspect.signature(make).parameters
    used = {key: value for key, value in options.items() if key in accepted}
    return make(model, level, calib_images=calib_images, **used)
