"""Tests for alexnet/training/loop.py: the loop's numbers are those of the loop before it lost its host
syncs (bit for bit, against digests recorded from it), the loss guard read a window late, and on a
GPU the steps run under torch.cuda.set_sync_debug_mode("error")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet.config import ModelConfig, TrainConfig, params_from_dict
from alexnet.model.net import build_model
from alexnet.training.loop import GUARD_WINDOW_CUDA, LossGuard, TrainingDiverged, add_batch, input_dtype, train_step
from alexnet.training.optim import build_optimizer

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected" / "train_loop.json"


def test_two_epochs_give_the_bits_the_loop_gave_before(tmp_path: Path):
    """train() for two epochs under bit identity (tests/loop_workload.py): every epoch's loss,
    errors and lr, the final weights and the velocities equal what 2dd4e18's loop gave (a host
    copy per step, the guard's read every step), recorded in tests/expected/train_loop.json."""
    done = subprocess.run([sys.executable, str(HERE / "loop_workload.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if got.pop("cpu_capability") != "AVX2":
        pytest.skip("bit identity pins AVX2 kernels; this CPU has none")
    expected = json.loads(EXPECTED.read_text())
    expected.pop("recorded_from")
    assert got == expected


def test_the_guard_names_the_step_and_reports_every_loss_in_order():
    seen: list[tuple[int, list[float]]] = []
    guard = LossGuard(10.0, epoch=3, steps=5, last_good="ckpt (epoch 2)", device=torch.device("cpu"),
                      report=lambda step, values: seen.append((step, values)))
    for step, value in enumerate([1.0, 2.0, 3.0]):
        guard.push(step, torch.tensor(value))
    guard.finish()
    assert seen == [(0, [1.0]), (1, [2.0]), (2, [3.0])]  # on the CPU, each loss as it comes
    with pytest.raises(TrainingDiverged, match=r"loss 11.0 exceeds train.max_loss = 10.0 at epoch 3, step 4 of 5"
                                               r".*Last good checkpoint: ckpt \(epoch 2\)"):
        guard.push(3, torch.tensor(11.0))
    with pytest.raises(TrainingDiverged, match="loss nan is not finite at epoch 3, step 5 of 5"):
        guard.push(4, torch.tensor(float("nan")))


def _paper_batch(device: torch.device, batch: int = 16):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, 3, 224, 224, generator=gen) * 50).to(device)
    return x, torch.randint(0, 10, (batch,), generator=gen).to(device)


@pytest.mark.parametrize("scale, dtype", [(1.0, torch.bfloat16), (1 / 64, torch.bfloat16), (0.1, torch.float32)])
def test_a_batch_made_in_bf16_gives_the_steps_bits(scale, dtype):
    """Under bf16 autocast the loader writes batches in bf16 (input_dtype) only where that is the
    cast conv1 would make anyway: two steps on the pre-cast, channels-last batch give the loss,
    logits and weights of two steps on the float32 batch, bit for bit. With a scale that is not a
    power of two the pre-cast batch would not (checked), so it stays float32."""
    params = params_from_dict({"model": {"input_scale": scale}, "train": {"amp": "bf16", "channels_last": True}})
    assert input_dtype(params) == dtype
    assert input_dtype(params_from_dict({"model": {"input_scale": scale}})) == torch.float32  # amp none
    cfg = params.train
    x, y = _paper_batch(torch.device("cpu"), batch=4)
    runs = []
    for batch in (x, x.to(dtype=torch.bfloat16, memory_format=torch.channels_last)):
        torch.manual_seed(0)
        model = build_model(ModelConfig(width=0.125, input_scale=scale), 10).to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, cfg)
        steps = [train_step(model, optimizer, batch, y, cfg) for _ in range(2)]
        runs.append((steps, [p.detach().clone() for p in model.parameters()]))
    (steps32, weights32), (steps16, weights16) = runs
    same = all(torch.equal(a, b) for s32, s16 in zip(steps32, steps16) for a, b in zip(s32, s16)) and all(
        torch.equal(a, b) for a, b in zip(weights32, weights16))
    assert same == (dtype == torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_the_steps_never_wait_for_the_gpu(amp):
    """Three guard windows of steps (the paper's SGD, the running sums, the guard's late reads)
    under sync debug mode "error": any host sync in them raises. A loss over max_loss in the first
    window is caught when the second window is sent, naming its step. The batch is made on the
    device beforehand: the loader is not part of this check."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25), 10).to(device)
    cfg = TrainConfig(amp=amp, device="cuda")
    optimizer = build_optimizer(model, cfg)
    x, y = _paper_batch(device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    reads: list[int] = []
    guard = LossGuard(1e9, 1, 3 * GUARD_WINDOW_CUDA, "none", device, lambda step, values: reads.append(step))
    train_step(model, optimizer, x, y, cfg)  # warm-up: cuDNN's and the allocator's first calls
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(3 * GUARD_WINDOW_CUDA):
            loss, logits = train_step(model, optimizer, x, y, cfg)
            add_batch(sums, loss.double() * len(y), logits, y)
            guard.push(step, loss)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert reads == [GUARD_WINDOW_CUDA - 1, 2 * GUARD_WINDOW_CUDA - 1]  # one window late
    guard.finish()
    assert reads[-1] == 3 * GUARD_WINDOW_CUDA - 1
    assert torch.isfinite(sums).all() and sums[1].item() <= 3 * GUARD_WINDOW_CUDA * len(y)
    # The guard still stops the run, a window late.
    late = LossGuard(0.0, 1, 3 * GUARD_WINDOW_CUDA, "none", device)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step 1 of"):
        for step in range(3 * GUARD_WINDOW_CUDA):
            late.push(step, torch.tensor(1.0, device=device))
    assert step == 2 * GUARD_WINDOW_CUDA - 1  # raised as the second window went out
