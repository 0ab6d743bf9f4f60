"""The activations step: what it writes into the dump (schema, hooks, weights, attributes),
the probe set, its errors, and the CLI on the shipped sample. Reading and damaged dumps are
tests/test_dump.py's."""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from compreps import cli
from compreps.core.dump import read_attributes, read_dump
from compreps.core.files import CompRepsError
from compreps.core.settings import ProbeSettings
from compreps.model.activations import dump_activations, probe_indices
from compreps.model.checkpoints import save_checkpoint
from compreps.model.data.image_data import ImageData
from compreps.model.networks import build_model, compressible_modules, layer_names, normalize

SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "data" / "cifar10-sample"
# 150 test images: classes 0-4 have 10 each, classes 5-9 have 20 each, in shuffled order.
CLASS_COUNTS = [10] * 5 + [20] * 5
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
LAYERS = ["layer4.1.conv2", "fc", "bn1", "layer1"]


def probe_settings(
    size: int = 30, seed: int = 7, layers=LAYERS, batch_size: int = 16
) -> ProbeSettings:
    return ProbeSettings(
        size=size,
        seed=seed,
        metric_layers=tuple(layers[:2]),
        trajectory_layers=tuple(layers[2:]),
        batch_size=batch_size,
        hidden_layer="avgpool",
    )


@pytest.fixture(scope="module")
def tiny_data() -> ImageData:
    gen = torch.Generator().manual_seed(0)
    labels = torch.repeat_interleave(torch.arange(10), torch.tensor(CLASS_COUNTS))
    labels = labels[torch.randperm(len(labels), generator=gen)]
    images = torch.randint(0, 256, (len(labels), 3, 12, 12), dtype=torch.uint8, generator=gen)
    return ImageData(
        name="cifar10",
        train_images=images[:20].clone(),
        train_labels=labels[:20].clone(),
        test_images=images,
        test_labels=labels,
        classes=[f"c{i}" for i in range(10)],
        mean=MEAN,
        std=STD,
    )


def make_checkpoint(
    path: Path, model_id: str, seed: int, family: str | None = None, level: float | None = None
) -> torch.nn.Module:
    """A width-4 ResNet-18 with random BN statistics (so eval-mode BN is not the identity)."""
    torch.manual_seed(seed)
    model = build_model("resnet18", 4, 3, 10)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    meta = {
        "model_id": model_id,
        "arch": "resnet18",
        "width": 4,
        "in_channels": 3,
        "num_classes": 10,
        "dataset": "cifar10",
        "config": {},
        "seed": seed,
        "epochs": 0,
        "wall_time_s": 0.0,
        "device": "cpu",
        "torch_version": str(torch.__version__),
        "test_accuracy": 0.0,
    }
    if family is not None:
        meta["family"], meta["level"] = family, level
    save_checkpoint(path, model.state_dict(), meta)
    return model.eval()


@pytest.fixture(scope="module")
def base_dump(tmp_path_factory, tiny_data):
    folder = tmp_path_factory.mktemp("dump")
    model = make_checkpoint(folder / "base.pt", "base", seed=1, family="base", level=None)
    out = folder / "base.h5"
    attrs = dump_activations(folder / "base.pt", tiny_data, probe_settings(), out, device="cpu")
    return model, out, attrs, folder


def reference_logits(model, data: ImageData) -> np.ndarray:
    with torch.no_grad():
        return model(normalize(data.test_images, data.mean, data.std)).numpy()


# --------------------------------------------------------------------------- schema


def test_schema_datasets_dtypes_shapes_and_storage(base_dump, tiny_data):
    _, out, _, _ = base_dump
    n_test = len(tiny_data.test_labels)
    with h5py.File(out, "r") as h5:
        assert h5["labels"].dtype == np.int64 and h5["labels"].shape == (n_test,)
        assert h5["logits"].dtype == np.float32 and h5["logits"].shape == (n_test, 10)
        assert h5["probe/indices"].dtype == np.int64 and h5["probe/indices"].shape == (30,)
        assert h5["probe/labels"].dtype == np.int64 and h5["probe/labels"].shape == (30,)
        assert sorted(h5["probe/layers"].keys()) == sorted(
            [*LAYERS, "avgpool"]
        )  # + the hidden layer
        # width 4: stages of 4, 8, 16, 32 channels; 12x12 input -> layer4 is 2x2
        expected = {
            "layer4.1.conv2": (32, 2, 2),
            "fc": (10,),
            "bn1": (4, 12, 12),
            "layer1": (4, 12, 12),
        }
        for name, shape in expected.items():
            dset = h5["probe/layers"][name]
            assert dset.dtype == np.float32
            assert dset.shape == (30, math.prod(shape))
            assert dset.attrs["shape"].tolist() == list(shape)
            assert dset.chunks == (1, math.prod(shape))
            assert dset.compression == "lzf"
        assert h5["logits"].compression == "lzf" and h5["logits"].chunks is not None
        assert all(h5[name].fletcher32 for name in ("labels", "logits", "probe/indices"))
        np.testing.assert_array_equal(h5["labels"][...], tiny_data.test_labels.numpy())
        probe = h5["probe/indices"][...]
        np.testing.assert_array_equal(h5["probe/labels"][...], tiny_data.test_labels[probe])
    assert not list(out.parent.glob(".base.h5.*")), "temporary file left behind"


