rule activations:
    input:
        checkpoint="results/seed-{seed}/checkpoints/{model}.pt",
        data=rules.prepare_data.output,
    output:
        "results/seed-{seed}/activations/{model}.h5",
    log:
        "results/seed-{seed}/logs/activations/{model}.log",
    conda:
        ENV
    threads: job_threads("activations")
    resources:
        **job_resources("activations", gpu=True),
    params:
        probe=cli_args("probe"),
    shell:
        "compreps activations --checkpoint {input.checkpoint:q} --data {input.data:q}"
        " {params.probe} --out {output:q} 2> {log:q}"


rule accuracy_table:
    input:
        seed_models("results/seed-{seed}/activations/{model}.h5"),
    output:
        report(
            "results/seed-{seed}/tables/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Tables",
        ),
    log:
        "results/seed-{seed}/logs/tables/accuracy.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        code=code_hash("accuracy-table"),
    shell:
        "compreps accuracy-table --activations {input:q} --out {output:q} 2> {log:q}"
