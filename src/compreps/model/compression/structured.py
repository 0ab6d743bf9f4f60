"""Structured filter pruning on Torch-Pruning's dependency graph: ``struct_l1`` and ``nexp``.

Both families remove whole channels. Torch-Pruning's ``DependencyGraph`` (DepGraph) finds the
coupled groups of ResNet-18 (12 groups: 4 residual streams, whose channels are shared by every
block of a stage through the additions, and 8 block-internal ``conv1 -> bn1 -> conv2`` links);
removing channel ``i`` of a group removes it from every producer (conv filters, BN entries) and
consumer (input slices) of that group at once. The classifier's outputs are never pruned.

Scores (:mod:`compreps.model.compression.scores`, with their ``normalize`` options none /
layer / group):

- ``struct_l1``: the L1 norm of each channel's filters in the group's producer convs (default
  ``normalize: group``: the mean over producers divided by the group's mean).
- ``nexp``: neural expressiveness (NEXP, study 002 in shared/papers, Eq. 11): binarise the
  post-ReLU activation map of each channel (``> 0 -> 1``) on a small batch (~60 images), and
  score the channel by the mean pairwise Hamming distance between samples, normalised per
  position, at the inputs of the group's consumer convs; with ``alpha < 1`` the hybrid
  ``(1 - alpha) · L1 + alpha · NEXP`` of the same study. Default ``normalize: group``: ranked
  raw, the stem stream's lower scores let NEXP remove most of it (docs/metrics.md, "NEXP").

Ranking is global over all groups (both papers) with an exact channel count:
``round(level * total channels)`` lowest-scored channels go, never emptying a group below
``MIN_KEEP_FRACTION``. Torch-Pruning's own threshold can prune far less than asked (unnormalised
scores) or a whole group (ties at the threshold); here the achieved fraction is measured on the
pruned model and a miss larger than ``LEVEL_TOLERANCE`` raises ``CompRepsError``.

A pruned state dict does not fit the dense class: ``structure_of`` records every layer's widths
in plain types and ``rebuild`` makes the empty pruned architecture that loads it strictly.
"""

from __future__ import annotations

import math

import torch
import torch_pruning as tp
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.compression.dense_view import axis_map, kept_clusters
from compreps.model.compression.scores import (
    NORMALIZATIONS,
    HybridImportance,
    L1FilterImportance,
    NexpImportance,
    group_members,
    group_size,
)
from compreps.model.cost import count_params_macs
from compreps.model.networks import build_model, compressible_modules

STRUCTURED_FAMILIES = ("struct_l1", "nexp", "fold")
PRUNE_METHODS = ("struct_l1", "nexp")
LEVEL_TOLERANCE = 0.02  # largest |achieved - asked| removed-channel fraction accepted
MIN_KEEP_FRACTION = 0.05  # a group never keeps fewer than this fraction (and >= 1 channel)
DEFAULT_NORMALIZE = {"struct_l1": "group", "nexp": "group"}


# ----------------------------------------------------------------------------- groups
def dependency_groups(model: nn.Module, example: torch.Tensor) -> tuple[tp.DependencyGraph, list]:
    """The DepGraph of ``model`` and its prunable groups; classifier outputs are excluded."""
    classifiers = [m for _, m in compressible_modules(model) if isinstance(m, nn.Linear)]
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    groups = list(
        graph.get_all_groups(ignored_layers=classifiers, root_module_types=[nn.Conv2d, nn.Linear])
    )
    return graph, groups


def group_name(graph: tp.DependencyGraph, group) -> str:
    """The name of the group's root module (e.g. ``layer1.0.conv1``)."""
    return graph._module2name[group[0].dep.target.module]


def channel_maps(graph, groups: list, clusters: list[list[list[int]]]) -> dict[str, dict]:
    """``{module name: {"out" | "in": channel map}}`` for every member of the ``groups``.

    ``clusters[g]`` lists the clusters of group ``g`` in the group's channel numbering (see
    :func:`compreps.model.compression.dense_view.kept_clusters`); only the axes a group touches are
    listed, any
    other axis is kept whole. Computable before or after the group is pruned (it reads the
    group's indices only). The maps are what :mod:`compreps.model.compression.dense_view` scatters
    with.
    """
    maps: dict[str, dict] = {}
    for group, group_clusters in zip(groups, clusters, strict=True):
        for role, layer, idxs, root_idxs in group_members(group):
            to_local = dict(zip(root_idxs, idxs, strict=True))
            local = [[to_local[c] for c in cluster] for cluster in group_clusters]
            axis = "in" if role == "in" else "out"
            name = graph._module2name[layer]
            maps.setdefault(name, {})[axis] = axis_map(max(idxs) + 1, local)
    return maps


# ----------------------------------------------------------------------------- ranking
def _floor(size: int, round_to: int | None) -> int:
    return min(size, max(1, round_to or 1, math.ceil(MIN_KEEP_FRACTION * size)))