def test_attributes_and_accuracy(base_dump, tiny_data):
    model, out, attrs, folder = base_dump
    expected_logits = reference_logits(model, tiny_data)
    accuracy = float(np.mean(expected_logits.argmax(1) == tiny_data.test_labels.numpy()))
    sha = hashlib.sha256((folder / "base.pt").read_bytes()).hexdigest()
    stored = read_attributes(out)
    assert stored["model"] == "base" and stored["family"] == "base"
    assert (stored["arch"], stored["width"]) == ("resnet18", 4)
    assert math.isnan(stored["level"])
    assert stored["dataset"] == "cifar10"
    assert stored["checkpoint_sha256"] == sha
    assert stored["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert attrs["accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_logits_and_fc_capture(base_dump, tiny_data):
    model, out, _, _ = base_dump
    dump = read_dump(out)
    np.testing.assert_allclose(
        dump.logits, reference_logits(model, tiny_data), rtol=1e-5, atol=1e-5
    )
    # the fc output captured for the probe rows is exactly the stored logits of those rows
    np.testing.assert_array_equal(dump.layers["fc"], dump.logits[dump.probe_indices])


def test_captured_layers_equal_a_hand_run_of_the_submodules(base_dump, tiny_data):
    model, out, _, _ = base_dump
    dump = read_dump(out, layers=["layer4.1.conv2", "bn1", "layer1"])
    assert set(dump.layers) == {"layer4.1.conv2", "bn1", "layer1"}
    x = normalize(tiny_data.test_images[dump.probe_indices], MEAN, STD)
    with torch.no_grad():
        stem_bn = model.bn1(model.conv1(x))  # bn1's own output, before the in-place ReLU
        h1 = model.layer1(torch.relu(stem_bn))
        h = model.layer3(model.layer2(h1))
        h = model.layer4[0](h)
        block = model.layer4[1]
        conv2 = block.conv2(torch.relu(block.bn1(block.conv1(h))))
    n = len(dump.probe_indices)
    for name, expected in (("layer4.1.conv2", conv2), ("bn1", stem_bn), ("layer1", h1)):
        np.testing.assert_allclose(
            dump.layers[name], expected.reshape(n, -1).numpy(), rtol=1e-4, atol=1e-5, err_msg=name
        )
        assert dump.layer_shapes[name] == tuple(expected.shape[1:])
    assert (dump.layers["bn1"] < 0).any(), "bn1 must be captured before the in-place ReLU"


def test_weights_of_every_conv_and_linear_in_definition_order(base_dump):
    model, out, _, _ = base_dump
    dump = read_dump(out, layers=[], weights=True)
    modules = compressible_modules(model)
    assert list(dump.weights) == [name for name, _ in modules]
    assert list(dump.weights)[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert "layer2.0.downsample.0" in dump.weights and list(dump.weights)[-1] == "fc"
    for name, module in modules:
        stored = dump.weights[name]
        assert stored.dtype == np.float32 and stored.ndim == 1
        np.testing.assert_array_equal(stored, module.weight.detach().numpy().ravel())
    assert sum(w.size for w in dump.weights.values()) == sum(m.weight.numel() for _, m in modules)


# --------------------------------------------------------------------------- probe set


def test_probe_identical_across_models_and_stratified(base_dump, tiny_data):
    _, base_out, _, folder = base_dump
    make_checkpoint(folder / "prune-0.5.pt", "prune-0.5", seed=2)  # no family/level in meta
    other = folder / "prune-0.5.h5"
    attrs = dump_activations(
        folder / "prune-0.5.pt",
        tiny_data,
        probe_settings(layers=["fc"], batch_size=64),
        other,
        "cpu",
    )
    assert (attrs["family"], attrs["level"]) == ("prune", 0.5)  # from the model id
    first, second = read_dump(base_out, layers=[]), read_dump(other)
    np.testing.assert_array_equal(first.probe_indices, second.probe_indices)
    assert not np.array_equal(first.logits, second.logits)  # really two different models
    probe = first.probe_indices
    assert np.all(np.diff(probe) > 0)
    # 30 of 150 = 1/5 of every class: 2 of each 10-image class, 4 of each 20-image class
    counts = np.bincount(tiny_data.test_labels.numpy()[probe], minlength=10)
    assert counts.tolist() == [2] * 5 + [4] * 5


def test_probe_indices_is_seeded_and_bounded():
    labels = np.repeat(np.arange(4), 25)
    a, b = probe_indices(labels, 20, 3), probe_indices(labels, 20, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, probe_indices(labels, 20, 4))
    assert np.bincount(labels[a]).tolist() == [5, 5, 5, 5]
    with pytest.raises(CompRepsError, match="probe size 101 exceeds the 100 test images"):
        probe_indices(labels, 101, 3)
    with pytest.raises(CompRepsError, match="at least 1"):
        probe_indices(labels, 0, 3)


# --------------------------------------------------------------------------- errors


def test_unknown_layer_lists_valid_names(base_dump, tiny_data, tmp_path):
    _, _, _, folder = base_dump
    out = tmp_path / "x.h5"
    with pytest.raises(CompRepsError) as err:
        dump_activations(
            folder / "base.pt", tiny_data, probe_settings(layers=["fc", "layer9.conv"]), out
        )
    message = str(err.value)
    assert "'layer9.conv'" in message
    assert "valid names: " + ", ".join(layer_names("resnet18")) in message
    assert "layer4.1.conv2" in message and not out.exists()


def test_checkpoint_of_another_dataset_is_refused(base_dump, tiny_data, tmp_path):
    _, _, _, folder = base_dump
    fashion = ImageData(**{**tiny_data.__dict__, "name": "fashion_mnist"})
    with pytest.raises(CompRepsError, match="trained on 'cifar10', not on 'fashion_mnist'"):
        dump_activations(
            folder / "base.pt", fashion, probe_settings(layers=["fc"]), tmp_path / "x.h5"
        )


def test_dump_records_its_checkpoint_and_that_checkpoints_parent(base_dump, tiny_data, tmp_path):
    """Provenance: ``checkpoint_sha256`` is the dumped checkpoint's, ``parent_sha256`` the base
    checkpoint's it was made from (empty for a model made from no checkpoint)."""
    from compreps.model.checkpoints import load_checkpoint

    _, out, _, folder = base_dump
    base_sha = hashlib.sha256((folder / "base.pt").read_bytes()).hexdigest()
    assert read_attributes(out)["parent_sha256"] == ""
    state, meta = load_checkpoint(folder / "base.pt")
    meta = {**meta, "model_id": "prune-0.5", "family": "prune", "level": 0.5}
    save_checkpoint(tmp_path / "prune-0.5.pt", state, {**meta, "parent_sha256": base_sha})
    child = tmp_path / "prune-0.5.h5"
    dump_activations(tmp_path / "prune-0.5.pt", tiny_data, probe_settings(), child, device="cpu")
    stored = read_attributes(child)
    assert stored["parent_sha256"] == base_sha
    assert (
        stored["checkpoint_sha256"]
        == hashlib.sha256((tmp_path / "prune-0.5.pt").read_bytes()).hexdigest()
    )


# --------------------------------------------------------------------------- CLI, real sample


def test_cli_on_the_shipped_cifar10_sample(tmp_path, sample_summary):
    make_checkpoint(tmp_path / "quant-8.pt", "quant-8", seed=3, family="quant", level=8)
    out = tmp_path / "acts" / "quant-8.h5"
    argv = [
        "activations",
        "--checkpoint",
        str(tmp_path / "quant-8.pt"),
        "--data",
        str(sample_summary),
        "--probe-size",
        "200",
        "--probe-seed",
        "42",
        "--probe-metric-layers",
        "layer4.1.conv2",
        "fc",
        "--probe-trajectory-layers",
        "layer1",
        "fc",
        "--probe-batch-size",
        "500",
        "--probe-hidden-layer",
        "avgpool",
        "--out",
        str(out),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sample is not the full CIFAR-10
        assert cli.main(argv) == 0
    dump = read_dump(out)
    assert dump.logits.shape == (1017, 10) and len(dump.probe_indices) == 200
    assert set(dump.layers) == {"fc", "layer1", "layer4.1.conv2", "avgpool"}
    assert dump.layer_shapes["layer4.1.conv2"] == (32, 4, 4)
    assert dump.attrs["family"] == "quant" and dump.attrs["level"] == 8.0
    np.testing.assert_array_equal(dump.layers["fc"], dump.logits[dump.probe_indices])
    counts = np.bincount(dump.probe_labels, minlength=10)
    assert counts.sum() == 200 and counts.min() >= 16 and counts.max() <= 24
