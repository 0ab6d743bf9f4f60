# compreps: do coresets, pruning and quantization preserve neural network representations?
# All logic lives in the `compreps` package; this file loads and checks the config, includes
# one rule file per stage and names the final targets.

from snakemake.exceptions import WorkflowError

from compreps.checks import check_config
from compreps.core.config import read_config
from compreps.core.files import CompRepsError

# Where each value comes from (config.yaml, then every --configfile, then --config), read
# before Snakemake loads config.yaml so that a YAML error there names the line and column.
try:
    _, CONFIG_SOURCES = read_config(
        ["config.yaml", *workflow.overwrite_configfiles],
        workflow.config_settings.config,
    )
except CompRepsError as err:
    raise WorkflowError(str(err)) from None


configfile: "config.yaml"


try:
    check_config(
        config,
        CONFIG_SOURCES,
        workflow.source_path("workflow/schemas/config.schema.yaml"),
    )
except CompRepsError as err:
    raise WorkflowError(str(err)) from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


# Every replicate seed's models, dumps, tables, figures and report (results/seed-<seed>/), then
# the summary across the seeds (results/tables/seeds_*.csv, results/report.md).
rule all:
    input:
        per_seed("results/seed-{seed}/checkpoints/{model}.pt", model=MODELS),
        per_seed("results/seed-{seed}/activations/{model}.h5", model=MODELS),
        per_seed("results/seed-{seed}/tables/{table}.csv", table=SEED_TABLES),
        per_seed(FIGURES),
        per_seed("results/seed-{seed}/report.md"),
        rules.seeds.output,
