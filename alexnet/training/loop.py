"""The training and validation loops of stage train, with no host sync per step on a GPU.

Owns:
    train_step       forward (autocast, memory format), cross-entropy, backward, the optimizer's step
    train_one_epoch  a pass over the training split: steps, running sums, the loss guard
    validate         per-epoch validation of centre crops
    LossGuard        train.max_loss and the non-finite check, read one window late on a GPU
    ChanceMonitor    the learning-start diagnostic, fed the losses the guard reads
    TrainingDiverged the guard's error

No host sync per step: images are counted on the host (a device tensor made from a Python number
is a blocking copy that drains the queue), the loss, top-1 and top-5 sums stay on the device until
the epoch's end, and the guard copies each window's losses to pinned memory without blocking and
reads them a window later (LossGuard). The arithmetic is the loop's before these changes, bit for
bit (tests/test_loop.py against tests/expected/train_loop.json).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from alexnet.config import Params, TrainConfig
from alexnet.errors import PipelineError
from alexnet.evaluation.metrics import topk_hits
from alexnet.training import distributed

# Steps per loss-guard window on a GPU: a window's losses travel to the host as one copy. On the
# CPU every step's loss is read at once (a read there waits for nothing).
GUARD_WINDOW_CUDA = 20
# "Left chance": the mean training loss of the last CHANCE_WINDOW steps is below
# (1 - CHANCE_MARGIN) * ln(classes), the loss of a uniform prediction.
CHANCE_MARGIN = 0.05
CHANCE_WINDOW = 50


class TrainingDiverged(PipelineError):
    """The loss became NaN/inf or exceeded train.max_loss."""


class ChanceMonitor:
    """Says once, clearly, when the training loss has not left chance after `warn_steps` steps.

    The commonest failure of an AlexNet reproduction is a loss that sits at ln(classes) for days
    (a net predicting the same distribution for every image). This watches the per-step losses
    the loss guard reads back anyway and, at the first check at or after `warn_steps` steps, warns
    if their recent mean is still within CHANCE_MARGIN of ln(classes). It only reports: the recipe
    is never changed.
    """

    def __init__(self, num_classes: int, warn_steps: int, steps_per_epoch: int):
        self.chance = math.log(num_classes)
        self.warn_steps = warn_steps
        self.steps_per_epoch = steps_per_epoch
        self.recent: list[float] = []
        self.checked = False  # at most one verdict (and so one warning) per run

    def left_chance(self, loss: float) -> bool:
        return loss < (1 - CHANCE_MARGIN) * self.chance

    def observe(self, epoch: int, step: int, losses: list[float]) -> str | None:
        """Record the losses up to 0-based `step` of `epoch`; the warning text, the one time it fires."""
        if self.checked or self.warn_steps <= 0:
            return None  # the verdict is in (or switched off): nothing more to keep per step
        self.recent = (self.recent + losses)[-CHANCE_WINDOW:]
        done = (epoch - 1) * self.steps_per_epoch + step + 1
        if done < self.warn_steps or not self.recent:
            return None
        self.checked = True
        mean = sum(self.recent) / len(self.recent)
        if self.left_chance(mean):
            return None
        return (
            f"WARNING: the net has not started learning: after {done} steps (train.chance_warn_steps = "
            f"{self.warn_steps}) the training loss is {mean:.3f}, within {CHANCE_MARGIN:.0%} of chance, "
            f"ln({round(math.exp(self.chance))}) = {self.chance:.3f}. Usual causes: the paper's init (weights "
            "N(0, 0.01), biases 1) leaves the logits almost independent of the image for many thousands of "
            "steps (model.init, model.init_std, model.init_bias_one); PCA lighting on the wrong pixel scale "
            "(augment.pca_magnitude: eigval_255 shifts pixels by hundreds of levels); a learning rate too "
            "high or too low for the batch (train.lr, train.batch_size). Training goes on unchanged.")


class LossGuard:
    """Stops the run when a step's loss is not finite or exceeds `max_loss`, naming the step.

    `push(step, loss)` after each step; `finish()` at the epoch's end reads what is still out.
    On the CPU each loss is read as it is pushed. On a GPU the losses of each GUARD_WINDOW_CUDA
    steps are stacked on the device and copied to pinned host memory without blocking, an event
    recorded behind the copy; the window is read when the next one is sent, a window's worth of
    steps later, when the event has long passed: the step never waits for the GPU, and a
    divergence stops the run at most two windows after the step that diverged (no checkpoint is
    written mid-epoch, so none holds its weights). `report(step, values)` gets every window read:
    the progress bar and the ChanceMonitor.
    """

    def __init__(self, max_loss: float, epoch: int, steps: int, last_good: str, device: torch.device,
                 report: Callable[[int, list[float]], None] = lambda step, values: None):
        self.max_loss, self.epoch, self.steps, self.last_good = max_loss, epoch, steps, last_good
        self.window_size = GUARD_WINDOW_CUDA if device.type == "cuda" else 1
        self.report = report
        self.window: list[tuple[int, torch.Tensor]] = []
        self.in_flight: tuple[list[int], torch.Tensor, Any] | None = None

    def push(self, step: int, loss: torch.Tensor) -> None:
        self.window.append((step, loss.detach()))
        if len(self.window) >= self.window_size:
            self._send()

    def finish(self) -> None:
        if self.window:
            self._send()
        if self.in_flight is not None:
            self._read(*self.in_flight)
            self.in_flight = None

    def _send(self) -> None:
        steps = [s for s, _ in self.window]
        values = torch.stack([v for _, v in self.window])
        self.window = []
        if values.device.type != "cuda":
            self._read(steps, values, None)
            return
        host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        host.copy_(values, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        previous, self.in_flight = self.in_flight, (steps, host, event)
        if previous is not None:
            self._read(*previous)

    def _read(self, steps: list[int], host: torch.Tensor, event: Any) -> None:
        if event is not None:
            event.synchronize()  # recorded a window ago: long done, no wait in practice
        values = host.tolist()
        for step, value in zip(steps, values):
            if not math.isfinite(value) or value > self.max_loss:
                why = "is not finite" if not math.isfinite(value) else f"exceeds train.max_loss = {self.max_loss}"
                raise TrainingDiverged(
                    f"training diverged: loss {value} {why} at epoch {self.epoch}, step {step + 1} of {self.steps}; "
                    f"stopped. Last good checkpoint: {self.last_good}. Lower train.lr or check the data, then rerun.")
        self.report(steps[-1], values)


def autocast(device: torch.device, amp: str) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def input_dtype(params: Params) -> torch.dtype:
    """The dtype the loader writes a batch in: bf16 where the step would cast it to bf16 anyway.

    Under bf16 autocast conv1 casts its input to bf16 (round to nearest even), so a batch made in
    bf16 gives the same bits at half the bytes, provided nothing runs on it before conv1 but a
    scaling by a power of two (model.input_scale; exact in either dtype, so scaling then rounding
    equals rounding then scaling). Any other scale keeps float32 (tests/test_loop.py)."""
    mantissa, _ = math.frexp(params.model.input_scale)
    return torch.bfloat16 if params.train.amp == "bf16" and mantissa == 0.5 else torch.float32


def to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor,
               cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a batch; (the loss, the fp32 logits), both detached, on the device."""
    with autocast(inputs.device, cfg.amp):
        logits = model(to_input(inputs, cfg.channels_last))
    logits = logits.float()
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def add_batch(sums: torch.Tensor, loss_sum: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """sums [loss sum, top-1 hits, top-5 hits] (float64, on the device) += this batch's."""
    c1, c5 = topk_hits(logits, labels)
    sums += torch.stack([loss_sum.double(), c1.double(), c5.double()])


def summary(sums: torch.Tensor, images: int, ctx: distributed.Context) -> dict[str, float]:
    """[loss sum, top-1 hits, top-5 hits] and this rank's image count, summed over ranks -> loss
    and errors (%). One copy to the host, at the epoch's end."""
    loss, c1, c5, n = distributed.all_reduce_sum(torch.cat([sums, sums.new_tensor([float(images)])]), ctx).tolist()
    n = max(n, 1.0)
    return {"loss": loss / n, "top1_error": 100.0 * (1 - c1 / n), "top5_error": 100.0 * (1 - c5 / n)}


def validate(model: nn.Module, loader: Any, params: Params, ctx: distributed.Context) -> dict[str, float]:
    """Per-epoch validation: loss and top-1/top-5 error (%) of centre crops (the loader with augment=None)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    images = 0
    with torch.inference_mode(), autocast(ctx.device, params.train.amp):
        for inputs, labels in loader.epoch(0):
            logits = model(to_input(inputs, params.train.channels_last)).float()
            add_batch(sums, F.cross_entropy(logits, labels, reduction="sum"), logits, labels)
            images += len(labels)
    return summary(sums, images, ctx)


def train_one_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, epoch: int, params: Params,
                    ctx: distributed.Context, last_good: str, monitor: ChanceMonitor | None = None) -> dict[str, float]:
    """One pass over the training split; returns the epoch's mean loss and training errors (%).

    `monitor`: the learning-start diagnostic, fed the losses the loss guard reads back anyway.
    """
    cfg = params.train
    model.train()
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    images = 0
    # Only the other ranks are silenced here: an explicit disable= would override the main rank's
    # TQDM_DISABLE (benchmarks and tests set it).
    bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
               dynamic_ncols=True, **({} if ctx.is_main else {"disable": True}))

    def report(step: int, values: list[float]) -> None:
        postfix = {"loss": f"{values[-1]:.4f}", "lr": f"{optimizer.param_groups[0]['lr']:g}"}
        if monitor is not None:
            postfix["below_chance"] = f"{monitor.chance - values[-1]:.3f}"
            warning = monitor.observe(epoch, step, values)
            if warning and ctx.is_main:
                tqdm.write(warning, file=sys.stderr)
        bar.set_postfix(postfix, refresh=False)

    guard = LossGuard(cfg.max_loss, epoch, len(loader), last_good, ctx.device, report)
    with bar:
        for step, (inputs, labels) in enumerate(loader.epoch(epoch)):
            loss, logits = train_step(model, optimizer, inputs, labels, cfg)
            n = len(labels)
            add_batch(sums, loss.double() * n, logits, labels)
            images += n
            guard.push(step, loss)
            bar.update()
        guard.finish()
    return summary(sums, images, ctx)


__all__ = ["ChanceMonitor", "LossGuard", "TrainingDiverged", "add_batch", "input_dtype", "summary", "train_one_epoch",
           "train_step", "validate"]
