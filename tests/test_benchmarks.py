"""benchmarks/bench_gpu.py's --smoke mode: every row of the GPU benchmark (decode, the bare steps,
CUDA graphs' rows, the compiled optimizer's, the loop end to end, the top kernels) runs on the CPU, as .ci/run runs it after
the tests and before the pipeline; benchmarks/bench_cifar.py runs at a tiny size (it measures the loop the stage runs, so
a change to that loop's signatures must not leave it broken)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_benchmark_smoke_runs_every_row(tmp_path: Path):
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_gpu import LOOPS, STEPS

    assert result["smoke"] is True and result["machine"]["device"] == "cpu" and result["finished"] is True
    assert set(result["rows"]) == {"decode", *LOOPS, *(f"step: {name}" for name in STEPS)}
    assert [result["rows"][name]["decode"] for name in LOOPS] == ["device", "split"]
    assert not [name for name, row in result["rows"].items() if "error" in row]
    assert set(result["rows"]["decode"]["rows"]) == {"hardware decoder", "CPU threads", "both, half each"}
    assert all(row["images_per_second"] > 0 for name, row in result["rows"].items() if name != "decode")
    assert result["top_kernels"] and result["rows"]["loop end to end"]["goal"] == 20_000


@pytest.mark.slow
def test_the_cifar_benchmark_runs_every_net_and_variant(tmp_path: Path):
    out = tmp_path / "bench_cifar.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cifar.py"), "--images", "128", "--repeat",
                           "1", "--variants", "pinned", "onednn", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rates = json.loads(out.read_text())["images_per_second"]
    assert set(rates) == {"figure1_authors", "figure1_modern", "11pct"}
    assert set(rates["figure1_modern"]) == {"plain", "pinned", "onednn"}
    assert all(set(rates[net]) == {"pinned", "onednn"} for net in ("figure1_authors", "11pct"))
    assert all(r > 0 for row in rates.values() for r in row.values())


def test_ci_runs_the_smoke_between_the_tests_and_the_pipeline():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    smoke = lines.index("python benchmarks/bench_gpu.py --smoke")
    assert max(i for i, ln in enumerate(lines) if ln.startswith("python -m pytest")) < smoke < lines.index("dvc repro")
