"""Data-parallel training: `torchrun --nproc_per_node 2 stages/train.py` (gloo, CPU), and two
torchrun agents as two nodes (`--nnodes 2`, c10d rendezvous on 127.0.0.1, as
slurm/train-multinode.sbatch launches them), must reach the weights of one process with the same
global batch, within floating-point tolerance; only rank 0 writes.

Dropout is 0 (each rank draws its own masks, so with dropout the runs legitimately differ);
augmentation stays on: the loader draws it per global batch and each rank takes its rows.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from stage_helpers import REPO
from test_train import final_state, make_data, run_train, stage_cmd, tiny_params, write_params

from alexnet.model.net import build_model
from alexnet.runtime.seeds import stream_seed

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory):
    """The data, the params and one process's training of them (folder `single`)."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = make_data(tmp)
    params = tiny_params(epochs=2)
    params = replace(params, model=replace(params.model, dropout=0.0))
    params_file = write_params(tmp / "params.yaml", params)
    run_train(tmp, data, params, "single")
    return tmp, data, params, params_file


def assert_matches_single(tmp: Path, name: str, params) -> None:
    single, info_single = final_state(tmp, "single")
    ddp, info_ddp = final_state(tmp, name)
    assert info_ddp["world_size"] == 2 and info_single["world_size"] == 1
    assert single.keys() == ddp.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-5, msg=k)
    # That means something only if training moved the weights far beyond the tolerance.
    torch.manual_seed(stream_seed(0, "init", 0))
    init = build_model(params.model, 4).state_dict()
    assert max(float((single[k] - init[k]).abs().max()) for k in single) > 100 * 1e-5
    ckpt = torch.load(tmp / name / "ckpt" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2  # every rank's RNG states, for an exact resume
    m1, m2 = info_single["final_metrics"], info_ddp["final_metrics"]
    for key in ("train/loss", "val/loss", "train/top1_error", "val/top1_error", "lr"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-4), key
    # Only rank 0 wrote: one DVCLive folder with one row per epoch.
    metrics = json.loads((tmp / name / "live" / "metrics.json").read_text())
    assert metrics["step"] == 2


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(single):
    tmp, data, params, params_file = single
    cmd = [*TORCHRUN, "--standalone", "--nproc_per_node", "2", str(REPO / "stages" / "train.py"),
           *stage_cmd(tmp, data, params_file, "ddp")]
    proc = subprocess.run(cmd, cwd=tmp, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_matches_single(tmp, "ddp", params)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_by_c10d_rendezvous_match_one_process(single):
    """Two agents, each a "node" with one rank and its own output paths: the agent that got rank 0
    writes everything, the other nothing (the other nodes need no output storage)."""
    tmp, data, params, params_file = single
    port = free_port()
    agents = [subprocess.Popen([*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                                "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes", "--max-restarts", "0",
                                str(REPO / "stages" / "train.py"), *stage_cmd(tmp, data, params_file, f"node{n}")],
                               cwd=tmp, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for n in (0, 1)]
    try:
        outs = [agent.communicate(timeout=600)[0] for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outs)
    wrote = [n for n in (0, 1) if (tmp / f"node{n}").exists()]
    assert len(wrote) == 1, wrote  # one node's rank 0 wrote model, checkpoint, logs; the other node nothing
    assert_matches_single(tmp, f"node{wrote[0]}", params)


TEMPLATE = REPO / "slurm" / "train-multinode.sbatch"


def test_the_multinode_template_runs_dvc_yamls_train_command():
    """slurm/train-multinode.sbatch is valid bash and trains with the arguments dvc.yaml's train
    stage gives stages.train (so `dvc commit train@<seed>` records what it made)."""
    import yaml

    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", str(TEMPLATE)]).returncode == 0
    script = TEMPLATE.read_text().replace("\\\n", " ")
    launch = next(line for line in script.splitlines() if line.startswith("srun "))
    words = shlex.split(launch)
    assert words[words.index("--rdzv-backend") + 1] == "c10d" and "--nnodes" in words
    ours = words[words.index("stages.train") + 1:]
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    theirs = shlex.split(stage.split("-m stages.train", 1)[1])
    assert ours == [w.replace("${item}", "$seed") for w in theirs]


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
