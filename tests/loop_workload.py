"""The training loop's numbers as digests: two epochs of alexnet.training.train.train on a tiny store
(tests/test_train.py's make_data and tiny_params), under bit identity's pinned environment so that
the digests are the same on every AVX2 CPU. tests/test_train.py compares them with
tests/expected/train_loop.json, recorded from the loop before it lost its host syncs (issue 33):
a change to the loop, the optimizer or the counting that moves any bit fails there.

    python tests/loop_workload.py <empty folder>      # prints one JSON line
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from alexnet.config import NumericsConfig  # noqa: E402  (torch-free)
from alexnet.runtime.pinning import pinned_env  # noqa: E402

NUMERICS = NumericsConfig(bit_identity=True, threads=2)
os.environ.update(pinned_env(NUMERICS))  # before numpy or torch loads, as alexnet.cli does for a stage

import hashlib  # noqa: E402
import json  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402
from test_train import make_data, tiny_params  # noqa: E402

from alexnet.model.net import load_trained  # noqa: E402
from alexnet.training.train import train  # noqa: E402

# Every number an epoch's record holds but its speed.
RECORD_KEYS = ("train/loss", "train/top1_error", "train/top5_error", "val/loss", "val/top1_error", "val/top5_error",
               "lr")


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(name.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode() + t.contiguous().numpy().tobytes())
    return h.hexdigest()


def main(folder: Path) -> None:
    data = make_data(folder)
    params = tiny_params(epochs=2)
    params = replace(params, numerics=NUMERICS)
    out = folder / "run"
    train(params, 0, data[0], data[1], out / "model", out / "ckpt", out / "live")
    model, _ = load_trained(out / "model" / "model.pt")
    ckpt = torch.load(out / "ckpt" / "last.pt", weights_only=True)
    history = [{k: float(r[k]).hex() for k in RECORD_KEYS} for r in ckpt["history"]]
    velocities = {str(k): v["velocity"] for k, v in ckpt["optimizer"]["state"].items()}
    print(json.dumps({"cpu_capability": torch.backends.cpu.get_cpu_capability(), "history": history,
                      "weights": state_digest(model.state_dict()), "velocities": state_digest(velocities)},
                     sort_keys=True))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
