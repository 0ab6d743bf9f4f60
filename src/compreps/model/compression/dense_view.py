"""The dense view of a structured model: its weights scattered back into the base's shapes.

A structured model (``struct_l1``, ``nexp``, ``fold``; :mod:`compreps.model.compression.structured`,
:mod:`compreps.model.compression.fold`) has fewer channels than the base, so its activations and
weights cannot
be compared with the base's channel by channel. The dense view is the dense architecture
holding the same function:

- a removed channel (``struct_l1``, ``nexp``): its producer filters, BatchNorm scale and shift
  and its consumers' input slices are 0 (running mean 0, variance 1), so its activation is 0
  everywhere ("pruned-zeros");
- a folded channel (``fold``): every member of a cluster takes the cluster's merged producer
  filter and BatchNorm entries, so each member carries the merged activation, and each
  consumer input slice is the merged slice divided by the cluster size ``m`` (the unfolding
  ``W_next C M`` of model folding, ``M = (C^T C)^-1 C^T``), so the consumer's sum is unchanged
  ("fold-unfolded").

The record of a compression holds, per module, a *channel map* per axis
(:func:`compreps.model.compression.structured.channel_maps`) (``"out"``, ``"in"``):
for every dense channel the compact channel that carries it, or -1 when removed. The map is
the one piece of information a pruned or folded state dict loses; with it the scatter is exact.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.networks import build_model

REMOVED = -1


# ----------------------------------------------------------------------------- maps
def kept_clusters(size: int, removed: list[int]) -> list[list[int]]:
    """The clusters of plain pruning: every kept channel alone, in channel order."""
    gone = set(removed)
    return [[c] for c in range(size) if c not in gone]


def axis_map(size: int, clusters: list[list[int]]) -> list[int]:
    """Dense channel -> compact channel (or ``REMOVED``) of one axis.

    ``clusters``: lists of channel numbers, each kept as one compact channel; the compact
    channels are in the order of the clusters' smallest members (the kept representative,
    which Torch-Pruning keeps in channel order). A channel in no cluster is removed.
    """
    mapping = [REMOVED] * size
    for compact, cluster in enumerate(sorted(clusters, key=min)):
        for channel in cluster:
            if not 0 <= channel < size or mapping[channel] != REMOVED:
                raise CompRepsError(f"channel {channel} of {size} is in no or several clusters")
            mapping[channel] = compact
    return mapping


# ----------------------------------------------------------------------------- scatter
def _index(mapping: list[int] | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense positions kept, their compact channels) of one axis."""
    if mapping is None:
        return torch.arange(size), torch.arange(size)
    if len(mapping) != size:
        raise CompRepsError(f"a channel map has {len(mapping)} entries for {size} channels")
    source = torch.tensor(mapping)
    kept = torch.nonzero(source != REMOVED).flatten()
    return kept, source[kept]


def _fan_in_scale(mapping: list[int] | None, kept: torch.Tensor) -> torch.Tensor:
    """1 / cluster size of each kept input channel (1 for plain pruning)."""
    if mapping is None:
        return torch.ones(len(kept))
    sizes = Counter(mapping)
    return torch.tensor([1.0 / sizes[mapping[int(i)]] for i in kept])


def _scatter_weight(dense: torch.Tensor, compact: torch.Tensor, maps: dict) -> None:
    out_kept, out_src = _index(maps.get("out"), dense.shape[0])
    in_kept, in_src = _index(maps.get("in"), dense.shape[1])
    scale = _fan_in_scale(maps.get("in"), in_kept).to(compact.dtype)
    scale = scale.reshape(1, -1, *([1] * (compact.ndim - 2)))
    values = compact[out_src][:, in_src] * scale
    dense.zero_()
    dense[out_kept[:, None], in_kept[None, :]] = values


def _scatter_vector(dense: torch.Tensor, compact: torch.Tensor, maps: dict, fill: float) -> None:
    kept, source = _index(maps.get("out"), dense.shape[0])
    dense.fill_(fill)
    dense[kept] = compact[source]


@torch.no_grad()
def scatter_module(dense: nn.Module, compact: nn.Module, maps: dict) -> None:
    """Write ``compact``'s parameters and statistics into ``dense`` (same type, dense widths)."""
    if isinstance(dense, nn.Conv2d | nn.Linear):
        _scatter_weight(dense.weight, compact.weight, maps)
        if dense.bias is not None:
            _scatter_vector(dense.bias, compact.bias, maps, 0.0)
    elif isinstance(dense, nn.BatchNorm2d):
        for name, fill in (("weight", 0.0), ("bias", 0.0), ("running_mean", 0.0)):
            _scatter_vector(getattr(dense, name), getattr(compact, name), maps, fill)
        _scatter_vector(dense.running_var, compact.running_var, maps, 1.0)
        dense.num_batches_tracked.copy_(compact.num_batches_tracked)


def dense_model(
    compact: nn.Module, arch: str, width: int, in_channels: int, num_classes: int, maps: dict
) -> nn.Module:
    """The dense view of ``compact`` (eval mode, on ``compact``'s device): the base's
    architecture computing the same function, removed channels 0, folded ones unfolded."""
    dense = build_model(arch, width, in_channels, num_classes)
    compact_modules = dict(compact.named_modules())
    unknown = set(maps) - set(compact_modules)
    if unknown:
        raise CompRepsError(f"channel map names unknown module(s): {', '.join(sorted(unknown))}")
    for name, module in dense.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear | nn.BatchNorm2d):
            scatter_module(module, compact_modules[name], maps.get(name, {}))
    device = next(compact.parameters()).device
    return dense.to(device).eval()
