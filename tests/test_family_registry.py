"""The registry of compression families (compreps.core.families) is the one place a family is
declared: a toy family registered from outside the package is accepted by model-id parsing,
the config check, the settings, the structured step's dispatch, the tables and the figures.

Adding the toy family touches three files, as adding a real one does (docs/architecture.md,
"Adding a compression family"): its module (here ``toy_family.py``, which also holds the
registry entry that a real family writes into ``compreps/core/families.py``), the registry
entry, and its config section (here merged into the config in the script).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from compreps.core import families, vocabulary

TOY_MODULE = """
from compreps.core import families

families.REGISTRY["toy"] = families.Family(
    "toy",
    "toy",
    families.Level("levels", "fraction of fc rows zeroed", "fraction", "higher"),
    step="structured",
    make="toy_family:zero_fc_rows",
    paper=False,
    dense_view="none",
    marker=families.SPARE_MARKERS[0],
    colour=families.SPARE_COLOURS[0],
    label="fraction of fc rows zeroed (toy)",
)
CALLS = []


def zero_fc_rows(model, level, calib_images=None, *, image_size=32):
    rows = int(round(level * model.fc.weight.shape[0]))
    model.fc.weight.data[:rows] = 0.0
    CALLS.append((level, image_size))
    return {"achieved_level": rows / model.fc.weight.shape[0]}
"""

SCRIPT = r"""
import math, sys, yaml
import pandas as pd
import toy_family
from compreps.core import config as core_config, settings, vocabulary
from compreps.model.compression.apply import apply_family
from compreps.model.networks import build_model
from compreps.analysis.figures import families as family_figures
from compreps.analysis.figures import tables as table_figures
from compreps.analysis import tables

assert vocabulary.parse_model_id("toy-0.25") == ("toy", 0.25)
assert vocabulary.COMPRESSED_FAMILIES[-1] == "toy"
config = yaml.safe_load(open("config.yaml"))
config["families"] = [*config["families"], "toy"]
config["toy"] = {"levels": [0.25, 0.5]}
assert "toy-0.25" in vocabulary.model_ids(config)
problems = core_config.config_problems(config, check_files=False)
assert problems == [], problems
config["toy"] = {"levels": [1.5]}
bad = core_config.config_problems(config, check_files=False)
assert any("config key toy/levels" in line and "1.5" in line for line in bad), bad
assert settings.config_arguments({"toy": {"levels": [0.5]}}, "toy") == "--toy-levels 0.5"

model = build_model("resnet18", 4, 3, 10)
record = apply_family(model, "toy", 0.5, None, image_size=8, bn_repair="ignored")
assert record["achieved_level"] == 0.5 and toy_family.CALLS == [(0.5, 8)]
assert float(model.fc.weight[:5].abs().sum()) == 0.0

rows = [("base", "base", math.nan, 0.9), ("prune-0.5", "prune", 0.5, 0.8)]
rows += [("toy-0.5", "toy", 0.5, 0.5), ("toy-0.25", "toy", 0.25, 0.7)]
rows += [(f"{f}-0.3", f, 0.3, 0.6) for f in ("coreset", "struct_l1", "nexp", "fold")]
rows += [("quant-4", "quant", 4, 0.85)]
table = pd.DataFrame(rows, columns=["model", "family", "level", "accuracy"])
table["param_fraction"], table["macs"] = 1.0, 1000
ordered = table.loc[tables._table_order(table)]
assert list(ordered.model)[-2:] == ["toy-0.25", "toy-0.5"], list(ordered.model)
fig = family_figures.plot_accuracy_vs_params(table, {})
labels = {h.get_label() for ax in fig.axes for h in ax.get_lines()}
assert any("toy" in label for label in labels), labels
table_figures.plot_accuracy_vs_level(table)
print("toy family accepted")
"""


@pytest.fixture
def toy_path(tmp_path):
    (tmp_path / "toy_family.py").write_text(TOY_MODULE)
    return tmp_path


def test_a_toy_family_is_accepted_everywhere(toy_path):
    env_path = f"{toy_path}:{ROOT / 'src'}"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        cwd=ROOT,
        env={"PYTHONPATH": env_path, "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "toy family accepted" in out.stdout


def test_registry_is_the_source_of_the_vocabulary():
    assert vocabulary.COMPRESSED_FAMILIES == tuple(families.REGISTRY)
    assert vocabulary.PAPER_FAMILIES == ("coreset", "prune", "quant")
    for name, family in families.REGISTRY.items():
        assert vocabulary.LEVEL_SOURCES[name] == (family.section, family.level.key)
        assert vocabulary.LEVEL_DESCENDING[name] == (family.level.harsher == "lower")


def test_every_family_has_its_own_marker_and_colour():
    markers = [f.marker for f in families.REGISTRY.values()]
    colours = [f.colour for f in families.REGISTRY.values()]
    assert len(set(markers)) == len(markers) and len(set(colours)) == len(colours)
    assert not set(markers) & set(families.SPARE_MARKERS)
    assert not set(colours) & set(families.SPARE_COLOURS)


def test_every_make_function_exists():
    from compreps.model.compression.apply import family_function

    for name in families.names():
        assert callable(family_function(name)), name


def test_unknown_family_and_model_id_name_the_registered_ones():
    with pytest.raises(ValueError, match="coreset, prune, quant, struct_l1, nexp, fold"):
        families.family("toy")
    with pytest.raises(ValueError, match="quant-<bits per weight>"):
        vocabulary.parse_model_id("toy-0.5")


def test_unknown_dataset_is_a_clear_error(tmp_path):
    from compreps.core import data_files
    from compreps.core.files import CompRepsError

    with pytest.raises(CompRepsError, match="unknown dataset 'mnist': expected one of cifar10"):
        data_files.missing_files("mnist", tmp_path)
