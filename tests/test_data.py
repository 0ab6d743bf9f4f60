"""Dataset loaders, stratified selection and ``prepare-data``; no test touches the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
import urllib.error
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from compreps import cli
from compreps.core import data_files
from compreps.core.files import CompRepsError
from compreps.model.data import cifar10
from compreps.model.data.cifar10 import CIFAR10_URL
from compreps.model.data.datasets import load_dataset, load_prepared
from compreps.model.data.fashion_mnist import read_idx
from compreps.model.data.selection import stratified_allocation, stratified_indices

SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "data" / "cifar10-sample"
PARTIAL = "ignore:.*not the full"


@pytest.fixture(scope="module")
def sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset("cifar10", SAMPLE_ROOT)


# --------------------------------------------------------------------------- CIFAR-10 sample


def test_sample_counts_shapes_and_labels(sample):
    assert sample.name == "cifar10"
    assert tuple(sample.train_images.shape) == (5085, 3, 32, 32)
    assert tuple(sample.test_images.shape) == (1017, 3, 32, 32)
    assert sample.train_images.dtype == torch.uint8 and sample.test_images.dtype == torch.uint8
    assert sample.train_labels.dtype == torch.int64 and sample.test_labels.dtype == torch.int64
    assert sample.train_images.device.type == "cpu"
    assert sample.test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert sample.classes[:4] == ["airplane", "automobile", "bird", "cat"]
    assert len(sample.classes) == 10
    assert sample.mean == (0.4914, 0.4822, 0.4465) and sample.std == (0.2470, 0.2435, 0.2616)
    # the sample README: every class has 83-120 images per batch file
    per_file = sample.train_labels.reshape(5, 1017)
    for row in per_file:
        counts = torch.bincount(row, minlength=10)
        assert counts.min() >= 83 and counts.max() <= 120


def test_sample_warns_about_partial_counts():
    with pytest.warns(UserWarning, match=r"5085 training and 1017 test images, not the full"):
        load_dataset("cifar10", SAMPLE_ROOT)


def test_sample_image_matches_reference_unpickling(sample):
    # independent reference: plain pickle + manual plane slicing of row 7 of test_batch
    with open(SAMPLE_ROOT / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
    row = raw["data"][7]
    red, green, blue = row[:1024], row[1024:2048], row[2048:]
    image = sample.test_images[7].numpy()
    assert np.array_equal(image[0].ravel(), red)
    assert np.array_equal(image[1].ravel(), green)
    assert np.array_equal(image[2][31], blue[31 * 32 :])


# --------------------------------------------------------------------------- generated batches


def _write_batch(path: Path, rows: np.ndarray, labels: list[int]) -> None:
    """Official format: a dict with bytes keys (as Python 2 wrote them), pickle protocol 2."""
    payload = {b"batch_label": b"test", b"labels": labels, b"data": rows, b"filenames": []}
    path.write_bytes(pickle.dumps(payload, protocol=2))


def _make_cifar(root: Path, train_sizes=(3, 2, 1, 2, 2), test_size=4, seed=0) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i, size in enumerate(train_sizes, start=1):
        rows = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
        _write_batch(folder / f"data_batch_{i}", rows, [int(x) for x in rng.integers(0, 10, size)])
    rows = np.zeros((test_size, 3072), dtype=np.uint8)
    # known pixels: image 1, red (plane 0) at y=2,x=5; green at y=7,x=1; blue at y=31,x=30
    rows[1, 0 * 1024 + 2 * 32 + 5] = 200
    rows[1, 1 * 1024 + 7 * 32 + 1] = 100
    rows[1, 2 * 1024 + 31 * 32 + 30] = 50
    _write_batch(folder / "test_batch", rows, [9, 0, 4, 4][:test_size])
    meta = {b"label_names": [n.encode() for n in cifar10.CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.mark.filterwarnings(PARTIAL)
def test_generated_batch_pixel_layout(tmp_path):
    _make_cifar(tmp_path)
    loaded = load_dataset("cifar10", tmp_path)
    assert tuple(loaded.train_images.shape) == (10, 3, 32, 32)
    assert tuple(loaded.test_images.shape) == (4, 3, 32, 32)
    assert loaded.test_labels.tolist() == [9, 0, 4, 4]
    image = loaded.test_images[1]
    assert image[0, 2, 5] == 200 and image[1, 7, 1] == 100 and image[2, 31, 30] == 50
    assert int(image.sum()) == 350  # nothing else set
    assert int(loaded.test_images[0].sum()) == 0
    assert loaded.classes[-1] == "truck"


def test_generated_batch_warns_with_counts(tmp_path):
    _make_cifar(tmp_path)
    with pytest.warns(UserWarning, match=r"10 training and 4 test images"):
        load_dataset("cifar10", tmp_path)


def test_test_split_alone_skips_the_training_files(tmp_path):
    folder = _make_cifar(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = load_dataset("cifar10", tmp_path)
    for name in ("data_batch_1", "data_batch_2"):  # never opened when only the test split is read
        (folder / name).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"holds 4 test images, not the full 10000:"):
        test_only = load_dataset("cifar10", tmp_path, splits=("test",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _make_fashion(tmp_path / "fashion-mnist")
        fashion = load_dataset("fashion_mnist", tmp_path, splits=["test"])
    assert test_only.train_images is None and test_only.train_labels is None
    assert torch.equal(test_only.test_images, both.test_images)
    assert torch.equal(test_only.test_labels, both.test_labels)
    assert fashion.train_images is None and fashion.test_labels.tolist() == [9, 8, 1]
    with pytest.raises(CompRepsError, match="splits"):
        load_dataset("cifar10", tmp_path, splits=("validation",))


def test_batch_with_foreign_global_is_refused(tmp_path):
    folder = _make_cifar(tmp_path)
    (folder / "data_batch_2").write_bytes(pickle.dumps(OrderedDict(data=1), protocol=2))
    with pytest.raises(CompRepsError, match=r"data_batch_2 is not a valid CIFAR-10"):
        load_dataset("cifar10", tmp_path)


def test_incomplete_folder_names_missing_files(tmp_path):
    folder = _make_cifar(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(CompRepsError, match=r"lacks data_batch_4"):
        load_dataset("cifar10", tmp_path, download=True)


# --------------------------------------------------------------------------- missing / download


def _assert_clear_missing_message(message: str, folder: Path) -> None:
    assert str(folder) in message
    assert CIFAR10_URL in message
    assert "--configfile presets/demo.yaml" in message
    assert "data/cifar10-sample" in message
    assert "\n" not in message


def test_missing_offline_without_download(tmp_path):
    with pytest.raises(CompRepsError) as info:
        load_dataset("cifar10", tmp_path / "nowhere", download=False)
    _assert_clear_missing_message(str(info.value), tmp_path / "nowhere" / "cifar-10-batches-py")


def test_download_failure_gives_one_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", offline)
    with pytest.raises(CompRepsError) as info:
        load_dataset("cifar10", tmp_path, download=True)
    message = str(info.value)
    _assert_clear_missing_message(message, tmp_path / "cifar-10-batches-py")
    assert "download failed" in message and "name resolution" in message
    assert list(tmp_path.iterdir()) == []  # the temporary download folder is gone


def _archive_of(folder: Path, extra: tuple[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
        if extra is not None:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            archive.addfile(info, io.BytesIO(extra[1]))
    return buffer.getvalue()


def _serve(monkeypatch, payload: bytes, md5: str | None = None) -> None:
    monkeypatch.setattr(cifar10, "_fetch_url", lambda url, dest: Path(dest).write_bytes(payload))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", md5 or hashlib.md5(payload).hexdigest())


@pytest.mark.filterwarnings(PARTIAL)
def test_download_extracts_checked_archive(tmp_path, monkeypatch):
    source = _make_cifar(tmp_path / "source")
    _serve(monkeypatch, _archive_of(source))
    root = tmp_path / "root"
    loaded = load_dataset("cifar10", root, download=True)
    assert loaded.test_images[1, 0, 2, 5] == 200
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_download_with_wrong_md5_leaves_nothing(tmp_path, monkeypatch):
    source = _make_cifar(tmp_path / "source")
    _serve(monkeypatch, _archive_of(source), md5="0" * 32)
    root = tmp_path / "root"
    with pytest.raises(CompRepsError, match=r"md5 .* expected 0{32}"):
        load_dataset("cifar10", root, download=True)
    assert list(root.iterdir()) == []


def test_download_refuses_path_traversal(tmp_path, monkeypatch):
    source = _make_cifar(tmp_path / "source")
    _serve(monkeypatch, _archive_of(source, extra=("cifar-10-batches-py/../../evil", b"x")))
    root = tmp_path / "root"
    with pytest.raises(CompRepsError, match=r"unsafe or unexpected entry"):
        load_dataset("cifar10", root, download=True)
    assert list(root.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_unknown_dataset_lists_allowed_names():
    with pytest.raises(CompRepsError, match=r"unknown dataset 'mnist'; allowed: cifar10, fashion"):
        load_dataset("mnist", "data")


# --------------------------------------------------------------------------- Fashion-MNIST / IDX


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _make_fashion(folder: Path, n_train=5, n_test=3, compress=False) -> None:
    folder.mkdir(parents=True)
    train = np.zeros((n_train, 28, 28), dtype=np.uint8)
    train[4, 27, 3] = 222  # image 4, row 27, column 3
    test = np.full((n_test, 28, 28), 7, dtype=np.uint8)
    files = {
        "train-images-idx3-ubyte": _idx_bytes(train),
        "train-labels-idx1-ubyte": _idx_bytes(np.arange(n_train, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": _idx_bytes(test),
        "t10k-labels-idx1-ubyte": _idx_bytes(np.array([9, 8, 1][:n_test], dtype=np.uint8)),
    }
    for name, payload in files.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)


@pytest.mark.filterwarnings(PARTIAL)
@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_from_tiny_idx_files(tmp_path, compress):
    _make_fashion(tmp_path / "fashion-mnist", compress=compress)
    loaded = load_dataset("fashion_mnist", tmp_path)
    assert tuple(loaded.train_images.shape) == (5, 1, 28, 28)
    assert tuple(loaded.test_images.shape) == (3, 1, 28, 28)
    assert loaded.train_images.dtype == torch.uint8 and loaded.train_labels.dtype == torch.int64
    assert loaded.train_images[4, 0, 27, 3] == 222 and int(loaded.train_images.sum()) == 222
    assert loaded.train_labels.tolist() == [0, 1, 2, 3, 4]
    assert loaded.test_labels.tolist() == [9, 8, 1]
    assert loaded.mean == (0.2860,) and loaded.std == (0.3530,)
    assert loaded.classes[9] == "Ankle boot" and len(loaded.classes) == 10


def test_read_idx_wider_types(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(values, code=0x0C))
    parsed = read_idx(tmp_path / "a.idx")
    assert parsed.shape == (2, 3) and parsed.tolist() == values.tolist()


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    good = _idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    (tmp_path / "magic").write_bytes(b"\x00\x01" + good[2:])
    (tmp_path / "short").write_bytes(good[:-5])
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CompRepsError, match=r"not an IDX file \(bad magic number 00010803\)"):
        read_idx(tmp_path / "magic")
    with pytest.raises(CompRepsError, match=r"malformed IDX file: header says \(2, 28, 28\)"):
        read_idx(tmp_path / "short")
    with pytest.raises(CompRepsError, match=r"cannot read IDX file"):
        read_idx(tmp_path / "bad.gz")


def test_fashion_mnist_missing_names_folders_and_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data_files, "FASHION_SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(CompRepsError) as info:
        load_dataset("fashion_mnist", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "fashion-mnist") in message and str(tmp_path / "system") in message
    assert "train-images-idx3-ubyte" in message and "dataset-fashion-mnist" in message


@pytest.mark.skipif(
    not data_files.FASHION_SYSTEM_DIR.is_dir(),
    reason="Debian package dataset-fashion-mnist absent",
)
def test_fashion_mnist_debian_package(tmp_path):
    loaded = load_dataset("fashion_mnist", tmp_path)  # empty root: falls back to the package
    assert tuple(loaded.train_images.shape) == (60000, 1, 28, 28)
    assert tuple(loaded.test_images.shape) == (10000, 1, 28, 28)
    assert torch.bincount(loaded.train_labels).tolist() == [6000] * 10
    assert torch.bincount(loaded.test_labels).tolist() == [1000] * 10
    # reference reader from the dataset's own utils/mnist_reader.py: fixed offsets 8 and 16
    with gzip.open(data_files.FASHION_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), dtype=np.uint8, offset=8)
    with gzip.open(data_files.FASHION_SYSTEM_DIR / "t10k-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    assert np.array_equal(loaded.test_labels.numpy(), labels)
    assert np.array_equal(loaded.test_images[:, 0].numpy(), images)
    # the images' mean/std in [0, 1] units match the constants to 3 decimals
    pixels = loaded.train_images.float() / 255
    assert abs(pixels.mean().item() - 0.2860) < 1e-3 and abs(pixels.std().item() - 0.3530) < 1e-3


# --------------------------------------------------------------------------- stratified selection


def test_allocation_hand_computed():
    # quotas 5, 3, 1.5, 0.5: floors 5,3,1,0; the leftover slot goes to class 2 (tie, lower
    # class first); class 3 then needs one, taken from class 2 (most above its quota).
    assert stratified_allocation(np.array([50, 30, 15, 5]), 10).tolist() == [5, 3, 1, 1]
    assert stratified_allocation(np.array([50, 30, 15, 5]), 3).tolist() == [2, 1, 0, 0]
    assert stratified_allocation(np.array([1, 1, 1]), 3).tolist() == [1, 1, 1]


def test_every_present_class_kept_when_possible():
    labels = np.concatenate([np.zeros(991, dtype=np.int64), np.arange(1, 10)])
    chosen = stratified_indices(labels, 10, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [1] * 10
    assert np.array_equal(chosen[1:], np.arange(991, 1000))


def test_stratified_indices_size_uniqueness_proportions():
    rng = np.random.default_rng(123)
    counts = np.array([1200, 700, 350, 90, 13, 1])
    labels = rng.permutation(np.repeat(np.arange(6) * 3 + 2, counts))  # labels 2, 5, 8, ...
    assert np.bincount(labels[stratified_indices(labels, 6, seed=0)]).tolist()[2::3] == [1] * 6
    for n_select in (97, 500, 2353, 2354):
        chosen = stratified_indices(labels, n_select, seed=42)
        assert chosen.dtype == np.int64 and chosen.size == n_select
        assert np.unique(chosen).size == n_select and np.all(np.diff(chosen) > 0)
        got = np.array([(labels[chosen] == c).sum() for c in np.arange(6) * 3 + 2])
        quota = n_select * counts / counts.sum()
        assert np.all(got >= 1)
        assert np.all(np.abs(got - quota)[counts > 1] <= 1), (n_select, got, quota)


def test_stratified_indices_seeds():
    labels = np.repeat(np.arange(10), 100)
    first = stratified_indices(labels, 150, seed=7)
    assert np.array_equal(first, stratified_indices(labels, 150, seed=7))
    assert not np.array_equal(first, stratified_indices(labels, 150, seed=8))


def test_stratified_indices_uniform_within_class():
    labels = np.repeat([0, 1], 10)
    hits = np.zeros(20)
    for seed in range(2000):
        hits[stratified_indices(labels, 10, seed)] += 1
    assert np.all(np.abs(hits / 2000 - 0.5) < 0.05)  # each example drawn ~half the time


def test_stratified_indices_rejects_bad_sizes():
    with pytest.raises(CompRepsError, match="cannot select 11 of 10"):
        stratified_indices(np.zeros(10), 11, seed=0)
    with pytest.raises(CompRepsError, match="cannot select 0 of 10"):
        stratified_indices(np.zeros(10), 0, seed=0)


# --------------------------------------------------------------------------- prepare-data CLI


@pytest.mark.filterwarnings(PARTIAL)
def test_prepare_data_summary_on_sample(tmp_path, capsys):
    out = tmp_path / "dataset.json"
    rc = cli.main(
        [
            "prepare-data",
            "--data-dataset",
            "cifar10",
            "--data-root",
            str(SAMPLE_ROOT),
            "--data-download",
            "false",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["n_train"] == 5085 and summary["n_test"] == 1017
    assert summary["image_shape"] == [3, 32, 32]
    assert sum(summary["train_class_counts"].values()) == 5085
    assert sum(summary["test_class_counts"].values()) == 1017
    test_batch = str(SAMPLE_ROOT / "cifar-10-batches-py" / "test_batch")
    assert summary["source_files"][test_batch]["md5"] == "4f967b174de4acd458e39d6b483b7628"
    assert len(summary["source_files"]) == 7
    assert "5085 train / 1017 test" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["dataset.json"]  # no temp files left


def test_prepare_data_missing_prints_one_line(tmp_path, capsys):
    rc = cli.main(
        [
            "prepare-data",
            "--data-dataset",
            "cifar10",
            "--data-root",
            str(tmp_path),
            "--data-download",
            "false",
            "--out",
            str(tmp_path / "d.json"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "presets/demo.yaml" in err
    assert not (tmp_path / "d.json").exists()


@pytest.mark.filterwarnings(PARTIAL)
def test_steps_load_the_data_the_summary_names(tmp_path, sample_summary):
    test_only = load_prepared(sample_summary, splits=("test",))
    assert test_only.name == "cifar10" and len(test_only.test_labels) == 1017
    assert test_only.train_images is None
    with pytest.raises(CompRepsError, match=r"does not exist \(rule 'prepare_data'"):
        load_prepared(tmp_path / "absent.json", splits=("test",))
    (tmp_path / "bad.json").write_text('{"dataset": "cifar10"}')
    with pytest.raises(CompRepsError, match=r"bad.json is unreadable .*'root'"):
        load_prepared(tmp_path / "bad.json", splits=("test",))
