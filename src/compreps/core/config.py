"""Configuration checks that run before any job: YAML syntax, the JSON schema, then every
cross-field and data-dependent rule a schema cannot say.

The Snakefile reads where each value came from (:func:`read_config` over ``config.yaml``, the
``--configfile`` files and ``--config``), lets Snakemake load the config, then calls
:func:`check_config`. Every problem is one line ``FILE: config key KEY ...`` naming the file
that set the key, and all problems are listed at once, so a bad value stops the run before
any job instead of failing deep inside one an hour later. The contents of a
``base_checkpoint`` are checked by the model world, handed in by :mod:`compreps.checks`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from compreps.core import data_files, families
from compreps.core.files import CompRepsError
from compreps.core.vocabulary import LEVEL_SOURCES, REPS_WEIGHT_KEYS, family_levels

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
SUM_TOLERANCE = 1e-6
# Correlations need at least this many compressed models
# (compreps.analysis.statistics.correlate.MIN_MODELS).
MIN_COMPRESSED_MODELS = 3
COMMAND_LINE = "--config"  # the source name of values given with `snakemake --config`

Key = tuple[Any, ...]


# --------------------------------------------------------------------------- reading files
def _display(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies below it."""
    text = os.path.normpath(os.path.abspath(path))
    relative = os.path.relpath(text)
    return text if relative.startswith("..") else relative


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """One config file as a dict; syntax errors name the file, line and column."""
    name = _display(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise CompRepsError(f"{name}: cannot read the config file ({err.strerror})") from None
    try:
        content = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        context = f" ({err.context})" if err.context else ""
        raise CompRepsError(f"{where}: YAML syntax error: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise CompRepsError(f"{name}: YAML syntax error: {err}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise CompRepsError(
            f"{name}: a config file must map config keys to values, got a "
            f"{type(content).__name__} at the top level"
        )
    return content


@dataclass(frozen=True)
class ConfigSources:
    """Which file set each config value: ``files`` in merge order, ``setters`` maps each
    leaf key (lists are leaves: a later file replaces a whole list) to an index in ``files``."""

    files: tuple[str, ...] = ()
    setters: dict[Key, int] = field(default_factory=dict)

    @classmethod
    def from_layers(cls, layers: Sequence[tuple[str, Mapping]]) -> ConfigSources:
        setters: dict[Key, int] = {}

        def visit(node: Mapping, prefix: Key, index: int) -> None:
            for key, value in node.items():
                path = (*prefix, key)
                if isinstance(value, Mapping):  # merged into a mapping, replaces a value
                    setters.pop(path, None)
                    visit(value, path, index)
                    if not any(k[: len(path)] == path for k in setters):
                        setters[path] = index
                else:  # replaces whatever was there, a whole mapping included
                    for stale in [k for k in setters if k[: len(path)] == path]:
                        del setters[stale]
                    setters[path] = index

        for index, (_, content) in enumerate(layers):
            visit(content, (), index)
        return cls(tuple(name for name, _ in layers), setters)

    def file_of(self, path: Key) -> str:
        """The file that set ``path`` (or the last file that set anything below it)."""
        if not self.files:
            return "config"
        path = tuple(path)
        for end in range(len(path), 0, -1):
            if path[:end] in self.setters:
                return self.files[self.setters[path[:end]]]
        below = [i for key, i in self.setters.items() if key[: len(path)] == path]
        return self.files[max(below)] if below else self.files[0]


def read_config(
    paths: Sequence[str | os.PathLike], overrides: Mapping | None = None
) -> tuple[dict[str, Any], ConfigSources]:
    """Merge config files (then ``--config`` values) as Snakemake does; return the merged
    config and where each value came from."""
    layers = [(_display(path), load_yaml(path)) for path in paths]
    if overrides:
        layers.append((COMMAND_LINE, dict(overrides)))
    config: dict[str, Any] = {}
    for _, content in layers:
        _merge(config, content)
    return config, ConfigSources.from_layers(layers)


def _merge(into: dict, update: Mapping) -> None:
    """Recursive merge, as Snakemake's ``update_config`` merges config files."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


# --------------------------------------------------------------------------- schema
def _key(path: Key) -> str:
    return "/".join(str(part) for part in path) or "(top level)"


def _allowed(schema: dict) -> str:
    """Human description of what a schema node accepts."""
    if "enum" in schema:
        return "one of: " + ", ".join(str(v) for v in schema["enum"])
    bounds = []
    for word, sign in (
        ("exclusiveMinimum", ">"),
        ("minimum", ">="),
        ("exclusiveMaximum", "<"),
        ("maximum", "<="),
    ):
        if word in schema:
            bounds.append(f"{sign} {schema[word]}")
    kind = schema.get("type")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    text = " and ".join(bounds)
    if kind and text:
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} {text}"
    return text or (f"type {kind}" if kind else "see workflow/schemas/config.schema.yaml")


def _schema_problem(error: jsonschema.ValidationError) -> tuple[Key, str]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return (*path, *extra[:1]), f"{error.message}; allowed keys: {allowed}"
    if error.validator == "uniqueItems":
        return path, f"values must be unique, got {error.instance}"
    if error.validator in {"required", "minItems", "maxItems"}:
        return path, error.message
    return path, f"= {error.instance!r} is not allowed; allowed: {_allowed(error.schema)}"


def registry_schema(schema: dict) -> dict:
    """The config schema with the family registry's names (:mod:`compreps.core.families`) as
    the ``families`` enum, and a level-list section for a registered family the schema file
    does not describe."""
    schema["properties"]["families"]["items"]["enum"] = list(families.listable())
    for family in families.REGISTRY.values():
        if family.section in schema["properties"]:
            continue
        level = family.level
        item = {"type": "integer" if level.unit == "bits" else "number"}
        item.update(minimum=level.low, maximum=level.high)
        schema["properties"][family.section] = {
            "type": "object",
            "additionalProperties": False,
            "required": [level.key],
            "properties": {level.key: {"type": "array", "uniqueItems": True, "items": item}},
        }
        schema["required"].append(family.section)
    return schema


def _schema_problems(config: Mapping, schema_path: str | Path) -> list[tuple[Key, str]]:
    schema = registry_schema(yaml.safe_load(Path(schema_path).read_text()))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_schema_problem(error) for error in errors]


def schema_errors(config: Mapping, schema_path: str | Path = SCHEMA_PATH) -> list[str]:
    """Schema violations as ``config key KEY ...`` lines (no file names)."""
    return [_line(path, text) for path, text in _schema_problems(config, schema_path)]


# --------------------------------------------------------------------------- semantic checks
Problems = Iterator[tuple[Key, str]]


def _reps_weights(config: Mapping) -> Problems:
    weights = config["metrics"]["reps"]["weights"]
    total = sum(weights[key] for key in REPS_WEIGHT_KEYS)
    if not math.isclose(total, 1.0, abs_tol=SUM_TOLERANCE):
        listed = ", ".join(f"{key}={weights[key]}" for key in REPS_WEIGHT_KEYS)
        yield (
            ("metrics", "reps", "weights"),
            f"weights must each be in [0, 1] and sum to 1, got {listed} (sum {total:g})",
        )


def _families(config: Mapping) -> Problems:
    """Each listed family needs levels; a family left out must have none (so that dropping
    one is always said explicitly); enough compressed models remain to correlate."""
    listed = config["families"]
    if not listed:
        yield ("families",), "is empty: no compression family left to compare with the base"
        return
    count = 0
    for family, (section, key) in LEVEL_SOURCES.items():
        levels = config[section][key]
        if family not in families.listable():  # a coreset method: runs when coreset does
            count += len(family_levels(config, family)) if "coreset" in listed else 0
            continue
        count += len(family_levels(config, family)) if family in listed else 0
        if family in listed and not levels:
            yield (
                (section, key),
                f"is empty: list at least one level, or drop {family} from config key "
                f"families to run without the {family} family",
            )
        elif family not in listed and levels:
            yield (
                ("families",),
                f"= {listed!r} leaves out {family}, but {section}/{key} lists {levels!r}: set "
                f"{section}/{key}: [] to run without the {family} family, or list {family}",
            )
    if 0 < count < MIN_COMPRESSED_MODELS:
        yield (
            ("families",),
            f"= {listed!r} gives {count} compressed model(s); the correlations need at "
            f"least {MIN_COMPRESSED_MODELS}: add levels or families",
        )


def _grid_step(config: Mapping) -> Problems:
    step = config["sensitivity"]["grid_step"]
    if abs(round(1.0 / step) * step - 1.0) > 1e-9:
        yield (
            ("sensitivity", "grid_step"),
            f"= {step!r} does not divide 1 into whole parts (e.g. 0.05, 0.1, 0.25)",
        )


def _data(config: Mapping) -> Problems:
    """The dataset's files under ``data.root`` (or a download that fetches them), and a
    probe no larger than the test set."""
    dataset, root = config["data"]["dataset"], config["data"]["root"]
    folder = data_files.dataset_folders(dataset, root)[0]
    missing = data_files.missing_files(dataset, root)
    downloads = config["data"]["download"] and dataset in data_files.DOWNLOADABLE
    if missing and not (downloads and not folder.exists()):
        yield (
            ("data", "root"),
            f"= {root!r}: {_missing_reason(dataset, folder, missing, downloads)}",
        )
        return
    if missing:  # the prepare-data step downloads the official files
        n_test = data_files.FULL_TEST_COUNTS[dataset]
    else:
        try:
            n_test = data_files.count_test_images(dataset, root)
        except CompRepsError as err:
            yield ("data", "root"), f"= {root!r}: {err}"
            return
    size = config["probe"]["size"]
    if size > n_test:
        yield (
            ("probe", "size"),
            f"= {size} exceeds the {n_test} test images of {dataset} under {root}",
        )


def _missing_reason(dataset: str, folder: Path, missing: list[str], downloads: bool) -> str:
    downloadable = dataset in data_files.DOWNLOADABLE
    if not folder.exists():
        reason = f"has no folder {folder.name}"
        if downloadable:
            reason += " (set data/download: true to fetch CIFAR-10)"
    else:
        reason = f"{folder} lacks {', '.join(missing)}"
        if downloads:
            reason += " (delete the folder to download again)"
    if not downloadable:
        reason += " (never downloaded: install the Debian package dataset-fashion-mnist)"
    return reason


def _base_checkpoint(config: Mapping, verify_base: Callable | None = None) -> Problems:
    """The base checkpoint exists and, given a ``verify_base`` (the model world's
    :func:`compreps.checks.verify_base`), fits the configured network."""
    base = config["base_checkpoint"]
    if not base:
        return
    if not Path(base).is_file():
        yield (
            ("base_checkpoint",),
            f"= {base!r}: no such file (give the path of a compreps checkpoint or a saved "
            "state dict, or null to train)",
        )
        return
    if verify_base is None:
        return
    channels, classes = data_files.DATASET_SHAPES[config["data"]["dataset"]]
    try:
        verify_base(base, config["model"]["arch"], config["model"]["width"], channels, classes)
    except CompRepsError as err:
        yield ("base_checkpoint",), f"= {base!r}: {err}"


def _seeds(config: Mapping) -> Problems:
    if config["base_checkpoint"] and len(seeds := config["train"]["seeds"]) > 1:
        yield ("train", "seeds"), f"= {seeds}: base_checkpoint gives one base, so one seed"


# check -> the config keys it reads; it runs only when the schema accepts all of them
SEMANTIC_CHECKS: tuple[tuple[Callable[[Mapping], Problems], tuple[Key, ...]], ...] = (
    (_reps_weights, (("metrics", "reps", "weights"),)),
    (_families, (("families",), ("coreset", "methods"), *LEVEL_SOURCES.values())),
    (_grid_step, (("sensitivity", "grid_step"),)),
    (_data, (("data",), ("probe", "size"))),
    (_base_checkpoint, (("base_checkpoint",), ("model",), ("data", "dataset"))),
    (_seeds, (("train", "seeds"), ("base_checkpoint",))),
)


def _related(a: Key, b: Key) -> bool:
    """One key path is the other or lies below it."""
    n = min(len(a), len(b))
    return tuple(a[:n]) == tuple(b[:n])


def _semantic_problems(
    config: Mapping, broken: list[Key], check_files: bool, verify_base: Callable | None
) -> list[tuple[Key, str]]:
    problems = []
    for check, keys in SEMANTIC_CHECKS:
        if any(_related(key, bad) for key in keys for bad in broken):
            continue
        if not check_files and check in (_data, _base_checkpoint):
            continue
        problems.extend(check(config, verify_base) if check is _base_checkpoint else check(config))
    return problems


def _line(path: Key, text: str, sources: ConfigSources | None = None) -> str:
    prefix = f"{sources.file_of(path)}: " if sources is not None else ""
    separator = " " if text.startswith("=") or text.startswith("is ") else ": "
    return f"{prefix}config key {_key(path)}{separator}{text}"


def config_problems(
    config: Mapping,
    sources: ConfigSources | None = None,
    schema_path: str | Path = SCHEMA_PATH,
    check_files: bool = True,
    verify_base: Callable | None = None,
) -> list[str]:
    """Every problem of ``config``, one line each naming its file (when ``sources`` is
    given) and key. ``check_files=False`` skips the data root and base checkpoint;
    ``verify_base`` checks the base checkpoint's contents (:mod:`compreps.checks`)."""
    schema = _schema_problems(config, schema_path)
    broken = [path for path, _ in schema]
    semantic = _semantic_problems(config, broken, check_files, verify_base)
    return [_line(path, text, sources) for path, text in [*schema, *semantic]]


def check_config(
    config: Mapping,
    sources: ConfigSources | None = None,
    schema_path: str | Path = SCHEMA_PATH,
    verify_base: Callable | None = None,
) -> None:
    """Raise one :class:`CompRepsError` listing every problem (one line each), or return."""
    problems = config_problems(config, sources, schema_path, verify_base=verify_base)
    if problems:
        raise CompRepsError("\n".join(problems))
