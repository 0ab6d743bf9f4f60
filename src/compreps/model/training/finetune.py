"""Fine-tuning of a structured model (pruned or folded) after compression.

The NEXP study (002 in shared/papers) always fine-tunes after pruning (scores -> global ranking
-> bottom-kappa removal -> fine-tuning); folding (003) is calibration-free by design, and its
authors compare it with and without data-driven repair. With ``<family>.finetune_epochs`` > 0
the ``structured`` step trains the compressed model further, in its compressed shape, with the
base's own training settings (``train`` section as recorded in the base checkpoint): SGD with
the base's learning rate, momentum, weight decay and batch size, the base's schedule (cosine:
annealed from the base's learning rate to 0 over the fine-tuning steps), the base's seed and
precision, on the base's whole training set with the same augmentation. 0 epochs is the
one-shot model.

Fine-tuning changes no width, so the parameter and MAC counts stay those of the compressed
model. It is resumable like training (:mod:`compreps.model.training.state`): the state is saved
at epoch ends (``train.state_interval_s``) under a fingerprint of the compressed weights and the
fine-tuning settings, and a rerun resumes from it with bit-identical weights on CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from typing import Any

import torch
from torch import nn

from compreps.core.files import CompRepsError, log
from compreps.core.settings import TrainSettings
from compreps.model.checkpoints import content_sha256, cpu_state_dict
from compreps.model.networks import accuracy, predict_logits
from compreps.model.runtime import configure_determinism, resolve_precision
from compreps.model.training.state import STATE_FORMAT, load_matching_state, restore_state
from compreps.model.training.step import make_optimizer, make_step_context
from compreps.model.training.train import Run, _epochs, seed_everything, training_subset


def finetune_settings(base_train: dict[str, Any], epochs: int) -> TrainSettings:
    """The base's ``train`` settings (from its checkpoint meta) with ``epochs`` fine-tuning
    epochs; no torch.compile (a pruned model's shapes are its own, compiling rarely pays)."""
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    base_train = dict(base_train)
    if "seeds" not in base_train and "seed" in base_train:  # a base trained before train.seeds
        base_train["seeds"] = (base_train["seed"],)
    missing = fields - set(base_train)
    if missing:
        raise CompRepsError(
            f"the base checkpoint records no train settings {sorted(missing)}: fine-tuning "
            "takes the base's learning rate and schedule (an imported base has none)"
        )
    values = {key: base_train[key] for key in fields}
    values["seeds"] = tuple(values["seeds"])
    return TrainSettings(**{**values, "epochs": int(epochs), "compile": "false"})


def finetune_fingerprint(
    model: nn.Module, train: TrainSettings, data, identity: dict, device, precision: str
) -> str:
    """sha256 over the compressed weights, the fine-tuning settings, what the model is
    (``identity``: parent, family, level, family settings) and the training data."""
    digest = hashlib.sha256()
    header = {
        "format": STATE_FORMAT,
        "kind": "finetune",
        "train": {k: v for k, v in dataclasses.asdict(train).items() if k != "state_interval_s"},
        "identity": identity,
        "dataset": data.name,
        "device_type": device.type,
        "precision": precision,
        "weights": content_sha256(cpu_state_dict(model)),
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    digest.update(data.train_images.contiguous().numpy().tobytes())
    digest.update(data.train_labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _run(model, data, train: TrainSettings, device, precision: str) -> Run:
    seed_everything(train.seed)
    _, images, labels = training_subset(data, None)
    images, labels = images.to(device), labels.to(device)
    steps_per_epoch = math.ceil(images.shape[0] / train.batch_size)
    optimizer, scheduler = make_optimizer(model, train, steps_per_epoch)
    generator = torch.Generator(device=device)
    generator.manual_seed(train.seed)
    ctx = make_step_context(model, optimizer, scheduler, data.mean, data.std, precision, device)
    return Run(ctx, generator, images, labels, steps_per_epoch)


def finetune(
    model: nn.Module,
    data,
    train: TrainSettings,
    *,
    model_id: str,
    identity: dict,
    state_path=None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place for ``train.epochs`` epochs (module docstring); the record
    for the checkpoint meta. The caller deletes ``state_path`` once the checkpoint is written.
    """
    if train.epochs < 1:
        raise CompRepsError(f"fine-tuning needs at least 1 epoch, got {train.epochs}")
    started = time.perf_counter()
    device = next(model.parameters()).device
    precision, _ = resolve_precision(train.precision, device)
    fingerprint = finetune_fingerprint(model, train, data, identity, device, precision)
    configure_determinism(device, train.deterministic)
    run = _run(model, data, train, device, precision)
    run.setup = {"fingerprint": fingerprint}
    state = load_matching_state(state_path, fingerprint)
    if state is not None:
        run.epoch, run.previous_wall_s = restore_state(state, run.parts(), run.generator)
        log(f"{model_id}: resuming fine-tuning from {state_path} after epoch {run.epoch}")
    resumed_from = run.epoch if state is not None else None
    log(
        f"{model_id}: fine-tuning {train.epochs} epochs x {run.steps_per_epoch} steps, batch "
        f"{train.batch_size}, lr {train.lr} ({train.schedule}), {precision}"
    )
    loss, train_accuracy = _epochs(run, train, model_id, state_path, started, show_progress)
    model.eval()
    return {
        "epochs": train.epochs,
        "lr": train.lr,
        "schedule": train.schedule,
        "momentum": train.momentum,
        "weight_decay": train.weight_decay,
        "batch_size": train.batch_size,
        "seed": train.seed,
        "precision": precision,
        "n_train": int(run.images.shape[0]),
        "train_loss": loss,
        "train_accuracy": train_accuracy,
        "resumed_from_epoch": resumed_from,
        "wall_time_s": run.previous_wall_s + time.perf_counter() - started,
    }


def finetune_structured(
    model: nn.Module,
    data,
    *,
    base_meta: dict[str, Any],
    epochs: int,
    model_id: str,
    identity: dict,
    eval_batch_size: int,
    state_path=None,
) -> dict[str, Any]:
    """The ``structured`` step's fine-tuning: the one-shot test accuracy, then ``epochs`` of
    fine-tuning with the base's train settings; the meta entries ``oneshot_test_accuracy``,
    ``finetune`` (:func:`finetune`'s record) and ``finetune_epochs``."""
    device = next(model.parameters()).device
    logits = predict_logits(model, data.test_images, data.mean, data.std, device, eval_batch_size)
    oneshot = accuracy(logits, data.test_labels)
    log(f"{model_id}: one-shot test accuracy {oneshot:.4f}")
    train = finetune_settings((base_meta.get("config") or {}).get("train") or {}, epochs)
    record = finetune(
        model, data, train, model_id=model_id, identity=identity, state_path=state_path
    )
    return {"oneshot_test_accuracy": oneshot, "finetune": record, "finetune_epochs": epochs}
