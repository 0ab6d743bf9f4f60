"""The HDF5 dump schema: round trip, storage filters, and one clear error for damaged files."""

from __future__ import annotations

import math
import random

import h5py
import numpy as np
import pytest
from conftest import FAKE_LAYERS, FAKE_WEIGHTS, fake_dump

from compreps.core.dump import ATTRIBUTES, Dump, read_attributes, read_dump, write_dump
from compreps.core.files import CompRepsError


def test_round_trip_keeps_every_array_dtype_and_attribute(tmp_path):
    dump = fake_dump("prune-0.5", 0.75, seed=3)
    path = tmp_path / "prune-0.5.h5"
    write_dump(path, dump)
    back = read_dump(path, weights=True)
    assert back.path == path
    for name in ("labels", "logits", "probe_indices", "probe_labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(dump, name))
    assert back.labels.dtype == np.int64 and back.logits.dtype == np.float32
    assert list(back.layers) == list(FAKE_LAYERS)
    for name, values in dump.layers.items():
        np.testing.assert_array_equal(back.layers[name], values)
        assert back.layer_shapes[name] == FAKE_LAYERS[name]
    # weights come back in definition (write) order, not HDF5's alphabetical order
    assert list(back.weights) == list(FAKE_WEIGHTS) == ["conv1", "layer1.0.conv1", "fc"]
    for name, values in dump.weights.items():
        assert back.weights[name].dtype == np.float32 and back.weights[name].shape == (
            FAKE_WEIGHTS[name],
        )
        np.testing.assert_array_equal(back.weights[name], values)
    assert back.attrs == dump.attrs
    assert read_attributes(path) == dump.attrs


def test_base_level_is_nan_and_extra_attributes_survive(tmp_path):
    dump = fake_dump("base")
    dump.attrs["sparsity"] = 0.0
    write_dump(tmp_path / "base.h5", dump)
    attrs = read_attributes(tmp_path / "base.h5")
    assert math.isnan(attrs["level"]) and attrs["sparsity"] == 0.0
    assert set(ATTRIBUTES) <= set(attrs)


def test_every_dataset_is_chunked_lzf_and_fletcher32(tmp_path):
    path = tmp_path / "base.h5"
    write_dump(path, fake_dump("base"))
    datasets = []
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None
        )
        assert len(datasets) == 4 + len(FAKE_LAYERS) + len(FAKE_WEIGHTS)
        for dset in datasets:
            assert dset.chunks is not None and dset.fletcher32 and dset.compression == "lzf"
        assert h5["probe/layers/fc"].chunks == (1, 10)  # one probe row per chunk


def test_selected_layers_and_no_weights_by_default(tmp_path, write_fake_dump):
    path = write_fake_dump("quant-4")
    back = read_dump(path, layers=["fc"])
    assert list(back.layers) == ["fc"] and back.weights == {}
    assert read_dump(path, layers=[]).layers == {}


def test_writing_refuses_missing_attributes_and_inconsistent_shapes(tmp_path):
    dump = fake_dump("base")
    del dump.attrs["width"]
    with pytest.raises(CompRepsError, match="lacks attribute.*width"):
        write_dump(tmp_path / "base.h5", dump)
    dump = fake_dump("base")
    dump.layer_shapes["fc"] = (3, 3)
    with pytest.raises(CompRepsError, match="layer fc: shape attribute"):
        write_dump(tmp_path / "base.h5", dump)
    assert not (tmp_path / "base.h5").exists()


def _flip_byte_in_chunk(path, dataset: str) -> None:
    with h5py.File(path, "r") as h5:
        info = h5[dataset].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("dataset", ["logits", "probe/layers/fc", "weights/layer1.0.conv1"])
def test_flipped_byte_in_a_chunk_is_an_error_naming_file_and_rule(write_fake_dump, dataset):
    path = write_fake_dump("coreset-0.5")
    _flip_byte_in_chunk(path, dataset)
    with pytest.raises(CompRepsError) as err:
        read_dump(path, weights=True)
    message = str(err.value)
    assert str(path) in message and "rule 'activations'" in message
    assert "truncated or corrupt" in message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_file_gives_one_clear_error(write_fake_dump, damage):
    good = write_fake_dump("base")
    bad = good.with_name("quant-4.h5")
    content = good.read_bytes()
    bad.write_bytes(
        {
            "truncated": content[: len(content) // 2],
            "garbage": random.Random(0).randbytes(4096),
            "empty": b"",
        }[damage]
    )
    for reader in (read_dump, read_attributes):
        with pytest.raises(CompRepsError) as err:
            reader(bad)
        message = str(err.value)
        assert str(bad) in message and "'activations'" in message
        assert "truncated or corrupt" in message


def test_missing_dataset_layer_weights_and_file(write_fake_dump, tmp_path):
    path = write_fake_dump("coreset-0.5")
    with h5py.File(path, "a") as h5:
        del h5["logits"]
    with pytest.raises(
        CompRepsError, match=r"coreset-0\.5\.h5 is truncated or corrupt .*'logits'.*'activations'"
    ):
        read_dump(path)
    path = write_fake_dump("base")
    with pytest.raises(
        CompRepsError, match=r"no activations for layer\(s\) layer3 .*'activations'"
    ):
        read_dump(path, layers=["fc", "layer3"])
    with h5py.File(path, "a") as h5:
        del h5["weights"]
    assert read_dump(path).weights == {}
    with pytest.raises(CompRepsError, match=r"holds no weights.*rule 'activations'"):
        read_dump(path, weights=True)
    with pytest.raises(CompRepsError, match="does not exist"):
        read_dump(tmp_path / "absent.h5")


def test_missing_attribute_and_bad_probe_are_damage(write_fake_dump):
    path = write_fake_dump("prune-0.1")
    with h5py.File(path, "a") as h5:
        del h5.attrs["checkpoint_sha256"]
    with pytest.raises(CompRepsError, match="missing attribute.*checkpoint_sha256"):
        read_attributes(path)
    path = write_fake_dump("prune-0.2")
    with h5py.File(path, "a") as h5:
        h5["probe/indices"][0] = 10_000
    with pytest.raises(CompRepsError, match="probe indices outside the test set"):
        read_dump(path)


def test_empty_probe_set_round_trips(tmp_path):
    dump = Dump(
        labels=np.zeros(0, np.int64),
        logits=np.zeros((0, 3), np.float32),
        probe_indices=np.zeros(0, np.int64),
        probe_labels=np.zeros(0, np.int64),
        layers={},
        layer_shapes={},
        weights={},
        attrs=fake_dump("base").attrs,
    )
    write_dump(tmp_path / "base.h5", dump)
    back = read_dump(tmp_path / "base.h5")
    assert back.logits.shape == (0, 3) and back.layers == {}
