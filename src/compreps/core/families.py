"""The registry of compression families: each family is declared once, here.

Everything else reads this registry: the model ids and their parsing
(:mod:`compreps.core.vocabulary`), the config schema's family list and level keys
(:mod:`compreps.core.config`), the settings of a family's section
(:mod:`compreps.core.settings`), the rules and their wildcards (``workflow/rules``), the step
that makes a family's models, the tables' order and the figures' markers and colours.

Adding a family (docs/architecture.md, "Adding a compression family"): one module with its
``make`` function, one :class:`Family` entry in :data:`REGISTRY`, and its config section in
``config.yaml``. Families whose ``step`` is ``structured`` are made by the ``structured`` step
and rule from the base checkpoint, with the options of their config section.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    """What a family's level means: ``meaning`` with its ``unit``; ``harsher`` says in which
    direction the compression grows ("lower" for kept fractions and bits, "higher" for removed
    fractions). ``pattern`` is the regular expression of the level in a model id."""

    key: str  # the config list of the family's section
    meaning: str
    unit: str
    harsher: str  # "lower" | "higher"
    pattern: str = r"[0-9.]+"
    low: float = 0.0  # the open interval (or, for integers, closed range) levels lie in
    high: float = 1.0


@dataclass(frozen=True)
class Family:
    """A compression family: its name (the model-id prefix), config section, level, the CLI
    step that makes its models (``make``: ``module:function`` in the model world, for the
    ``structured`` step), whether it is one of the study's three, its dump's dense view and its
    marker and colour in every figure."""

    name: str
    section: str
    level: Level
    step: str
    make: str
    paper: bool
    dense_view: str
    marker: str
    colour: str
    label: str  # short label in legends and axis titles

    @property
    def descending(self) -> bool:
        """Table 1 order: from the mildest compression to the harshest."""
        return self.level.harsher == "lower"


_REMOVED = Level("levels", "fraction of channels removed", "fraction", "higher")

REGISTRY: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "coreset",
            "coreset",
            Level("fractions", "fraction of training images kept", "fraction", "lower", high=1.0),
            step="train",
            make="compreps.model.data.coreset:select_coreset",
            paper=True,
            dense_view="none",
            marker="o",
            colour="tab:blue",
            label="coreset fraction",
        ),
        Family(
            "prune",
            "prune",
            Level("ratios", "fraction of weights set to zero", "fraction", "higher"),
            step="prune",
            make="compreps.model.compression.prune:prune_global_l1",
            paper=True,
            dense_view="none",
            marker="s",
            colour="tab:orange",
            label="pruning ratio",
        ),
        Family(
            "quant",
            "quantize",
            Level("bits", "bits per weight", "bits", "lower", pattern="[0-9]+", low=1, high=8),
            step="quantize",
            make="compreps.model.compression.quantize:quantize_model",
            paper=True,
            dense_view="none",
            marker="D",
            colour="tab:green",
            label="bits",
        ),
        Family(
            "struct_l1",
            "struct_l1",
            _REMOVED,
            step="structured",
            make="compreps.model.compression.structured:prune_l1",
            paper=False,
            dense_view="pruned-zeros",
            marker="^",
            colour="tab:purple",
            label="fraction of channels removed (L1)",
        ),
        Family(
            "nexp",
            "nexp",
            _REMOVED,
            step="structured",
            make="compreps.model.compression.structured:prune_nexp",
            paper=False,
            dense_view="pruned-zeros",
            marker="v",
            colour="tab:brown",
            label="fraction of channels removed (NEXP)",
        ),
        Family(
            "fold",
            "fold",
            Level("levels", "fraction of channels merged away", "fraction", "higher"),
            step="structured",
            make="compreps.model.compression.fold:fold_model",
            paper=False,
            dense_view="fold-unfolded",
            marker="P",
            colour="tab:pink",
            label="fraction of channels merged away (fold)",
        ),
    )
}
# Markers and colours for a family registered without its own (never two families alike).
SPARE_MARKERS = "XhH*p<>d8"
SPARE_COLOURS = ("tab:gray", "tab:olive", "tab:cyan", "tab:red")


def family(name: str) -> Family:
    """The registered family ``name``; a clear error naming the registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown compression family {name!r}: expected one of {', '.join(REGISTRY)}"
        ) from None


def names(step: str | None = None) -> tuple[str, ...]:
    """Registered family names in Table 1 order (those made by ``step`` when given)."""
    return tuple(f.name for f in REGISTRY.values() if step is None or f.step == step)


def section_family(section: str) -> Family | None:
    """The family whose config section is ``section`` (None for other sections)."""
    return next((f for f in REGISTRY.values() if f.section == section), None)
