"""Fault injection: every bad configuration and every damaged file stops with a clear message.

The tables below are the regression record of docs/faults.md: each bad config overlay (merged
over config.yaml and presets/demo.yaml, as `snakemake -n --configfile presets/demo.yaml
bad.yaml` merges them) with the exact first line of its message, which must name the file and
the key. Damaged files: bytes flipped at 20 seeded positions inside the data of a checkpoint and
of an activation dump must each raise CompRepsError on load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, snakemake_env

from compreps.core import data_files
from compreps.core.config import config_problems, read_config
from compreps.core.files import CompRepsError

DEMO = "presets/demo.yaml"
LAYERS = "layer4.1.conv2, fc"
# (name, overlay: a dict, or YAML text written verbatim, exact first line of the message)
BAD_CONFIGS = [
    (
        "coreset-empty",
        {"coreset": {"fractions": []}},
        "bad.yaml: config key coreset/fractions is empty: list at least one level, or drop "
        "coreset from config key families to run without the coreset family",
    ),
    (
        "prune-empty",
        {"prune": {"ratios": []}},
        "bad.yaml: config key prune/ratios is empty: list at least one level, or drop prune "
        "from config key families to run without the prune family",
    ),
    (
        "quantize-empty",
        {"quantize": {"bits": []}},
        "bad.yaml: config key quantize/bits is empty: list at least one level, or drop quant "
        "from config key families to run without the quant family",
    ),
    (
        "all-levels-empty",
        {"coreset": {"fractions": []}, "prune": {"ratios": []}, "quantize": {"bits": []}},
        "bad.yaml: config key coreset/fractions is empty: list at least one level, or drop "
        "coreset from config key families to run without the coreset family",
    ),
    (
        "no-family-left",
        {"families": [], "coreset": {"fractions": []}, "prune": {"ratios": []}},
        "bad.yaml: config key families is empty: no compression family left to compare with "
        "the base",
    ),
    (
        "family-dropped-levels-kept",
        {"families": ["coreset", "prune"]},
        "bad.yaml: config key families = ['coreset', 'prune'] leaves out quant, but "
        "quantize/bits lists [8, 7, 6, 5, 4, 3, 2, 1]: set quantize/bits: [] to run without "
        "the quant family, or list quant",
    ),
    (
        "too-few-models",
        {
            "families": ["quant"],
            "coreset": {"fractions": []},
            "prune": {"ratios": []},
            "quantize": {"bits": [8, 4]},
            "struct_l1": {"levels": []},
            "nexp": {"levels": []},
            "fold": {"levels": []},
        },
        "bad.yaml: config key families = ['quant'] gives 2 compressed model(s); the "
        "correlations need at least 3: add levels or families",
    ),
    (
        "unknown-family",
        {"families": ["coreset", "prune", "distill"]},
        "bad.yaml: config key families/2 = 'distill' is not allowed; allowed: one of: "
        "coreset, prune, quant, struct_l1, nexp, fold",
    ),
    (
        "structured-family-empty",
        {"fold": {"levels": []}},
        "bad.yaml: config key fold/levels is empty: list at least one level, or drop fold "
        "from config key families to run without the fold family",
    ),
    (
        "structured-family-dropped-levels-kept",
        {"families": ["coreset", "prune", "quant", "struct_l1", "fold"]},
        "bad.yaml: config key families = ['coreset', 'prune', 'quant', 'struct_l1', 'fold'] "
        "leaves out nexp, but nexp/levels lists [0.1, 0.3]: set nexp/levels: [] to run "
        "without the nexp family, or list nexp",
    ),
    (
        "structured-level-out-of-range",
        {"struct_l1": {"levels": [0.3, 1.0]}},
        "bad.yaml: config key struct_l1/levels/1 = 1.0 is not allowed; allowed: a number > 0 "
        "and < 1",
    ),
    (
        "unknown-bn-repair",
        {"fold": {"bn_repair": "retrain"}},
        "bad.yaml: config key fold/bn_repair = 'retrain' is not allowed; allowed: one of: "
        "variance, calib, none",
    ),
    (
        "probe-larger-than-test-set",
        {"probe": {"size": 5000}},
        "bad.yaml: config key probe/size = 5000 exceeds the 1017 test images of cifar10 under "
        "data/cifar10-sample",
    ),
    (
        "data-root-missing",
        {"data": {"root": "nowhere"}},
        "bad.yaml: config key data/root = 'nowhere': has no folder cifar-10-batches-py (set "
        "data/download: true to fetch CIFAR-10)",
    ),
    (
        "data-root-partial",
        {"data": {"root": "partial"}},
        "bad.yaml: config key data/root = 'partial': partial/cifar-10-batches-py lacks "
        "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5",
    ),
    (
        "data-root-garbage",
        {"data": {"root": "garbage"}},
        "bad.yaml: config key data/root = 'garbage': garbage/cifar-10-batches-py/test_batch is "
        "not a valid CIFAR-10 python batch (invalid load key, 'n'.)",
    ),
    (
        "fashion-mnist-missing",
        {"data": {"dataset": "fashion_mnist", "root": "data"}},
        "bad.yaml: config key data/root = 'data': has no folder fashion-mnist (never "
        "downloaded: install the Debian package dataset-fashion-mnist)",
    ),
    (
        "yaml-syntax-error",
        "probe:\n  size: 60\n  metric_layers: [fc\ntrain:\n  epochs: 2\n",
        "bad.yaml:4:6: YAML syntax error: expected ',' or ']', but got ':' (while parsing a "
        "flow sequence)",
    ),
    (
        "yaml-top-level-list",
        "- probe\n- size\n",
        "bad.yaml: a config file must map config keys to values, got a list at the top level",
    ),
    (
        "epochs-zero",
        {"train": {"epochs": 0}},
        "bad.yaml: config key train/epochs = 0 is not allowed; allowed: an integer >= 1",
    ),
    (
        "epochs-text",
        {"train": {"epochs": "ten"}},
        "bad.yaml: config key train/epochs = 'ten' is not allowed; allowed: an integer >= 1",
    ),
    (
        "unknown-key",
        {"train": {"epoch": 3}},
        "bad.yaml: config key train/epoch: Additional properties are not allowed ('epoch' was "
        "unexpected); allowed keys: batch_size, compile, deterministic, epochs, lr, momentum, "
        "precision, schedule, seed, state_interval_s, weight_decay",
    ),
    (
        "learning-rate-zero",
        {"train": {"lr": 0}},
        "bad.yaml: config key train/lr = 0 is not allowed; allowed: a number > 0",
    ),
    (
        "quantize-bits-12",
        {"quantize": {"bits": [4, 12]}},
        "bad.yaml: config key quantize/bits/1 = 12 is not allowed; allowed: an integer >= 1 "
        "and <= 8",
    ),
    (
        "prune-ratio-above-one",
        {"prune": {"ratios": [0.5, 1.5]}},
        "bad.yaml: config key prune/ratios/1 = 1.5 is not allowed; allowed: a number > 0 and < 1",
    ),
    (
        "prune-ratio-repeated",
        {"prune": {"ratios": [0.5, 0.5]}},
        "bad.yaml: config key prune/ratios: values must be unique, got [0.5, 0.5]",
    ),
    (
        "coreset-fraction-zero",
        {"coreset": {"fractions": [0.5, 0]}},
        "bad.yaml: config key coreset/fractions/1 = 0 is not allowed; allowed: a number > 0 "
        "and <= 1",
    ),
    (
        "unknown-dataset",
        {"data": {"dataset": "imagenet"}},
        "bad.yaml: config key data/dataset = 'imagenet' is not allowed; allowed: one of: "
        "cifar10, fashion_mnist",
    ),
    (
        "unknown-arch",
        {"model": {"arch": "vgg16"}},
        "bad.yaml: config key model/arch = 'vgg16' is not allowed; allowed: one of: resnet18",
    ),
    (
        "unknown-layer",
        {"probe": {"metric_layers": ["layer9", "fc"]}},
        "bad.yaml: config key probe/metric_layers/0 = 'layer9' is not allowed; allowed: one of: "
        + "conv1, bn1, layer1",
    ),
    (
        "unknown-quantize-scheme",
        {"quantize": {"scheme": "log2"}},
        "bad.yaml: config key quantize/scheme = 'log2' is not allowed; allowed: one of: paper, "
        "uniform, per_channel",
    ),
    (
        "reps-weights-sum",
        {"metrics": {"reps": {"weights": {"decay": 0.5}}}},
        "bad.yaml: config key metrics/reps/weights: weights must each be in [0, 1] and sum to "
        "1, got effective_rank=0.15, alive=0.05, separation=0.35, decay=0.5 (sum 1.05)",
    ),
    (
        "gtfa-beta-above-one",
        {"metrics": {"gtfa": {"beta": 1.5}}},
        "bad.yaml: config key metrics/gtfa/beta = 1.5 is not allowed; allowed: a number >= 0 "
        "and <= 1",
    ),
    (
        "confidence-one",
        {"correlation": {"confidence": 1.0}},
        "bad.yaml: config key correlation/confidence = 1.0 is not allowed; allowed: a number "
        "> 0 and < 1",
    ),
    (
        "grid-step-not-dividing-one",
        {"sensitivity": {"grid_step": 0.3}},
        "bad.yaml: config key sensitivity/grid_step = 0.3 does not divide 1 into whole parts "
        "(e.g. 0.05, 0.1, 0.25)",
    ),
    (
        "section-not-a-mapping",
        {"resources": {"train": 4}},
        "bad.yaml: config key resources/train = 4 is not allowed; allowed: type object",
    ),
    (
        "base-checkpoint-missing",
        {"base_checkpoint": "weights/base.pt"},
        "bad.yaml: config key base_checkpoint = 'weights/base.pt': no such file (give the "
        "path of a compreps checkpoint or a saved state dict, or null to train)",
    ),
]


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


def test_snakemake_stops_bad_configs_before_any_job(fault_dir):
    """Three bad overlays through `snakemake -n`: every message reaches the user, no job."""
    workdir = fault_dir / "wf"
    workdir.mkdir()
    for item in ("Snakefile", "config.yaml", "workflow", "presets", "profiles", "envs", "src"):
        source = ROOT / item
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, workdir / item)
    (workdir / "data").symlink_to(ROOT / "data", target_is_directory=True)
    overlays = {
        "a.yaml": {"coreset": {"fractions": []}},
        "b.yaml": {"probe": {"size": 5000}},
        "c.yaml": {"train": {"epochs": 0}},
    }
    for name, overlay in overlays.items():
        (workdir / name).write_text(yaml.safe_dump(overlay))
    import subprocess

    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--configfile", DEMO, *overlays],
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for line in (
        "c.yaml: config key train/epochs = 0 is not allowed; allowed: an integer >= 1",
        "a.yaml: config key coreset/fractions is empty: list at least one level",
        "b.yaml: config key probe/size = 5000 exceeds the 1017 test images of cifar10",
    ):
        assert line in output, output[-3000:]
    assert "Job stats" not in output and not (workdir / "results").exists()


def test_default_profile_plans_the_default_run(fault_dir):
    """`snakemake -n` with no options from the repository root loads profiles/default."""
    import subprocess

    workdir = fault_dir / "wf-default"
    workdir.mkdir()
    for item in ("Snakefile", "config.yaml", "workflow", "presets", "profiles", "envs", "src"):
        source = ROOT / item
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, workdir / item)
    (workdir / "data").mkdir()  # no CIFAR-10: download: true lets the dry run plan it
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n"],
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
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
