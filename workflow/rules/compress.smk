rule prune:
    input:
        base="results/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/checkpoints/prune-{ratio}.pt",
    log:
        "results/logs/compress/prune-{ratio}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        method=lookup(dpath="prune/method", within=config),
        dataset=lookup(dpath="data/dataset", within=config),
        root=lookup(dpath="data/root", within=config),
        eval_batch_size=lookup(dpath="probe/batch_size", within=config),
    shell:
        "python -m compreps prune --base {input.base} --ratio {wildcards.ratio} --method {params.method}"
        " --dataset {params.dataset} --data-root {params.root}"
        " --eval-batch-size {params.eval_batch_size} --out {output} 2> {log}"


rule quantize:
    input:
        base="results/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/checkpoints/quant-{bits}.pt",
    log:
        "results/logs/compress/quant-{bits}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        scheme=lookup(dpath="quantize/scheme", within=config),
        dataset=lookup(dpath="data/dataset", within=config),
        root=lookup(dpath="data/root", within=config),
        eval_batch_size=lookup(dpath="probe/batch_size", within=config),
    shell:
        "python -m compreps quantize --base {input.base} --bits {wildcards.bits} --scheme {params.scheme}"
        " --dataset {params.dataset} --data-root {params.root}"
        " --eval-batch-size {params.eval_batch_size} --out {output} 2> {log}"
