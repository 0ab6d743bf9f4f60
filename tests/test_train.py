"""Training step: checkpoints, schedule, crash-resume (SIGKILL), fingerprints, import-base.

All runs are tiny (ResNet-18 width 4, a few hundred images of the shipped CIFAR-10 sample).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from compreps.core.files import CompRepsError
from compreps.core.settings import ModelSettings, TrainSettings
from compreps.model import runtime
from compreps.model.checkpoints import (
    cpu_state_dict,
    load_checkpoint,
    load_model,
    save_checkpoint,
    verify_base_checkpoint,
)
from compreps.model.compression import step as compress
from compreps.model.data.datasets import load_dataset
from compreps.model.data.image_data import ImageData
from compreps.model.networks import accuracy, build_model, predict_logits
from compreps.model.training import state as train_state
from compreps.model.training import step as train_step
from compreps.model.training import train
from compreps.model.training.train import independent_init_seed, start_run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "cifar10-sample"
MODEL = ModelSettings(arch="resnet18", width=4)
PAPER = TrainSettings(
    epochs=50,
    batch_size=128,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    seeds=(42,),
    precision="auto",
    compile="auto",
    deterministic=True,
    state_interval_s=60.0,
)
# fp32: the same numbers on every CPU (auto picks bf16 where it is native); a state every epoch
TINY = dataclasses.replace(PAPER, epochs=1, seeds=(3,), precision="fp32", state_interval_s=0.0)
META_KEYS = {
    "model_id",
    "family",
    "level",
    "arch",
    "width",
    "in_channels",
    "num_classes",
    "dataset",
    "config",
    "seed",
    "epochs",
    "wall_time_s",
    "device",
    "torch_version",
    "test_accuracy",
    "n_train",
    "train_indices",
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: other jobs share the 2 cores, and OpenMP threads that spin-wait for
    a busy core slow tiny models down by 10x or more. Bit-identity holds for any fixed count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sample() -> ImageData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "a sample, not the full 50,000 / 10,000"
        return load_dataset("cifar10", SAMPLE)


def subset(n: int = 300, step: int = 17) -> np.ndarray:
    return np.arange(0, n * step, step, dtype=np.int64)


def write_indices(path: Path, data: ImageData, indices: np.ndarray) -> Path:
    rows = [f"{i},{int(data.train_labels[i])}" for i in indices]
    path.write_text("index,label\n" + "\n".join(rows) + "\n")
    return path


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def test_tiny_run_writes_a_loadable_checkpoint(sample, tmp_path):
    indices_csv = write_indices(tmp_path / "coreset.csv", sample, subset())
    out, state = tmp_path / "coreset-0.05.pt", tmp_path / "state.pt"
    model, meta = train.train_model(
        sample,
        MODEL,
        TINY,
        model_id="coreset-0.05",
        eval_batch_size=500,
        indices=subset(),
        indices_path=str(indices_csv),
        state_path=state,
        out=out,
        show_progress=False,
    )
    assert out.is_file() and not state.exists()  # the state is deleted once the checkpoint exists
    loaded, saved_meta = load_model(out, "cpu")
    assert META_KEYS <= saved_meta.keys()
    assert saved_meta == meta
    assert (meta["family"], meta["level"], meta["n_train"]) == ("coreset", 0.05, 300)
    assert (meta["in_channels"], meta["num_classes"], meta["width"]) == (3, 10, 4)
    assert meta["train_indices"] == str(indices_csv) and meta["precision"] == "fp32"
    assert (meta["precision_reason"], meta["compiled"], meta["eval_precision"]) == (
        "set in the config",
        False,
        "fp32",
    )
    assert meta["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert meta["device"].startswith("cpu") and meta["wall_time_s"] > 0
    # the stored accuracy is that of the stored weights on the whole test set
    logits = predict_logits(loaded, sample.test_images, sample.mean, sample.std, "cpu", 500)
    assert len(logits) == 1017
    assert meta["test_accuracy"] == pytest.approx(accuracy(logits, sample.test_labels), abs=1e-9)
    assert_same_weights(loaded.state_dict(), cpu_state_dict(model))


def test_cosine_schedule_reaches_zero_and_constant_stays():
    cosine = train_step.lr_factor("cosine", 10)
    assert [cosine(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
    assert cosine(2) == pytest.approx((1 + math.cos(math.pi / 5)) / 2)
    assert train_step.lr_factor("constant", 10)(7) == 1.0


def test_epoch_keeps_the_last_partial_batch(sample):
    model = build_model("resnet18", 4, 3, 10)
    optimizer, scheduler = train_step.make_optimizer(model, TINY, steps_per_epoch=3)
    ctx = train_step.make_step_context(
        model, optimizer, scheduler, sample.mean, sample.std, "fp32", torch.device("cpu")
    )
    images, labels = sample.train_images[:300], sample.train_labels[:300]
    loss_sum, correct, seen = train_step.run_epoch(ctx, images, labels, torch.Generator(), 128)
    assert seen == 300 and scheduler.last_epoch == 3  # 128 + 128 + 44
    assert 0 <= int(correct) <= 300 and float(loss_sum) / 300 > 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_one_channel_28px_images_train(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = ImageData(
        name="fashion_mnist",
        train_images=torch.randint(0, 256, (70, 1, 28, 28), generator=gen, dtype=torch.uint8),
        train_labels=torch.arange(70) % 10,
        test_images=torch.randint(0, 256, (20, 1, 28, 28), generator=gen, dtype=torch.uint8),
        test_labels=torch.arange(20) % 10,
        classes=[str(i) for i in range(10)],
        mean=(0.2860,),
        std=(0.3530,),
    )
    _, meta = train.train_model(
        data,
        MODEL,
        dataclasses.replace(TINY, batch_size=32),
        model_id="base",
        eval_batch_size=500,
        out=tmp_path / "base.pt",
        show_progress=False,
    )
    model, _ = load_model(tmp_path / "base.pt", "cpu")
    assert model.conv1.weight.shape[1] == 1 and meta["in_channels"] == 1
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_bf16_on_cpu_is_recorded(sample):
    config = dataclasses.replace(TINY, precision="bf16")
    _, meta = train.train_model(
        sample,
        MODEL,
        config,
        model_id="base",
        eval_batch_size=500,
        indices=subset(100),
        show_progress=False,
    )
    assert meta["precision"] == "bf16" and 0.0 <= meta["test_accuracy"] <= 1.0


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("native", "probe_faster", "expected"),
    [
        (True, False, ("bf16", "auto: native CPU bf16")),
        (False, True, ("fp32", "auto: no native bf16")),  # torch knows: no probe
        (None, True, ("bf16", "auto: probe, bf16 faster")),
        (None, False, ("fp32", "auto: probe, fp32")),
    ],
)
def test_auto_precision_on_cpu(monkeypatch, native, probe_faster, expected):
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: native)
    monkeypatch.setattr(runtime, "bf16_probe_is_faster", lambda: probe_faster)
    assert runtime.resolve_precision("auto", CPU) == expected
    # CUDA always gets bf16; an explicit setting is kept on any device
    assert runtime.resolve_precision("auto", CUDA) == ("bf16", "auto: CUDA")
    assert runtime.resolve_precision("fp32", CUDA) == ("fp32", "set in the config")
    assert runtime.resolve_precision("bf16", CPU) == ("bf16", "set in the config")


def test_native_bf16_detection_reads_torch_probes(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert runtime.native_cpu_bf16() is None  # torch cannot tell: the timed probe decides
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert runtime.native_cpu_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert runtime.native_cpu_bf16() is True
    with pytest.raises(CompRepsError, match="unknown precision 'fp16'"):
        runtime.resolve_precision("fp16", CPU)


def test_compile_setting():
    assert [runtime.resolve_compile("auto", d) for d in (CPU, CUDA)] == [False, True]
    assert runtime.resolve_compile("true", CPU) and runtime.resolve_compile(True, CPU)
    assert not runtime.resolve_compile("false", CUDA) and not runtime.resolve_compile(False, CUDA)
    with pytest.raises(CompRepsError, match="unknown compile 'yes'"):
        runtime.resolve_compile("yes", CUDA)


def ticking_clock(step: float = 1.0):
    """A clock that advances ``step`` seconds at every reading."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def test_state_clock_saves_after_the_interval():
    clock = train.StateClock(2.5, ticking_clock())  # reads 1 at the start
    due = []
    for _ in range(6):
        due.append(clock.due())  # reads 2, 3, 4 (4 - 1 >= 2.5); saved() reads 5; 6, 7, 8
        if due[-1]:
            clock.saved()
    assert due == [False, False, True, False, False, True]
    every_epoch = train.StateClock(0.0, ticking_clock(0.0))
    assert all(every_epoch.due() for _ in range(3))


