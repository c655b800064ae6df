"""dvc.yaml against the code: every stage depends on every module its script runs.

A module missing from a stage's deps is a silent reproducibility bug: change it and `dvc repro`
reuses outputs the new code would not have produced. The imports are read statically (including
those inside functions), transitively, from stages/<name>.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Imported everywhere but cannot change what a stage computes: argument parsing and error
# printing (cli), the package docstring and version string (__init__).
EXEMPT = {"alexnet/cli.py", "alexnet/__init__.py"}


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The alexnet modules `path` imports, at any depth of its code."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
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
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    return {m for m in found if m.split(".")[0] == "alexnet"}


def code_closure(script: Path) -> set[str]:
    """Repo-relative paths of every alexnet module `script` runs (parent packages included)."""
    files: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in files:
                    files.add(f)
                    todo.append(f)
    return {str(f.relative_to(ROOT)) for f in files}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_all_the_code_it_runs(name):
    stage = STAGES[name].get("do", STAGES[name])  # foreach stages keep theirs under "do"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    script = f"stages/{name}.py"
    assert script in deps and script in stage["cmd"]
    missing = sorted(p for p in code_closure(ROOT / script) - EXEMPT if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not list them in deps"


def test_the_closure_follows_imports_inside_functions():
    # prepare imports alexnet.sources only inside prepare(); train reaches augment via loader.
    assert "alexnet/sources/tiny.py" in code_closure(ROOT / "stages" / "prepare.py")
    assert {"alexnet/loader.py", "alexnet/augment.py"} <= code_closure(ROOT / "stages" / "train.py")


def test_checkpoints_fingerprint_the_code_train_depends_on():
    """A finished checkpoint is resumed only by the code that made it (alexnet.train.TRAINING_CODE):
    the modules dvc.yaml's train depends on, but for argument parsing, atomic writes and the run
    record's provenance (git revision, CPU capability: what made the weights, not how)."""
    from alexnet.train import TRAINING_CODE

    closure = code_closure(ROOT / "stages" / "train.py") - EXEMPT - {"alexnet/fileio.py", "alexnet/provenance.py"}
    assert {f"alexnet/{name}" for name in TRAINING_CODE} == closure
