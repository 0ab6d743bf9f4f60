"""The ``structured`` step (struct_l1, nexp, fold): checkpoint meta, the round trip of a pruned
structure through its checkpoint, and the dump in the base's shapes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_prune import small_model, write_base

import compreps.model.compression.step as compress_module
from compreps.core.dump import read_dump
from compreps.core.files import CompRepsError
from compreps.core.settings import ProbeSettings
from compreps.model.activations import dump_activations
from compreps.model.checkpoints import checkpoint_meta, load_model, save_checkpoint
from compreps.model.compression.apply import apply_family
from compreps.model.cost import count_params_macs

OPTIONS = {
    "struct_l1": ["--struct-l1-normalize", "group", "--struct-l1-finetune-epochs", "0"],
    "nexp": [
        *("--nexp-calib-samples", "20", "--nexp-seed", "1", "--nexp-normalize", "group"),
        *("--nexp-alpha", "1.0", "--nexp-finetune-epochs", "0"),
    ],
    "fold": [
        *("--fold-bn-repair", "calib", "--fold-calib-samples", "20", "--fold-seed", "0"),
        *("--fold-finetune-epochs", "0"),
    ],
}


def train_and_test_split(n: int = 40, seed: int = 0) -> SimpleNamespace:
    """Random 3x8x8 uint8 images, train and test, labels 0..9 (every class present)."""
    generator = torch.Generator().manual_seed(seed)

    def images(count):
        return torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8, generator=generator)

    return SimpleNamespace(
        name="cifar10",
        train_images=images(n),
        train_labels=torch.arange(n) % 10,
        test_images=images(n),
        test_labels=torch.randint(0, 10, (n,), generator=generator),
        classes=[str(i) for i in range(10)],
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


@pytest.fixture
def structured_checkpoints(tmp_path, monkeypatch):
    data = train_and_test_split()
    splits_read = []

    def load_prepared(path, splits):
        splits_read.append(tuple(splits))
        return data

    monkeypatch.setattr(compress_module, "load_prepared", load_prepared)
    base = tmp_path / "base.pt"
    write_base(base, small_model(3))
    paths = {}
    for family, options in OPTIONS.items():
        out = tmp_path / f"{family}-0.5.pt"
        argv = ["structured", "--base", str(base), "--family", family, "--level", "0.5"]
        argv += [*options, "--data", "x.json", "--eval-batch-size", "7", "--out", str(out)]
        assert compress_module.main(argv) == 0
        paths[family] = out
    return data, base, paths, splits_read


def test_structured_checkpoints_carry_cost_and_structure(structured_checkpoints):
    data, base, paths, splits_read = structured_checkpoints
    # training images are read only where they are used: nexp and fold's calib repair
    assert splits_read == [("test",), ("train", "test"), ("train", "test")]
    base_model, _ = load_model(base, "cpu")
    dense_params, dense_macs = count_params_macs(base_model, (3, 8, 8))
    for family, path in paths.items():
        model, meta = load_model(path, "cpu")
        assert (meta["model_id"], meta["family"], meta["level"]) == (f"{family}-0.5", family, 0.5)
        params, macs = count_params_macs(model, (3, 8, 8))
        assert (meta["params"], meta["macs"]) == (params, macs)
        assert meta["param_fraction"] == params / dense_params < 0.5
        assert meta["macs"] < dense_macs and meta["dense_macs"] == dense_macs
        assert abs(meta["achieved_level"] - 0.5) <= 0.02
        assert model.conv1.out_channels < 4 or model.layer4[1].conv1.out_channels < 16
        images = (data.test_images.float() / 255 - 0.5) / 0.25
        with torch.no_grad():
            predictions = model(images).argmax(1)
        assert meta["test_accuracy"] == pytest.approx(
            (predictions == data.test_labels).float().mean().item()
        )
    _, meta = load_model(paths["fold"], "cpu")
    assert meta["bn_repair"] == "calib" and meta["config"]["fold"]["levels"] == [0.5]


def test_structured_step_rejects_bad_levels(tmp_path, monkeypatch):
    monkeypatch.setattr(compress_module, "load_prepared", lambda *a, **k: train_and_test_split())
    base = tmp_path / "base.pt"
    write_base(base, small_model())
    for level in ("0", "1.0", "x"):
        argv = ["structured", "--base", str(base), "--family", "struct_l1", "--level", level]
        argv += [*OPTIONS["struct_l1"], "--data", "x.json", "--eval-batch-size", "7"]
        argv += ["--out", str(tmp_path / "s.pt")]
        with pytest.raises(CompRepsError, match="level"):
            compress_module.main(argv)
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.parametrize("method", ["struct_l1", "nexp", "fold"])
def test_round_trip_through_the_checkpoint_gives_identical_logits(tmp_path, method):
    model = small_model(5).eval()
    images = torch.randn(30, 3, 8, 8)
    record = apply_family(model, method, 0.4, images, image_size=8)
    meta = checkpoint_meta(
        model_id=f"{method}-0.4",
        arch="resnet18",
        width=4,
        in_channels=3,
        num_classes=10,
        dataset="cifar10",
        config={},
        device=torch.device("cpu"),
        precision="fp32",
        test_accuracy=0.1,
        wall_time_s=0.0,
        **{k: v for k, v in record.items() if k != "level"},
    )
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), meta)
    loaded, loaded_meta = load_model(tmp_path / "m.pt", "cpu")
    assert loaded_meta["structure"] == record["structure"]
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_structured_dump_is_in_the_base_shapes(tmp_path, structured_checkpoints):
    data, base, paths, _ = structured_checkpoints
    probe = ProbeSettings(
        size=20,
        seed=3,
        metric_layers=("layer4.1.conv2", "fc"),
        trajectory_layers=("bn1", "layer1", "layer3"),
        hidden_layer="avgpool",
        batch_size=16,
    )
    base_attrs = dump_activations(base, data, probe, tmp_path / "base.h5", device="cpu")
    assert base_attrs["dense_view"] == "none" and base_attrs["param_fraction"] == 1.0
    base_dump = read_dump(tmp_path / "base.h5")
    views = {"struct_l1": "pruned-zeros", "nexp": "pruned-zeros", "fold": "fold-unfolded"}
    for family, path in paths.items():
        attrs = dump_activations(path, data, probe, tmp_path / f"{family}.h5", device="cpu")
        dump = read_dump(tmp_path / f"{family}.h5")
        model, meta = load_model(path, "cpu")
        assert attrs["dense_view"] == views[family] and dump.attrs["family"] == family
        assert dump.attrs["param_fraction"] == meta["param_fraction"] < 1
        assert dump.attrs["macs"] == meta["macs"] < base_attrs["macs"]
        assert dump.layer_shapes == base_dump.layer_shapes
        assert {k: v.shape for k, v in dump.layers.items()} == {
            k: v.shape for k, v in base_dump.layers.items()
        }
        assert {k: v.shape for k, v in dump.weights.items()} == {
            k: v.shape for k, v in base_dump.weights.items()
        }
        # the probe's fc rows are the model's logits (dense view = same function)
        np.testing.assert_allclose(dump.layers["fc"], dump.logits[dump.probe_indices], atol=1e-4)
        removed = [c for c, src in enumerate(meta["channel_map"]["bn1"]["out"]) if src < 0]
        bn1 = dump.layers["bn1"].reshape(20, 4, -1)
        if family == "fold":
            assert not removed
        elif removed:  # removed stem channels are 0 in the dump
            assert np.all(bn1[:, removed] == 0)
        assert attrs["accuracy"] == pytest.approx(meta["test_accuracy"])
