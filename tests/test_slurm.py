"""The presets/ci.yaml workflow through the SLURM executor on a local one-node cluster.

Start the cluster first (as root): `bash tests/cluster/start_slurm.sh`. The tests skip when
the SLURM commands are missing or `sinfo` cannot reach a controller, except in CI (`CI=true`,
set by .ci/run), where they fail instead. It runs the shipped
profile profiles/slurm (placeholders replaced by the local partition and account)
with tests/cluster/no-gpu.yaml, since the local node has no GPU gres, and checks that every
job ran as its own SLURM job that ended COMPLETED and that every output exists.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, copy_workflow, snakemake_env

pytestmark = pytest.mark.slurm

PROFILE = Path("profiles/slurm")
NO_GPU = Path("tests/cluster/no-gpu.yaml")
SMALL_DAG = Path("tests/small-dag.yaml")
RUN_TIMEOUT_S = 900
QUERY_TIMEOUT_S = 30
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


def gpu_rules() -> list[str]:
    """The rules that ask for a GPU (``job_resources(..., gpu=True)``), read from the rule files."""
    found = []
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule ", path.read_text(), flags=re.M)[1:]:
            if "gpu=True" in block:
                found.append(block.split(":", 1)[0].strip())
    return found


GPU_RULES = tuple(gpu_rules())


def slurm_query(*cmd: str) -> subprocess.CompletedProcess:
    """Run a SLURM client command with a hard timeout (a dead controller must not hang)."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"{cmd[0]} timed out")


def unavailable(reason: str) -> None:
    """Skip the test, or fail it in CI, where the cluster must be there."""
    if os.environ.get("CI", "").lower() in {"true", "1"}:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def local_cluster() -> dict:
    """Partition, account (None without accounting) and accounting flag of the local cluster;
    skips the test (fails it in CI) when SLURM is not installed or not running."""
    missing = [tool for tool in ("sbatch", "sinfo", "squeue") if shutil.which(tool) is None]
    if missing:
        unavailable(
            f"SLURM not installed ({', '.join(missing)} not found); "
            "start one with `sudo bash tests/cluster/start_slurm.sh`"
        )
    info = slurm_query("sinfo", "--noheader", "--format=%P|%T")
    if info.returncode != 0:
        unavailable(
            f"SLURM not running (sinfo: {info.stderr.strip()[:200]}); "
            "start it with `sudo bash tests/cluster/start_slurm.sh`"
        )
    rows = [line.split("|") for line in info.stdout.split()]
    defaults = [part.rstrip("*") for part, _ in rows if part.endswith("*")]
    partition = defaults[0] if defaults else rows[0][0]
    states = {state for part, state in rows if part.rstrip("*") == partition}
    assert states & {"idle", "mixed", "allocated", "completing"}, (
        f"no usable node in partition {partition}: {states} (see `sinfo -R`)"
    )
    accounting = slurm_query("sacct", "--noheader", "-X", "--starttime", "now").returncode == 0
    account = None
    if accounting:
        assoc = slurm_query(
            "sacctmgr", "-n", "-P", "list", "user", getpass.getuser(), "format=defaultaccount"
        )
        account = assoc.stdout.strip() or None
    return {"partition": partition, "account": account, "accounting": accounting}


def localise_profile(workdir: Path, cluster: dict) -> None:
    """Fill the shipped profile's placeholders for the local cluster (in the private copy)."""
    path = workdir / PROFILE / "config.yaml"
    profile = yaml.safe_load(path.read_text())
    assert profile["executor"] == "slurm"
    assert profile["rerun-incomplete"] is True and "keep-incomplete" not in profile
    defaults = profile["default-resources"]
    assert defaults["slurm_partition"] == "<your-partition>"
    assert defaults["slurm_account"] == "<your-account>"
    defaults["slurm_partition"] = cluster["partition"]
    if cluster["account"]:
        defaults["slurm_account"] = cluster["account"]
    else:  # the plugin validates a given account with sacctmgr, which needs accounting
        del defaults["slurm_account"]
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["slurm_partition"] == "<your-gpu-partition>"
        profile["set-resources"][rule]["slurm_partition"] = cluster["partition"]
    # sacct needs slurmdbd; squeue works without it (start_slurm.sh sets MinJobAge=300)
    profile["slurm-status-command"] = "sacct" if cluster["accounting"] else "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 5  # short jobs: poll early
    profile["slurm-keep-successful-logs"] = True
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def snakemake_args(*extra: str) -> list[str]:
    return [
        str(SNAKEMAKE),
        "--workflow-profile",
        str(PROFILE),
        "--configfile",
        "presets/ci.yaml",
        str(NO_GPU),
        str(SMALL_DAG),
        *extra,
    ]


