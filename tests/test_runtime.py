"""Tests for alexnet/runtime/backend.py: the bit-identity mode gives the same bits whatever the CPU offers.

One machine cannot be two CPUs, so these start training under environments that make the
libraries pick other code paths (torch's CPU capability, MKL's and oneDNN's instruction sets,
OpenBLAS's core type, numpy's dispatch): a bit-identical mode gives the same weights under all of
them, and without it the same environments give different weights (on an AVX-512 machine), which
shows that the comparison can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_store import make_store

from alexnet.config import NumericsConfig
from alexnet.runtime import backend as runtime
from alexnet.runtime import pinning

REPO = Path(__file__).resolve().parents[1]

# A few SGD steps of the tiny net, after `pinning.pin` (torch already loaded: the re-exec path),
# printing a hash of the weights and the record of the numerics in effect.
TRAIN_STEPS = """
import hashlib, json, sys
import torch
from alexnet.runtime import backend as runtime, pinning
from alexnet.config import ModelConfig, NumericsConfig, TrainConfig
numerics = NumericsConfig(bit_identity=sys.argv[1] == "on", threads=2)
pinning.pin(numerics)
runtime.configure(numerics, deterministic=True)
from alexnet.model.net import build_model
from alexnet.training.optim import build_optimizer
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
model = build_model(ModelConfig(width=0.25), 10, generator=g)
opt = build_optimizer(model.parameters(), TrainConfig())
x = torch.randn(8, 3, 224, 224, generator=g) * 50
y = torch.randint(0, 10, (8,), generator=g)
for _ in range(2):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
h = hashlib.sha256()
for t in model.state_dict().values():
    h.update(t.numpy().tobytes())
