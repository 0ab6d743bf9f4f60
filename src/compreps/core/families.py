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


# The families, one row each in three tables (Table 1 order); REGISTRY joins them. The coreset
# methods besides the study's random one are families of their own, ``coreset_<method>``, with
# the coreset section's fractions; one runs when ``coreset.methods`` lists its method
# (:func:`coreset_method`), and random keeps the study's model ids ``coreset-<fraction>``.
RANDOM = "random"
CORESET_METHODS = (RANDOM, "forgetting", "el2n", "aum", "ccs", "kcenter", "moderate")
_REMOVED = "fraction of channels removed"
_KEPT = Level("fractions", "fraction of training images kept", "fraction", "lower")
LEVELS = {
    "coreset": _KEPT,
    "prune": Level("ratios", "fraction of weights set to zero", "fraction", "higher"),
    "quant": Level("bits", "bits per weight", "bits", "lower", "[0-9]+", 1, 8),
    "struct_l1": Level("levels", _REMOVED, "fraction", "higher"),
    "nexp": Level("levels", _REMOVED, "fraction", "higher"),
    "fold": Level("levels", "fraction of channels merged away", "fraction", "higher"),
    **{f"coreset_{method}": _KEPT for method in CORESET_METHODS[1:]},
}
_COMPRESSION = "compreps.model.compression"
_STRUCTURED = f"{_COMPRESSION}.structured"
_SELECT = "compreps.model.data.coreset:select_coreset"
# name: (config section, step, make = "module:function", one of the study's three, dense view)
MAKERS = {
    "coreset": ("coreset", "train", _SELECT, True, "none"),
    "prune": ("prune", "prune", f"{_COMPRESSION}.prune:prune_global_l1", True, "none"),
    "quant": ("quantize", "quantize", f"{_COMPRESSION}.quantize:quantize_model", True, "none"),
    "struct_l1": ("struct_l1", "structured", f"{_STRUCTURED}:prune_l1", False, "pruned-zeros"),
    "nexp": ("nexp", "structured", f"{_STRUCTURED}:prune_nexp", False, "pruned-zeros"),
    "fold": ("fold", "structured", f"{_COMPRESSION}.fold:fold_model", False, "fold-unfolded"),
    **{f"coreset_{m}": ("coreset", "train", _SELECT, False, "none") for m in CORESET_METHODS[1:]},
}
# name: (marker, colour, label in legends and axis titles)
STYLES = {
    "coreset": ("o", "tab:blue", "coreset fraction"),
    "prune": ("s", "tab:orange", "pruning ratio"),
    "quant": ("D", "tab:green", "bits"),
    "struct_l1": ("^", "tab:purple", "fraction of channels removed (L1)"),
    "nexp": ("v", "tab:brown", "fraction of channels removed (NEXP)"),
    "fold": ("P", "tab:pink", "fraction of channels merged away (fold)"),
}
# the coreset methods: shades of the coreset's blue, the method's initial as the marker
_METHOD_COLOURS = ("navy", "royalblue", "deepskyblue", "steelblue", "slateblue", "darkcyan")
_METHOD_NAMES = ("forgetting", "EL2N", "AUM", "CCS", "k-center", "moderate")
STYLES.update(
    {
        f"coreset_{method}": (f"${method[0].upper()}$", colour, f"coreset fraction ({name})")
        for method, colour, name in zip(
            CORESET_METHODS[1:], _METHOD_COLOURS, _METHOD_NAMES, strict=True
        )
    }
)
REGISTRY: dict[str, Family] = {
    name: Family(name, MAKERS[name][0], level, *MAKERS[name][1:], *STYLES[name])
    for name, level in LEVELS.items()
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


def coreset_method(name: str) -> str | None:
    """The coreset method a family's models are selected with: ``random`` for ``coreset``,
    ``<method>`` for ``coreset_<method>``, None for a family that is no coreset."""
    if name == "coreset":
        return RANDOM
    prefix, _, method = name.partition("_")
    return method if prefix == "coreset" and method in CORESET_METHODS[1:] else None


def coreset_family(method: str) -> str:
    """The family of a coreset method's models: ``coreset`` for random (the study's ids),
    ``coreset_<method>`` for the others."""
    if method not in CORESET_METHODS:
        raise ValueError(f"unknown coreset method {method!r}: expected one of {CORESET_METHODS}")
    return "coreset" if method == RANDOM else f"coreset_{method}"


def listable() -> tuple[str, ...]:
    """The families the config key ``families`` lists: every family but the non-random coreset
    methods, which ``coreset.methods`` chooses (they run when ``coreset`` is listed)."""
    return tuple(name for name in REGISTRY if coreset_method(name) in (None, RANDOM))
