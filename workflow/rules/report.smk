rule figures:
    input:
        metrics="results/tables/metrics.csv",
        accuracy="results/tables/accuracy.csv",
        correlations="results/tables/correlations.csv",
        sensitivity="results/tables/sensitivity.csv",
        dumps=expand("results/activations/{model}.h5", model=MODELS),
    output:
        figure_outputs(),
    log:
        "results/logs/figures.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        settings=cli_args("probe"),
        code=code_hash("figures"),
    shell:
        "compreps figures --metrics {input.metrics:q} --accuracy {input.accuracy:q}"
        " --correlations {input.correlations:q} --sensitivity {input.sensitivity:q}"
        " --dumps {input.dumps:q} --out-dir results/figures {params.settings} 2> {log:q}"


rule report:
    input:
        accuracy="results/tables/accuracy.csv",
        correlations="results/tables/correlations.csv",
        sensitivity="results/tables/sensitivity.csv",
        metrics="results/tables/metrics.csv",
        dataset="results/data/dataset.json",
        figures=FIGURES,
        dumps=expand("results/activations/{model}.h5", model=MODELS),
        balance=BALANCE_TABLE,
    output:
        report(
            "results/report.md",
            caption="../report/report.rst",
            category="Report",
        ),
    log:
        "results/logs/report.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        config_json=json.dumps(config, sort_keys=True),
        code=code_hash("report"),
    shell:
        "compreps report --accuracy {input.accuracy:q} --correlations {input.correlations:q}"
        " --sensitivity {input.sensitivity:q} --metrics {input.metrics:q}"
        " --dataset {input.dataset:q} --figures {input.figures:q} --dumps {input.dumps:q}"
        " --config-json {params.config_json:q} --coreset-balance {input.balance:q}"
        " --out {output:q} 2> {log:q}"
