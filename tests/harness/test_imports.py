"""The import graph of the harness: no circle between its modules (imports inside functions included),
and nothing imported from the methods package, its plug-ins."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import CHECKOUT

PACKAGE = CHECKOUT / "benchmark"


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file for every module under ``package`` (a package is its __init__)."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that the module ``name`` (file ``path``) imports anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
    return {module for module in found if module in modules and module != name}


def circles(package: Path) -> list[list[str]]:
    """Every import circle a depth-first walk of the graph meets, each as the modules around it."""
    modules = module_names(package)
    graph = {name: imported(path, name, modules) for name, path in modules.items()}
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def walk(name: str, stack: list[str]) -> None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    return found


def test_the_harness_has_no_import_circle() -> None:
    assert circles(PACKAGE) == []


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert circles(package) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_the_harness_never_imports_from_the_methods_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n == "methods" or n.startswith("methods.")]
    assert offenders == []
