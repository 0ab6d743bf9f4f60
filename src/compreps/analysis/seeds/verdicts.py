"""The study's verdicts across seeds: each claim's per-seed verdicts (the ``report`` step's
``findings.csv`` of every seed) combined into one.

The rule (:data:`RULE`): a claim **holds** across seeds only when every seed's own test says
it holds, and **does not hold** only when every seed's own test says it does not hold, so
that the seeds' deciding statistics all lie on one side: the effect exceeds the seed-to-seed
range as well as each run's own test. It is **not in this run** when no seed has it (every
seed's table says so, or lacks the claim). Otherwise (the seeds disagree, or some seed is
undecided or lacks the claim) it is **undecided**, and the reason names the seeds on each
side. With one seed the combined verdict is that seed's verdict.
"""

from __future__ import annotations

import pandas as pd

from compreps.analysis.report.claim_tests import ABSENT, FAILS, HOLDS, UNDECIDED
from compreps.core.files import CompRepsError

VERDICTS = (HOLDS, FAILS, UNDECIDED, ABSENT)
SEEDS_FINDING_COLUMNS = ("id", "claim", "per_seed", "verdict", "reason")
RULE = (
    f"a claim **{HOLDS}** across seeds only when every seed's own test says it holds, and "
    f"**{FAILS}** only when every seed's own test says it does not hold: the seeds' deciding "
    "statistics then all lie on one side, i.e. the effect exceeds the seed-to-seed range as "
    f"well as each run's own test. It is **{ABSENT}** when no seed has it; otherwise (the "
    f"seeds disagree, or a seed is {UNDECIDED} or lacks the claim) it is **{UNDECIDED}**, "
    "and the reason names the seeds of each verdict. With one seed the combined verdict is "
    "that seed's verdict."
)


def _seed_list(seeds) -> str:
    return ", ".join(str(seed) for seed in seeds)


def combine_verdicts(per_seed: dict) -> tuple[str, str]:
    """``(verdict, reason)`` of one claim from ``{seed: verdict}`` (:data:`RULE`); a seed
    whose table lacks the claim is given as :data:`ABSENT`."""
    if not per_seed:
        raise CompRepsError("no seed to combine")
    unknown = {v for v in per_seed.values() if v not in VERDICTS}
    if unknown:
        raise CompRepsError(
            f"unknown verdict(s) {', '.join(map(repr, sorted(unknown)))}: expected one of "
            + ", ".join(map(repr, VERDICTS))
        )
    seeds = list(per_seed)
    verdicts = set(per_seed.values())
    if len(verdicts) == 1:
        verdict = verdicts.pop()
        if len(seeds) == 1:
            return verdict, f"one seed ({seeds[0]}): its own test decides"
        if verdict == ABSENT:
            return ABSENT, f"no seed has this claim ({_seed_list(seeds)})"
        if verdict == UNDECIDED:
            return UNDECIDED, f"every seed's own test is undecided ({_seed_list(seeds)})"
        return verdict, f"every seed's own test: {verdict} ({_seed_list(seeds)})"
    sides = {v: [s for s in seeds if per_seed[s] == v] for v in VERDICTS}
    named = "; ".join(f"{v} on {_seed_list(s)}" for v, s in sides.items() if s)
    what = "seeds disagree" if {HOLDS, FAILS} <= verdicts else "not every seed decides alike"
    return UNDECIDED, f"{what}: {named}"


def combine_findings(tables: dict) -> pd.DataFrame:
    """:data:`SEEDS_FINDING_COLUMNS`: one row per claim id of any seed's findings table (the
    first seed's order), with each seed's verdict (``42: holds; 7: undecided``) and the
    combined verdict and its reason."""
    claims: dict[str, str] = {}
    verdicts: dict = {}
    for seed, table in tables.items():
        twice = table["id"][table["id"].duplicated()]
        if len(twice):
            raise CompRepsError(f"seed {seed}: findings table lists {', '.join(twice)} twice")
        for claim_id, claim, verdict in zip(
            table["id"], table["claim"], table["verdict"], strict=True
        ):
            claims.setdefault(claim_id, claim)
            verdicts[(seed, claim_id)] = verdict
    rows = []
    for claim_id, claim in claims.items():
        per_seed = {seed: verdicts.get((seed, claim_id), ABSENT) for seed in tables}
        try:
            verdict, reason = combine_verdicts(per_seed)
        except CompRepsError as err:
            raise CompRepsError(f"claim {claim_id}: {err}") from None
        text = "; ".join(f"{seed}: {v}" for seed, v in per_seed.items())
        rows.append([claim_id, claim, text, verdict, reason])
    return pd.DataFrame(rows, columns=list(SEEDS_FINDING_COLUMNS))