class Crash(Exception):
    pass


def crash_after_first_save(monkeypatch) -> None:
    real_save = train.save_state

    def save_then_crash(path, state):
        real_save(path, state)
        raise Crash

    monkeypatch.setattr(train, "save_state", save_then_crash)


def test_resume_in_process_matches_and_mismatch_starts_fresh(sample, tmp_path, monkeypatch, capsys):
    config = dataclasses.replace(TINY, epochs=2, seeds=(5,))
    state = tmp_path / "state.pt"
    common = {
        "indices": subset(200),
        "show_progress": False,
        "model_id": "base",
        "eval_batch_size": 500,
    }
    with monkeypatch.context() as patch:
        crash_after_first_save(patch)
        with pytest.raises(Crash):
            train.train_model(sample, MODEL, config, state_path=state, **common)
    assert torch.load(state, weights_only=True)["epoch"] == 1

    # other hyper-parameters: the state is not used
    other = dataclasses.replace(config, lr=0.05)
    _, meta = train.train_model(
        sample, MODEL, other, state_path=state, out=tmp_path / "o.pt", **common
    )
    assert meta["resumed_from_epoch"] is None
    assert "starting fresh" in capsys.readouterr().err
    fresh, _ = train.train_model(sample, MODEL, other, **common)
    assert_same_weights(load_checkpoint(tmp_path / "o.pt")[0], cpu_state_dict(fresh))
    assert not state.exists()

    # same inputs: resumes after epoch 1 and ends where an uninterrupted run ends
    with monkeypatch.context() as patch:
        crash_after_first_save(patch)
        with pytest.raises(Crash):
            train.train_model(sample, MODEL, config, state_path=state, **common)
    resumed, meta = train.train_model(sample, MODEL, config, state_path=state, **common)
    assert meta["resumed_from_epoch"] == 1
    straight, _ = train.train_model(sample, MODEL, config, **common)
    assert_same_weights(cpu_state_dict(resumed), cpu_state_dict(straight))


