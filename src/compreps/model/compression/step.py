"""The ``prune``, ``quantize``, ``structured`` and ``import-base`` steps: load -> apply ->
evaluate -> save.

``prune``, ``quantize`` and ``structured`` load the base checkpoint, apply the algorithm
(:func:`compreps.model.compression.prune.prune_global_l1`,
:func:`compreps.model.compression.quantize.quantize_model`,
:func:`compreps.model.compression.apply.apply_family` for the structured families of the
registry, :mod:`compreps.core.families`), measure the
test accuracy and write the compressed checkpoint, its meta inheriting the base's training
record (seed, epochs, training set, config) and naming its parent by sha256. Every checkpoint
written here records ``params``, ``macs`` (per image) and ``param_fraction`` (of the base; 1.0
for the dense families); a structured one also its ``structure`` (rebuilt by
:func:`compreps.model.checkpoints.load_model`) and ``channel_map``
(:mod:`compreps.model.compression.dense_view`).
``import-base`` loads user-given weights (a plain state dict or a compreps checkpoint) instead
of the base and applies nothing. Only the test split of the data is read, and the training
images that ``nexp`` and ``fold``'s ``bn_repair: calib`` calibrate on, and the training set when
a structured family's ``finetune_epochs`` > 0: the compressed model is then fine-tuned with the
base's training settings before it is evaluated (:mod:`compreps.model.training.finetune`).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compreps.core import families
from compreps.core.files import CompRepsError, log, sha256_file
from compreps.core.settings import ModelSettings, add_arguments, from_arguments, section_class
from compreps.core.vocabulary import STRUCTURED_FAMILIES
from compreps.core.vocabulary import model_id as make_model_id
from compreps.model.checkpoints import (
    check_weights_fit,
    checkpoint_meta,
    cpu_state_dict,
    load_checkpoint,
    load_model,
    read_foreign_weights,
    save_checkpoint,
)
from compreps.model.compression import prune, quantize
from compreps.model.cost import count_params_macs
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.data.selection import stratified_indices
from compreps.model.networks import accuracy, build_model, normalize, pick_device, predict_logits
from compreps.model.runtime import exact_fp32

# What a compressed model's meta takes over from its base: the record of how it was trained.
INHERITED = ("seed", "epochs", "n_train", "train_indices")


def evaluate_and_save(
    model: nn.Module,
    data,
    device: torch.device,
    *,
    eval_batch_size: int,
    out,
    started: float,
    **fields: Any,
) -> dict[str, Any]:
    """Test accuracy of ``model`` (fp32, batches of ``eval_batch_size``), then its checkpoint;
    ``fields`` are :func:`compreps.model.checkpoints.checkpoint_meta`'s. Returns the meta
    written."""
    log(f"{fields['model_id']}: evaluating on {len(data.test_labels)} test images ({device})")
    logits = predict_logits(model, data.test_images, data.mean, data.std, device, eval_batch_size)
    test_accuracy = accuracy(logits, data.test_labels)
    if "macs" not in fields:  # a dense model: the base's widths
        params, macs = count_params_macs(model, tuple(data.test_images.shape[1:]))
        fields = {"params": params, "macs": macs, "param_fraction": 1.0, **fields}
    meta = checkpoint_meta(
        dataset=data.name,
        device=device,
        precision="fp32",
        test_accuracy=test_accuracy,
        wall_time_s=time.perf_counter() - started,
        in_channels=int(data.test_images.shape[1]),
        num_classes=len(data.classes),
        **fields,
    )
    meta = save_checkpoint(out, cpu_state_dict(model), meta)
    log(f"{meta['model_id']}: test accuracy {test_accuracy:.4f} -> {out}")
    return meta


def compress_base(
    base_path: str,
    data,
    *,
    model_id: str,
    step_config: dict[str, Any],
    apply: Callable[[nn.Module], dict[str, Any]],
    eval_batch_size: int,
    out: str,
) -> dict[str, Any]:
    """Load the base, ``apply`` the compression in place (it returns meta entries), evaluate
    and save. ``step_config`` (e.g. ``{"prune": {"method": "global_l1", "ratio": 0.5}}``) is
    added to the base's config in meta."""
    device = pick_device()
    exact_fp32()  # accuracy in true fp32 on CUDA too (no TF32 rounding)
    model, base_meta = load_model(base_path, device)
    if base_meta.get("dataset") != data.name:
        raise CompRepsError(
            f"{base_path} was trained on {base_meta.get('dataset')!r}, not on {data.name!r}"
        )
    started = time.perf_counter()
    entries = apply(model)
    return evaluate_and_save(
        model,
        data,
        device,
        eval_batch_size=eval_batch_size,
        out=out,
        started=started,
        model_id=model_id,
        arch=base_meta["arch"],
        width=base_meta["width"],
        config={**(base_meta.get("config") or {}), **step_config},
        parent_sha256=sha256_file(base_path),
        **{key: base_meta.get(key) for key in INHERITED},
        **entries,
    )