def planned_jobs(workdir: Path) -> Counter:
    """{rule: job count} of the whole DAG (dry run of the same command)."""
    proc = subprocess.run(
        snakemake_args("--dry-run", "--quiet", "rules"),
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = Counter()
    for line in proc.stdout.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    assert counts, proc.stdout[-2000:]
    return counts


def run_on_slurm(workdir: Path, log: Path) -> int:
    """Run the workflow; on timeout kill Snakemake's process group and cancel its jobs."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            snakemake_args("--cores", "1", "--verbose"),
            cwd=workdir,
            env=snakemake_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            slurm_ids = [slurm for _, slurm in SUBMITTED.findall(log.read_text())]
            if slurm_ids:
                slurm_query("scancel", *slurm_ids)
            pytest.fail(
                f"SLURM run exceeded {RUN_TIMEOUT_S} s; log tail:\n{log.read_text()[-4000:]}"
            )


def slurm_states_from_sacct(slurm_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{slurm id: (state, rule)}; the plugin puts `rule_<name>[_wildcards_...]` in --comment."""
    proc = slurm_query(
        "sacct",
        "--noheader",
        "--parsable2",
        "-X",
        "--jobs",
        ",".join(slurm_ids),
        "--format=JobIDRaw,State,Comment",
    )
    assert proc.returncode == 0, proc.stderr
    states = {}
    for line in proc.stdout.splitlines():
        job_id, state, comment = line.split("|", 2)
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", comment)
        states[job_id] = (state, rule.group(1) if rule else "")
    return states


def slurm_states_from_jobcomp(slurm_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{slurm id: (state, "")} from the jobcomp/filetxt log (no rule names there)."""
    config = slurm_query("scontrol", "show", "config").stdout
    location = re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.MULTILINE)
    assert location, "without accounting the cluster needs JobCompType=jobcomp/filetxt"
    states = {}
    for line in Path(location.group(1)).read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobId") in slurm_ids:
            states[fields["JobId"]] = (fields["JobState"], "")
    return states


def prepare_copy(workdir: Path, cluster: dict) -> None:
    """Add what a cluster run needs to a workflow copy and localise its SLURM profile."""
    for folder in ("envs", "profiles"):  # envs: the rules' conda: files (metadata records them)
        if not (workdir / folder).exists():
            shutil.copytree(ROOT / folder, workdir / folder)
    (workdir / NO_GPU).parent.mkdir(parents=True, exist_ok=True)
    for overlay in (NO_GPU, SMALL_DAG):
        shutil.copy2(ROOT / overlay, workdir / overlay)
    localise_profile(workdir, cluster)


def test_ci_workflow_runs_as_slurm_jobs(workflow_dir):
    cluster = local_cluster()
    prepare_copy(workflow_dir, cluster)
    planned = planned_jobs(workflow_dir)
    planned.pop("all")  # target rule without a command: Snakemake finishes it locally

    log = workflow_dir / "slurm_run.log"
    returncode = run_on_slurm(workflow_dir, log)
    text = log.read_text()
    assert returncode == 0, f"snakemake failed ({returncode}):\n{text[-6000:]}"

    submitted = SUBMITTED.findall(text)
    slurm_ids = [slurm for _, slurm in submitted]
    assert len(slurm_ids) == len(set(slurm_ids)) == sum(planned.values()), (
        f"{len(slurm_ids)} SLURM jobs for {sum(planned.values())} Snakemake jobs"
    )
    reader = slurm_states_from_sacct if cluster["accounting"] else slurm_states_from_jobcomp
    states = reader(slurm_ids)
    assert set(states) == set(slurm_ids)
    assert {state for state, _ in states.values()} == {"COMPLETED"}, states
    if cluster["accounting"]:
        assert Counter(rule for _, rule in states.values()) == planned
    sbatch_calls = [line for line in text.splitlines() if line.startswith("sbatch call: ")]
    assert len(sbatch_calls) == len(slurm_ids)
    # gpu: 0 (no-gpu.yaml) must ask for no GPU: the node has no gres, --gpus=1 is rejected
    assert not [call for call in sbatch_calls if "--gpus" in call or "--gres" in call]

    summary = subprocess.run(
        snakemake_args("--summary"),
        cwd=workflow_dir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert summary.returncode == 0, summary.stderr[-4000:]
    rows = [line.split("\t") for line in summary.stdout.splitlines()[1:] if "\t" in line]
    assert len(rows) >= sum(planned.values())
    for output, _, rule, _, status, plan in rows:
        assert (workflow_dir / output).exists(), f"{output} ({rule}) missing"
        assert (status, plan) == ("ok", "no update"), f"{output}: {status}, {plan}"


# --------------------------------------------------------------------------- requeue
REQUEUE_EPOCHS = 8  # long enough to requeue after the first epoch, short enough for CI
TRAIN_TARGET = "results/seed-42/checkpoints/base.pt"
STATE_FILE = "results/seed-42/train_state/base.pt"


def train_command(*options: str) -> list[str]:
    """Only the base training (and its data step) of presets/ci.yaml, with more epochs."""
    return [
        str(SNAKEMAKE),
        TRAIN_TARGET,
        *options,
        "--configfile",
        "presets/ci.yaml",
        str(NO_GPU),
        "requeue.yaml",
    ]


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {timeout_s} s")
        time.sleep(1)


def slurm_job_state(job_id: str) -> str:
    """The job's state as squeue prints it (PENDING, RUNNING, ...; empty once it is gone)."""
    return slurm_query("squeue", "--noheader", "--jobs", job_id, "--format=%T").stdout.strip()


def slurm_job_of_rule(rule: str) -> str | None:
    """The SLURM id of the running or pending job whose comment names ``rule``."""
    proc = slurm_query("squeue", "--noheader", "--format=%i|%k|%T")
    for line in proc.stdout.splitlines():
        job_id, comment, state = line.split("|")
        if comment.startswith(f"rule_{rule}") and state == "RUNNING":
            return job_id
    return None


def test_requeued_training_resumes_bit_identical(tmp_path):
    """`scontrol requeue` kills a running training on SLURM; the requeued job resumes from
    results/seed-42/train_state/base.pt and ends with exactly the weights of an uninterrupted
    run."""
    import torch

    from compreps.model.checkpoints import load_checkpoint

    cluster = local_cluster()
    # state_interval_s 0: the resume state is saved at every epoch end
    overlay = yaml.safe_dump({"train": {"epochs": REQUEUE_EPOCHS, "state_interval_s": 0}})
    slurm_dir, local_dir = copy_workflow(tmp_path / "slurm"), copy_workflow(tmp_path / "local")
    for workdir in (slurm_dir, local_dir):
        prepare_copy(workdir, cluster)
        (workdir / "requeue.yaml").write_text(overlay)

    log = slurm_dir / "slurm_run.log"
    with log.open("w") as out:
        slurm = subprocess.Popen(
            train_command("--workflow-profile", str(PROFILE), "--verbose"),
            cwd=slurm_dir,
            env=snakemake_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: (slurm_dir / STATE_FILE).exists(), 300, "a resume state")
        job_id = slurm_job_of_rule("train_base")
        assert job_id, slurm_query("squeue").stdout
        requeue = slurm_query("scontrol", "requeue", job_id)
        assert requeue.returncode == 0, requeue.stderr
        # SLURM holds a requeued job back (its BeginTime two minutes on): once it is pending
        # again, let it start now
        wait_for(lambda: slurm_job_state(job_id) == "PENDING", 120, "the requeued job pending")
        release = slurm_query("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        assert release.returncode == 0, release.stderr
        # the uninterrupted reference, run locally while the requeued job trains
        local = subprocess.run(
            train_command("--cores", "1"),
            cwd=local_dir,
            env=snakemake_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        assert local.returncode == 0, local.stderr[-4000:]
        returncode = slurm.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if slurm.poll() is None:
            os.killpg(slurm.pid, signal.SIGTERM)
            slurm.wait(timeout=30)
            slurm_query("scancel", *[sid for _, sid in SUBMITTED.findall(log.read_text())])
    text = log.read_text()
    assert returncode == 0, text[-6000:]
    train_log = (slurm_dir / "results/seed-42/logs/train/base.log").read_text()
    assert "resuming from" in train_log, train_log[-3000:]
    assert not (slurm_dir / STATE_FILE).exists()  # deleted once the checkpoint is written

    resumed, meta = load_checkpoint(slurm_dir / TRAIN_TARGET)
    reference, reference_meta = load_checkpoint(local_dir / TRAIN_TARGET)
    assert meta["resumed_from_epoch"] and reference_meta["resumed_from_epoch"] is None
    assert 1 <= meta["resumed_from_epoch"] < REQUEUE_EPOCHS
    assert resumed.keys() == reference.keys()
    different = [name for name in reference if not torch.equal(resumed[name], reference[name])]
    assert not different, f"tensors differ after the requeue: {different}"