def test_resume_at_an_interval_is_bit_identical(sample, tmp_path, monkeypatch):
    """state_interval_s 1.5 with a clock ticking 1 s per reading (1 at the start, 2 after
    epoch 1, 3 after epoch 2): the first state is written after epoch 2, not 1; a crash right
    after it and a rerun end like an uninterrupted run."""
    config = dataclasses.replace(TINY, epochs=4, seeds=(7,), state_interval_s=1.5)
    state = tmp_path / "state.pt"
    common = {"indices": subset(150), "show_progress": False, "model_id": "base"}
    with monkeypatch.context() as patch:
        real_clock = train.StateClock
        patch.setattr(train, "StateClock", lambda interval: real_clock(interval, ticking_clock()))
        crash_after_first_save(patch)
        with pytest.raises(Crash):
            train.train_model(
                sample, MODEL, config, state_path=state, eval_batch_size=500, **common
            )
    assert torch.load(state, weights_only=True)["epoch"] == 2
    resumed, meta = train.train_model(
        sample,
        MODEL,
        config,
        state_path=state,
        out=tmp_path / "r.pt",
        eval_batch_size=500,
        **common,
    )
    assert meta["resumed_from_epoch"] == 2 and not state.exists()
    straight, _ = train.train_model(sample, MODEL, config, eval_batch_size=500, **common)
    assert_same_weights(cpu_state_dict(resumed), cpu_state_dict(straight))


