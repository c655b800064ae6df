"""docs/fidelity.md: every test it cites exists, and every part of the paper's spec has rows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"
# The parts of ../shared/PAPER.md the ledger must cover (issue 10), each a section heading.
PARTS = ("Data", "Architecture", "Local response normalisation", "Pooling", "Dropout", "Initialisation",
         "Update rule", "Schedule", "Crops and flips", "PCA lighting", "Ten-crop test", "Ensembles", "Tables",
         "Ablation claims", "Figures")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_cited_test_exists():
    text = DOC.read_text()
    cited = re.findall(r"(tests/[\w/]+\.py)::(\w+)", text)
    assert len(cited) > 40
    missing = [f"{f}::{name}" for f, name in cited if not (ROOT / f).is_file() or name not in _tests_in(ROOT / f)]
    assert not missing, missing


def test_every_part_of_the_paper_has_rows_and_every_row_a_test():
    text = DOC.read_text()
    for part in PARTS:
        assert f"\n## {part}\n" in text, part
    sections = re.split(r"\n## ", text)[1:]
    for section in sections:
        for line in section.splitlines():
            # a ledger row: 5 cells, the last one the test(s)
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else []
            if len(cells) == 5 and cells[0] not in ("detail", "---"):
                assert "tests/" in cells[4], line
