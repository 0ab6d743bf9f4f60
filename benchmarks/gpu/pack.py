"""Rewrite the protocol's result files from what exists now (cheap, idempotent; run after every
stage and every minute of the DAG by benchmarks/gpu/protocol.sh).

    python benchmarks/gpu/pack.py ROOT WORK OUT

Writes into OUT: ``jobs.tsv`` (per-job wall times from Snakemake's records, then per rule),
``epochs.tsv`` (every epoch line of the training logs: img/s, loss, elapsed), ``accuracy.tsv``
(one row per checkpoint from its metadata, beside results/seed-42/tables/accuracy.csv when written),
``gpu.txt`` (utilisation summary, then nvidia-smi dmon's samples from WORK/dmon.txt) and
``logs.tar.gz`` (stage logs, job logs, Snakemake's logs, the tables and report). Prints a
one-line status for the summary.
"""

from __future__ import annotations

import base64
import collections
import csv
import json
import re
import sys
import tarfile
from pathlib import Path

MAX_TAR_BYTES = 15 * 1024 * 1024  # the device tool returns files up to 16 MiB
# the protocol runs the config's one seed (train.seeds: [42]): its models and tables
PROTOCOL_SEED = "seed-42"
EPOCH_LINE = re.compile(
    r"(?P<model>\S+) epoch (?P<epoch>\d+)/(?P<epochs>\d+): loss (?P<loss>\S+) train acc "
    r"(?P<acc>\S+) lr (?P<lr>\S+) (?P<img_s>\d+) img/s elapsed (?P<elapsed>[\d.]+)s"
)
META_KEYS = (
    "test_accuracy",
    "wall_time_s",
    "device",
    "precision",
    "compiled",
    "deterministic",
    "n_train",
    "epochs",
    "resumed_from_epoch",
    "torch_version",
)


def job_records(root: Path) -> list[tuple[float, float, str, str]]:
    """(start, end, rule, first output) of every finished job Snakemake recorded; the records
    of one job's outputs share its end time and hash (their start times differ by < 1 ms)."""
    jobs: dict[tuple, list] = {}
    for path in (root / ".snakemake" / "metadata").glob("*"):
        try:
            record = json.loads(path.read_text())
            output = base64.b64decode(path.name.replace("@", "/")).decode()
        except (ValueError, OSError):
            continue
        if not (record.get("starttime") and record.get("endtime")):
            continue
        key = (record["endtime"], record.get("rule", "?"), record.get("job_hash"))
        start, first = jobs.get(key, (record["starttime"], output))
        jobs[key] = [min(start, record["starttime"]), min(first, output)]
    return sorted((start, end, rule, out) for (end, rule, _), (start, out) in jobs.items())


def write_jobs(root: Path, out: Path) -> int:
    jobs = job_records(root)
    t0 = min((job[0] for job in jobs), default=0.0)
    lines = ["start_s\twall_s\trule\tfirst_output"]
    lines += [f"{s - t0:.1f}\t{e - s:.1f}\t{rule}\t{path}" for s, e, rule, path in jobs]
    per_rule: dict[str, list[float]] = collections.defaultdict(list)
    for s, e, rule, _ in jobs:
        per_rule[rule].append(e - s)
    lines += ["", "rule\tjobs\tsum_s\tmean_s\tmax_s"]
    for rule, walls in sorted(per_rule.items()):
        mean = sum(walls) / len(walls)
        lines.append(f"{rule}\t{len(walls)}\t{sum(walls):.1f}\t{mean:.1f}\t{max(walls):.1f}")
    running = sorted(p.stem for p in (root / "results").glob("seed-*/train_state/*.pt"))
    lines += ["", f"# trainings with a resume state (unfinished): {' '.join(running) or 'none'}"]
    (out / "jobs.tsv").write_text("\n".join(lines) + "\n")
    return len(jobs)


def write_epochs(root: Path, out: Path) -> None:
    lines = ["model\tepoch\tepochs\tloss\ttrain_acc\tlr\timg_s\telapsed_s"]
    for log in sorted((root / "results").glob("seed-*/logs/train/*.log")):
        for match in EPOCH_LINE.finditer(log.read_text(errors="replace")):
            keys = ("model", "epoch", "epochs", "loss", "acc", "lr", "img_s", "elapsed")
            lines.append("\t".join(match[key] for key in keys))
    (out / "epochs.tsv").write_text("\n".join(lines) + "\n")


