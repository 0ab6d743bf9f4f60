from compreps.core import data_files, families

# The data summary is the model steps' way to the data (--data): a listed input, so a change of
# data.dataset or data.root reruns them. data.download is no rerun trigger, not even of
# prepare_data: it says how missing data may be fetched, not what the data are (as a param,
# turning it off after the first download would rerun the whole workflow).


rule prepare_data:
    input:
        # the data files' md5 sums, rewritten at parse time only when a sum changes: replacing
        # a data file reruns prepare_data and, through dataset.json, everything after it
        sources=data_files.refresh_source_sums(
            config["data"]["dataset"], config["data"]["root"]
        ),
    output:
        "results/data/dataset.json",
    log:
        "results/logs/prepare_data.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        dataset=config["data"]["dataset"],
        root=config["data"]["root"],
        # a function of output: Snakemake does not compare it, so it triggers no rerun
        download=lambda wildcards, output: str(config["data"]["download"]).lower(),
    shell:
        "compreps prepare-data --data-dataset {params.dataset} --data-root {params.root:q}"
        " --data-download {params.download} --sources {input.sources:q} --out {output:q}"
        " 2> {log:q}"


rule coreset:
    input:
        data=rules.prepare_data.output,
    output:
        "results/seed-{seed}/coresets/coreset-{fraction}.csv",
    log:
        "results/seed-{seed}/logs/coreset/coreset-{fraction}.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        # the study's class-stratified random method (the coreset family; coreset.methods
        # names it random): a constant, so other methods in the list rerun nothing here
        method="random",
    shell:
        "compreps coreset --data {input.data:q} --fraction {wildcards.fraction}"
        " --coreset-method {params.method} --train-seed {wildcards.seed} --out {output:q} 2> {log:q}"


# The other coreset methods (families coreset_<method>, run when coreset.methods lists them)
# read one selection run. Its params are the recipe it trains with, so adding a method or a
# fraction reruns neither it nor another method's selections; a method's own options (ccs_*)
# rerun that method's selections only.
CORESET_METHODS = "|".join(
    method for method in families.CORESET_METHODS if method != families.RANDOM
)


rule coreset_scores:
    input:
        data=rules.prepare_data.output,
    output:
        scores="results/coresets/selection/scores.csv",
        embeddings="results/coresets/selection/embeddings.npy",
    log:
        "results/logs/coreset/selection.log",
    conda:
        ENV
    threads: job_threads("train")
    resources:
        **job_resources("train", gpu=True),
    params:
        model=cli_args("model"),
        # its own seed: the selection run is shared by every replicate seed
        train=train_args(config["coreset"]["selection_seed"]),
        epochs=config["coreset"]["selection_epochs"],
        seed=config["coreset"]["selection_seed"],
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps coreset-scores --data {input.data:q} {params.model} {params.train}"
        " --coreset-selection-epochs {params.epochs} --coreset-selection-seed {params.seed}"
        " --eval-batch-size {params.eval_batch_size} --out-scores {output.scores:q}"
        " --out-embeddings {output.embeddings:q} 2> {log:q}"


rule coreset_method:
    input:
        data=rules.prepare_data.output,
        scores=rules.coreset_scores.output.scores,
        embeddings=rules.coreset_scores.output.embeddings,
    output:
        "results/seed-{seed}/coresets/coreset_{method}-{fraction}.csv",
    log:
        "results/seed-{seed}/logs/coreset/coreset_{method}-{fraction}.log",
    wildcard_constraints:
        method=CORESET_METHODS,
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        options=coreset_method_args,
    shell:
        "compreps coreset --data {input.data:q} --fraction {wildcards.fraction}"
        " --coreset-method {wildcards.method} --train-seed {wildcards.seed} {params.options}"
        " --scores {input.scores:q} --embeddings {input.embeddings:q} --out {output:q}"
        " 2> {log:q}"


# The class balance of every selection of the run (random's and each method's): a table for
# the report and for inspection.
CORESET_MODELS = [
    model
    for model in MODELS
    if families.coreset_method(vocabulary.parse_model_id(model)[0]) is not None
]
# the report's class-balance section reads it when the run has coreset models
BALANCE_TABLE = (
    ["results/seed-{seed}/tables/coreset_balance.csv"] if CORESET_MODELS else []
)


rule coreset_balance:
    input:
        data=rules.prepare_data.output,
        selections=expand(
            "results/seed-{{seed}}/coresets/{model}.csv", model=CORESET_MODELS
        ),
    output:
        "results/seed-{seed}/tables/coreset_balance.csv",
    log:
        "results/seed-{seed}/logs/coreset/balance.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    shell:
        "compreps coreset-balance --data {input.data:q} --inputs {input.selections:q}"
        " --out {output:q} 2> {log:q}"