print(json.dumps({"weights": h.hexdigest(), "numerics": runtime.numerics_record(numerics)}))
"""

# What another machine would pick by itself, as far as one machine can be made to pick it.
AS_AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "OPENBLAS_CORETYPE": "SkylakeX"}
AS_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
           "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": pinning.NUMPY_ABOVE_AVX2}
SET_BY_PIN = tuple(pinning.pinned_env(NumericsConfig(bit_identity=True)))


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_PIN and k not in AS_AVX2 and k not in AS_AVX512}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def _train(mode: str, extra: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN_STEPS, mode], env=_clean_env(extra), capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has_avx512() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability() == "AVX512"


def test_pinned_env_is_empty_when_off_and_names_every_library_when_on():
    assert pinning.pinned_env(NumericsConfig(bit_identity=False)) == {}
    env = pinning.pinned_env(NumericsConfig(bit_identity=True, threads=3))
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_CBWR"] == "COMPATIBLE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["OPENBLAS_CORETYPE"] == "Haswell"


def test_pin_sets_the_environment_in_process_without_reexec(monkeypatch):
    cfg = NumericsConfig(bit_identity=True, threads=2)
    for k in pinning.pinned_env(cfg):  # set, then deleted: monkeypatch restores each afterwards
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")  # a user's own setting is overridden
    assert pinning.unpinned(cfg)
    pinning.pin(cfg, reexec=False)
    assert pinning.unpinned(cfg) == {} and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    pinning.pin(NumericsConfig(bit_identity=False), reexec=False)  # off: touches nothing
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"


def test_bit_identity_gives_the_same_weights_under_other_cpu_code_paths():
    a = _train("on", AS_AVX512)
    b = _train("on", AS_AVX2)
    assert a["numerics"]["in_effect"] and b["numerics"]["in_effect"]
    assert a["numerics"]["cpu_capability"] == b["numerics"]["cpu_capability"] == "AVX2"
    assert not a["numerics"]["mkldnn"] and a["numerics"]["mkl_cbwr"] == "COMPATIBLE"
    assert a["weights"] == b["weights"]


@pytest.mark.skipif(not _has_avx512(), reason="needs an AVX-512 CPU to have two code paths to compare")
def test_without_bit_identity_the_same_environments_give_other_weights():
    """The control: the environments above do reach the arithmetic when nothing pins it."""
    a = _train("off", AS_AVX512)
    b = _train("off", AS_AVX2)
    assert not a["numerics"]["in_effect"]
    assert (a["numerics"]["cpu_capability"], b["numerics"]["cpu_capability"]) == ("AVX512", "AVX2")
    assert a["weights"] != b["weights"]


def test_stats_stage_gives_the_same_bytes_under_other_blas_and_numpy_code_paths(tmp_path):
    """Exact integer sums and a pure-Python eigen-decomposition: no kernel choice reaches them,
    with or without bit identity."""
    make_store(tmp_path / "prep", n_train=9, n_val=2)
    (tmp_path / "params.yaml").write_text("stats:\n  workers: 2\nnumerics:\n  bit_identity: false\n")
    outs = []
    for name, extra in (("a", AS_AVX512), ("b", AS_AVX2)):
        env = _clean_env(extra)
        done = subprocess.run([sys.executable, str(REPO / "stages" / "stats.py"), "--params", "params.yaml",
                               "--prepared", "prep", "--out", name, "--record", f"{name}.json"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outs.append((tmp_path / name / "stats.npz").read_bytes())
    assert outs[0] == outs[1]


STAGE = """
import json, os, sys
import numpy  # a numerical library loaded before run_stage pins: it must start again
from alexnet.cli import run_stage, stage_parser
print("started", flush=True)
run_stage(lambda args, params: print(json.dumps({k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")})),
          stage_parser(None))
"""


@pytest.mark.parametrize("bit_identity", [True, False])
def test_run_stage_reexecutes_under_the_pinned_environment(tmp_path, bit_identity):
    """A stage whose params ask for bit identity runs its work once, under the pinned environment,
    even when started without it and after numpy loaded; without it, nothing is re-executed."""
    (tmp_path / "params.yaml").write_text(f"numerics:\n  bit_identity: {str(bit_identity).lower()}\n")
    done = subprocess.run([sys.executable, "-c", STAGE, "--params", "params.yaml"], cwd=tmp_path,
                          env=_clean_env(AS_AVX512), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[:-1] == ["started"] * (2 if bit_identity else 1)
    seen = json.loads(lines[-1])
    assert seen == ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"} if bit_identity
                    else {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": None})


def test_numerics_record_says_when_the_mode_is_asked_for_but_not_in_effect(monkeypatch):
    """A library call (no stage, no pin) with bit_identity on: the record does not claim it."""
    cfg = NumericsConfig(bit_identity=True, threads=2)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512")
    record = runtime.numerics_record(cfg)
    assert record["bit_identity"] is True and record["in_effect"] is False


def test_eigh3_matches_numpy_and_is_orthonormal():
    from alexnet.data.stats import eigh3

    rng = np.random.default_rng(0)
    for _ in range(300):
        m = rng.normal(size=(3, 3))
        c = m @ m.T * rng.uniform(1, 5000)
        c = (c + c.T) / 2
        vals, vecs = (np.array(x) for x in eigh3(c.tolist()))
        np.testing.assert_allclose(vals, np.linalg.eigvalsh(c)[::-1], rtol=1e-12, atol=1e-12 * np.abs(c).max())
        np.testing.assert_allclose(vecs @ np.diag(vals) @ vecs.T, c, atol=1e-12 * np.abs(c).max())
        np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-14)
        for i in range(3):
            assert vecs[np.argmax(np.abs(vecs[:, i])), i] > 0


def test_eigh3_hand_computed_cases():
    from alexnet.data.stats import eigh3

    r = 0.5 ** 0.5
    vals, vecs = eigh3([[2, 1, 0], [1, 2, 0], [0, 0, 5]])  # 5 (e3), 3 ((1,1,0)/sqrt2), 1 ((1,-1,0)/sqrt2)
    np.testing.assert_allclose(vals, [5, 3, 1], rtol=1e-15)
    np.testing.assert_allclose(np.array(vecs), [[0, r, r], [0, r, -r], [1, 0, 0]], atol=1e-15)
    assert eigh3([[4, 0, 0], [0, 9, 0], [0, 0, 1]]) == ([9.0, 4.0, 1.0],
                                                      [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        eigh3([[1, 2, 0], [0, 1, 0], [0, 0, 1]])


def test_one_device_choice_and_one_error_for_cuda_without_a_gpu(monkeypatch):
    import pytest
    import torch

    from alexnet.errors import PipelineError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.choose_device("auto", "train.device") == torch.device("cpu")
    assert runtime.choose_device("cpu", "cifar.device") == torch.device("cpu")
    with pytest.raises(PipelineError, match="cifar.device is cuda but no CUDA device is available"):
        runtime.choose_device("cuda", "cifar.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.choose_device("auto", "train.device", local_rank=1) == torch.device("cuda", 1)
    assert runtime.choose_device("cpu", "train.device") == torch.device("cpu")
    with pytest.raises(PipelineError, match="LOCAL_RANK 2 but only 2 CUDA devices"):
        runtime.choose_device("cuda", "train.device", local_rank=2)
