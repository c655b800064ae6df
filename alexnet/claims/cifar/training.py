"""What both CIFAR-10 claims train with: a net's run and checkpoint, the epoch loop, the inputs.

- `NetRun` (a net's per-epoch training error and why it stopped) and `Trainer` (the net, its
  optimiser and its NetRun, checkpointed after every epoch under a key of its settings: a
  checkpoint made with other settings is not used; a stopped net also leaves a weightless JSON
  record, from which it resumes when its checkpoint is gone).
- `train_epoch`: one epoch in the seeded order (`batch_generator`: a function of seed and epoch
  only, so a resumed net sees the batches an uninterrupted one would).
- `Inputs` / `prepare_inputs`: the images on the device once per stage, with the training mean
  image; `centred`: the mean-subtracted pixels Figure 1's nets train on.
- `epochs_to_target`: when a training-error curve first reaches a level.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet.claims.cifar.data import CifarData
from alexnet.fileio import atomic_path, write_json
from alexnet.pipeline import provenance
from alexnet.runtime import backend as runtime
from alexnet.runtime import seeds
from alexnet.training.state import differences

CHANCE = 90.0  # % training error before the first step (10 classes)


def epochs_to_target(errors: list[float], target: float, chance: float = CHANCE) -> float | None:
    """Epochs until the training error first reaches `target` (linear between epochs; None: never).

    errors[i] is the error of epoch i+1; before training (epoch 0) the error is `chance`.
    """
    prev_e, prev = 0, chance
    for i, err in enumerate(errors, start=1):
        if err <= target:
            if prev == err:
                return float(i)
            return round(prev_e + (prev - target) / (prev - err) * (i - prev_e), 3)
        prev_e, prev = i, err
    return None


def seed_mean(seeds: list[dict[str, Any]], key: str) -> float | None:
    """The mean of runs.json's per-seed `key` over the seeds that have it (3 decimals), for
    metrics/cifar.json; None when no seed has it."""
    known = [s[key] for s in seeds if s[key] is not None]
    return round(sum(known) / len(known), 3) if known else None


def batch_generator(seed: int, epoch: int) -> torch.Generator:
    """The draws of one epoch (batch order, crops, flips): a function of (seed, epoch) only, so a
    resumed net sees the batches an uninterrupted one would."""
    return seeds.generator(seed, "shuffle", epoch)


@dataclass
class NetRun:
    """One net: what it is, its per-epoch training error, and why it stopped."""

    kind: str  # "figure1" or "conv_local"
    activation: str  # relu / tanh (conv_local: relu)
    lrn: bool  # conv_local: the 11pct net; figure1: the rnorm layers
    lr: float
    seed: int
    train_error: list[float] = field(default_factory=list)  # % per epoch
    epoch_lr: list[float] = field(default_factory=list)  # the base lr each epoch trained at
    stopped: str = ""  # "" while training; target | max_epochs | pruned | stalled | diverged | done
    test_error: float | None = None
    seconds: float = 0.0
    # the CPUs or GPUs its epochs ran on, in order (a net resumed on another machine lists both:
    # with the fastest numerics the same steps differ in the last bits from one CPU to another)
    trained_on: list[str] = field(default_factory=list)


class Trainer:
    """A net, its optimiser and its NetRun; `save`/`load` round-trip all three."""

    def __init__(self, run: NetRun, net: nn.Module, opt: torch.optim.Optimizer, key: dict, path: Path | None) -> None:
        self.run, self.net, self.opt, self.key, self.path = run, net, opt, key, path
        self.initial = copy.deepcopy((net.state_dict(), opt.state_dict()))  # what `start_over` returns to
        self.weightless = False  # resumed from its finished record: its run only, no weights to train on

    def start_over(self, why: str) -> None:
        """Back to the seeded initial weights and an empty run (a net that must train on but cannot)."""
        print(f"{self.path}: {why}: starting over")
        net_state, opt_state = copy.deepcopy(self.initial)
        self.net.load_state_dict(net_state)
        self.opt.load_state_dict(opt_state)
        r = self.run
        self.run, self.weightless = NetRun(r.kind, r.activation, r.lrn, r.lr, r.seed), False

    def load(self) -> bool:
        """Resume from the checkpoint if it was made with the same settings (key); a net whose
        weights are gone resumes from its finished record (its run only: it trains no more)."""
        if self.path is None:
            return False
        if not self.path.is_file():
            return self.load_finished()
        state = runtime.torch_load(self.path, what="checkpoint", hint=": delete it to start that net over")
        if not self.same_settings("checkpoint", self.path, state.get("key"), self.key):
            return False
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.run = NetRun(**state["run"])
        return True

    @property
    def finished_path(self) -> Path | None:
        """The stopped net's record beside its checkpoint: its settings and run, JSON, no weights
        (kilobytes: what a long run commits as it goes, so that losing the checkpoints loses only
        the nets in flight)."""
        return self.path.with_suffix(".json") if self.path else None

    def load_finished(self) -> bool:
        path = self.finished_path
        if path is None or not path.is_file():
            return False
        record = json.loads(path.read_text())
        key = json.loads(json.dumps(self.key))  # as JSON keeps it: tuples are lists
        if not self.same_settings("finished record", path, record.get("key"), key):
            return False
        self.run, self.weightless = NetRun(**record["run"]), True
        return True

    @staticmethod
    def same_settings(what: str, path: Path, stored: Any, key: Any) -> bool:
        """Whether a stored net was made with these settings; when not, says which differ."""
        if stored == key:
            return True
        print(f"{what} {path} was made with other settings ({'; '.join(differences(stored, key))[:300]}): not used")
        return False

    def save(self) -> None:
        if self.path is None:
            return
        if not self.weightless:  # a net read from its finished record has only its record to save
            with atomic_path(self.path) as tmp:
                torch.save({"key": self.key, "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                            "run": asdict(self.run)}, tmp)
        if self.run.stopped:
            write_json(self.finished_path, {"key": self.key, "run": asdict(self.run)})
        else:  # training on (a stop that no longer holds): its old record would say it had stopped
            self.finished_path.unlink(missing_ok=True)


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@functools.cache
def machine(device: torch.device) -> str:
    """What a net's epochs run on, for `NetRun.trained_on` (asked once per process, not per epoch)."""
    return provenance.cpu_name() if device.type == "cpu" else provenance.device_name(device, 1)


