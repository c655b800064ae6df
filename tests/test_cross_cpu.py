"""Bit identity across CPUs, checked on CPUs this machine is not: tests/cpu_workload.py (every
numerical path of the tiny pipeline, small) gives the same digests natively and under QEMU's
user-mode emulator with an AMD and an Intel CPU model, each with its own vendor string and
feature flags (the libraries that dispatch on them see another CPU). QEMU's TCG emulates AVX2,
not AVX-512, so the emulated CPUs are AVX2 ones; a native AVX-512 CPU runs the pinned AVX2 paths.

Needs `qemu-x86_64` (Debian's qemu-user; .ci/run installs it): skipped without it, except under
CI, where it fails. About two minutes per emulated CPU on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKLOAD = Path(__file__).with_name("cpu_workload.py")
CPU_MODELS = ("EPYC-Milan-v1", "Haswell-v4")  # AMD Zen 3, Intel Haswell: AVX2, two vendors

pytestmark = pytest.mark.emulated


def run_workload(*prefix: str) -> dict[str, str]:
    done = subprocess.run([*prefix, sys.executable, str(WORKLOAD)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def native() -> dict[str, str]:
    return run_workload()


@pytest.mark.parametrize("cpu", CPU_MODELS)
def test_every_part_has_the_same_bits_on_an_emulated_cpu(native, cpu):
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-x86_64 is missing: .ci/run installs Debian's qemu-user")
        pytest.skip("qemu-x86_64 not installed (Debian package qemu-user)")
    emulated = run_workload(qemu, "-cpu", cpu)
    assert native["cpu_capability"] == emulated["cpu_capability"] == "AVX2"
    differ = sorted(part for part in native if native[part] != emulated[part])
    assert not differ, f"under {cpu} these parts give other bits than natively: {differ}"
