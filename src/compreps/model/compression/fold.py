"""Model folding: merge clusters of coupled channels instead of removing them (papers/003).

Folding ("Cut Less, Fold More", papers/003; after Wang et al.'s model folding) compresses
without data and without fine-tuning. For each coupled channel group of Torch-Pruning's
dependency graph (see ``compreps.model.compression.structured``) with ``n`` channels of which ``k``
are kept:

1. cluster the ``n`` channels by k-means on the concatenation of everything a channel owns:
   its producer filters, its BatchNorm entries ``(gamma, beta, running mean, running std)`` and
   its consumers' input slices;
2. merge each cluster ``S`` into one channel: producers take the centroid (the mean filter,
   ``W' = M W`` with ``M = (C^T C)^-1 C^T`` for the 0/1 cluster matrix ``C``) and consumers the
   sum of the members' input slices (``W'_next = W_next C``), so a cluster of identical channels
   is folded exactly;
3. repair BatchNorm. The merged conv output is the mean ``z = (1/m) sum_s z_s`` of the members'
   outputs, so its running mean is the members' mean, but its variance shrinks to
   ``(1/m^2) sum_{s,t} rho_st sigma_s sigma_t``. Data-free (``bn_repair="variance"``), ``rho_st``
   is estimated by the cosine of the two filters (the correlation of ``w_s . x`` and
   ``w_t . x`` for white inputs ``x``); ``"calib"`` re-estimates every BatchNorm's statistics on
   a few batches instead; ``"none"`` keeps the members' mean variance.

The kept widths per group are those ``struct_l1`` keeps at the same level (same L1 scores,
same global ranking with ``normalize: group``, struct_l1's default), so folding and magnitude
pruning are compared at equal channels, parameters and MACs. The fold itself uses no training;
``fold.finetune_epochs`` > 0 fine-tunes the folded model afterwards
(:mod:`compreps.model.training.finetune`), as the folding study's comparison with data-driven
repair.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.compression.dense_view import kept_clusters
from compreps.model.compression.structured import (
    L1FilterImportance,
    channel_maps,
    check_level,
    check_level_arg,
    global_ranking,
    group_members,
    group_name,
    group_size,
    prepare,
    prune_groups,
    summarize,
)

BN_REPAIRS = ("variance", "calib", "none")


# ----------------------------------------------------------------------------- k-means
def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Cluster labels ``0..k-1`` (every cluster non-empty) by k-means++ and Lloyd iterations.

    ``k >= len(points)`` gives every point its own cluster. Exact duplicates are never picked
    twice as initial centres, so ``k`` distinct points among duplicates are clustered exactly.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if k >= n:
        return np.arange(n)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        if nearest.sum() > 0:
            pick = int(rng.choice(n, p=nearest / nearest.sum()))
        else:  # fewer distinct points than k: any unused point
            pick = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(1))
    centres = points[chosen].copy()
    labels = np.full(n, -1)
    for _ in range(iterations):
        dist = (points**2).sum(1)[:, None] - 2 * points @ centres.T + (centres**2).sum(1)[None]
        new = dist.argmin(1)
        new = _fill_empty(new, dist, k)
        if np.array_equal(new, labels):
            break
        labels = new
        centres = np.stack([points[labels == j].mean(0) for j in range(k)])
    return labels


def _fill_empty(labels: np.ndarray, dist: np.ndarray, k: int) -> np.ndarray:
    """Give each empty cluster the point farthest from its centre among clusters of >= 2."""
    labels = labels.copy()
    for j in range(k):
        if np.any(labels == j):
            continue
        counts = np.bincount(labels, minlength=k)
        movable = np.flatnonzero(counts[labels] >= 2)
        far = movable[dist[movable, labels[movable]].argmax()]
        labels[far] = j
    return labels


# ----------------------------------------------------------------------------- features
def _rows(layer: nn.Module, role: str, idxs: list[int]) -> torch.Tensor:
    """The per-channel feature rows one member contributes (in its ``idxs`` order)."""
    if role == "out":
        return layer.weight.detach()[idxs].flatten(1)
    if role == "in":
        return layer.weight.detach()[:, idxs].transpose(0, 1).flatten(1)
    stats = (layer.weight, layer.bias, layer.running_mean, layer.running_var.sqrt())
    return torch.stack([t.detach()[idxs] for t in stats], 1)


def channel_features(group) -> np.ndarray:
    """``(n channels, features)``: producers, BN entries and consumer slices, concatenated."""
    blocks = []
    for role, layer, idxs, root_idxs in group_members(group):
        rows = _rows(layer, role, idxs).double().cpu()
        block = torch.zeros(group_size(group), rows.shape[1], dtype=torch.float64)
        block[root_idxs] = rows
        blocks.append(block)
    return torch.cat(blocks, 1).numpy()


def folded_variance(filters: torch.Tensor, variances: torch.Tensor) -> float:
    """Variance of the mean of ``m`` conv outputs with these filters and running variances.

    ``Var((1/m) sum_s z_s) = (1/m^2) (sum_s var_s + sum_{s != t} rho_st sigma_s sigma_t)``
    with ``rho_st = cos(w_s, w_t)`` (exact for white inputs); a singleton keeps its variance.
    """
    w = filters.flatten(1).double()
    var = variances.double()
    sigma = var.sqrt()
    unit = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rho = unit @ unit.T
    cross = (rho * torch.outer(sigma, sigma)).sum() - (rho.diagonal() * var).sum()
    return float((var.sum() + cross) / len(var) ** 2)


def _producer_of(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """BatchNorm -> the conv defined just before it (conv1 -> bn1, downsample.0 -> .1)."""
    producer, last_conv = {}, None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            last_conv = m
        elif isinstance(m, nn.BatchNorm2d) and last_conv is not None:
            if last_conv.out_channels == m.num_features:
                producer[m] = last_conv
    return producer


# ----------------------------------------------------------------------------- merging
def _merge_member(role, layer, clusters, repair, producer_filters) -> None:
    """Write each cluster's merged values into its first member's slot (layer indices)."""
    with torch.no_grad():
        for local in clusters:
            rep = local[0]
            if role == "out":
                layer.weight[rep] = layer.weight[local].mean(0)
            elif role == "in":
                layer.weight[:, rep] = layer.weight[:, local].sum(1)
            else:
                # A BN channel belongs to one group only, so its values can be final here.
                var = layer.running_var[local]
                if repair == "variance" and producer_filters is not None:
                    new_var = folded_variance(producer_filters[local], var)
                else:
                    new_var = float(var.mean())
                for t in (layer.weight, layer.bias, layer.running_mean):
                    t[rep] = t[local].mean()
                layer.running_var[rep] = new_var


def _plan(group, k: int, seed: int, producer: dict) -> tuple[list[list[int]], list]:
    """Clusters (group channel numbers, sorted) and each member with its unfolded filters."""
    labels = kmeans(channel_features(group), k, seed)
    clusters = sorted(np.flatnonzero(labels == j).tolist() for j in range(k))
    members = []
    for role, layer, idxs, root_idxs in group_members(group):
        to_local = dict(zip(root_idxs, idxs, strict=True))
        local = [[to_local[r] for r in cluster] for cluster in clusters]
        filters = None
        if role == "bn" and layer in producer:
            filters = producer[layer].weight.detach().clone()
        members.append((role, layer, local, filters))
    return clusters, members


def fold_groups(
    model: nn.Module,
    graph,
    groups: list,
    kept: list[int],
    *,
    bn_repair: str = "variance",
    seed: int = 0,
) -> dict:
    """Fold group ``g`` of ``groups`` down to ``kept[g]`` channels, in place (no BN calib).

    All clusterings and BN variances are computed from the unfolded weights first; the merges
    (row means, column sums on different axes) then commute, and pruning comes last. Returns
    the channel maps of :func:`compreps.model.compression.dense_view.channel_maps`.
    """
    producer = _producer_of(model)
    plans = [
        _plan(group, k, seed, producer) if k < group_size(group) else ([], [])
        for group, k in zip(groups, kept, strict=True)
    ]
    for _, members in plans:
        for role, layer, local, filters in members:
            _merge_member(role, layer, local, bn_repair, filters)
    removed = [sorted(r for cluster in clusters for r in cluster[1:]) for clusters, _ in plans]
    clusters = [
        plan[0] or kept_clusters(group_size(group), [])
        for plan, group in zip(plans, groups, strict=True)
    ]
    maps = channel_maps(graph, groups, clusters)
    prune_groups(graph, groups, removed)
    return maps


def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them on ``images``.

    Cumulative averages (``momentum=None``) over the batches, in train mode without gradients;
    the model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def fold_model(
    model: nn.Module,
    level: float,
    *,
    bn_repair: str = "variance",
    calib_images: torch.Tensor | None = None,
    seed: int = 0,
    round_to: int | None = None,
    image_size: int = 32,
) -> dict:
    """Fold ``model`` in place to the channels ``struct_l1`` keeps at ``level``; the record.

    Same record as ``prune_structured`` (method ``"fold"``), plus ``bn_repair``.
    ``bn_repair="calib"`` needs ``calib_images`` (normalised float ``N x C x H x W``).
    """
    if bn_repair not in BN_REPAIRS:
        raise CompRepsError(f"unknown bn_repair {bn_repair!r}; allowed: {BN_REPAIRS}")
    if bn_repair == "calib" and calib_images is None:
        raise CompRepsError("bn_repair='calib' needs calibration images")
    check_level_arg(level)
    shape, dense, graph, groups, names, sizes = prepare(model, calib_images, image_size)
    importance = L1FilterImportance()
    removed = global_ranking([importance(g) for g in groups], level, round_to)
    check_level(level, sum(map(len, removed)), sum(sizes), "fold")
    kept = [size - len(r) for size, r in zip(sizes, removed, strict=True)]
    maps = fold_groups(model, graph, groups, kept, bn_repair=bn_repair, seed=seed)
    if bn_repair == "calib":
        recalibrate_batchnorm(model, calib_images)
    record = summarize(model, "fold", level, shape, dense, names, sizes)
    record["bn_repair"] = bn_repair
    record["channel_map"] = maps
    return record


__all__ = [
    "BN_REPAIRS",
    "fold_groups",
    "fold_model",
    "folded_variance",
    "group_name",
    "kmeans",
    "recalibrate_batchnorm",
]