def import_base(source: str, data, model: ModelSettings, *, eval_batch_size: int, out: str):
    """Load user-given baseline weights, evaluate them and write them as the ``base``
    checkpoint (weights that do not fit ``model`` give a short error, nothing is written)."""
    started = time.perf_counter()
    device = pick_device()
    exact_fp32()  # accuracy in true fp32 on CUDA too (no TF32 rounding)
    in_channels, num_classes = int(data.test_images.shape[1]), len(data.classes)
    state_dict, source_meta = read_foreign_weights(source)
    check_weights_fit(source, state_dict, model.arch, model.width, in_channels, num_classes)
    network = build_model(model.arch, model.width, in_channels, num_classes)
    network.load_state_dict(state_dict, strict=True)
    source_meta = source_meta or {}
    return evaluate_and_save(
        network.to(device),
        data,
        device,
        eval_batch_size=eval_batch_size,
        out=out,
        started=started,
        model_id="base",
        arch=model.arch,
        width=model.width,
        config={"model": asdict(model), "eval_batch_size": eval_batch_size},
        **{key: source_meta.get(key) for key in INHERITED},
        imported_from=str(source),
        imported_sha256=sha256_file(source),
    )


# --------------------------------------------------------------------------- CLI


def parse_level(text: str, what: str) -> float:
    """A level given on the command line (kept as typed for the model id: ``0.05``)."""
    try:
        value = float(text)
    except ValueError:
        raise CompRepsError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CompRepsError(f"{what} must be finite, got {text!r}")
    return value


def step_parser(argv0: str, description: str, source: str) -> argparse.ArgumentParser:
    """The options every step here takes: the weights it starts from, data, evaluation, out."""
    parser = argparse.ArgumentParser(prog=f"compreps {argv0}", description=description)
    parser.add_argument(f"--{source}", required=True)
    add_data_argument(parser)
    parser.add_argument("--eval-batch-size", required=True, type=int)
    parser.add_argument("--out", required=True)
    return parser


def run_prune(args: argparse.Namespace) -> dict[str, Any]:
    ratio = parse_level(args.ratio, "--ratio")
    if not 0.0 < ratio < 1.0:
        raise CompRepsError(f"--ratio must be in (0, 1), got {args.ratio}")

    def apply(model: nn.Module) -> dict[str, Any]:
        sparsity = prune.prune_global_l1(model, ratio)
        log(f"prune-{args.ratio}: {args.prune_method} sparsity {sparsity:.6f}")
        return {"sparsity": sparsity, "method": args.prune_method}

    return compress_base(
        args.base,
        load_prepared(args.data, splits=("test",)),
        model_id=make_model_id("prune", args.ratio),
        step_config={"prune": {"method": args.prune_method, "ratio": ratio}},
        apply=apply,
        eval_batch_size=args.eval_batch_size,
        out=args.out,
    )


def run_quantize(args: argparse.Namespace) -> dict[str, Any]:
    def apply(model: nn.Module) -> dict[str, Any]:
        entries = quantize.quantize_model(model, args.bits, args.quantize_scheme)
        log(
            f"quant-{args.bits}: {args.quantize_scheme}, {len(entries['quantized_modules'])} "
            f"weight tensors, at most {entries['max_distinct_values']} distinct values each"
            + (", 8-bit dynamic activations" if entries["activation_quant"] else "")
        )
        return entries

    return compress_base(
        args.base,
        load_prepared(args.data, splits=("test",)),
        model_id=make_model_id("quant", args.bits),
        step_config={"quantize": {"scheme": args.quantize_scheme, "bits": args.bits}},
        apply=apply,
        eval_batch_size=args.eval_batch_size,
        out=args.out,
    )


def calibration_images(data, count: int, seed: int) -> torch.Tensor:
    """``count`` class-stratified training images chosen with ``seed``, normalised float."""
    if data.train_labels is None or count > len(data.train_labels):
        available = 0 if data.train_labels is None else len(data.train_labels)
        raise CompRepsError(f"{count} calibration images asked, {available} training images")
    rows = stratified_indices(data.train_labels.numpy(), count, seed)
    return normalize(data.train_images[torch.as_tensor(rows)], data.mean, data.std)


def structured_options(settings, image_size: int) -> dict[str, Any]:
    """The family function's options: its section's settings but the levels."""
    options = {key: value for key, value in asdict(settings).items() if key != "levels"}
    return {**options, "image_size": image_size}


