"""The package index (alexnet/__init__.py's docstring) names every module, and only modules."""

from __future__ import annotations

import re
from pathlib import Path

import alexnet

PACKAGE = Path(alexnet.__file__).resolve().parent


def test_the_package_index_names_every_module_and_only_modules():
    indexed = set(re.findall(r"^    (\w+) ", alexnet.__doc__, re.M))
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert indexed == modules | packages, (sorted((modules | packages) - indexed), sorted(indexed - modules - packages))
