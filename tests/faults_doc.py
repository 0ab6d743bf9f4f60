"""Write docs/faults.md from the fault table (tests/fault_table.py).

    python tests/faults_doc.py        # rewrites docs/faults.md

tests/test_faults.py::test_faults_doc_is_generated_from_the_table fails when the two differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_table import BAD_CONFIGS, FILE_FAULTS  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "faults.md"
INTRO = """\
# Faults: what stops a run, and the first line it prints

Every row below is a test: bad configurations are the table `BAD_CONFIGS` of
`tests/fault_table.py` (checked by `tests/test_faults.py`), the other rows its table
`FILE_FAULTS`, each naming its test; a change of message shows there first. This file is
generated from those tables (`python tests/faults_doc.py`). Bad configurations are stopped at
Snakefile parse time, before any job: each problem is one line naming the file that set the key
and the key, and all problems are listed at once. The overlay of each row is merged as
`snakemake -n --configfile presets/demo.yaml bad.yaml` merges it (over `config.yaml`).
"""


def overlay_text(overlay) -> str:
    if isinstance(overlay, str):
        return overlay.replace("\n", "⏎")
    return yaml.safe_dump(overlay, default_flow_style=True).strip()


def render() -> str:
    lines = [INTRO, f"## Bad configurations ({len(BAD_CONFIGS)})"]
    lines += ["| case | `bad.yaml` | first line of the message |", "| --- | --- | --- |"]
    lines += [
        f"| {name} | `{overlay_text(overlay)}` | `{first}` |"
        for name, overlay, first in BAD_CONFIGS
    ]
    lines += ["", f"## Damaged, foreign or changed files, odd paths ({len(FILE_FAULTS)})"]
    lines += ["| file | fault | first line of the message | test |", "| --- | --- | --- | --- |"]
    lines += [f"| {row[0]} | {row[1]} | {row[2]} | `{row[3]}` |" for row in FILE_FAULTS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
