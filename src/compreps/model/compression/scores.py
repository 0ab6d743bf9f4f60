"""Channel scores for the global ranking of structured pruning: filter L1, NEXP, their hybrid.

Each score is a ``tp.importance.Importance`` (it also plugs into ``tp.pruner.MetaPruner``) that
maps a coupled DepGraph group to one score per channel (the group's channel numbering). A group
spans several layers (producer convs, consumer convs): the score is first computed per layer,
then combined over the group's layers, and the ``normalize`` option says how layers and groups
of different scales are made comparable for the network-wide ranking (the NEXP study, 002 in
shared/papers, ranks globally and discusses normalising the scores of layers of different
widths; Torch-Pruning's importances take a ``normalizer`` too, and without one its global
ranking can skip whole groups, shared/docs/field-notes.md):

- ``none``: the mean over the group's layers of the raw per-layer scores;
- ``layer``: each layer's scores divided by that layer's mean score, then the mean over layers
  (every layer weighs alike inside its group and every group's scores average 1);
- ``group``: the mean over layers of the raw scores, divided by the group's mean.

A layer (or group) whose scores are all 0 is left at 0.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from compreps.core.files import CompRepsError

NORMALIZATIONS = ("none", "layer", "group")


# ----------------------------------------------------------------------------- groups
def group_members(group) -> list[tuple[str, nn.Module, list[int], list[int]]]:
    """``(role, layer, idxs, root_idxs)`` for each weight-carrying member of a DepGraph group.

    ``role`` is ``"out"`` (conv/linear producing the channels), ``"bn"`` (BatchNorm entries) or
    ``"in"`` (conv/linear input slices consuming them); ``idxs`` index the layer's own channel
    axis, ``root_idxs`` the group's channel numbering. Element-wise ops carry no weights.
    """
    members = []
    for i, (dep, idxs) in enumerate(group):
        layer = dep.layer
        out_side = getattr(dep.pruning_fn, "__name__", "") == "prune_out_channels"
        if isinstance(layer, nn.BatchNorm2d):
            role = "bn"
        elif isinstance(layer, nn.Conv2d | nn.Linear):
            role = "out" if out_side else "in"
        else:
            continue
        members.append((role, layer, list(idxs), list(group[i].root_idxs)))
    return members


def group_size(group) -> int:
    return len(group[0].idxs)


# ----------------------------------------------------------------------------- normalisation
def _by_mean(scores: torch.Tensor) -> torch.Tensor:
    mean = scores.mean()
    return scores / mean if mean > 0 else scores


def combine(per_layer: list[torch.Tensor], normalize: str) -> torch.Tensor:
    """One score per channel from the per-layer scores of a group (module docstring).

    ``combine([[2, 4], [10, 30]], "none") == [6, 17]``; ``"layer"``: ``[[2/3, 4/3], [0.5, 1.5]]``
    -> ``[7/12, 17/12]``; ``"group"``: ``[6, 17] / 11.5``.
    """
    if normalize not in NORMALIZATIONS:
        raise CompRepsError(f"unknown normalize {normalize!r}; allowed: {NORMALIZATIONS}")
    if not per_layer:
        raise CompRepsError("a coupled group has no layer to score")
    stacked = torch.stack([torch.as_tensor(s, dtype=torch.float64) for s in per_layer])
    if normalize == "layer":
        stacked = torch.stack([_by_mean(row) for row in stacked])
    score = stacked.mean(0)
    return _by_mean(score) if normalize == "group" else score


def _scatter(size: int, values: torch.Tensor, root_idxs: list[int]) -> torch.Tensor:
    row = torch.zeros(size, dtype=torch.float64)
    row[root_idxs] = values.double().cpu()
    return row


# ----------------------------------------------------------------------------- NEXP
def nexp_scores(binary: torch.Tensor) -> torch.Tensor:
    """NEXP per channel of a 0/1 tensor ``(N samples, C channels, P positions)`` (study 002,
    Eqs. 10-11).

    NEXP_c = mean over the N(N-1)/2 sample pairs of the Hamming distance between the binarised
    maps of channel c, divided by P (so it lies in [0, 1/2 * N/(N-1)]). In one pass: if ``k_p``
    of the N samples fire at position p, ``k_p (N - k_p)`` pairs differ there, hence
    ``sum_{i<j} Ham(i, j) = sum_p k_p (N - k_p)``.
    """
    binary = torch.as_tensor(binary)
    if binary.ndim != 3:
        raise ValueError(
            f"expected (samples, channels, positions), got shape {tuple(binary.shape)}"
        )
    n, _, positions = binary.shape
    if n < 2 or positions < 1:
        raise ValueError("NEXP needs at least 2 samples and 1 position")
    values = binary.to(torch.float64)
    if not torch.all((values == 0) | (values == 1)):
        raise ValueError("NEXP expects a binary (0/1) tensor")
    fired = values.sum(0)  # (C, P): samples active at each position
    pairs = n * (n - 1) / 2
    return (fired * (n - fired)).sum(1) / (pairs * positions)


# ----------------------------------------------------------------------------- importances
class PerLayerImportance(tp.importance.Importance):
    """A channel score measured per layer of a coupled group (``per_layer``), the rows
    combined by ``normalize`` (:func:`combine`)."""

    missing = "a coupled group has nothing to score"
    normalize = "none"

    def per_layer(self, group) -> list[torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        rows = self.per_layer(group)
        if not rows:
            raise CompRepsError(self.missing)
        return combine(rows, self.normalize)


class L1FilterImportance(PerLayerImportance):
    """L1 norm of a channel's filter in each producer conv, combined by ``normalize``.

    The default ``group`` divides the mean over producers by the group's mean: L1 norms grow
    with the fan-in, so raw norms would rank layers by shape rather than by filter.
    """

    def __init__(self, normalize: str = "group") -> None:
        self.normalize = normalize

    def per_layer(self, group) -> list[torch.Tensor]:
        size = group_size(group)
        return [
            _scatter(size, layer.weight.detach()[idxs].abs().flatten(1).sum(1), root_idxs)
            for role, layer, idxs, root_idxs in group_members(group)
            if role == "out"
        ]

    missing = "a coupled group has no producer layer to score"


class NexpImportance(PerLayerImportance):
    """NEXP of each channel (study 002, Eq. 11) from one forward pass of ``images`` through
    ``model`` (eval mode), measured at the input of each consumer conv, combined by
    ``normalize`` (default ``none``: NEXP lies in [0, 1/2] in every layer).

    The binarised post-ReLU inputs of every Conv2d are recorded by hooks on this very model
    object. Scoring a group of another model object (e.g. a deepcopy) raises instead of
    silently scoring nothing.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, normalize: str = "none") -> None:
        if images is None or len(images) < 2:
            raise CompRepsError("nexp needs calibration images (N x C x H x W, N >= 2)")
        self.normalize = normalize
        self.scores: dict[nn.Module, torch.Tensor] = {}

        def hook(module, inputs):
            x = inputs[0].detach()
            self.scores[module] = nexp_scores((x > 0).flatten(2)).cpu()

        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        handles = [m.register_forward_pre_hook(hook) for m in convs]
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(images)
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)

    def per_layer(self, group) -> list[torch.Tensor]:
        rows = []
        for role, layer, idxs, root_idxs in group_members(group):
            if role == "in" and isinstance(layer, nn.Conv2d):
                if layer not in self.scores:
                    raise CompRepsError("NEXP scores belong to another model object")
                rows.append(_scatter(group_size(group), self.scores[layer][idxs], root_idxs))
        return rows

    missing = "a coupled group has no consumer conv to measure NEXP on"


class HybridImportance(tp.importance.Importance):
    """``(1 - alpha) · L1 + alpha · NEXP`` per channel (study 002, its hybrid of importance and
    expressiveness), each term combined with the same ``normalize`` before mixing.

    ``alpha = 0`` is the L1 score and ``alpha = 1`` the NEXP score, exactly. With
    ``normalize="none"`` the terms keep their raw scales (L1 norms are far larger than NEXP's
    [0, 1/2]), so an ``alpha`` strictly between 0 and 1 then ranks mostly by L1.
    """

    def __init__(self, l1: L1FilterImportance, nexp: NexpImportance, alpha: float) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise CompRepsError(f"alpha must lie in [0, 1], got {alpha}")
        self.l1, self.nexp, self.alpha = l1, nexp, alpha

    def __call__(self, group) -> torch.Tensor:
        if self.alpha == 1.0:
            return self.nexp(group)
        if self.alpha == 0.0:
            return self.l1(group)
        return (1.0 - self.alpha) * self.l1(group) + self.alpha * self.nexp(group)
