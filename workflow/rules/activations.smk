rule activations:
    input:
        checkpoint="results/checkpoints/{model}.pt",
        data=rules.prepare_data.output,
    output:
        "results/activations/{model}.h5",
    log:
        "results/logs/activations/{model}.log",
    conda:
        ENV
    threads: job_threads("activations")
    resources:
        **job_resources("activations", gpu=True),
    params:
        probe=cli_args("probe"),
    shell:
        "compreps activations --checkpoint {input.checkpoint} --data {input.data}"
        " {params.probe} --out {output} 2> {log}"


rule accuracy_table:
    input:
        expand("results/activations/{model}.h5", model=MODELS),
    output:
        report(
            "results/tables/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Tables",
        ),
    log:
        "results/logs/tables/accuracy.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        code=code_hash("accuracy-table"),
    shell:
        "compreps accuracy-table --activations {input} --out {output} 2> {log}"
