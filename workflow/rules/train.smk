# Training rules carry no code hash: a retrain is asked for explicitly with --forcerun.
# Their params are the config keys training uses (model, train but its seed list, the job's
# seed, probe.batch_size for the test accuracy; coreset.init for coreset models); the coreset
# fractions and the other seeds are not among them, so adding either retrains nothing.

if config["base_checkpoint"]:

    rule import_base:
        input:
            source=config["base_checkpoint"],
            data=rules.prepare_data.output,
        output:
            "results/seed-{seed}/checkpoints/base.pt",
        log:
            "results/seed-{seed}/logs/train/base.log",
        conda:
            ENV
        threads: job_threads("compress")
        resources:
            **job_resources("compress", gpu=True),
        params:
            model=cli_args("model"),
            eval_batch_size=config["probe"]["batch_size"],
        shell:
            "compreps import-base --source {input.source:q} --data {input.data:q} {params.model}"
            " --eval-batch-size {params.eval_batch_size} --out {output:q} 2> {log:q}"

else:

    rule train_base:
        input:
            data=rules.prepare_data.output,
        output:
            "results/seed-{seed}/checkpoints/base.pt",
        log:
            "results/seed-{seed}/logs/train/base.log",
        conda:
            ENV
        threads: job_threads("train")
        resources:
            **job_resources("train", gpu=True),
        params:
            **train_params("base"),
        shell:
            TRAIN_COMMAND


# Every coreset family's models (coreset-<fraction>: random, the study's; coreset_<method>-
# <fraction>: the other methods of coreset.methods), each from its selection's CSV.
rule train_coreset:
    input:
        data=rules.prepare_data.output,
        indices="results/seed-{seed}/coresets/{coreset}-{fraction}.csv",
    output:
        "results/seed-{seed}/checkpoints/{coreset}-{fraction}.pt",
    log:
        "results/seed-{seed}/logs/train/{coreset}-{fraction}.log",
    wildcard_constraints:
        coreset="|".join(
            f for f in vocabulary.COMPRESSED_FAMILIES if families.coreset_method(f)
        ),
    conda:
        ENV
    threads: job_threads("train")
    resources:
        **job_resources("train", gpu=True),
    params:
        **train_params(
            "{coreset}-{fraction}",
            "--indices results/seed-{seed}/coresets/{coreset}-{fraction}.csv",
            f"--coreset-init {config['coreset']['init']}",
        ),
    shell:
        TRAIN_COMMAND
