"""Command line: ``python -m compreps <step> [options]`` (or the ``compreps`` script).

Each step lives in its own module, which exposes ``main(argv) -> int``; this dispatcher only
imports the module that is asked for, so ``compreps metrics`` never imports torch training code.
Errors meant for the user (:class:`compreps.files.CompRepsError`) print one line, no traceback.
"""

from __future__ import annotations

import importlib
import sys

from compreps.files import CompRepsError

# step name -> module that implements it (each module: ``main(argv) -> int``)
STEPS = {
    "prepare-data": "compreps.data",
    "coreset": "compreps.coreset",
    "train": "compreps.train",
    "import-base": "compreps.train",
    "prune": "compreps.prune",
    "quantize": "compreps.quantize",
    "activations": "compreps.activations",
    "accuracy-table": "compreps.activations",
    "metrics": "compreps.metrics",
    "metrics-table": "compreps.metrics",
    "correlate": "compreps.correlate",
    "sensitivity": "compreps.correlate",
    "figures": "compreps.figures",
    "report": "compreps.report",
    "check-config": "compreps.config",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in STEPS:
        print(
            "usage: python -m compreps <step> [options]\n\nsteps:\n  " + "\n  ".join(sorted(STEPS)),
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    step, rest = argv[0], argv[1:]
    module = importlib.import_module(STEPS[step])
    try:
        return int(module.main([step, *rest]) or 0)
    except CompRepsError as err:
        print(f"compreps {step}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
