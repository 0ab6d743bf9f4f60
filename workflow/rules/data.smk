rule prepare_data:
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
        dataset=lookup(dpath="data/dataset", within=config),
        root=lookup(dpath="data/root", within=config),
        download=lookup(dpath="data/download", within=config),
    shell:
        "python -m compreps prepare-data --dataset {params.dataset} --data-root {params.root}"
        " --download {params.download} --out {output} 2> {log}"


rule coreset:
    input:
        rules.prepare_data.output,
    output:
        "results/coresets/coreset-{fraction}.csv",
    log:
        "results/logs/coreset/coreset-{fraction}.log",
    conda:
        ENV
    threads: job_threads("analysis")
    resources:
        **job_resources("analysis"),
    params:
        dataset=lookup(dpath="data/dataset", within=config),
        root=lookup(dpath="data/root", within=config),
        method=lookup(dpath="coreset/method", within=config),
        seed=lookup(dpath="train/seed", within=config),
    shell:
        "python -m compreps coreset --dataset {params.dataset} --data-root {params.root}"
        " --fraction {wildcards.fraction} --method {params.method} --seed {params.seed}"
        " --out {output} 2> {log}"
