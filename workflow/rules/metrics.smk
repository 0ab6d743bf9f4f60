# Analysis rules: cheap, so they carry a hash of the code they run (code_hash, common.smk).
# They read only the dumps (results/seed-<seed>/activations/*.h5) and the tables; each seed
# has its own (results/seed-<seed>/tables/).


rule model_metrics:
    input:
        base_dump="results/seed-{seed}/activations/base.h5",
        dump="results/seed-{seed}/activations/{model}.h5",
    output:
        "results/seed-{seed}/metrics/{model}.csv",
    log:
        "results/seed-{seed}/logs/metrics/{model}.log",
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
        seed_models("results/seed-{seed}/metrics/{model}.csv"),
    output:
        report(
            "results/seed-{seed}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
    log:
        "results/seed-{seed}/logs/tables/metrics.log",
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
        metrics="results/seed-{seed}/tables/metrics.csv",
        accuracy="results/seed-{seed}/tables/accuracy.csv",
    output:
        report(
            "results/seed-{seed}/tables/correlations.csv",
            caption="../report/correlations.rst",
            category="Tables",
        ),
    log:
        "results/seed-{seed}/logs/tables/correlations.log",
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
        metrics="results/seed-{seed}/tables/metrics.csv",
        accuracy="results/seed-{seed}/tables/accuracy.csv",
    output:
        report(
            "results/seed-{seed}/tables/sensitivity.csv",
            caption="../report/sensitivity.rst",
            category="Tables",
        ),
    log:
        "results/seed-{seed}/logs/tables/sensitivity.log",
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