def train_epoch(trainer: Trainer, x: Tensor, y: Tensor, batch_size: int,
                views: Callable[[Tensor, torch.Generator], Tensor] | None = None) -> float | None:
    """One epoch in the seeded order; the minibatch error (%), or None if the loss diverged."""
    run, net, opt = trainer.run, trainer.net, trainer.opt
    where = machine(x.device)
    if where not in run.trained_on:
        run.trained_on.append(where)
    epoch = len(run.train_error)
    gen = batch_generator(run.seed, epoch)
    order = torch.randperm(len(y), generator=gen)
    net.train()
    wrong = torch.zeros((), dtype=torch.int64, device=y.device)  # read once per epoch: no per-step sync
    for start in range(0, len(y), batch_size):
        idx = order[start:start + batch_size].to(x.device)
        xb = x[idx]
        if views is not None:
            xb = views(xb, gen)
        yb = y[idx]
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        if not torch.isfinite(loss):
            return None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        wrong += (logits.argmax(1) != yb).sum()
    return 100.0 * int(wrong) / len(y)


@dataclass
class Inputs:
    """The images as stored (0-255 values as float32), put on the device once per stage."""

    train_x: Tensor  # float32 [n, 3, 32, 32] (channels-last memory when asked)
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean_image: Tensor  # [3, 32, 32], training set


def prepare_inputs(data: CifarData, device: torch.device, channels_last: bool) -> Inputs:
    def to_tensor(images: np.ndarray) -> Tensor:
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    train_x = to_tensor(data.train_images)
    # float64 sum of uint8 pixels: exact, so the mean image does not depend on summation order
    mean = torch.from_numpy(data.train_images.astype(np.float64).mean(axis=0)).permute(2, 0, 1).float().to(device)
    return Inputs(train_x, torch.from_numpy(data.train_labels).to(device), to_tensor(data.test_images),
                  torch.from_numpy(data.test_labels).to(device), mean)


def centred(inputs: Inputs) -> Tensor:
    """The training images minus the training mean image (cuda-convnet's CIFAR provider): what
    Figure 1's nets see, before their input scale. Keeps the memory format."""
    return inputs.train_x - inputs.mean_image


__all__ = ["CHANCE", "Inputs", "NetRun", "Trainer", "batch_generator", "centred", "epochs_to_target", "fingerprint",
           "prepare_inputs", "seed_mean", "train_epoch"]
