# Analysis rules: cheap, so they carry a hash of the code they run (CODE_MODULES, common.smk).
# They read only the dumps (results/activations/*.h5) and the tables.


rule model_metrics:
    input:
        base_dump="results/activations/base.h5",
        dump="results/activations/{model}.h5",
    output:
        "results/metrics/{model}.csv",
    log:
        "results/logs/metrics/{model}.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        settings=cli_args("metrics", "probe"),
        code=code_hash("metrics"),
    shell:
        "compreps metrics --model-id {wildcards.model} --base-dump {input.base_dump:q}"
        " --dump {input.dump:q} {params.settings} --out {output:q} 2> {log:q}"


rule metrics_table:
    input:
        expand("results/metrics/{model}.csv", model=MODELS),
    output:
        report(
            "results/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
    log:
        "results/logs/tables/metrics.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        code=code_hash("metrics-table"),
    shell:
        "compreps metrics-table --inputs {input:q} --out {output:q} 2> {log:q}"


rule correlations:
    input:
        metrics="results/tables/metrics.csv",
        accuracy="results/tables/accuracy.csv",
    output:
        report(
            "results/tables/correlations.csv",
            caption="../report/correlations.rst",
            category="Tables",
        ),
    log:
        "results/logs/tables/correlations.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        settings=cli_args("correlation"),
        code=code_hash("correlate"),
    shell:
        "compreps correlate --metrics {input.metrics:q} --accuracy {input.accuracy:q}"
        " {params.settings} --out {output:q} 2> {log:q}"


rule sensitivity:
    input:
        metrics="results/tables/metrics.csv",
        accuracy="results/tables/accuracy.csv",
    output:
        report(
            "results/tables/sensitivity.csv",
            caption="../report/sensitivity.rst",
            category="Tables",
        ),
    log:
        "results/logs/tables/sensitivity.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        settings=cli_args("sensitivity", "metrics"),
        code=code_hash("sensitivity"),
    shell:
        "compreps sensitivity --metrics {input.metrics:q} --accuracy {input.accuracy:q}"
        " {params.settings} --out {output:q} 2> {log:q}"
