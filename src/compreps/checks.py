"""The ``check-config`` step and the Snakefile's config check: the core's checks
(:mod:`compreps.core.config`) with the model world's check of a ``base_checkpoint``'s contents.

Torch is imported only when a base checkpoint is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from compreps.core import config as core_config


def verify_base(path: str, arch: str, width: int, channels: int, classes: int) -> None:
    """Raise :class:`compreps.core.files.CompRepsError` unless ``path`` holds a network of
    this architecture, width and input/output shape."""
    from compreps.model.checkpoints import verify_base_checkpoint

    verify_base_checkpoint(path, arch, width, channels, classes)


def check_config(
    config: Mapping,
    sources: core_config.ConfigSources | None = None,
    schema_path: str | Path = core_config.SCHEMA_PATH,
) -> None:
    """Raise one error listing every problem of ``config`` (one line each), or return."""
    core_config.check_config(config, sources, schema_path, verify_base=verify_base)


def main(argv: list[str]) -> int:
    """``check-config FILES...``: the checks of the Snakefile without Snakemake, naming file,
    line and column of YAML syntax errors (which Snakemake's own loader does not)."""
    parser = argparse.ArgumentParser(
        prog="compreps check-config",
        description="Validate config.yaml and the presets merged over it, as `snakemake "
        "--configfile` merges them; exits 1 listing every problem.",
    )
    parser.add_argument("configfiles", nargs="+", help="config.yaml, then presets to merge")
    args = parser.parse_args(argv[1:])
    config, sources = core_config.read_config(args.configfiles)
    check_config(config, sources)
    print(f"configuration is valid: {' + '.join(sources.files)}")
    return 0