def test_fingerprint_covers_indices_and_hyper_parameters(sample):
    cpu = torch.device("cpu")
    images, labels = sample.train_images[:10], sample.train_labels[:10]

    def fp(model=MODEL, config=TINY, indices=None):
        indices = np.arange(10) if indices is None else indices
        return train_state.training_fingerprint(
            model, config, "cifar10", indices, images, labels, cpu, "fp32"
        )

    assert fp() == fp()
    assert fp() != fp(indices=np.arange(1, 11))
    assert fp() != fp(model=ModelSettings(arch="resnet18", width=8))
    assert fp() != fp(config=dataclasses.replace(TINY, epochs=2))
    assert fp() != fp(config=dataclasses.replace(TINY, deterministic=False))
    # how often the state is saved does not change the weights: a saved state stays usable
    assert fp() == fp(config=dataclasses.replace(TINY, state_interval_s=600.0))


def compreps_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "compreps", *args]


def train_command(summary: Path, indices: Path, state: Path, out: Path) -> list[str]:
    return compreps_command(
        "train",
        "--model-id",
        "coreset-0.05",
        "--data",
        str(summary),
        "--model-arch",
        "resnet18",
        "--model-width",
        "4",
        "--train-epochs",
        "3",
        "--train-batch-size",
        "64",
        "--train-lr",
        "0.1",
        "--train-momentum",
        "0.9",
        "--train-weight-decay",
        "5e-4",
        "--train-schedule",
        "cosine",
        "--train-seeds",
        "42",
        "--train-precision",
        "auto",
        "--train-compile",
        "auto",
        "--train-deterministic",
        "true",
        "--train-state-interval-s",
        "0",
        "--indices",
        str(indices),
        "--eval-batch-size",
        "500",
        "--state",
        str(state),
        "--out",
        str(out),
    )


