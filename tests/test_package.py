"""The package index (alexnet/__init__.py's docstring) names every module, and only modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import alexnet

PACKAGE = Path(alexnet.__file__).resolve().parent


@pytest.mark.parametrize("folder", [PACKAGE, *sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))],
                         ids=lambda p: p.name)
def test_the_package_index_names_every_module_and_only_modules(folder):
    """alexnet's index names its modules and subpackages; a subpackage that indexes its modules
    (alexnet.input, alexnet.cifar; alexnet.sources describes its sources instead) names them all."""
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
    if folder != PACKAGE and "Modules" not in doc:
        return
    indexed = set(re.findall(r"^    (\w+) ", doc, re.M))
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}
    assert indexed == modules | packages, (sorted((modules | packages) - indexed), sorted(indexed - modules - packages))
