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
from alexnet.training.state import stream_seed
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
    torch.manual_seed(stream_seed(0, 0, "init"))
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
