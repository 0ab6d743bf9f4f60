# Training rules carry no code hash: a retrain is asked for explicitly with --forcerun.

if config["base_checkpoint"]:

    rule import_base:
        input:
            source=config["base_checkpoint"],
            data=rules.prepare_data.output,
        output:
            "results/checkpoints/base.pt",
        log:
            "results/logs/train/base.log",
        conda:
            ENV
        threads: job_threads("compress")
        resources:
            **job_resources("compress", gpu=True),
        params:
            dataset=lookup(dpath="data/dataset", within=config),
            root=lookup(dpath="data/root", within=config),
            model=lookup(dpath="model", within=config),
            eval_batch_size=lookup(dpath="probe/batch_size", within=config),
        shell:
            "python -m compreps import-base --source {input.source} --dataset {params.dataset}"
            " --data-root {params.root} --arch {params.model[arch]}"
            " --width {params.model[width]} --eval-batch-size {params.eval_batch_size}"
            " --out {output} 2> {log}"

else:

    rule train_base:
        input:
            rules.prepare_data.output,
        output:
            "results/checkpoints/base.pt",
        log:
            "results/logs/train/base.log",
        conda:
            ENV
        threads: job_threads("train")
        resources:
            **job_resources("train", gpu=True),
        params:
            model_id="base",
            dataset=lookup(dpath="data/dataset", within=config),
            root=lookup(dpath="data/root", within=config),
            model=lookup(dpath="model", within=config),
            train=lookup(dpath="train", within=config),
            eval_batch_size=lookup(dpath="probe/batch_size", within=config),
        shell:
            "python -m compreps train --model-id {params.model_id} --dataset {params.dataset}"
            " --data-root {params.root} --arch {params.model[arch]} --width {params.model[width]}"
            " --epochs {params.train[epochs]} --batch-size {params.train[batch_size]}"
            " --lr {params.train[lr]} --momentum {params.train[momentum]}"
            " --weight-decay {params.train[weight_decay]} --schedule {params.train[schedule]}"
            " --seed {params.train[seed]} --precision {params.train[precision]}"
            " --eval-batch-size {params.eval_batch_size}"
            " --state results/train_state/base.pt --out {output} 2> {log}"


rule train_coreset:
    input:
        data=rules.prepare_data.output,
        indices="results/coresets/coreset-{fraction}.csv",
    output:
        "results/checkpoints/coreset-{fraction}.pt",
    log:
        "results/logs/train/coreset-{fraction}.log",
    conda:
        ENV
    threads: job_threads("train")
    resources:
        **job_resources("train", gpu=True),
    params:
        model_id="coreset-{fraction}",
        dataset=lookup(dpath="data/dataset", within=config),
        root=lookup(dpath="data/root", within=config),
        model=lookup(dpath="model", within=config),
        train=lookup(dpath="train", within=config),
        eval_batch_size=lookup(dpath="probe/batch_size", within=config),
    shell:
        "python -m compreps train --model-id {params.model_id} --dataset {params.dataset}"
        " --data-root {params.root} --arch {params.model[arch]} --width {params.model[width]}"
        " --epochs {params.train[epochs]} --batch-size {params.train[batch_size]}"
        " --lr {params.train[lr]} --momentum {params.train[momentum]}"
        " --weight-decay {params.train[weight_decay]} --schedule {params.train[schedule]}"
        " --seed {params.train[seed]} --precision {params.train[precision]}"
        " --eval-batch-size {params.eval_batch_size}"
        " --indices {input.indices}"
        " --state results/train_state/coreset-{wildcards.fraction}.pt --out {output} 2> {log}"
