"""The package keeps its shape: no import cycle, no file of 500 lines or more, and imports
at the top of each module unless a comment says why not (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "geoloc"
#: The most function-level imports of geoloc modules the package may hold (each with a
#: comment giving its reason: a measured start-up cost).
MAX_LOCAL_IMPORTS = 14


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


def _imported(module: str, path: Path, node: ast.AST, mods: dict[str, Path]) -> set[str]:
    """The package modules ``node`` (an import statement of ``module``) names."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([base] if base else [])])
        targets = [base] + [f"{base}.{a.name}" for a in node.names]
    else:
        return set()
    out = set()
    for target in targets:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        # a package's __init__ re-exporting its children, or a child importing its own
        # package, is how Python packages work, not a cycle between concerns
        if target and target != module and not target.startswith(module + ".") \
                and not module.startswith(target + "."):
            out.add(target)
    return out


def test_the_package_has_no_import_cycle():
    """Imports anywhere in a file count (inside functions and under TYPE_CHECKING too):
    a cycle dodged by a late import is still a knot a reader has to untie."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            graph[module] |= _imported(module, path, node, mods)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_no_package_file_reaches_500_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) >= 500}
    assert not long, long


def test_imports_of_the_package_sit_at_module_top_unless_a_comment_says_why():
    mods = _modules()
    local = []
    for module, path in mods.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if _imported(module, path, node, mods) or (
                        isinstance(node, ast.ImportFrom) and node.level == 0
                        and (node.module or "").startswith("geoloc")):
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                    above, line = lines[node.lineno - 2], lines[node.lineno - 1]
                    assert "#" in line or above.strip().startswith("#"), \
                        f"{where}: a function-level import without a comment saying why"
                    local.append(where)
    assert len(set(local)) <= MAX_LOCAL_IMPORTS, sorted(set(local))
