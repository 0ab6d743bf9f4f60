# Compression of the base checkpoint. Params: the config keys each step uses and the
# evaluation batch (probe.batch_size); the level comes from the wildcard, so adding a ratio, a
# bit width or a structured level reruns nothing else.


rule prune:
    input:
        base="results/seed-{seed}/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/seed-{seed}/checkpoints/prune-{ratio}.pt",
    log:
        "results/seed-{seed}/logs/compress/prune-{ratio}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        method=config["prune"]["method"],
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps prune --base {input.base:q} --ratio {wildcards.ratio}"
        " --prune-method {params.method} --data {input.data:q}"
        " --eval-batch-size {params.eval_batch_size} --out {output:q} 2> {log:q}"


rule quantize:
    input:
        base="results/seed-{seed}/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/seed-{seed}/checkpoints/quant-{bits}.pt",
    log:
        "results/seed-{seed}/logs/compress/quant-{bits}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        scheme=config["quantize"]["scheme"],
        eval_batch_size=config["probe"]["batch_size"],
    shell:
        "compreps quantize --base {input.base:q} --bits {wildcards.bits}"
        " --quantize-scheme {params.scheme} --data {input.data:q}"
        " --eval-batch-size {params.eval_batch_size} --out {output:q} 2> {log:q}"


# struct_l1, nexp, fold (compreps.model.compression.structured, compreps.model.compression.fold):
# whole channels removed or merged, then fine-tuned when the family's finetune_epochs > 0 (its
# section's options are the params: changing them reruns that family's models only).
rule compress_structured:
    input:
        base="results/seed-{seed}/checkpoints/base.pt",
        data=rules.prepare_data.output,
    output:
        "results/seed-{seed}/checkpoints/{family}-{level}.pt",
    log:
        "results/seed-{seed}/logs/compress/{family}-{level}.log",
    conda:
        ENV
    threads: job_threads("compress")
    resources:
        **job_resources("compress", gpu=True),
    params:
        options=lambda wildcards: family_args(wildcards.family),
        eval_batch_size=config["probe"]["batch_size"],
        # fine-tuning's resume state (finetune_epochs > 0), as training's
        state="results/seed-{seed}/train_state/{family}-{level}.pt",
    shell:
        "compreps structured --base {input.base:q} --family {wildcards.family}"
        " --level {wildcards.level} {params.options} --data {input.data:q}"
        " --eval-batch-size {params.eval_batch_size} --state {params.state:q}"
        " --out {output:q} 2> {log:q}"
