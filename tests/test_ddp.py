"""Data-parallel training: `torchrun --nproc_per_node 2 stages/train.py` (gloo, CPU) must reach
the weights of one process with the same global batch, within floating-point tolerance.

Dropout is 0 (each rank draws its own masks, so with dropout the runs legitimately differ);
augmentation stays on: the loader draws it per global batch and each rank takes its rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from alexnet.model.net import build_model
from alexnet.training.train import stream_seed
from stage_helpers import REPO
from test_train import final_state, make_data, run_train, stage_cmd, tiny_params, write_params


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path):
    data = make_data(tmp_path)
    params = tiny_params(epochs=2)
    params = replace(params, model=replace(params.model, dropout=0.0))
    params_file = write_params(tmp_path / "params.yaml", params)

    run_train(tmp_path, data, params, "single")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "stages" / "train.py"), *stage_cmd(tmp_path, data, params_file, "ddp")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    single, info_single = final_state(tmp_path, "single")
    ddp, info_ddp = final_state(tmp_path, "ddp")
    assert info_ddp["world_size"] == 2 and info_single["world_size"] == 1
    assert single.keys() == ddp.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-5, msg=k)
    # That means something only if training moved the weights far beyond the tolerance.
    torch.manual_seed(stream_seed(0, 0, 1))
    init = build_model(params.model, 4).state_dict()
    assert max(float((single[k] - init[k]).abs().max()) for k in single) > 100 * 1e-5
    ckpt = torch.load(tmp_path / "ddp" / "ckpt" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2  # every rank's RNG states, for an exact resume
    m1, m2 = info_single["final_metrics"], info_ddp["final_metrics"]
    for key in ("train/loss", "val/loss", "train/top1_error", "val/top1_error", "lr"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-4), key
    # Only rank 0 wrote: one DVCLive folder with one row per epoch.
    metrics = json.loads((tmp_path / "ddp" / "live" / "metrics.json").read_text())
    assert metrics["step"] == 2


def test_each_seed_trains_on_its_own_gpu(monkeypatch):
    """One process per seed (no torchrun): the seed's place in train.seeds modulo the GPUs there
    are, so five nets on eight GPUs take cuda:0..4 and on two GPUs share them 3 + 2; under torchrun
    LOCAL_RANK decides. (Faked device counts: this machine need not have a GPU.)"""
    from alexnet.training.distributed import pick_device

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for count, expected in ((8, [0, 1, 2, 3, 4]), (2, [0, 1, 0, 1, 0]), (1, [0, 0, 0, 0, 0])):
        monkeypatch.setattr(torch.cuda, "device_count", lambda count=count: count)
        assert [pick_device("auto", slot) for slot in range(5)] == [torch.device("cuda", i) for i in expected]
    assert pick_device("cpu", 3) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device("cuda", 4) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE")
    assert pick_device("auto", 4) == torch.device("cpu")
