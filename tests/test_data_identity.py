"""Data identity: ``prepare-data`` checks every data file's md5 (official sums, or a copy's own
manifest such as the shipped sample's), refuses a data file copied over another and test images
that are also training images; the data checksums file moves only when the data change."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from compreps import cli
from compreps.core import data_files
from compreps.model.data.cifar10 import read_cifar10_batch

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "cifar10-sample"
BATCHES = data_files.CIFAR10_DIR
PARTIAL = "ignore:.*not the full"


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A private copy of the shipped sample, its manifest included."""
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root)
    return root


def prepare(root: Path, capsys, dataset: str = "cifar10") -> tuple[int, list[str]]:
    """Run ``prepare-data``; returns its exit status and the lines of its error message."""
    out = root.parent / "dataset.json"
    out.unlink(missing_ok=True)
    argv = ["prepare-data", "--data-dataset", dataset, "--data-root", str(root)]
    rc = cli.main([*argv, "--data-download", "false", "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "UserWarning" not in line and "load_" not in line]
    first = next((i for i, line in enumerate(lines) if "error:" in line), len(lines))
    assert rc == 0 or not out.exists()
    return rc, lines[first:]


def write_manifest(root: Path, folder: str = BATCHES) -> None:
    """A copy's own manifest, as `md5sum *` writes it."""
    lines = [
        f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.name}"
        for path in sorted((root / folder).iterdir())
    ]
    (root / f"{folder}.md5").write_text("\n".join(lines) + "\n")


@pytest.mark.filterwarnings(PARTIAL)
def test_the_shipped_sample_passes_against_its_manifest(sample_copy, capsys):
    assert data_files.expected_sums("cifar10", SAMPLE)[1].endswith("cifar-10-batches-py.md5")
    assert prepare(sample_copy, capsys) == (0, [])


@pytest.mark.filterwarnings(PARTIAL)
def test_a_flipped_pixel_byte_is_refused(sample_copy, capsys):
    path = sample_copy / BATCHES / "data_batch_3"
    images, _ = read_cifar10_batch(path)
    raw = bytearray(path.read_bytes())
    offset = bytes(raw).find(images[500].tobytes())  # the pixels of image 500
    assert offset > 0
    raw[offset + 1234] ^= 0x01
    path.write_bytes(bytes(raw))
    damaged, _ = read_cifar10_batch(path)  # still a valid batch: only the md5 tells
    assert int((damaged != images).sum()) == 1
    expected = "5b1b50e3768c0263361c3b6c15602e5a"
    found = hashlib.md5(bytes(raw)).hexdigest()
    rc, lines = prepare(sample_copy, capsys)
    assert rc == 1 and len(lines) == 1, lines
    assert lines[0] == (
        f"compreps prepare-data: error: {path}: md5 {found}, expected {expected} "
        f"({sample_copy}/{BATCHES}.md5): the file is damaged or not cifar10's; download it "
        f"again (delete {sample_copy / BATCHES} and set data.download: true), or point "
        "data.root at an intact copy"
    )


@pytest.mark.filterwarnings(PARTIAL)
@pytest.mark.parametrize(
    ("source", "target"),
    [("data_batch_2", "test_batch"), ("data_batch_1", "data_batch_4")],
    ids=["test-batch-replaced-by-a-training-batch", "training-batch-copied-over-another"],
)
def test_a_batch_copied_over_another_is_refused(sample_copy, capsys, source, target):
    folder = sample_copy / BATCHES
    shutil.copy2(folder / source, folder / target)
    rc, lines = prepare(sample_copy, capsys)
    assert rc == 1
    assert lines[0].startswith(
        f"compreps prepare-data: error: {folder / target} is identical to {folder / source} (md5 "
    )
    assert "one data file was copied over another; restore it: download it again" in lines[0]
    assert any(line.startswith(f"{folder / target}: md5 ") for line in lines)


@pytest.mark.filterwarnings(PARTIAL)
def test_copied_batch_is_refused_even_with_a_matching_manifest(sample_copy, capsys):
    """The copy check does not rely on the sums: a manifest rewritten after the copy passes
    the md5 check, the copy is still refused."""
    folder = sample_copy / BATCHES
    shutil.copy2(folder / "data_batch_5", folder / "data_batch_3")
    write_manifest(sample_copy)
    rc, lines = prepare(sample_copy, capsys)
    assert rc == 1 and len(lines) == 1
    assert f"{folder / 'data_batch_5'} is identical to {folder / 'data_batch_3'}" in lines[0]


@pytest.mark.filterwarnings(PARTIAL)
def test_test_images_that_are_training_images_are_refused(sample_copy, capsys):
    """Ten test images replaced by training images (a new, internally valid test batch with
    its own manifest): no file is a copy and every sum matches, the overlap is refused."""
    folder = sample_copy / BATCHES
    test_images, test_labels = read_cifar10_batch(folder / "test_batch")
    train_images, train_labels = read_cifar10_batch(folder / "data_batch_4")
    test_images[100:110], test_labels[100:110] = train_images[:10], train_labels[:10]
    batch = {"data": test_images.reshape(len(test_labels), -1), "labels": test_labels.tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))
    write_manifest(sample_copy)
    rc, lines = prepare(sample_copy, capsys)
    assert rc == 1 and len(lines) == 1, lines
    assert lines[0].startswith(
        f"compreps prepare-data: error: {folder / 'test_batch'}: 10 of 1017 test images are "
        "byte-identical to training images (first: test image 100 = training image 3051): "
        "the test split overlaps the training split; download it again"
    )


