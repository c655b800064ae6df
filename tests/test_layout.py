"""alexnet.pipeline.layout: dvc.yaml's outputs are the paths the layout names, and dvc.lock is
parsed once (reading the declared outputs, foreach items as globs: tests/test_provenance.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from alexnet.pipeline import layout

ROOT = Path(__file__).resolve().parents[1]

LOCK = """
schema: '2.0'
stages:
  stats:
    cmd: python -m stages.stats
    outs:
    - path: data/stats
      md5: aaa.dir
    - path: records/stats.json
      md5: bbb
  report:
    cmd: python -m stages.report
    outs:
    - path: reports/report.md
      md5: ccc
"""


def _layout_paths(stages: list[str]) -> set[str]:
    """Every output path the layout can name: its folder and file constants, each stage's metrics
    and record file, and the per-seed outputs with the seed as DVC's glob."""
    constants = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)}
    constants |= set(layout.REAL_CIFAR)
    per_stage = {layout.metrics_file(s) for s in stages} | {layout.record_file(s) for s in stages}
    seed = layout.seed_name("*")
    per_seed = {f"{layout.MODELS}/{seed}", f"{layout.LIVE}/{layout.train_name('*')}", layout.train_record("*")}
    return constants | per_stage | per_seed


def test_every_output_dvc_yaml_declares_is_a_path_the_layout_names():
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    known = _layout_paths(stages)
    # a figure inside reports/figures is the analyze stage's own file name (FIGURES_LIST lists them)
    unnamed = [p for p in layout.declared_outputs(ROOT / "dvc.yaml")
               if p not in known and not p.startswith(f"{layout.FIGURES}/")]
    assert unnamed == []
    # and the reverse: the layout names no output folder that dvc.yaml has dropped
    declared = set(layout.declared_outputs(ROOT / "dvc.yaml"))
    for folder in (layout.RAW, layout.PREPARED, layout.STATS, layout.EVAL, layout.CIFAR_DATA, layout.TABLES,
                   layout.FIGURES, layout.CLAIMS, layout.CIFAR_REPORT):
        assert folder in declared, folder


def test_the_lock_is_read_once_for_hashes_and_stages(tmp_path: Path):
    (tmp_path / "dvc.lock").write_text(LOCK)
    lock = layout.read_lock(tmp_path / "dvc.lock")
    assert layout.lock_hashes(lock) == {"data/stats": "aaa.dir", "records/stats.json": "bbb", "reports/report.md": "ccc"}
    assert layout.stage_outputs(lock) == {"stats": ["data/stats", "records/stats.json"], "report": ["reports/report.md"]}
    assert layout.read_lock(tmp_path / "absent.lock") == {}
