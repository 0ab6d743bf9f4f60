# Compression of the base checkpoint. Params: the config keys each step uses and the
# evaluation batch (probe.batch_size); the level comes from the wildcard, so adding a ratio, a
# bit width or a structured level reruns nothing else.


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
        method=config["prune"]["method"],
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps prune --base {input.base} --ratio {wildcards.ratio}"
        " --prune-method {params.method} --data {input.data}"
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
        scheme=config["quantize"]["scheme"],
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps quantize --base {input.base} --bits {wildcards.bits}"
        " --quantize-scheme {params.scheme} --data {input.data}"
        " --eval-batch-size {params.eval_batch_size} --out {output} 2> {log}"


# struct_l1, nexp, fold (compreps.model.compression.structured, compreps.model.compression.fold): whole channels removed or merged.
rule compress_structured:
    input:
        base="results/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/checkpoints/{family}-{level}.pt",
    log:
        "results/logs/compress/{family}-{level}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        options=lambda wildcards: family_args(wildcards.family),
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps structured --base {input.base} --family {wildcards.family}"
        " --level {wildcards.level} {params.options} --data {input.data}"
        " --eval-batch-size {params.eval_batch_size} --out {output} 2> {log}"
