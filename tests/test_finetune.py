"""Fine-tuning of structured models: the base's settings, bit-identical resume after a kill,
parameter counts unchanged, and the ``structured`` step's record of it."""

from __future__ import annotations

import copy

import pytest
import torch
from test_prune import small_model, write_base
from test_structured_step import OPTIONS, train_and_test_split

import compreps.model.compression.step as compress_module
import compreps.model.training.train as train_module
from compreps.core.files import CompRepsError
from compreps.core.settings import TrainSettings
from compreps.model.checkpoints import load_model
from compreps.model.compression.structured import prune_l1
from compreps.model.cost import count_params_macs
from compreps.model.training.finetune import finetune, finetune_settings

BASE_TRAIN = {
    "epochs": 15,
    "batch_size": 16,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "seeds": (3,),
    "precision": "fp32",
    "compile": "auto",
    "deterministic": True,
    "state_interval_s": 0.0,
}
IDENTITY = {"parent_sha256": "x", "model_id": "struct_l1-0.5", "settings": {}}


def pruned_model():
    model = small_model(3).eval()
    record = prune_l1(model, 0.5, image_size=8)
    return model, record


def test_finetune_settings_are_the_bases_but_the_epochs():
    settings = finetune_settings(BASE_TRAIN, 2)
    assert settings == TrainSettings(**{**BASE_TRAIN, "epochs": 2, "compile": "false"})
    with pytest.raises(CompRepsError, match="no train settings"):
        finetune_settings({"epochs": 1}, 2)


def test_finetune_resumes_bit_identically_after_a_kill(tmp_path, monkeypatch):
    data = train_and_test_split(40)
    train = finetune_settings(BASE_TRAIN, 3)
    model, _ = pruned_model()
    reference = copy.deepcopy(model)
    finetune(reference, data, train, model_id="m", identity=IDENTITY)

    state = tmp_path / "state.pt"
    killed = copy.deepcopy(model)
    real_epoch, calls = train_module.train_epoch, []

    def dies_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job killed mid-epoch
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", dies_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        finetune(killed, data, train, model_id="m", identity=IDENTITY, state_path=state)
    assert state.exists()
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)

    rerun = copy.deepcopy(model)  # the rerun starts again from the compressed model
    record = finetune(rerun, data, train, model_id="m", identity=IDENTITY, state_path=state)
    assert record["resumed_from_epoch"] == 1
    for (key, value), expected in zip(
        rerun.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(value, expected), key
    assert not torch.equal(rerun.conv1.weight, model.conv1.weight)  # it did train


def test_a_state_of_another_model_is_not_resumed(tmp_path):
    data = train_and_test_split(40)
    train = finetune_settings(BASE_TRAIN, 1)
    model, _ = pruned_model()
    state = tmp_path / "state.pt"
    torch.save({"fingerprint": "other"}, state)
    record = finetune(model, data, train, model_id="m", identity=IDENTITY, state_path=state)
    assert record["resumed_from_epoch"] is None


def test_finetuning_keeps_the_parameter_counts():
    data = train_and_test_split(40)
    model, record = pruned_model()
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    finetune(model, data, finetune_settings(BASE_TRAIN, 1), model_id="m", identity=IDENTITY)
    assert {key: tuple(value.shape) for key, value in model.state_dict().items()} == shapes
    assert count_params_macs(model, (3, 8, 8)) == (record["params"], record["macs"])


@pytest.mark.parametrize("family", ["struct_l1", "nexp", "fold"])
def test_structured_step_records_finetuning(tmp_path, monkeypatch, family):
    data = train_and_test_split(40)
    monkeypatch.setattr(compress_module, "load_prepared", lambda path, splits: data)
    base = tmp_path / "base.pt"
    write_base(base, small_model(3), train=BASE_TRAIN)
    metas = {}
    for epochs in ("0", "1"):
        options = [*OPTIONS[family]]
        options[options.index(f"--{family.replace('_', '-')}-finetune-epochs") + 1] = epochs
        out, state = tmp_path / f"{family}-{epochs}.pt", tmp_path / f"state-{epochs}.pt"
        argv = ["structured", "--base", str(base), "--family", family, "--level", "0.5"]
        argv += [*options, "--data", "x", "--eval-batch-size", "7", "--state", str(state)]
        assert compress_module.main([*argv, "--out", str(out)]) == 0
        assert not state.exists()
        metas[epochs] = load_model(out, "cpu")[1]
    one_shot, tuned = metas["0"], metas["1"]
    assert "finetune" not in one_shot
    assert tuned["finetune_epochs"] == 1 and tuned["finetune"]["lr"] == BASE_TRAIN["lr"]
    assert tuned["finetune"]["schedule"] == "cosine" and tuned["finetune"]["epochs"] == 1
    assert tuned["oneshot_test_accuracy"] == pytest.approx(one_shot["test_accuracy"])
    for key in ("params", "macs", "param_fraction", "structure"):
        assert tuned[key] == one_shot[key], key


def test_finetune_settings_of_a_base_trained_before_seed_lists():
    """A base checkpoint that records ``seed`` (one int) fine-tunes as one with ``seeds``."""
    old = {key: value for key, value in BASE_TRAIN.items() if key != "seeds"}
    settings = finetune_settings({**old, "seed": 3}, 2)
    assert settings.seeds == (3,) and settings.seed == 3
    assert settings == finetune_settings(BASE_TRAIN, 2)
