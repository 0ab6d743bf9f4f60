"""Settings: one frozen dataclass per config section, built from the validated config.

``config.yaml`` is the only place defaults live: the dataclasses have no field defaults, and
every CLI step builds its options from the dataclass fields (:func:`add_arguments`, all
required, typed) and reads them back with :func:`from_arguments`. The rules turn a config
section into exactly those options with :func:`config_arguments` (``cli_args`` in
``workflow/rules/common.smk``). A section's flags are ``--<section>-<key>``, nested keys joined
with ``-`` (``metrics.reps.weights.effective_rank`` -> ``--metrics-reps-weights-effective-rank``),
lists as several values, booleans as ``true``/``false``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import typing
from dataclasses import dataclass
from typing import ClassVar

from compreps.core import families
from compreps.core.files import CompRepsError
from compreps.core.vocabulary import REPS_WEIGHT_KEYS


@dataclass(frozen=True)
class DataSettings:
    SECTION: ClassVar[str] = "data"
    dataset: str  # cifar10 | fashion_mnist
    root: str  # folder holding the data set
    download: bool  # prepare-data may fetch the archive


@dataclass(frozen=True)
class ModelSettings:
    SECTION: ClassVar[str] = "model"
    arch: str  # CIFAR ResNet-18
    width: int  # channels of the first stage


@dataclass(frozen=True)
class TrainSettings:
    SECTION: ClassVar[str] = "train"
    epochs: int  # passes over the training set
    batch_size: int  # images per SGD step
    lr: float  # initial learning rate
    momentum: float  # SGD momentum
    weight_decay: float  # L2 penalty
    schedule: str  # cosine | constant
    seeds: tuple[int, ...]  # replicate seeds: one whole run (base, coresets, compressed) each
    precision: str  # auto | fp32 | bf16
    compile: str  # auto | true | false: torch.compile the model (auto = on CUDA only)
    deterministic: bool  # deterministic kernels on CUDA (CPU training is always deterministic)
    state_interval_s: float  # seconds between resume-state saves (0 = every epoch)

    @property
    def seed(self) -> int:  # of one replicate run: a model step is given its own seed only
        if len(self.seeds) != 1:
            raise CompRepsError(f"one run trains with one seed, got train.seeds {self.seeds}")
        return self.seeds[0]


@dataclass(frozen=True)
class CoresetSettings:
    SECTION: ClassVar[str] = "coreset"
    methods: tuple[str, ...]  # random (the study's) and the methods of coreset_<method> models
    fractions: tuple[float, ...]  # one coreset model per method each
    class_balanced: bool  # the non-random methods select within each class, random's counts
    selection_epochs: int  # epochs of the selection run (scores, embeddings)
    selection_seed: int  # its seed, not train.seeds: the selection model is not the base
    init: str  # shared (a coreset model starts from its seed's base initial weights) | independent
    ccs_score: str  # the score CCS stratifies: forgetting | el2n | aum
    ccs_beta: float  # CCS hard cut-off: fraction of the hardest examples dropped first
    ccs_strata: int  # CCS: equal-width score strata


@dataclass(frozen=True)
class PruneSettings:
    SECTION: ClassVar[str] = "prune"
    method: str  # global unstructured L1
    ratios: tuple[float, ...]  # one pruned model each


@dataclass(frozen=True)
class QuantizeSettings:
    SECTION: ClassVar[str] = "quantize"
    scheme: str  # paper | uniform | per_channel
    bits: tuple[int, ...]  # one quantized model each


@dataclass(frozen=True)
class StructL1Settings:
    SECTION: ClassVar[str] = "struct_l1"
    levels: tuple[float, ...]  # fractions of channels removed, one model each
    normalize: str  # none | layer | group: scores made comparable for the global ranking
    finetune_epochs: int  # epochs of fine-tuning with the base's settings (0 = one-shot)


@dataclass(frozen=True)
class NexpSettings:
    SECTION: ClassVar[str] = "nexp"
    levels: tuple[float, ...]  # fractions of channels removed, one model each
    calib_samples: int  # training images NEXP scores the channels on
    seed: int  # their class-stratified selection
    normalize: str  # none | layer | group: scores made comparable for the global ranking
    alpha: float  # hybrid (1 - alpha) * L1 + alpha * NEXP; 1 = NEXP
    finetune_epochs: int  # epochs of fine-tuning with the base's settings (0 = one-shot)


@dataclass(frozen=True)
class FoldSettings:
    SECTION: ClassVar[str] = "fold"
    levels: tuple[float, ...]  # fractions of channels merged away, one model each
    bn_repair: str  # variance (data-free) | calib | none
    calib_samples: int  # training images for bn_repair=calib
    seed: int  # k-means initialisation and the calibration selection
    finetune_epochs: int  # epochs of fine-tuning with the base's settings (0 = one-shot)


@dataclass(frozen=True)
class ProbeSettings:
    SECTION: ClassVar[str] = "probe"
    size: int  # test images in the probe set
    seed: int  # probe selection
    metric_layers: tuple[str, ...]  # averaged into the model-level metrics
    trajectory_layers: tuple[str, ...]  # per-layer curves of Fig. 2
    hidden_layer: str  # penultimate features (input of fc): hidden space of the hierarchy metrics
    batch_size: int  # inference batch

    @property
    def compared_layers(self) -> tuple[str, ...]:
        """Layers with per-layer metrics: metric layers, then trajectory layers (unique)."""
        return tuple(dict.fromkeys(self.metric_layers + self.trajectory_layers))

    @property
    def layers(self) -> tuple[str, ...]:
        """The dumped layers: :attr:`compared_layers`, then the hidden layer (unique)."""
        return tuple(dict.fromkeys((*self.compared_layers, self.hidden_layer)))


@dataclass(frozen=True)
class RepsWeights:
    """Weights of (s_e, s_alive, s_s, s_d) in REPS (000: the sum after eq. 13; 001: eq. 9)."""

    effective_rank: float  # w_e of s_e
    alive: float  # w_alive of s_alive
    separation: float  # w_s of s_s
    decay: float  # w_d of s_d

    def as_tuple(self) -> tuple[float, float, float, float]:
        """In the order of :data:`compreps.core.vocabulary.REPS_COMPONENTS`."""
        return tuple(getattr(self, key) for key in REPS_WEIGHT_KEYS)


@dataclass(frozen=True)
class RepsSettings:
    weights: RepsWeights  # REPS: 000's sum after eq. 13, 001's eq. 9
    alive_threshold: float  # alive: variance >= this x mean variance
    decay_top_m: int  # eigenvalues in the decay slope


@dataclass(frozen=True)
class GtfaSettings:
    beta: float  # eq. 8: s_w vs s_a
    gamma: float  # eq. 8: weights+subspace vs s_f
    top_k: int  # singular vectors compared by s_a
    output_samples: str  # probe | test: the samples of s_f (eq. 7); the paper: 200 probe samples


@dataclass(frozen=True)
class HierarchySettings:
    temperatures: tuple[float, ...]  # softmax temperatures of the probability-space metrics


@dataclass(frozen=True)
class MetricsSettings:
    SECTION: ClassVar[str] = "metrics"
    reps: RepsSettings  # REPS, eqs. 9-13
    gtfa: GtfaSettings  # GTFA, eqs. 5-8
    hierarchy: HierarchySettings  # representation-hierarchy metrics (study 004)


@dataclass(frozen=True)
class CorrelationSettings:
    SECTION: ClassVar[str] = "correlation"
    bootstrap: int  # resamples over models
    confidence: float  # of the bootstrap intervals (BCa, percentile where BCa fails)
    seed: int  # bootstrap resampling


@dataclass(frozen=True)
class SensitivitySettings:
    SECTION: ClassVar[str] = "sensitivity"
    grid_step: float  # simplex grid of REPS weights


@dataclass(frozen=True)
class Settings:
    """Every config section the steps use (``resources`` is the workflow's business)."""

    data: DataSettings
    model: ModelSettings
    train: TrainSettings
    base_checkpoint: str | None
    coreset: CoresetSettings
    prune: PruneSettings
    quantize: QuantizeSettings
    struct_l1: StructL1Settings
    nexp: NexpSettings
    fold: FoldSettings
    probe: ProbeSettings
    metrics: MetricsSettings
    correlation: CorrelationSettings
    sensitivity: SensitivitySettings


SECTIONS = (
    DataSettings,
    ModelSettings,
    TrainSettings,
    CoresetSettings,
    PruneSettings,
    QuantizeSettings,
    StructL1Settings,
    NexpSettings,
    FoldSettings,
    ProbeSettings,
    MetricsSettings,
    CorrelationSettings,
    SensitivitySettings,
)
_SECTION_CLASSES = {cls.SECTION: cls for cls in SECTIONS}


def section_class(section: str):
    """The settings class of config section ``section``. A registered family without a class
    of its own (:mod:`compreps.core.families`) gets one holding only its level list."""
    if section in _SECTION_CLASSES:
        return _SECTION_CLASSES[section]
    family = families.section_family(section)
    if family is None:
        raise CompRepsError(f"unknown config section {section!r}")
    kind = int if family.level.unit == "bits" else float
    cls = dataclasses.make_dataclass(
        f"{family.name.title()}Settings",
        [(family.level.key, tuple[kind, ...])],
        frozen=True,
    )
    cls.SECTION = section
    _SECTION_CLASSES[section] = cls
    return cls


# --------------------------------------------------------------------------- config -> settings
def _fields(cls) -> list[tuple[str, object]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


def _convert(value, kind, where: str):
    """A config value as the field type ``kind`` says (lists become tuples, ints floats)."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise CompRepsError(f"config {where} must be a mapping, got {value!r}")
        return _build(kind, value, where)
    if typing.get_origin(kind) is tuple:
        element = typing.get_args(kind)[0]
        if not isinstance(value, list | tuple):
            raise CompRepsError(f"config {where} must be a list, got {value!r}")
        return tuple(_convert(item, element, where) for item in value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is bool or kind is int or kind is str:
        if type(value) is not kind:
            raise CompRepsError(f"config {where} must be {kind.__name__}, got {value!r}")
        return value
    raise CompRepsError(f"config {where}: unexpected value {value!r}")


def _build(cls, values: dict, where: str):
    names = [name for name, _ in _fields(cls)]
    missing = [name for name in names if name not in values]
    extra = [key for key in values if key not in names]
    if missing or extra:
        raise CompRepsError(
            f"config {where}: "
            + "; ".join(
                part
                for part in (
                    missing and f"missing key(s) {', '.join(missing)}",
                    extra and f"unknown key(s) {', '.join(map(str, extra))}",
                )
                if part
            )
        )
    return cls(**{n: _convert(values[n], kind, f"{where}.{n}") for n, kind in _fields(cls)})


def settings_from_config(config: dict) -> Settings:
    """Every section of a validated config as typed settings at once (tests, benchmarks);
    a step builds only its own sections, from its options (:func:`from_arguments`)."""
    sections = {}
    for name, cls in _SECTION_CLASSES.items():
        if name not in config:
            raise CompRepsError(f"config lacks the section {name!r}")
        sections[name] = _convert(config[name], cls, name)
    base = config.get("base_checkpoint")
    if base is not None and not isinstance(base, str):
        raise CompRepsError(f"config base_checkpoint must be a path or null, got {base!r}")
    return Settings(base_checkpoint=base, **sections)


# --------------------------------------------------------------------------- settings <-> CLI
def step_parser(step: str, description: str, tables=()) -> argparse.ArgumentParser:
    """The parser of step ``step`` with one required ``--<table>`` option per table it reads
    (``results/tables/<table>.csv``); the step adds its other options."""
    parser = argparse.ArgumentParser(prog=f"compreps {step}", description=description)
    for table in tables:
        parser.add_argument(f"--{table}", required=True, help=f"results/tables/{table}.csv")
    return parser


def _leaves(cls, path: tuple[str, ...]):
    """(path, type) of every non-dataclass field, nested dataclasses flattened."""
    for name, kind in _fields(cls):
        if dataclasses.is_dataclass(kind):
            yield from _leaves(kind, (*path, name))
        else:
            yield (*path, name), kind


def _flag(path: tuple[str, ...]) -> str:
    return "--" + "-".join(path).replace("_", "-")


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def add_arguments(parser: argparse.ArgumentParser, section, exclude=()) -> None:
    """Add one required, typed option per field of the section class (no defaults), except
    the top-level fields named in ``exclude`` (the step gets those another way)."""
    group = parser.add_argument_group(f"config section '{section.SECTION}'")
    for path, kind in _leaves(section, (section.SECTION,)):
        if path[1] in exclude:
            continue
        options = {"required": True, "dest": "__".join(path)}
        if typing.get_origin(kind) is tuple:
            kind, options["nargs"] = typing.get_args(kind)[0], "+"
        options["type"] = _parse_bool if kind is bool else kind
        options["metavar"] = kind.__name__.upper()
        group.add_argument(_flag(path), **options)


def _rebuild(cls, args: argparse.Namespace, path: tuple[str, ...], given: dict):
    values = dict(given)
    for name, kind in _fields(cls):
        if name in given:
            continue
        if dataclasses.is_dataclass(kind):
            values[name] = _rebuild(kind, args, (*path, name), {})
        else:
            value = getattr(args, "__".join((*path, name)))
            values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def from_arguments(section, args: argparse.Namespace, **given):
    """The section's settings from options added by :func:`add_arguments`; ``given`` supplies
    the fields left out there (``exclude``)."""
    return _rebuild(section, args, (section.SECTION,), given)


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(_cli_value(item) for item in value)
    return shlex.quote(str(value))


def _cli_pairs(values: dict, path: tuple[str, ...]):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _cli_pairs(value, (*path, key))
        else:
            yield _flag((*path, key)), value


def config_arguments(config: dict, *sections: str) -> str:
    """The command-line options of the named config sections (what :func:`add_arguments`
    parses), shell-quoted: ``config_arguments(config, "correlation")`` ->
    ``"--correlation-bootstrap 1000 --correlation-confidence 0.95 --correlation-seed 42"``."""
    parts = []
    for section in sections:
        section_class(section)  # an unknown section is an error
        parts += [f"{flag} {_cli_value(v)}" for flag, v in _cli_pairs(config[section], (section,))]
    return " ".join(parts)
