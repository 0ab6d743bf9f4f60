"""Configuration checks that run before any job: the JSON schema, then what a schema cannot say.

The Snakefile calls :func:`check_config` right after loading the config, so a bad value stops
the run with one line per problem that names the config key and the allowed values, instead of
a failure deep inside a job an hour later.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from compreps.files import CompRepsError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
SUM_TOLERANCE = 1e-6
DATASET_SHAPES = {"cifar10": (3, 10), "fashion_mnist": (1, 10)}  # (channels, classes)


def _key(path) -> str:
    return "/".join(str(part) for part in path) or "(top level)"


def _allowed(schema: dict) -> str:
    """Human description of what a schema node accepts."""
    if "enum" in schema:
        return "one of: " + ", ".join(str(v) for v in schema["enum"])
    bounds = []
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "minimum" in schema:
        bounds.append(f">= {schema['minimum']}")
    if "exclusiveMaximum" in schema:
        bounds.append(f"< {schema['exclusiveMaximum']}")
    if "maximum" in schema:
        bounds.append(f"<= {schema['maximum']}")
    kind = schema.get("type")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    text = " and ".join(bounds)
    if kind and text:
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} {text}"
    return text or (f"type {kind}" if kind else "see workflow/schemas/config.schema.yaml")


def _message(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config key {key}: {error.message}; allowed keys: {allowed}"
    if error.validator == "required":
        return f"config key {key}: {error.message}"
    if error.validator == "uniqueItems":
        return f"config key {key}: values must be unique, got {error.instance}"
    if error.validator in {"minItems", "maxItems"}:
        return f"config key {key}: {error.message}"
    return (
        f"config key {key} = {error.instance!r} is not allowed; allowed: {_allowed(error.schema)}"
    )


def schema_errors(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> list[str]:
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_message(error) for error in errors]


def semantic_errors(config: dict[str, Any], check_weights_file: bool = True) -> list[str]:
    """Rules the schema cannot express: weights summing to 1, an existing, fitting base."""
    problems = []
    weights = config["metrics"]["reps"]["weights"]
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=SUM_TOLERANCE):
        listed = ", ".join(f"{k}={v}" for k, v in weights.items())
        problems.append(
            f"config key metrics/reps/weights: weights must each be in [0, 1] and sum "
            f"to 1, got {listed} (sum {total:g})"
        )
    base = config.get("base_checkpoint")
    if base and check_weights_file:
        path = Path(base)
        if not path.is_file():
            problems.append(
                f"config key base_checkpoint = {base!r}: no such file (give the path "
                "of a compreps checkpoint or a saved state dict, or null to train)"
            )
        else:
            from compreps.train import verify_base_checkpoint

            channels, classes = DATASET_SHAPES[config["data"]["dataset"]]
            try:
                verify_base_checkpoint(
                    path, config["model"]["arch"], config["model"]["width"], channels, classes
                )
            except CompRepsError as err:
                problems.append(f"config key base_checkpoint = {base!r}: {err}")
    return problems


def check_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Raise one :class:`CompRepsError` listing every problem (one line each), or return."""
    problems = schema_errors(config, schema_path)
    if not problems:  # semantic checks assume the schema holds
        problems = semantic_errors(config)
    if problems:
        raise CompRepsError("invalid configuration:\n  " + "\n  ".join(problems))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="compreps check-config", description="Validate a config file (and presets over it)."
    )
    parser.add_argument("configfiles", nargs="+", help="config.yaml, then presets to merge")
    args = parser.parse_args(argv[1:])
    config: dict[str, Any] = {}
    for name in args.configfiles:
        _merge(config, yaml.safe_load(Path(name).read_text()) or {})
    check_config(config)
    print("configuration is valid")
    return 0


def _merge(into: dict, update: dict) -> None:
    """Recursive merge, as Snakemake merges several --configfile files."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