def run_structured(args: argparse.Namespace) -> dict[str, Any]:
    from compreps.model.compression.apply import apply_family  # Torch-Pruning: this step only

    family = args.family
    level = parse_level(args.level, "--level")
    if not 0.0 < level < 1.0:
        raise CompRepsError(f"--level (fraction of channels removed) must be in (0, 1): {level}")
    settings = from_arguments(section_class(families.family(family).section), args, levels=(level,))
    calibrates = (
        hasattr(settings, "calib_samples") and getattr(settings, "bn_repair", "calib") == "calib"
    )
    trains = settings.finetune_epochs > 0
    splits = ("train", "test") if calibrates or trains else ("test",)
    data = load_prepared(args.data, splits=splits)
    options = structured_options(settings, int(data.test_images.shape[-1]))
    calib = calibration_images(data, settings.calib_samples, settings.seed) if calibrates else None
    model_id = make_model_id(family, args.level)

    def apply(model: nn.Module) -> dict[str, Any]:
        images = None if calib is None else calib.to(next(model.parameters()).device)
        record = apply_family(model, family, level, images, **options)
        log(
            f"{family}-{args.level}: removed {record['achieved_level']:.3f} of the channels, "
            f"parameters {record['param_fraction']:.3f}, MACs {record['macs_fraction']:.3f} "
            "of the base"
        )
        if trains:
            record.update(finetune_step(model, data, args, settings, model_id))
        return {key: value for key, value in record.items() if key != "level"}

    meta = compress_base(
        args.base,
        data,
        model_id=model_id,
        step_config={family: {**asdict(settings), "levels": [level]}},
        apply=apply,
        eval_batch_size=args.eval_batch_size,
        out=args.out,
    )
    if trains and args.state:
        Path(args.state).unlink(missing_ok=True)  # only once the checkpoint is written
    return meta


def finetune_step(model: nn.Module, data, args, settings, model_id: str) -> dict[str, Any]:
    """Fine-tune the compressed model with the base's train settings
    (:mod:`compreps.model.training.finetune`); its meta entries."""
    from compreps.model.training.finetune import finetune_structured

    _, base_meta = load_checkpoint(args.base)
    identity = {
        "parent_sha256": sha256_file(args.base),
        "model_id": model_id,
        "settings": asdict(settings),
    }
    return finetune_structured(
        model,
        data,
        base_meta=base_meta,
        epochs=settings.finetune_epochs,
        model_id=model_id,
        identity=identity,
        eval_batch_size=args.eval_batch_size,
        state_path=args.state,
    )


def structured_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The ``structured`` step's options: those of the family's config section but its levels."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--family", choices=STRUCTURED_FAMILIES)
    family = first.parse_known_args(argv)[0].family
    parser = step_parser(
        "structured",
        "Prune or fold whole channels of the base model (fine-tuning optional).",
        "base",
    )
    parser.add_argument("--family", required=True, choices=STRUCTURED_FAMILIES)
    parser.add_argument("--level", required=True, help="fraction of channels removed, (0, 1)")
    parser.add_argument("--state", help="fine-tuning resume state (finetune_epochs > 0)")
    if family is not None:
        add_arguments(parser, section_class(families.family(family).section), exclude=("levels",))
    return parser


def run_import(args: argparse.Namespace) -> dict[str, Any]:
    return import_base(
        args.source,
        load_prepared(args.data, splits=("test",)),
        from_arguments(ModelSettings, args),
        eval_batch_size=args.eval_batch_size,
        out=args.out,
    )


def main(argv: list[str]) -> int:
    """``prune``, ``quantize``, ``structured`` or ``import-base`` (``argv[0]``)."""
    step = argv[0]
    if step == "prune":
        parser = step_parser(step, "Prune the base model (global unstructured L1).", "base")
        parser.add_argument("--ratio", required=True, help="fraction of weights to zero, in (0, 1)")
        parser.add_argument("--prune-method", required=True, choices=prune.METHODS)
        run = run_prune
    elif step == "quantize":
        parser = step_parser(step, "Quantize the base model's weights.", "base")
        parser.add_argument("--bits", required=True, type=int, choices=quantize.BITS)
        parser.add_argument("--quantize-scheme", required=True, choices=quantize.SCHEMES)
        run = run_quantize
    elif step == "structured":
        parser = structured_parser(argv[1:])
        run = run_structured
    elif step == "import-base":
        parser = step_parser(step, "Import user-given baseline weights.", "source")
        add_arguments(parser, ModelSettings)
        run = run_import
    else:
        raise CompRepsError(f"compreps.model.compression.step has no step {step!r}")
    args = parser.parse_args(argv[1:])
    if args.eval_batch_size < 1:
        raise CompRepsError(f"--eval-batch-size must be >= 1, got {args.eval_batch_size}")
    run(args)
    return 0
