"""The package's shape, read from the folder tree: the worlds are the subpackages
``compreps.core`` (torch-free, imports no world), ``compreps.model`` (torch) and
``compreps.analysis`` (no torch, no model world); no import cycle; size limits; and the code
hashes of the analysis rules cover exactly the code each analysis step runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compreps import code_graph
from compreps.cli import ANALYSIS_STEPS, STEPS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "compreps"
MAX_LINES = 400
MAX_FUNCTION_LINES = 60
CORE, MODEL, ANALYSIS = "compreps.core", "compreps.model", "compreps.analysis"
WORLDS = (CORE, MODEL, ANALYSIS)


def world(module: str) -> str | None:
    """The world a module belongs to, from its folder (None: the package's glue, e.g. cli)."""
    return next((w for w in WORLDS if module == w or module.startswith(w + ".")), None)


def test_every_module_but_the_glue_lives_in_a_world():
    glue = {m for m in code_graph.all_modules() if world(m) is None}
    assert glue == {
        "compreps",
        "compreps.__main__",
        "compreps.checks",
        "compreps.cli",
        "compreps.code_graph",
    }


def test_init_files_are_empty():
    # the torch-free import rule holds only if importing a package runs nothing
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent.name != "paper"]
    assert inits and all(not p.read_text().strip() or p == PACKAGE / "__init__.py" for p in inits)


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [(CORE, (MODEL, ANALYSIS)), (ANALYSIS, (MODEL,))],
)
def test_world_imports(importer, forbidden):
    bad = {
        (module, imported)
        for module in code_graph.all_modules()
        if world(module) == importer
        for imported in code_graph.imports_of(module)
        if world(imported) in forbidden
    }
    assert not bad, sorted(bad)


def test_no_import_cycle():
    graph = {
        m: {i for i in code_graph.imports_of(m) if i != "compreps"}
        for m in code_graph.all_modules()
    }
    # a package's __init__ is imported with each of its modules: not an edge of a cycle
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(module, path):
        if state.get(module) == 1:
            pytest.fail(f"import cycle: {' -> '.join(path[path.index(module) :] + [module])}")
        if state.get(module) == 2:
            return
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            visit(dep, [*path, module])
        state[module] = 2

    for module in graph:
        visit(module, [])


def test_no_module_over_the_line_limit():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_no_function_over_the_line_limit():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = n
    assert not long, long


def analysis_rule_steps() -> dict[str, tuple[str, str]]:
    """rule -> (the step its shell runs, the step its code hash names), from the rule files."""
    found = {}
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            run = re.search(r'"compreps ([a-z-]+)', block)
            hashed = re.search(r'code=code_hash\("([a-z-]+)"\)', block)
            if run and run.group(1) in ANALYSIS_STEPS:
                found[name] = (run.group(1), hashed.group(1) if hashed else None)
    return found


def test_every_analysis_rule_hashes_the_step_it_runs():
    rules = analysis_rule_steps()
    assert {step for step, _ in rules.values()} == set(ANALYSIS_STEPS)
    for rule, (step, hashed) in rules.items():
        assert hashed == step, rule


def test_model_rules_carry_no_code_hash():
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            run = re.search(r'"compreps ([a-z-]+)', block)
            if run and world(STEPS[run.group(1)]) == MODEL:
                assert "code_hash" not in block, block.split(":", 1)[0]


def test_a_correlation_code_change_reaches_only_its_step():
    # figures and report rerun through their input correlations.csv, not through code
    correlate = "compreps.analysis.statistics.correlate"
    reached = [s for s in ANALYSIS_STEPS if correlate in code_graph.closure(STEPS[s])]
    assert reached == ["correlate"]


def test_code_hash_changes_with_a_file_of_the_closure_only(tmp_path, monkeypatch):
    step = STEPS["correlate"]
    before = code_graph.code_hash(step)
    files = code_graph.code_files(code_graph.closure(step))
    assert PACKAGE / "analysis" / "statistics" / "rank_stats.py" in files
    assert PACKAGE / "analysis" / "figures" / "step.py" not in files
    # the paper's values are data of the sensitivity step's code
    assert PACKAGE / "analysis" / "paper" / "values.csv" in code_graph.code_files(
        code_graph.closure(STEPS["sensitivity"])
    )
    assert before == code_graph.code_hash(step)


@pytest.mark.parametrize("step", ANALYSIS_STEPS)
def test_analysis_steps_import_no_torch(step):
    code = (
        "import sys; from compreps import cli; "
        f"import importlib; importlib.import_module(cli.STEPS[{step!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
