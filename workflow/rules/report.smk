rule figures:
    input:
        metrics="results/seed-{seed}/tables/metrics.csv",
        accuracy="results/seed-{seed}/tables/accuracy.csv",
        correlations="results/seed-{seed}/tables/correlations.csv",
        sensitivity="results/seed-{seed}/tables/sensitivity.csv",
        dumps=seed_models("results/seed-{seed}/activations/{model}.h5"),
    output:
        figure_outputs("results/seed-{seed}/figures", FIGURE_NAMES, "Figures"),
    log:
        "results/seed-{seed}/logs/figures.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        settings=cli_args("probe"),
        out_dir="results/seed-{seed}/figures",
        code=code_hash("figures"),
    shell:
        "compreps figures --metrics {input.metrics:q} --accuracy {input.accuracy:q}"
        " --correlations {input.correlations:q} --sensitivity {input.sensitivity:q}"
        " --dumps {input.dumps:q} --out-dir {params.out_dir:q} {params.settings} 2> {log:q}"


rule report:
    input:
        accuracy="results/seed-{seed}/tables/accuracy.csv",
        correlations="results/seed-{seed}/tables/correlations.csv",
        sensitivity="results/seed-{seed}/tables/sensitivity.csv",
        metrics="results/seed-{seed}/tables/metrics.csv",
        dataset=rules.prepare_data.output[0],
        figures=FIGURES,
        dumps=seed_models("results/seed-{seed}/activations/{model}.h5"),
        balance=BALANCE_TABLE,
    output:
        report=report(
            "results/seed-{seed}/report.md",
            caption="../report/report.rst",
            category="Report",
        ),
        findings="results/seed-{seed}/tables/findings.csv",
    log:
        "results/seed-{seed}/logs/report.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        # the seed's own configuration: adding a seed rewrites no other seed's report
        config_json=lambda wildcards: seed_config_json(wildcards.seed),
        code=code_hash("report"),
    shell:
        "compreps report --accuracy {input.accuracy:q} --correlations {input.correlations:q}"
        " --sensitivity {input.sensitivity:q} --metrics {input.metrics:q}"
        " --dataset {input.dataset:q} --figures {input.figures:q} --dumps {input.dumps:q}"
        " --config-json {params.config_json:q} --coreset-balance {input.balance:q}"
        " --findings-out {output.findings:q} --out {output.report:q} 2> {log:q}"


# Across the replicate seeds: the spread of every accuracy and coefficient, each claim's
# verdict combined over the seeds, the per-seed figures and results/report.md. Its inputs are
# every seed's tables: removing a seed reruns this job only.
rule seeds:
    input:
        accuracy=per_seed("results/seed-{seed}/tables/accuracy.csv"),
        metrics=per_seed("results/seed-{seed}/tables/metrics.csv"),
        correlations=per_seed("results/seed-{seed}/tables/correlations.csv"),
        sensitivity=per_seed("results/seed-{seed}/tables/sensitivity.csv"),
        findings=per_seed("results/seed-{seed}/tables/findings.csv"),
        reports=per_seed("results/seed-{seed}/report.md"),
    output:
        accuracy=report(
            "results/tables/seeds_accuracy.csv",
            caption="../report/seeds_accuracy.rst",
            category="Seeds",
        ),
        correlations=report(
            "results/tables/seeds_correlations.csv",
            caption="../report/seeds_correlations.rst",
            category="Seeds",
        ),
        sensitivity=report(
            "results/tables/seeds_sensitivity.csv",
            caption="../report/seeds_sensitivity.rst",
            category="Seeds",
        ),
        findings=report(
            "results/tables/seeds_findings.csv",
            caption="../report/seeds_findings.rst",
            category="Seeds",
        ),
        figures=figure_outputs("results/figures", vocabulary.SEED_FIGURE_NAMES, "Seeds"),
        report=report(
            "results/report.md",
            caption="../report/seeds_report.rst",
            category="Report",
        ),
    log:
        "results/logs/seeds.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        seeds=" ".join(str(seed) for seed in SEEDS),
        config_json=json.dumps(config, sort_keys=True),
        # the folder of the figures written (a function of output: no hard-coded prefix)
        figures_dir=lambda wildcards, output: Path(output.figures[0]).parent,
        code=code_hash("seeds"),
    shell:
        "compreps seeds --seeds {params.seeds} --accuracy {input.accuracy:q}"
        " --metrics {input.metrics:q} --correlations {input.correlations:q}"
        " --sensitivity {input.sensitivity:q} --findings {input.findings:q}"
        " --reports {input.reports:q} --config-json {params.config_json:q}"
        " --out-accuracy {output.accuracy:q} --out-correlations {output.correlations:q}"
        " --out-sensitivity {output.sensitivity:q} --out-findings {output.findings:q}"
        " --figures-dir {params.figures_dir:q} --out {output.report:q} 2> {log:q}"
