"""Which of the package's modules a file runs, read from its source: its imports (those inside
functions too), followed transitively. One definition for the two places that need it: a
checkpoint's code fingerprint (alexnet.training.train: the modules that decide the weights) and the test
that dvc.yaml lists every module a stage runs among its deps (tests/test_pipeline.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "alexnet"
ROOT = Path(__file__).resolve().parents[2]  # the folder holding the package (and stages/ in a checkout)


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module `name` (a package's __init__.py), or None where it is not a file under root."""
    path = root.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """The package's modules `path` imports anywhere in it (relative imports resolved)."""
    package = ".".join(path.relative_to(root).parts[:-1])  # what a relative import is relative to
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}", root)}
    return {m for m in found if m.split(".")[0] == PACKAGE}


def closure(start: Path, root: Path = ROOT) -> set[str]:
    """Root-relative paths of every package module `start` runs, parent packages included."""
    files: set[Path] = set()
    todo = [start]
    while todo:
        for name in imported_modules(todo.pop(), root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = module_file(".".join(parts[:i]), root)
                if f is not None and f not in files:
                    files.add(f)
                    todo.append(f)
    return {f.relative_to(root).as_posix() for f in files}


def runs_nothing(path: Path) -> bool:
    """Whether a module is only its docstring (and __version__): a package index, which no
    computation depends on."""
    body = ast.parse(path.read_text()).body
    return all((isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
               or (isinstance(n, ast.Assign) and [getattr(t, "id", "") for t in n.targets] == ["__version__"])
               for n in body)


def _dotted(path: Path, root: Path) -> str:
    """A package file's module name without the `alexnet.` prefix (a package by its own name)."""
    rel = path.relative_to(root / PACKAGE).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def module_graph(root: Path = ROOT) -> dict[str, list[str]]:
    """Each package module (dotted, without the `alexnet.` prefix; a subpackage's __init__ by the
    package name) and the package modules it imports directly, package indexes left out."""
    graph = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        if path.name == "__init__.py" and runs_nothing(path):
            continue
        name = _dotted(path, root)
        deps = set()
        for module in imported_modules(path, root):
            f = module_file(module, root)
            if f is None or (f.name == "__init__.py" and runs_nothing(f)):
                continue
            dep_name = _dotted(f, root)
            if dep_name and dep_name != name:
                deps.add(dep_name)
        graph[name] = sorted(deps)
    return graph


def layered(graph: dict[str, list[str]]) -> list[str]:
    """The graph as docs/architecture.md draws it: `module -> imports`, each module below every
    module it imports (a module that imports none stands alone), alphabetical within a layer."""
    done: set[str] = set()
    lines = []
    while len(done) < len(graph):
        layer = sorted(m for m, deps in graph.items() if m not in done and set(deps) <= done)
        if not layer:  # an import cycle: draw the rest as it is
            layer = sorted(set(graph) - done)
        lines += [f"{m} -> {' '.join(graph[m])}" if graph[m] else m for m in layer]
        done |= set(layer)
    return lines