@pytest.mark.filterwarnings(PARTIAL)
def test_a_copy_without_manifest_is_checked_against_the_official_sums(sample_copy, capsys):
    (sample_copy / f"{BATCHES}.md5").unlink()
    rc, lines = prepare(sample_copy, capsys)
    assert rc == 1 and len(lines) == 6  # every batch differs from the official CIFAR-10
    path = sample_copy / BATCHES / "data_batch_1"
    assert lines[0].startswith(
        f"compreps prepare-data: error: {path}: md5 be4343ad975c1297a75454a6a4a0ce15, "
        "expected c99cafc152244af753f735de768cd75f (the official CIFAR-10 sums)"
    )
    assert lines[0].endswith(f"(a copy of your own: list its md5 sums in {path.parent}.md5)")
    assert "batches.meta" not in "".join(lines)  # the sample's meta file is the official one


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _tiny_fashion(root: Path, overlap: int = 0) -> Path:
    folder = root / data_files.FASHION_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 256, (6, 28, 28))
    test[:overlap] = train[5 : 5 + overlap]
    arrays = {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": np.arange(6) % 10,
    }
    for name, array in arrays.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(_idx(array)))
    return folder


@pytest.mark.filterwarnings(PARTIAL)
def test_fashion_mnist_files_are_checked_like_cifar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data_files, "FASHION_SYSTEM_DIR", tmp_path / "no-such-folder")
    folder = _tiny_fashion(tmp_path / "root")
    rc, lines = prepare(tmp_path / "root", capsys, "fashion_mnist")
    assert rc == 1 and len(lines) == 4
    assert lines[0].startswith(
        f"compreps prepare-data: error: {folder}/train-images-idx3-ubyte.gz: md5 "
    )
    assert "expected f4a8712d7a061bf5bd6d2ca38dc4d50a (the official Fashion-MNIST sums)" in lines[0]
    manifest = [f"{data_files.content_md5(path)}  {path.name}" for path in sorted(folder.iterdir())]
    (tmp_path / "root" / "fashion-mnist.md5").write_text("\n".join(manifest) + "\n")
    assert prepare(tmp_path / "root", capsys, "fashion_mnist") == (0, [])
    shutil.rmtree(tmp_path / "root")
    folder = _tiny_fashion(tmp_path / "root", overlap=2)
    (tmp_path / "root" / "fashion-mnist.md5").write_text(
        "".join(f"{data_files.content_md5(p)}  {p.name}\n" for p in sorted(folder.iterdir()))
    )
    rc, lines = prepare(tmp_path / "root", capsys, "fashion_mnist")
    assert rc == 1
    assert "2 of 6 test images are byte-identical to training images" in lines[0]


@pytest.mark.skipif(
    not data_files.FASHION_SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_the_installed_fashion_mnist_matches_the_official_sums():
    sums, official = data_files.verify_sums("fashion_mnist", "/nonexistent")
    assert official and sorted(sums.values()) == sorted(data_files.FASHION_MD5.values())


def test_data_checksums_file_moves_only_when_the_data_change(sample_copy, tmp_path):
    out = tmp_path / "results" / "sources.md5"
    data_files.refresh_source_sums("cifar10", sample_copy, out)
    text, stamp = out.read_text(), out.stat().st_mtime_ns
    assert f"4f967b174de4acd458e39d6b483b7628  {sample_copy / BATCHES / 'test_batch'}" in text
    time.sleep(0.01)
    test_batch = sample_copy / BATCHES / "test_batch"
    os.utime(test_batch)  # touched, same content
    data_files.refresh_source_sums("cifar10", sample_copy, out)
    assert out.stat().st_mtime_ns == stamp
    shutil.copy2(sample_copy / BATCHES / "data_batch_1", test_batch)  # replaced, old mtime
    data_files.refresh_source_sums("cifar10", sample_copy, out)
    assert out.stat().st_mtime_ns > stamp
    assert f"be4343ad975c1297a75454a6a4a0ce15  {test_batch}" in out.read_text()
