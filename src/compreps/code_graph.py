"""The package's import graph, read from its source (``ast``, nothing imported).

What an analysis step runs is the closure of its module's ``compreps`` imports: the analysis
rules hash exactly those files (``workflow/rules/common.smk``), and the layering tests
(``tests/test_structure.py``) read the worlds from the folder tree through the same graph.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT_NAME = "compreps"


def module_file(name: str) -> Path | None:
    """``compreps.a.b`` -> ``a/b.py`` or ``a/b/__init__.py``; None when it is no module."""
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and path.is_file():
            return path
    return PACKAGE / "__init__.py" if not parts else None


def all_modules() -> list[str]:
    """Every module of the package, dotted (packages by their ``__init__``)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        names.append(".".join((ROOT_NAME, *parts)))
    return names


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def imports_of(name: str) -> frozenset[str]:
    """The ``compreps`` modules ``name`` imports anywhere (also inside functions), with the
    packages whose ``__init__`` each import runs."""
    tree = ast.parse(module_file(name).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names]
            candidates = [c for c in candidates if module_file(c)] or [node.module]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.split(".")[0] == ROOT_NAME and module_file(candidate):
                found.update([candidate, *_parents(candidate)])
    return frozenset(found - {name})


def closure(name: str) -> set[str]:
    """``name`` and every ``compreps`` module it imports, directly or not."""
    seen, todo = set(), [name, *_parents(name)]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += imports_of(current)
    return seen


def code_files(modules) -> list[Path]:
    """The files behind ``modules``: each source file, and a package's data files (non-Python
    files beside its ``__init__``, e.g. the paper's values.csv)."""
    files = set()
    for name in modules:
        path = module_file(name)
        files.add(path)
        if path.name == "__init__.py":
            files.update(p for p in path.parent.iterdir() if p.is_file() and p.suffix != ".py")
    return sorted(files)


def code_hash(module: str) -> str:
    """sha256 (16 hex digits) over the files ``module``'s closure runs: a rule parameter, so
    a change in that code, and only in it, reruns the rule."""
    digest = hashlib.sha256()
    for path in code_files(closure(module)):
        for part in (path.relative_to(PACKAGE).as_posix().encode(), b"\0", path.read_bytes()):
            digest.update(part)
    return digest.hexdigest()[:16]
