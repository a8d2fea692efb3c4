"""The walls of the house (../shared/STYLE.md, README "Layout"), checked on the import graph.

Each test parses the package's source with `ast` (nothing is imported), so a module that
reaches across a wall fails here with the file and the import, before review has to find it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rwkv_eval"


def modules() -> dict[str, Path]:
    """rwkv_eval.a.b -> its file."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """Absolute names of the rwkv_eval modules (or packages) `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {t for t in found if t == "rwkv_eval" or t.startswith("rwkv_eval.")}


def crossings(sources: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for name, path in modules().items():
        if name == sources or name.startswith(sources + "."):
            for target in sorted(imports(name, path)):
                if any(target == f or target.startswith(f + ".") for f in forbidden):
                    bad.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    return bad


def test_the_import_parser_sees_relative_and_absolute_imports():
    """The checks below are only as good as `imports`: it must resolve both forms."""
    got = imports("rwkv_eval.analyses.ood", PACKAGE / "analyses" / "ood.py")
    assert {"rwkv_eval.evaluation", "rwkv_eval.analyses.compare", "rwkv_eval.datasets"} <= got
    assert "rwkv_eval.suite.gates" in imports("rwkv_eval.suite.plugin", PACKAGE / "suite" / "plugin.py")


@pytest.mark.parametrize("sources, forbidden", [
    ("rwkv_eval.models", ("rwkv_eval.evaluation", "rwkv_eval.analyses", "rwkv_eval.suite", "rwkv_eval.report",
                          "rwkv_eval.cli", "rwkv_eval.st_adapter")),
    ("rwkv_eval.encoder", ("rwkv_eval.models",)),
    ("rwkv_eval.evaluation", ("rwkv_eval.analyses", "rwkv_eval.suite", "rwkv_eval.models")),
    ("rwkv_eval.datasets", ("rwkv_eval.models", "rwkv_eval.evaluation", "rwkv_eval.analyses", "rwkv_eval.suite")),
    ("rwkv_eval.analyses", ("rwkv_eval.suite", "rwkv_eval.cli", "rwkv_eval.report")),
    ("rwkv_eval.report", ("rwkv_eval.models", "rwkv_eval.datasets", "rwkv_eval.evaluation", "rwkv_eval.suite.plugin")),
    ("rwkv_eval.st_adapter", ("rwkv_eval.suite",)),
])
def test_no_import_crosses_a_wall(sources, forbidden):
    assert crossings(sources, forbidden) == []


def environment_reads(path: Path) -> list[str]:
    """Every `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ") or (
                isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv")):
            out.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(node)}")
    return out


def test_environment_reads_are_found():
    assert any("DEBUG_ENV" in r for r in environment_reads(PACKAGE / "cli.py"))
    assert any("DATA_ENV" in r for r in environment_reads(PACKAGE / "suite" / "plugin.py"))


def test_only_the_faces_read_environment_variables():
    """$RWKV_EVAL_* and the hub's offline switches configure a run: only cli.py and the pytest
    plugin read them and hand plain values down (the loaders take a data root, profiles are
    told whether the hub is reachable)."""
    faces = {PACKAGE / "cli.py", PACKAGE / "suite" / "plugin.py"}
    assert [r for p in sorted(PACKAGE.rglob("*.py")) if p not in faces for r in environment_reads(p)] == []