def test_sigkill_then_rerun_gives_identical_weights(sample, tmp_path, sample_summary):
    indices = write_indices(tmp_path / "coreset.csv", sample, subset(300))
    state, out = tmp_path / "state" / "c.pt", tmp_path / "killed" / "c.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        train_command(sample_summary, indices, state, out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not out.exists()
    assert torch.load(state, weights_only=True)["epoch"] in (1, 2)

    rerun = subprocess.run(
        train_command(sample_summary, indices, state, out),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stderr
    assert not state.exists()

    straight_out = tmp_path / "straight" / "c.pt"
    straight = subprocess.run(
        train_command(sample_summary, indices, tmp_path / "s2.pt", straight_out),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed_weights, resumed_meta = load_checkpoint(out)
    straight_weights, straight_meta = load_checkpoint(straight_out)
    assert_same_weights(resumed_weights, straight_weights)
    assert resumed_meta["test_accuracy"] == straight_meta["test_accuracy"]
    assert resumed_meta["resumed_from_epoch"] in (1, 2)
    assert straight_meta["resumed_from_epoch"] is None


# --------------------------------------------------------------------------- import-base


def import_args(summary: Path, source: Path, out: Path, width: int = 4) -> list[str]:
    return [
        "import-base",
        "--source",
        str(source),
        "--data",
        str(summary),
        "--model-arch",
        "resnet18",
        "--model-width",
        str(width),
        "--eval-batch-size",
        "500",
        "--out",
        str(out),
    ]


def test_import_plain_state_dict(sample, tmp_path, sample_summary):
    torch.manual_seed(0)
    source_model = build_model("resnet18", 4, 3, 10)
    source = tmp_path / "weights.pth"
    torch.save(source_model.state_dict(), source)
    out = tmp_path / "base.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert compress.main(import_args(sample_summary, source, out)) == 0
    model, meta = load_model(out, "cpu")
    assert_same_weights(model.state_dict(), source_model.state_dict())
    assert (meta["family"], meta["model_id"], meta["width"]) == ("base", "base", 4)
    assert math.isnan(meta["level"]) and meta["imported_from"] == str(source)
    assert meta["imported_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    logits = predict_logits(source_model, sample.test_images, sample.mean, sample.std, "cpu", 500)
    assert meta["test_accuracy"] == pytest.approx(accuracy(logits, sample.test_labels), abs=1e-9)
    verify_base_checkpoint(out, "resnet18", 4, 3, 10)  # a compreps checkpoint fits too


def test_wrong_width_gives_a_clear_error(tmp_path, sample_summary):
    source = tmp_path / "w8.pt"
    save_checkpoint(source, build_model("resnet18", 8, 3, 10).state_dict(), {"width": 8})
    with pytest.raises(CompRepsError) as err:
        verify_base_checkpoint(source, "resnet18", 4, 3, 10)
    message = str(err.value)
    assert "does not fit `resnet18 width 4`" in message
    assert "conv1.weight: file (8, 3, 3, 3) vs model (4, 3, 3, 3)" in message
    assert "looks like width 8" in message
    with warnings.catch_warnings(), pytest.raises(CompRepsError, match="width 4`"):
        warnings.simplefilter("ignore")
        compress.main(import_args(sample_summary, source, tmp_path / "base.pt"))
    assert not (tmp_path / "base.pt").exists()
    # a file that holds no weights at all
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CompRepsError, match="cannot read base weights"):
        verify_base_checkpoint(tmp_path / "junk.pt", "resnet18", 4, 3, 10)
    # right width, fewer classes: only the fc layer differs
    torch.save(build_model("resnet18", 4, 3, 10).state_dict(), tmp_path / "w4.pt")
    with pytest.raises(CompRepsError, match=r"fc.weight: file \(10, 32\) vs model \(5, 32\)"):
        verify_base_checkpoint(tmp_path / "w4.pt", "resnet18", 4, 3, 5)


# --------------------------------------------------------------------------- benchmark


def test_throughput_benchmark_prints_both_loops_and_their_ratio(capsys):
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--width", "4", "--batch-size", "32", "--steps", "2", "--warmup", "1"]
    assert bench.main([*args, "--num-workers", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    speeds = {
        row.split("|")[1].strip(): float(row.split("|")[3])
        for row in out.splitlines()
        if row.startswith(("| compreps", "| conventional"))
    }
    assert speeds.keys() == {"compreps", "conventional"} and min(speeds.values()) > 0
    ratio_line = next(line for line in out.splitlines() if line.startswith("ratio"))
    a, b, ratio = (float(x) for x in re.findall(r"[\d.]+", ratio_line.split(":")[1]))
    assert (a, b) == (speeds["compreps"], speeds["conventional"])
    assert ratio == pytest.approx(a / b, rel=2e-3)  # a and b printed to 0.1 img/s
    assert "bf16 peak n/a" in out  # no peak is quoted for a CPU


def initial_weights(sample, train, init_seed=None) -> dict:
    images, labels = sample.train_images[:8], sample.train_labels[:8]
    run = start_run(
        sample, MODEL, train, images, labels, torch.device("cpu"), "fp32", False, init_seed
    )
    return {k: v.clone() for k, v in run.ctx.model.state_dict().items()}


def test_coreset_init_shared_or_independent(sample):
    """shared: a coreset model starts from its seed's base initial weights (the same draw);
    independent: from a draw of its own, fixed by the seed and the model id."""
    base = initial_weights(sample, TINY)
    assert_same_weights(base, initial_weights(sample, TINY))
    own_seed = independent_init_seed(3, "coreset-0.5")
    assert (
        own_seed
        == independent_init_seed(3, "coreset-0.5")
        != independent_init_seed(3, "coreset-0.1")
    )
    assert own_seed != independent_init_seed(4, "coreset-0.5")
    own = initial_weights(sample, TINY, own_seed)
    assert not torch.equal(own["conv1.weight"], base["conv1.weight"])
    assert_same_weights(own, initial_weights(sample, TINY, own_seed))
    other_seed = initial_weights(sample, dataclasses.replace(TINY, seeds=(4,)))
    assert not torch.equal(other_seed["conv1.weight"], base["conv1.weight"])
    # an own initialisation is a different run: a saved resume state does not match it
    images, labels = sample.train_images[:10], sample.train_labels[:10]
    args = (MODEL, TINY, "cifar10", np.arange(10), images, labels, torch.device("cpu"), "fp32")
    assert train_state.training_fingerprint(*args) != train_state.training_fingerprint(
        *args, own_seed
    )


def test_a_run_has_one_seed():
    assert TINY.seed == 3
    with pytest.raises(CompRepsError, match="one seed"):
        _ = dataclasses.replace(TINY, seeds=(3, 4)).seed
