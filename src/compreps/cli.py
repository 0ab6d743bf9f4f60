"""Command line: ``python -m compreps <step> [options]`` (or the ``compreps`` script).

Each step lives in a module exposing ``main(argv) -> int`` (``argv[0]`` is the step name); this
dispatcher imports only the module asked for, so an analysis step never imports torch.
Errors meant for the user (:class:`compreps.core.files.CompRepsError`) print one line and exit 1;
with ``COMPREPS_DEBUG=1`` in the environment the full traceback is shown instead.
"""

from __future__ import annotations

import importlib
import os
import sys

from compreps.core.files import CompRepsError

# step name -> module that implements it
STEPS = {
    # model world (torch)
    "prepare-data": "compreps.model.data.datasets",
    "coreset-scores": "compreps.model.data.selection_run",
    "coreset": "compreps.model.data.coreset",
    "coreset-balance": "compreps.model.data.balance",
    "train": "compreps.model.training.train",
    "import-base": "compreps.model.compression.step",
    "prune": "compreps.model.compression.step",
    "quantize": "compreps.model.compression.step",
    "structured": "compreps.model.compression.step",
    "activations": "compreps.model.activations",
    # analysis world (reads dumps and tables only)
    "accuracy-table": "compreps.analysis.tables",
    "metrics": "compreps.analysis.metrics.step",
    "metrics-table": "compreps.analysis.tables",
    "correlate": "compreps.analysis.statistics.correlate",
    "sensitivity": "compreps.analysis.statistics.sensitivity",
    "figures": "compreps.analysis.figures.step",
    "report": "compreps.analysis.report.step",
    "seeds": "compreps.analysis.seeds.step",
    # workflow
    "check-config": "compreps.checks",
}
ANALYSIS_STEPS = (
    "accuracy-table",
    "metrics",
    "metrics-table",
    "correlate",
    "sensitivity",
    "figures",
    "report",
    "seeds",
)
DEBUG_VARIABLE = "COMPREPS_DEBUG"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in STEPS:
        print(
            "usage: python -m compreps <step> [options]\n\nsteps:\n  " + "\n  ".join(sorted(STEPS)),
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    step = argv[0]
    try:
        module = importlib.import_module(STEPS[step])
        return int(module.main(argv) or 0)
    except CompRepsError as err:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        print(f"compreps {step}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
