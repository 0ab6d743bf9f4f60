# Shared helpers: the command, model ids, config -> CLI options, code hashes, resources.
import json
import shlex
import sys

from snakemake.settings.types import DeploymentMethod

from compreps import code_graph
from compreps.cli import STEPS
from compreps.core import vocabulary
from compreps.core.settings import config_arguments

ENV = "../../envs/compreps.yaml"
# Jobs run the package through one shell function, `compreps`, which calls the interpreter
# Snakemake itself runs under (so .venv/bin/snakemake works without activating the venv), or
# the conda env's python. A prefix, not a param: moving the venv must not rerun anything.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    COMPREPS = "python -m compreps"
else:
    COMPREPS = f"{shlex.quote(sys.executable)} -m compreps"
# src/ first on the path: jobs run the checkout's code also inside a conda env (--sdm conda)
# where compreps is not pip-installed; with an editable install both are the same files.
# (shell.prefix formats this string with this file's names: {COMPREPS}, doubled braces.)
shell.prefix(
    'export PYTHONPATH=src${{PYTHONPATH:+:$PYTHONPATH}}; compreps() {{ {COMPREPS} "$@"; }}; '
)


def cli_args(*sections):
    """The step options of config sections (compreps.core.settings.config_arguments): use it as a
    params value, so a change of any value in those sections reruns the job."""
    return config_arguments(config, *sections)


# Model ids (compreps.core.vocabulary): base and <family>-<level> for every family of the
# registry (compreps.core.families), e.g. coreset-0.5, prune-0.9, quant-4, nexp-0.1. Every
# replicate seed (train.seeds) runs all of them under results/seed-<seed>/ ({seed} wildcard).
MODELS = vocabulary.model_ids(config)
SEEDS = config["train"]["seeds"]


def per_seed(pattern, **wildcards):
    """``pattern`` over every seed of train.seeds (and the other wildcards given)."""
    return expand(pattern, seed=SEEDS, **wildcards)


def seed_models(pattern):
    """``pattern`` over every model of the job's own seed (its {seed} wildcard kept)."""
    return expand(pattern, seed="{seed}", model=MODELS)


STRUCTURED_PATTERN = "|".join(vocabulary.STRUCTURED_FAMILIES)


def family_args(family):
    """The step options of a structured family's section without its level list (adding a
    level reruns nothing else): a params function of the {family} wildcard."""
    options = {key: value for key, value in config[family].items() if key != "levels"}
    return config_arguments({family: options}, family)


# each seed's tables (results/seed-<seed>/tables/<name>.csv)
SEED_TABLES = ("accuracy", "metrics", "correlations", "sensitivity", "findings")
FIGURE_NAMES = vocabulary.FIGURE_NAMES
FIGURES = expand(
    "results/seed-{{seed}}/figures/{name}.{ext}",
    name=FIGURE_NAMES,
    ext=vocabulary.FIGURE_FORMATS,
)


def figure_outputs(folder, names, category):
    """The PNGs go into Snakemake's HTML report, each with its one-line caption
    (workflow/report/<figure name>.rst)."""
    outputs = []
    for name in names:
        png = f"{folder}/{name}.png"
        caption = f"../report/{name}.rst"
        captioned = report(png, caption=caption, category=category)
        outputs += [captioned, f"{folder}/{name}.pdf"]
    return outputs


wildcard_constraints:
    seed=r"[0-9]+",
    model=vocabulary.model_id_pattern(),
    family=STRUCTURED_PATTERN,
    level=r"[0-9.]+",
    fraction=r"[0-9.]+",
    ratio=r"[0-9.]+",
    bits=r"[0-9]+",


def code_hash(step):
    """A hash of the code an analysis step runs (its module's import closure, read from the
    source by compreps.code_graph): a params value, so a change in that code, and only in it,
    reruns the rule (Snakemake does not track imports)."""
    return code_graph.code_hash(STEPS[step])


def job_resources(kind, gpu=False):
    """threads/mem_mb/runtime (minutes) from config resources/<kind>; gpu from resources/gpu."""
    spec = dict(config["resources"][kind])
    spec.pop("threads")
    if gpu and config["resources"]["gpu"] > 0:
        spec["gpu"] = config["resources"]["gpu"]
    return spec


def job_threads(kind):
    return config["resources"][kind]["threads"]


def seed_config_json(seed):
    """The run configuration of one replicate (train.seeds = [seed]), as JSON."""
    train = {**config["train"], "seeds": [int(seed)]}
    return json.dumps({**config, "train": train}, sort_keys=True)


def train_args(seed):
    """The train section's options with ``seed`` as the one seed of the run: the list of
    replicate seeds is no param of a model job, so adding a seed reruns no other seed's job.
    """
    train = {key: value for key, value in config["train"].items() if key != "seeds"}
    return f"{config_arguments({'train': train}, 'train')} --train-seeds {seed}"


# One command for both training rules (base: no --indices).
TRAIN_COMMAND = (
    "compreps train --model-id {params.model_id} --data {input.data:q} {params.model}"
    " {params.train} --eval-batch-size {params.eval_batch_size} {params.indices} {params.init}"
    " --state {params.state:q} --out {output:q} 2> {log:q}"
)


def train_params(model_id, indices="", init=""):
    """The training rules' params; ``init``: the coreset models' initialisation option."""
    return dict(
        model_id=model_id,
        model=cli_args("model"),
        train=train_args("{seed}"),
        eval_batch_size=config["probe"]["batch_size"],
        indices=indices,
        init=init,
        state=f"results/seed-{{seed}}/train_state/{model_id}.pt",
    )


def coreset_method_args(wildcards):
    """The coreset options a method's selection reads (ccs_* for ccs only)."""
    options = {"class_balanced": config["coreset"]["class_balanced"]}
    if wildcards.method == "ccs":
        options.update(
            {
                key: config["coreset"][key]
                for key in ("ccs_score", "ccs_beta", "ccs_strata")
            }
        )
    return config_arguments({"coreset": options}, "coreset")