def _round_kept(kept: int, size: int, round_to: int | None) -> int:
    if not round_to:
        return kept
    return min(size, max(round_to, round_to * round(kept / round_to)))


def global_ranking(
    scores: list[torch.Tensor], level: float, round_to: int | None = None
) -> list[list[int]]:
    """Channels to remove per group: the ``round(level * total)`` lowest scores network-wide.

    Channels are taken in ascending score order (ties by position), skipping a group once it
    is down to its floor (``MIN_KEEP_FRACTION`` of its channels, at least 1 or ``round_to``).
    With ``round_to`` each group's kept width is then rounded to the nearest multiple, the
    group's lowest-scored channels going first. Returns sorted indices per group.
    """
    sizes = [len(s) for s in scores]
    if not scores:
        return []
    flat = torch.cat([torch.as_tensor(s, dtype=torch.float64) for s in scores])
    owner = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)]).tolist()
    offsets = [sum(sizes[:g]) for g in range(len(sizes))]
    to_remove = round(level * len(flat))
    removed: list[list[int]] = [[] for _ in sizes]
    count = 0
    for j in torch.argsort(flat, stable=True).tolist():
        if count == to_remove:
            break
        g = owner[j]
        if sizes[g] - len(removed[g]) > _floor(sizes[g], round_to):
            removed[g].append(j - offsets[g])
            count += 1
    if round_to:
        for g, size in enumerate(sizes):
            kept = _round_kept(size - len(removed[g]), size, round_to)
            order = torch.argsort(torch.as_tensor(scores[g], dtype=torch.float64), stable=True)
            removed[g] = order[: size - kept].tolist()
    return [sorted(r) for r in removed]


def check_level(level: float, removed: int, total: int, method: str) -> float:
    """The achieved removed-channel fraction; ``CompRepsError`` when it misses ``level``."""
    achieved = removed / total
    if abs(achieved - level) > LEVEL_TOLERANCE:
        raise CompRepsError(
            f"{method} at level {level}: removed {removed} of {total} channels "
            f"({achieved:.3f}), more than {LEVEL_TOLERANCE} away from the level "
            "(group floors or round_to prevent it; lower round_to or the level)"
        )
    return achieved


def check_level_arg(level: float) -> None:
    if not 0.0 <= level < 1.0:
        raise CompRepsError(
            f"a structured level is the fraction of channels removed, in [0, 1); got {level}"
        )


# ----------------------------------------------------------------------------- pruning
def prepare(model: nn.Module, calib_images: torch.Tensor | None, image_size: int):
    """Eval mode, one example input, the dense cost, the graph and its groups (with sizes)."""
    model.eval()
    if calib_images is not None:
        example = calib_images[:1]
    else:
        in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
        example = torch.zeros(1, in_channels, image_size, image_size)
    shape = tuple(example.shape[1:])
    dense = count_params_macs(model, shape)
    graph, groups = dependency_groups(model, example)
    names = [group_name(graph, g) for g in groups]
    sizes = [group_size(g) for g in groups]
    return shape, dense, graph, groups, names, sizes


def prune_groups(graph: tp.DependencyGraph, groups: list, removed: list[list[int]]) -> None:
    """Remove ``removed[g]`` (group channel numbers) from every member of group ``g``."""
    for group, idxs in zip(groups, removed, strict=True):
        if idxs:
            root = group[0].dep
            graph.get_pruning_group(root.target.module, root.handler, idxs).prune()


def summarize(model, method, level, shape, dense, names, sizes) -> dict:
    """Measure the pruned model: kept widths per group, achieved level, params and MACs."""
    modules = dict(model.named_modules())
    kept = {}
    for name in names:
        layer = modules[name]
        kept[name] = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
    total, kept_total = sum(sizes), sum(kept.values())
    achieved = check_level(level, total - kept_total, total, method)
    params, macs = count_params_macs(model, shape)
    return {
        "method": method,
        "level": float(level),
        "achieved_level": achieved,
        "kept_channels": kept_total,
        "total_channels": total,
        "groups": {name: [kept[name], size] for name, size in zip(names, sizes, strict=True)},
        "params": params,
        "macs": macs,
        "dense_params": dense[0],
        "dense_macs": dense[1],
        "param_fraction": params / dense[0],
        "macs_fraction": macs / dense[1],
        "input_shape": list(shape),
        "structure": structure_of(model),
    }


