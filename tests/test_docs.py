"""docs/architecture.md against the code: every stage in its diagram, its module graph drawn from
the imports (alexnet.pipeline.imports), so that the document cannot drift from what runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from alexnet.pipeline.imports import layered, module_graph

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _blocks() -> list[str]:
    return re.findall(r"```\n(.*?)```", DOC, re.S)


def test_every_stage_is_in_the_diagram():
    diagram = _blocks()[0]
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = [name for name in stages if not re.search(rf"--> {name}\b", diagram)]
    assert not missing, f"docs/architecture.md's stage diagram leaves out {missing}"


def test_the_module_graph_is_the_one_the_code_imports():
    section = DOC[DOC.index("## Modules and the direction of their imports"):]
    drawn = re.search(r"```\n(.*?)```", section, re.S).group(1)
    assert drawn.rstrip("\n").split("\n") == layered(module_graph()), \
        "docs/architecture.md's module graph is stale: paste `alexnet-imports` into it"
