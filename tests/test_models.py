"""ResNet-18 (CIFAR variant): shapes, the paper's module names; checkpoints: round trip,
content hash, loading errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.checkpoints import (
    content_sha256,
    load_checkpoint,
    load_model,
    save_checkpoint,
    verify_base_checkpoint,
)
from compreps.model.networks import build_model, layer_names


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 28)])
def test_shapes_for_three_and_one_channel_input(channels, size):
    model = build_model("resnet18", 4, channels, 10).eval()
    captured = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.shape)
        )
        for name in ("conv1", "layer1", "layer2", "layer3", "layer4", "layer4.1.conv2", "fc")
    ]
    with torch.no_grad():
        logits = model(torch.zeros(2, channels, size, size))
    for hook in hooks:
        hook.remove()
    assert logits.shape == (2, 10)
    half = (size + 1) // 2  # stride-2 3x3 convs with padding 1: ceil(size / 2)
    quarter = (half + 1) // 2
    eighth = (quarter + 1) // 2
    assert captured["conv1"] == (2, 4, size, size)  # 3x3 stem, stride 1, no max-pool
    assert captured["layer1"] == (2, 4, size, size)
    assert captured["layer2"] == (2, 8, half, half)
    assert captured["layer3"] == (2, 16, quarter, quarter)
    assert captured["layer4"] == (2, 32, eighth, eighth)
    assert captured["layer4.1.conv2"] == (2, 32, eighth, eighth)
    assert captured["fc"] == (2, 10)


def test_paper_width_has_resnet18_parameter_count_and_names():
    model = build_model("resnet18", 64, 3, 10)
    # CIFAR ResNet-18: 11,173,962 parameters (torchvision's ImageNet stem has 7x7 and 1000 classes)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    names = dict(model.named_modules())
    assert isinstance(names["layer4.1.conv2"], nn.Conv2d)
    assert names["layer4.1.conv2"].out_channels == 512
    assert isinstance(names["fc"], nn.Linear) and names["fc"].in_features == 512
    assert names["conv1"].kernel_size == (3, 3) and names["conv1"].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert isinstance(names["layer2.0.downsample.0"], nn.Conv2d)
    assert "layer1.0.downsample" not in names  # no shape change in the first stage


def test_layer_names_are_width_independent_and_exclude_shared_relu():
    names = layer_names("resnet18")
    model = build_model("resnet18", 3, 1, 7)
    assert names == [n for n, m in model.named_modules() if n and not isinstance(m, nn.ReLU)]
    assert {"layer1", "layer4.1.conv2", "fc"} <= set(names)
    assert not any(name.endswith("relu") for name in names)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="resnet18"):
        build_model("vgg16", 4, 3, 10)


def meta(width=4):
    return {
        "model_id": "base",
        "family": "base",
        "arch": "resnet18",
        "width": width,
        "in_channels": 3,
        "num_classes": 10,
    }


def test_load_model_round_trip(tmp_path):
    model = build_model("resnet18", 4, 3, 10).eval()
    written = save_checkpoint(tmp_path / "base.pt", model.state_dict(), meta())
    loaded, loaded_meta = load_model(tmp_path / "base.pt", "cpu")
    assert loaded_meta == written == {**meta(), "content_sha256": written["content_sha256"]}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded_meta["width"] == 4 and not loaded.training


def test_truncated_checkpoint_names_file_and_rule(tmp_path):
    path = tmp_path / "prune-0.5.pt"
    save_checkpoint(path, build_model("resnet18", 4, 3, 10).state_dict(), meta())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CompRepsError) as info:
        load_model(path, "cpu")
    message = str(info.value)
    assert str(path) in message and "truncated or corrupt" in message and "'prune'" in message


def test_checkpoint_whose_weights_do_not_fit_its_metadata(tmp_path):
    path = tmp_path / "coreset-0.5.pt"
    save_checkpoint(path, build_model("resnet18", 8, 3, 10).state_dict(), meta(width=4))
    with pytest.raises(CompRepsError, match="train_coreset") as info:
        load_model(path, "cpu")
    message = str(info.value)
    assert "does not fit `resnet18 width 4`" in message and "looks like width 8" in message
    assert "\n" not in message and "... " in message  # the first mismatches, the rest counted


def test_content_hash_covers_names_dtypes_and_values():
    state = {"a": torch.arange(4, dtype=torch.float32), "b": torch.zeros(2, 2)}
    digest = content_sha256(state)
    assert content_sha256(dict(reversed(state.items()))) == digest  # key order is irrelevant
    assert content_sha256({**state, "a": state["a"].double()}) != digest
    assert content_sha256({"c": state["a"], "b": state["b"]}) != digest
    assert content_sha256({**state, "b": state["b"].reshape(4)}) != digest
    changed = state["a"].clone()
    changed[2] = torch.nextafter(changed[2], torch.tensor(9.0))  # one ulp: one flipped bit
    assert content_sha256({**state, "a": changed}) != digest


def test_a_flipped_byte_in_the_tensor_data_names_file_and_rule(tmp_path):
    path = tmp_path / "quant-4.pt"
    state = build_model("resnet18", 4, 3, 10).state_dict()
    save_checkpoint(path, state, meta())
    raw = bytearray(path.read_bytes())
    tensor_bytes = state["layer3.0.conv2.weight"].numpy().tobytes()
    at = raw.find(tensor_bytes)
    assert at > 0  # stored uncompressed: the bytes are in the file as they are in memory
    raw[at + len(tensor_bytes) // 2] ^= 0x01
    path.write_bytes(raw)
    for read in (lambda: load_checkpoint(path), lambda: load_model(path, "cpu")):
        with pytest.raises(CompRepsError) as info:
            read()
        message = str(info.value)
        assert str(path) in message and "content hash" in message and "'quantize'" in message
    with pytest.raises(CompRepsError, match="content hash"):  # also when imported as base
        verify_base_checkpoint(path, "resnet18", 4, 3, 10)


def unfit_checkpoint(path):
    """Width-8 weights recorded as width 4: every tensor mismatches (torch would list ~60)."""
    save_checkpoint(path, build_model("resnet18", 8, 3, 10).state_dict(), meta(width=4))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda path: path.write_bytes(b"not a checkpoint"), "quant-4.pt is truncated or corrupt"),
        (unfit_checkpoint, "does not fit `resnet18 width 4`"),
    ],
)
def test_cli_reports_a_bad_checkpoint_in_a_few_lines(tmp_path, sample_summary, damage, expected):
    path = tmp_path / "quant-4.pt"
    damage(path)
    command = [sys.executable, "-m", "compreps", "activations", "--checkpoint", str(path)]
    command += ["--data", str(sample_summary), "--probe-size", "10", "--probe-seed", "1"]
    command += ["--probe-metric-layers", "fc", "--probe-trajectory-layers", "fc"]
    command += [
        "--probe-batch-size",
        "50",
        "--probe-hidden-layer",
        "avgpool",
        "--out",
        str(tmp_path / "quant-4.h5"),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 3
    assert expected in proc.stderr and "'quantize'" in proc.stderr
    assert not (tmp_path / "quant-4.h5").exists()
