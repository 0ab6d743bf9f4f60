"""The selection run (``coreset-scores`` step): a short training that scores every example.

The score-based and geometric coreset methods (:mod:`compreps.model.data.coreset`) read one
model trained for this purpose, never the base: as in DeepCore (Guo et al. 2022), the selection
model has its own seed (``coreset.selection_seed``) and a fraction of the base's epochs
(``coreset.selection_epochs``), with the ``train`` section's recipe otherwise (SGD, schedule,
augmentation: :func:`compreps.model.training.step.make_optimizer`,
:func:`compreps.model.data.augment.augment_batch`). Scoring with the base would inflate the
coreset models' similarity to it.

While it trains, :class:`Dynamics` records per example, on the training device and without a
host synchronisation (the data are device-resident; indices, logits and counters stay there):
forgetting events (Toneva et al. 2019) and the summed margin of AUM (Pleiss et al. 2020), at
each presentation in a minibatch, as the papers do. After the last epoch one pass over the
unaugmented training images gives EL2N (Paul et al. 2021) and the penultimate embeddings (the
input of ``fc``) of k-center and moderate. Written: ``scores.csv`` and ``embeddings.npy``
(:func:`compreps.model.data.scores.write_selection`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from compreps.core.files import CompRepsError, log
from compreps.core.settings import ModelSettings, TrainSettings, add_arguments, from_arguments
from compreps.model.data import scores
from compreps.model.data.augment import augment_batch
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.networks import build_model, describe_device, normalize, pick_device
from compreps.model.runtime import configure_determinism, resolve_precision
from compreps.model.training.step import make_optimizer


class Dynamics:
    """Per-example training dynamics, kept on the training device.

    :meth:`record` is called with each minibatch's example indices (distinct within a batch),
    its logits and labels; it only launches device kernels. :meth:`table` reads everything back
    once, at the end.
    """

    def __init__(self, n: int, device: torch.device) -> None:
        self.previous = torch.zeros(n, dtype=torch.bool, device=device)  # correct last time
        self.learned = torch.zeros(n, dtype=torch.bool, device=device)  # ever correct
        self.forgotten = torch.zeros(n, dtype=torch.int64, device=device)
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.presentations = torch.zeros(n, dtype=torch.int64, device=device)

    @torch.no_grad()
    def record(self, index: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().float()
        correct = logits.argmax(1) == labels
        # a forgetting event: correct at the previous presentation, wrong at this one
        self.forgotten[index] += (self.previous[index] & ~correct).long()
        self.previous[index] = correct
        self.learned[index] |= correct
        assigned = logits.gather(1, labels[:, None]).squeeze(1)
        others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
        self.margin_sum[index] += (assigned - others).double()
        self.presentations[index] += 1

    def table(self) -> dict[str, np.ndarray]:
        """``forgetting`` (never-learned examples: their presentation count, as
        :func:`compreps.model.data.scores.forgetting_counts`), ``aum``, ``presentations``."""
        presentations = self.presentations.cpu().numpy()
        forgetting = torch.where(self.learned, self.forgotten, self.presentations)
        margin_sum = self.margin_sum.cpu().numpy()
        return {
            "forgetting": forgetting.cpu().numpy(),
            "aum": scores.aum_scores(margin_sum, presentations),
            "presentations": presentations,
        }


def _epoch(network, optimizer, scheduler, batch, dynamics, generator, autocast) -> torch.Tensor:
    """One epoch in a fresh seeded order, recording every minibatch; the summed loss (on the
    device)."""
    images, labels, mean, std, batch_size = batch
    n = labels.numel()
    order = torch.randperm(n, generator=generator, device=labels.device)
    loss_sum = torch.zeros((), device=labels.device)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        inputs = normalize(augment_batch(images[index], generator), mean, std)
        with torch.autocast(labels.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = network(inputs)
        loss = F.cross_entropy(logits.float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        dynamics.record(index, logits, labels[index])
        loss_sum += loss.detach() * index.numel()
    return loss_sum


@torch.inference_mode()
def _final_pass(network, images, mean, std, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and penultimate embeddings (the input of ``fc``) of unaugmented images, fp32."""
    network.eval()
    captured = []
    hook = network.fc.register_forward_hook(lambda m, inputs, out: captured.append(inputs[0]))
    try:
        logits = [
            network(normalize(images[s : s + batch_size], mean, std)).float()
            for s in range(0, images.shape[0], batch_size)
        ]
    finally:
        hook.remove()
    return torch.cat(logits).cpu(), torch.cat(captured).float().cpu()


def run_selection(data, model: ModelSettings, train: TrainSettings, eval_batch_size: int):
    """Train the selection model (``train``: the selection run's epochs and seed) and return
    the score table (:data:`compreps.model.data.scores.SCORE_COLUMNS`) and the embeddings."""
    device = pick_device()
    configure_determinism(device, train.deterministic)
    precision, _ = resolve_precision(train.precision, device)
    torch.manual_seed(train.seed)
    images, labels = data.train_images.to(device), data.train_labels.to(device)
    network = build_model(model.arch, model.width, images.shape[1], len(data.classes)).to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(
        network, train, math.ceil(labels.numel() / train.batch_size)
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(train.seed)
    dynamics = Dynamics(labels.numel(), device)
    batch = (images, labels, data.mean, data.std, train.batch_size)
    started = time.perf_counter()
    for epoch in range(train.epochs):
        network.train()
        loss = _epoch(
            network, optimizer, scheduler, batch, dynamics, generator, precision == "bf16"
        )
        mean_loss = loss.item() / labels.numel()  # the epoch's one host synchronisation
        log(f"selection run epoch {epoch + 1}/{train.epochs}: loss {mean_loss:.4f}")
    logits, embeddings = _final_pass(network, images, data.mean, data.std, eval_batch_size)
    table = dynamics.table()
    label_array = data.train_labels.numpy()
    table.update(
        index=np.arange(label_array.size),
        label=label_array,
        el2n=scores.el2n_scores(logits.numpy(), label_array),
    )
    accuracy = float((logits.argmax(1) == data.train_labels).float().mean())
    log(
        f"selection run: {train.epochs} epochs, seed {train.seed}, {describe_device(device)}, "
        f"{precision}, {time.perf_counter() - started:.1f}s; train accuracy {accuracy:.4f}"
    )
    return table, embeddings.numpy()


def main(argv: list[str]) -> int:
    """``coreset-scores``: the selection run; writes scores.csv and embeddings.npy."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Score every training image (selection run)."
    )
    add_data_argument(parser)
    add_arguments(parser, ModelSettings)
    add_arguments(parser, TrainSettings)
    parser.add_argument("--coreset-selection-epochs", required=True, type=int)
    parser.add_argument("--coreset-selection-seed", required=True, type=int)
    parser.add_argument("--eval-batch-size", required=True, type=int)
    parser.add_argument("--out-scores", required=True)
    parser.add_argument("--out-embeddings", required=True)
    args = parser.parse_args(argv[1:])
    if args.coreset_selection_epochs < 1 or args.eval_batch_size < 1:
        raise CompRepsError("--coreset-selection-epochs and --eval-batch-size must be >= 1")
    train = dataclasses.replace(
        from_arguments(TrainSettings, args),
        epochs=args.coreset_selection_epochs,
        seeds=(args.coreset_selection_seed,),
    )
    data = load_prepared(args.data, splits=("train",))
    table, embeddings = run_selection(
        data, from_arguments(ModelSettings, args), train, args.eval_batch_size
    )
    scores.write_selection(args.out_scores, args.out_embeddings, table, embeddings)
    return 0
