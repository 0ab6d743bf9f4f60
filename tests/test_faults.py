"""Fault injection: every bad configuration and every damaged file stops with a clear message.

The tables of tests/fault_table.py are the regression record of docs/faults.md (generated from
them by tests/faults_doc.py): each bad config overlay (merged over config.yaml and
presets/demo.yaml, as `snakemake -n --configfile presets/demo.yaml bad.yaml` merges them) with
the exact first line of its message, which must name the file and the key. Damaged files: bytes
flipped at 20 seeded positions inside the data of a checkpoint and of an activation dump must
each raise CompRepsError on load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, copy_workflow, snakemake_env
from fault_table import BAD_CONFIGS, DEMO

from compreps.core import data_files
from compreps.core.config import config_problems, read_config
from compreps.core.files import CompRepsError


@pytest.fixture(scope="module")
def fault_dir(tmp_path_factory) -> Path:
    """A working directory like the repository root (config.yaml, the demo preset, the data)
    plus a partial and a garbage CIFAR-10 folder."""
    root = tmp_path_factory.mktemp("faults")
    (root / "presets").mkdir()
    shutil.copy2(ROOT / "config.yaml", root / "config.yaml")
    shutil.copy2(ROOT / DEMO, root / DEMO)
    (root / "data").symlink_to(ROOT / "data", target_is_directory=True)
    sample = ROOT / "data/cifar10-sample/cifar-10-batches-py"
    for name in ("partial", "garbage"):
        (root / name / data_files.CIFAR10_DIR).mkdir(parents=True)
    shutil.copy2(sample / "test_batch", root / "partial" / data_files.CIFAR10_DIR)
    for batch in data_files.CIFAR10_BATCHES:
        (root / "garbage" / data_files.CIFAR10_DIR / batch).write_bytes(b"not a pickle")
    return root


def problems_of(overlay, folder: Path) -> list[str]:
    bad = folder / "bad.yaml"
    bad.write_text(overlay if isinstance(overlay, str) else yaml.safe_dump(overlay))
    try:
        return config_problems(*read_config(["config.yaml", DEMO, "bad.yaml"]))
    except CompRepsError as err:  # a file that does not even parse
        return str(err).splitlines()


@pytest.mark.parametrize(
    ("overlay", "first_line"), [row[1:] for row in BAD_CONFIGS], ids=[row[0] for row in BAD_CONFIGS]
)
def test_bad_config_is_stopped_with_file_and_key(fault_dir, monkeypatch, overlay, first_line):
    monkeypatch.chdir(fault_dir)
    # the Debian Fashion-MNIST folder must not rescue the fashion_mnist row on any machine
    monkeypatch.setattr(data_files, "FASHION_SYSTEM_DIR", fault_dir / "no-such-folder")
    found = problems_of(overlay, fault_dir)
    assert found, "accepted"
    assert found[0].startswith(first_line), found[0]
    assert all(line.startswith("bad.yaml") for line in found), found


def test_at_least_26_bad_configs_with_distinct_messages():
    assert len(BAD_CONFIGS) >= 26
    assert len({first for *_, first in BAD_CONFIGS}) >= 26 - 1  # all-empty repeats coreset


def test_all_problems_are_listed_at_once(fault_dir, monkeypatch):
    monkeypatch.chdir(fault_dir)
    overlay = {"train": {"epochs": 0}, "probe": {"size": 5000}, "quantize": {"bits": []}}
    found = problems_of(overlay, fault_dir)
    assert [line.split(" ")[3] for line in found] == ["train/epochs", "quantize/bits", "probe/size"]


def test_a_value_from_the_preset_names_the_preset(fault_dir, monkeypatch):
    monkeypatch.chdir(fault_dir)
    found = problems_of(
        {"probe": {"size": 50_000}, "data": {"root": "data/cifar10-sample"}}, fault_dir
    )
    assert found == [
        "bad.yaml: config key probe/size = 50000 exceeds the 1017 test images of "
        "cifar10 under data/cifar10-sample"
    ]
    (fault_dir / "big.yaml").write_text("probe: {size: 2000}\n")
    found = config_problems(*read_config(["config.yaml", "big.yaml", DEMO]))
    assert found == [
        "big.yaml: config key probe/size = 2000 exceeds the 1017 test images of "
        "cifar10 under data/cifar10-sample"
    ]


def test_download_allows_a_missing_root_and_checks_the_full_test_set(fault_dir, monkeypatch):
    monkeypatch.chdir(fault_dir)
    overlay = {"data": {"root": "nowhere", "download": True}, "probe": {"size": 10_001}}
    found = problems_of(overlay, fault_dir)
    assert found == [
        "bad.yaml: config key probe/size = 10001 exceeds the 10000 test images of "
        "cifar10 under nowhere"
    ]
    assert problems_of({"data": {"root": "nowhere", "download": True}}, fault_dir) == []


def test_fashion_mnist_test_count_comes_from_the_idx_header(tmp_path, monkeypatch):
    folder = tmp_path / data_files.FASHION_DIR
    folder.mkdir()
    for name in (*data_files.FASHION_NAMES, data_files.FASHION_TEST_LABELS):
        (folder / name).write_bytes(b"")
    header = bytes([0, 0, 0x08, 1]) + (1234).to_bytes(4, "big")
    (folder / data_files.FASHION_TEST_LABELS).write_bytes(header + bytes(1234))
    assert data_files.missing_files("fashion_mnist", tmp_path) == []
    assert data_files.count_test_images("fashion_mnist", tmp_path) == 1234


def test_check_config_names_file_line_and_column(tmp_path, monkeypatch, capsys):
    from compreps.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("train:\n  epochs: 3\n\tlr: 0.1\n")
    assert main(["check-config", "config.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("compreps check-config: error: config.yaml:3:1: YAML syntax error:")


def dry_run(workdir, *args: str) -> tuple[int, str]:
    """``snakemake -n ARGS`` in ``workdir``: its exit code and its whole output."""
    import subprocess

    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", *args],
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_snakemake_stops_bad_configs_before_any_job(fault_dir):
    """Three bad overlays through `snakemake -n`: every message reaches the user, no job."""
    workdir = copy_workflow(fault_dir / "wf", profiles=True)
    overlays = {
        "a.yaml": {"coreset": {"fractions": []}},
        "b.yaml": {"probe": {"size": 5000}},
        "c.yaml": {"train": {"epochs": 0}},
    }
    for name, overlay in overlays.items():
        (workdir / name).write_text(yaml.safe_dump(overlay))
    returncode, output = dry_run(workdir, "--configfile", DEMO, *overlays)
    assert returncode != 0
    for line in (
        "c.yaml: config key train/epochs = 0 is not allowed; allowed: an integer >= 1",
        "a.yaml: config key coreset/fractions is empty: list at least one level",
        "b.yaml: config key probe/size = 5000 exceeds the 1017 test images of cifar10",
    ):
        assert line in output, output[-3000:]
    assert "Job stats" not in output and not (workdir / "results").exists()


def test_default_profile_plans_the_default_run(fault_dir):
    """`snakemake -n` with no options from the repository root loads profiles/default."""
    # no CIFAR-10: download: true lets the dry run plan it
    workdir = copy_workflow(fault_dir / "wf-default", profiles=True, data=False)
    returncode, output = dry_run(workdir)
    assert returncode == 0, output[-3000:]
    assert "Using workflow specific profile profiles/default" in output
    profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert profile["cores"] == "all" and profile["rerun-incomplete"] is True
    assert "train_base" in output and "report" in output


# --------------------------------------------------------------------------- damaged files
FLIPS = 20


def flipped_copies(path: Path, spans: list[tuple[int, int]], folder: Path, seed: int):
    """Yield (offset, copy of ``path`` with the byte at ``offset`` inverted) for FLIPS seeded
    offsets drawn uniformly from the byte ranges ``spans``."""
    rng = np.random.default_rng(seed)
    sizes = np.array([end - start for start, end in spans])
    raw = path.read_bytes()
    for i in range(FLIPS):
        span = rng.choice(len(spans), p=sizes / sizes.sum())
        offset = int(spans[span][0] + rng.integers(sizes[span]))
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        copy = folder / f"flip{i}" / path.name  # the name says which rule rebuilds it
        copy.parent.mkdir()
        copy.write_bytes(bytes(damaged))
        yield offset, copy


def test_flipped_byte_in_a_dump_is_an_error(write_fake_dump, tmp_path):
    import h5py

    from compreps.core.dump import read_dump

    path = write_fake_dump("prune-0.5")
    spans = []
    with h5py.File(path, "r") as h5:

        def collect(_, node):
            if isinstance(node, h5py.Dataset):
                for i in range(node.id.get_num_chunks()):
                    info = node.id.get_chunk_info(i)
                    spans.append((info.byte_offset, info.byte_offset + info.size))

        h5.visititems(collect)
    assert spans
    for offset, copy in flipped_copies(path, spans, tmp_path, seed=12):
        with pytest.raises(CompRepsError) as info:
            read_dump(copy, weights=True)
        assert str(copy) in str(info.value) and "activations" in str(info.value), offset


def test_flipped_byte_in_a_checkpoint_is_an_error(tmp_path):
    import struct
    import zipfile

    from compreps.model.checkpoints import cpu_state_dict, load_checkpoint, save_checkpoint
    from compreps.model.networks import build_model

    path = tmp_path / "prune-0.5.pt"
    model = build_model("resnet18", 4, 3, 10)
    save_checkpoint(path, cpu_state_dict(model), {"model_id": "prune-0.5", "family": "prune"})
    raw = path.read_bytes()
    spans = []
    with zipfile.ZipFile(path) as archive:  # the stored tensor records
        for info in archive.infolist():
            if "/data/" in info.filename:
                # local header: 30 bytes, then the name and extra field (torch pads here)
                name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
                start = info.header_offset + 30 + name_len + extra_len
                spans.append((start, start + info.compress_size))
    assert spans
    for offset, copy in flipped_copies(path, spans, tmp_path, seed=12):
        with pytest.raises(CompRepsError) as info:
            load_checkpoint(copy)
        assert str(copy) in str(info.value) and "prune" in str(info.value), offset


def test_faults_doc_is_generated_from_the_table():
    from faults_doc import DOC, render

    assert DOC.read_text() == render(), "run: python tests/faults_doc.py"