def checkpoint_meta(path: Path, cache: dict) -> dict:
    """The checkpoint's metadata (memory-mapped: the tensors are not read), cached by mtime."""
    key = f"{path.name}:{path.stat().st_mtime_ns}"
    if key not in cache:
        import torch

        try:
            meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["meta"]
            cache[key] = {k: meta.get(k) for k in ("family", "level", *META_KEYS)}
        except Exception as err:  # a file being written or damaged: say so, go on
            return {"test_accuracy": f"unreadable: {type(err).__name__}"}
    return cache[key]


def write_accuracy(root: Path, work: Path, out: Path) -> int:
    cache_file = work / "meta_cache.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    table = {}
    table_file = root / "results" / PROTOCOL_SEED / "tables" / "accuracy.csv"
    if table_file.is_file():
        table = {row["model"]: row["accuracy"] for row in csv.DictReader(table_file.open())}
    lines = ["\t".join(("model", "family", "level", *META_KEYS, "table_accuracy"))]
    checkpoints = sorted((root / "results" / PROTOCOL_SEED / "checkpoints").glob("*.pt"))
    for path in checkpoints:
        meta = checkpoint_meta(path, cache)
        values = [meta.get(k, "") for k in ("family", "level", *META_KEYS)]
        lines.append("\t".join(map(str, (path.stem, *values, table.get(path.stem, "")))))
    cache_file.write_text(json.dumps(cache))
    (out / "accuracy.tsv").write_text("\n".join(lines) + "\n")
    return len(checkpoints)


def gpu_summary(samples: str) -> str:
    """Mean SM utilisation and peak memory from ``nvidia-smi dmon -s pucm`` output."""
    lines = samples.splitlines()
    head = next((ln.lstrip("#").split() for ln in lines if ln.startswith("#") and " sm " in ln), [])
    rows = [ln.split() for ln in lines if ln.strip() and not ln.startswith("#")]
    rows = [row for row in rows if len(row) == len(head)]
    if not rows or "sm" not in head:
        return "GPU: no samples (no nvidia-smi, or dmon wrote none)"

    def column(name: str) -> list[float]:
        if name not in head:
            return []
        return [float(r[head.index(name)]) for r in rows if r[head.index(name)] not in ("-", "N/A")]

    sm, memory, power = column("sm"), column("fb"), column("pwr")
    busy = [value for value in sm if value > 0]
    return (
        f"GPU: {len(rows)} samples (1 s), SM busy mean {sum(sm) / max(len(sm), 1):.0f}% "
        f"({sum(busy) / max(len(busy), 1):.0f}% over the {len(busy)} non-idle samples), "
        f"max memory {max(memory, default=0):.0f} MiB, max power {max(power, default=0):.0f} W"
    )


def write_gpu(work: Path, out: Path) -> str:
    dmon = work / "dmon.txt"
    samples = dmon.read_text(errors="replace") if dmon.is_file() else "no nvidia-smi\n"
    summary = gpu_summary(samples)
    (out / "gpu.txt").write_text(f"# {summary}\n{samples}")
    return summary


def write_logs(root: Path, work: Path, out: Path) -> None:
    seed = root / "results" / PROTOCOL_SEED
    full = [*sorted(work.glob("*.log")), seed / "logs", root / ".snakemake" / "log"]
    full += [seed / "tables", seed / "report.md"]
    for paths in (full, full[:-4]):  # too large: the stage logs alone
        target = out / "logs.tar.gz.tmp"
        with tarfile.open(target, "w:gz") as tar:
            for path in paths:
                if path.exists():
                    inside = path.parent == work
                    tar.add(path, f"stages/{path.name}" if inside else str(path.relative_to(root)))
        if target.stat().st_size <= MAX_TAR_BYTES:
            break
    target.replace(out / "logs.tar.gz")


def main(argv: list[str]) -> int:
    root, work, out = (Path(arg).resolve() for arg in argv[1:4])
    for folder in (work, out):
        folder.mkdir(parents=True, exist_ok=True)
    jobs = write_jobs(root, out)
    write_epochs(root, out)
    checkpoints = write_accuracy(root, work, out)
    gpu = write_gpu(work, out)
    write_logs(root, work, out)
    report = "written" if (root / "results" / "report.md").is_file() else "not written"
    print(f"{jobs} jobs finished, {checkpoints} checkpoints, report {report}; {gpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
