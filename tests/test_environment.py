"""The conda environment and the pip constraints pin the same versions; every rule names it."""

from __future__ import annotations

import re

import yaml
from conftest import ROOT


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_conda_env_pins_match_constraints():
    constraints = pins((ROOT / "constraints.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "envs/compreps.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = pins(pip_section)
    assert env_pins, "the conda environment pins nothing"
    for name in ("torch", "numpy", "scipy", "pandas", "h5py", "matplotlib"):
        assert name in env_pins, f"{name} not pinned in envs/compreps.yaml"
    for name, version in env_pins.items():
        assert constraints.get(name) == version, (name, version, constraints.get(name))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.startswith("python=3.")


def test_torch_pinned_to_the_tested_version():
    import torch

    constraints = pins((ROOT / "constraints.txt").read_text().splitlines())
    assert torch.__version__.split("+")[0] == constraints["torch"]


def test_every_rule_names_the_environment_and_a_log():
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        rules = re.findall(r"^\s*rule (\w+):", text, flags=re.M)
        for rule in rules:
            body = text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
            assert "conda:" in body and "ENV" in body, (smk.name, rule)
            assert "log:" in body, (smk.name, rule)