def prune_structured(
    model: nn.Module,
    level: float,
    method: str,
    calib_images: torch.Tensor | None = None,
    *,
    round_to: int | None = None,
    image_size: int = 32,
    normalize: str | None = None,
    alpha: float = 1.0,
) -> dict:
    """Remove the fraction ``level`` of channels from ``model`` in place; return the record.

    ``method``: ``struct_l1`` or ``nexp`` (``nexp`` needs ``calib_images``, normalised float
    ``N x C x H x W``, ~60 samples; they also fix the input size). The record holds the method,
    the level and the achieved one, kept channels per group (``[kept, total]`` by root module),
    parameter and MAC counts with their fractions of the dense model, ``structure`` for
    ``rebuild``, ``score`` (its ``normalize`` and, for ``nexp``, ``alpha``) and ``channel_map``
    for :func:`compreps.model.compression.dense_view.dense_model`. The model is left in eval
    mode.
    """
    if method not in PRUNE_METHODS:
        raise CompRepsError(f"unknown pruning method {method!r}; allowed: {PRUNE_METHODS}")
    check_level_arg(level)
    shape, dense, graph, groups, names, sizes = prepare(model, calib_images, image_size)
    normalize = normalize or DEFAULT_NORMALIZE[method]
    importance = make_importance(model, method, calib_images, normalize, alpha)
    removed = global_ranking([importance(g) for g in groups], level, round_to)
    check_level(level, sum(map(len, removed)), sum(sizes), method)  # before touching the model
    clusters = [kept_clusters(size, r) for size, r in zip(sizes, removed, strict=True)]
    maps = channel_maps(graph, groups, clusters)
    prune_groups(graph, groups, removed)
    record = summarize(model, method, level, shape, dense, names, sizes)
    score = {"normalize": normalize, **({"alpha": float(alpha)} if method == "nexp" else {})}
    return {**record, "score": score, "channel_map": maps}


def make_importance(model, method: str, calib_images, normalize: str, alpha: float):
    """The score of ``method``: filter L1, or for ``nexp`` NEXP (``alpha`` 1) or the hybrid."""
    if normalize not in NORMALIZATIONS:
        raise CompRepsError(f"unknown normalize {normalize!r}; allowed: {NORMALIZATIONS}")
    l1 = L1FilterImportance(normalize)
    if method != "nexp":
        return l1
    nexp = NexpImportance(model, calib_images, normalize)
    return HybridImportance(l1, nexp, alpha)


def prune_l1(model, level, calib_images=None, *, image_size=32, normalize="group") -> dict:
    """The ``struct_l1`` family: channels of least filter L1 norm removed (no data needed)."""
    return prune_structured(
        model, level, "struct_l1", None, image_size=image_size, normalize=normalize
    )


def prune_nexp(
    model: nn.Module,
    level: float,
    calib_images=None,
    *,
    image_size: int = 32,
    normalize: str = "group",
    alpha: float = 1.0,
) -> dict:
    """The ``nexp`` family (study 002, Eq. 11): channels of least NEXP score removed, or of
    least hybrid score ``(1 - alpha) · L1 + alpha · NEXP`` when ``alpha < 1``."""
    return prune_structured(
        model,
        level,
        "nexp",
        calib_images,
        image_size=image_size,
        normalize=normalize,
        alpha=alpha,
    )


# ----------------------------------------------------------------------------- round trip
def structure_of(model: nn.Module) -> dict:
    """Channel widths of every Conv2d, BatchNorm2d and Linear, by module name (plain types)."""
    structure = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            structure[name] = {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels}
        elif isinstance(m, nn.BatchNorm2d):
            structure[name] = {"type": "BatchNorm2d", "in": m.num_features, "out": m.num_features}
        elif isinstance(m, nn.Linear):
            structure[name] = {"type": "Linear", "in": m.in_features, "out": m.out_features}
    return structure


_SHRINK = {
    "Conv2d": (tp.prune_conv_in_channels, tp.prune_conv_out_channels),
    "BatchNorm2d": (None, tp.prune_batchnorm_out_channels),
    "Linear": (tp.prune_linear_in_channels, tp.prune_linear_out_channels),
}


def rebuild(arch: str, width: int, in_channels: int, num_classes: int, structure: dict):
    """The dense architecture shrunk to ``structure`` (from ``structure_of``), weights unset.

    Each layer keeps its first ``in``/``out`` channels; a pruned state dict then loads with
    ``strict=True``. Raises ``CompRepsError`` when the structure does not fit the architecture.
    """
    model = build_model(arch, width, in_channels, num_classes)
    dense = structure_of(model)
    if set(dense) != set(structure):
        raise CompRepsError(f"structure does not fit {arch} width {width}: layer names differ")
    modules = dict(model.named_modules())
    for name, want in structure.items():
        have = dense[name]
        if want["type"] != have["type"] or not (
            1 <= want["in"] <= have["in"] and 1 <= want["out"] <= have["out"]
        ):
            raise CompRepsError(f"structure does not fit {arch} width {width} at {name}: {want}")
        shrink_in, shrink_out = _SHRINK[want["type"]]
        if shrink_in is not None and want["in"] < have["in"]:
            shrink_in(modules[name], list(range(want["in"], have["in"])))
        if want["out"] < have["out"]:
            shrink_out(modules[name], list(range(want["out"], have["out"])))
    return model
