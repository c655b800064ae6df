"""The paper's optimizer and learning-rate schedules (Krizhevsky et al. 2012, Section 5).

Owns:
    PaperSGD       SGD with the paper's update rule, lr inside the velocity; its update runs as
                   it is or through torch.compile (`train.compile`)
    build_optimizer  `train.update_rule` -> PaperSGD ("paper") or torch.optim.SGD ("pytorch"),
                   with the weights and the biases in two param groups, PaperSGD's update
                   compiled where the net is
    Schedule       the paper's "divide by 10 when validation error stops improving", three
                   times, then stop (plateau), and a fixed step schedule (Caffe's), with a
                   state_dict for checkpoints
    CorrectlyRoundedAdam  Adam with a correctly rounded square root, for the retrieval
                   auto-encoder: the same bits on every CPU (torch.sqrt's are not)

Biases. The paper's update (Section 5) is written for every "w", with one learning rate "for all
layers", so by default (`train.bias_lr_mult: 1.0`, `train.bias_decay_mult: 1.0`) biases get the
same lr and weight decay as weights. The authors' cuda-convnet2 layer files (epsB = 2 x epsW, no
wc on biases) and Caffe's bvlc_alexnet (lr_mult 2, decay_mult 0) give biases twice the lr and no
decay: `bias_lr_mult: 2.0, bias_decay_mult: 0.0`. A parameter is a bias when its name ends in
"bias" (every learned layer of the net has one weight and one bias).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from alexnet.config import TrainConfig, without_cudagraphs

# One param group's share of PaperSGD's update: its parameters, their gradients and velocities,
# momentum, -weight_decay * lr and -lr.
GroupUpdate = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], float, float, float]


class GroupUpdateOptimizer(torch.optim.Optimizer):
    """An optimizer whose update is elementwise per parameter: `step` evaluates the closure and calls
    `update` once, with each param group that has parameters with a gradient, and those parameters."""

    def update(self, groups: list[tuple[list[torch.Tensor], dict[str, Any]]]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = [(params, group) for group in self.param_groups
                  if (params := [p for p in group["params"] if p.grad is not None])]
        if groups:
            self.update(groups)
        return loss


def paper_update(groups: list[GroupUpdate]) -> None:
    """PaperSGD's update over all its param groups, each line one `torch._foreach_*` op."""
    for params, grads, velocities, momentum, decay_step, grad_step in groups:
        torch._foreach_mul_(velocities, momentum)
        torch._foreach_add_(velocities, params, alpha=decay_step)
        torch._foreach_add_(velocities, grads, alpha=grad_step)
        torch._foreach_add_(params, velocities)


class PaperSGD(GroupUpdateOptimizer):
    """SGD with momentum exactly as the paper writes it (Section 5):

        v <- momentum * v - weight_decay * lr * w - lr * grad
        w <- w + v

    torch.optim.SGD keeps the velocity without lr (b <- m b + g + wd w; w <- w - lr b). The two
    agree step for step while lr is constant and part ways at an lr drop: here the velocity
    accumulated at the old lr keeps its size for a while, in PyTorch it shrinks at once with lr.

    Each line runs as one `torch._foreach_*` op over a group's tensors (`paper_update`): on a GPU
    4 kernels a group instead of 4 per tensor (the paper net has 16); on the CPU a foreach op is
    the per-tensor op in a loop, so the bits are those of the per-tensor update (tests/test_optim.py).

    `compile_update` runs the same function through torch.compile (inductor), which fuses the four
    lines of both groups into one pass over w, g and v (on the CPU one kernel for all the tensors;
    on a GPU inductor's foreach kernels, not measured). Its bits differ from eager's on the CPU,
    where eager's add-with-alpha is a fused multiply-add and inductor's C++ rounds the product
    first (tests/test_optim.py); on a GPU inductor lowers add-with-alpha to an fma, as eager's
    kernel computes it, so the bits may agree there (not measured).
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0005):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"PaperSGD: bad lr={lr}, momentum={momentum} or weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        # not in the param groups, so the state_dict is the same compiled or not
        self._paper_update: Any = paper_update

    def compile_update(self, **options: Any) -> None:
        """Run the update through torch.compile(paper_update, **options) from the next step on."""
        # Recompiles: dynamo guards on the tensors' shapes, strides and dtypes and on each group's
        # three numbers, which it specializes (a foreach add's alpha is never made symbolic). So
        # the update compiles once per distinct lr: at the first step and after each of the
        # schedule's drops (the paper's run: 4 rates), never for another step at a rate it has
        # seen (tests/test_optim.py counts them). Past dynamo's recompile_limit (8, counted over
        # every PaperSGD of the process: dynamo caches by paper_update's code) it runs eagerly.
        # Numbers and not 0-dim tensors, which would compile once in all: a foreach add's alpha must
        # be a number, and with a tensor rate each add becomes v + g * lr, whose product the GPU
        # compiler may or may not fuse into the sum, where add-with-alpha is lowered to the fma
        # that eager's GPU kernel computes.
        self._paper_update = torch.compile(paper_update, **options)

    def update(self, groups: list[tuple[list[torch.Tensor], dict[str, Any]]]) -> None:
        work: list[GroupUpdate] = []
        for params, group in groups:
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("PaperSGD does not support sparse gradients")
            for p in params:
                if "velocity" not in self.state[p]:
                    # v starts at zero, so the first step is -lr (g + wd w), as in torch.optim.SGD.
                    # Made here, outside the compiled update: the first step compiles as any other.
                    self.state[p]["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            work.append((params, [p.grad for p in params], [self.state[p]["velocity"] for p in params],
                         momentum, -wd * lr, -lr))
        self._paper_update(work)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # Each velocity laid out like its parameter (a resume may switch train.channels_last), so
        # that the foreach ops keep their fast path; the values are copied as they are.
        for group in self.param_groups:
            for p in group["params"]:
                v = self.state[p].get("velocity")
                if v is not None and v.stride() != p.stride():
                    self.state[p]["velocity"] = torch.empty_like(p).copy_(v)


def correctly_rounded_sqrt(t: torch.Tensor) -> torch.Tensor:
    """The square root of a CPU float tensor, correctly rounded (IEEE 754), so the same bits on
    every CPU. torch.sqrt's CPU kernel is not: about 80% of float32 results equal the correctly
    rounded root, and which ones depends on the CPU vendor, AVX2 pinned or not (MKL's vector
    math dispatches by CPU; tests/test_cross_cpu.py shows it under an emulated AMD CPU). numpy's
    sqrt is the hardware instruction, which IEEE 754 requires to be correctly rounded."""
    return torch.from_numpy(np.sqrt(t.detach().cpu().numpy())).to(t.device)


class CorrectlyRoundedAdam(GroupUpdateOptimizer):
    """torch.optim.Adam's update (its single-tensor CPU path: no amsgrad, no weight decay) with
    the one operation that is not correctly rounded replaced, the square root of the second
    moment (`correctly_rounded_sqrt`); every other step is an elementwise +, *, / or lerp, the
    same bits on every CPU once torch's kernels are pinned to one capability (alexnet.runtime.pinning).
    Equal to torch.optim.Adam wherever its square root happens to be correctly rounded, within a
    few ulps elsewhere (tests/test_optim.py)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if lr <= 0 or not all(0 <= b < 1 for b in betas) or eps < 0:
            raise ValueError(f"CorrectlyRoundedAdam: bad lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def update(self, groups: list[tuple[list[torch.Tensor], dict[str, Any]]]) -> None:
        for params, group in groups:
            for p in params:  # one tensor at a time: the square root goes through numpy
                self._update(p, group, self.state[p])

    def _update(self, p: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(p.grad, 1 - beta1)
        v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)  # Python floats: correctly rounded
        denom = correctly_rounded_sqrt(v).div_(bias_correction2_sqrt).add_(group["eps"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1 ** step))


def param_groups(model: torch.nn.Module | Iterable[Any], cfg: TrainConfig) -> list[dict[str, Any]]:
    """The weights and the biases as two param groups, each with its lr and decay multipliers.

    `lr_mult` and `decay_mult` stay in each group (Caffe's names), so `set_lr` can scale the base
    rate and a checkpoint records them. A bare iterable of tensors (no names) is one weight group.
    """
    if isinstance(model, torch.nn.Module):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        weights = [p for n, p in named if not n.endswith("bias")]
        biases = [p for n, p in named if n.endswith("bias")]
    else:
        weights, biases = list(model), []
    groups = [{"params": weights, "lr_mult": 1.0, "decay_mult": 1.0, "name": "weights"}]
    if biases:
        groups.append({"params": biases, "lr_mult": cfg.bias_lr_mult, "decay_mult": cfg.bias_decay_mult,
                       "name": "biases"})
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
        g["weight_decay"] = cfg.weight_decay * g["decay_mult"]
    return groups


def build_optimizer(model: torch.nn.Module | Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by `train.update_rule`, with the paper's lr, momentum and decay.

    `model`: a module (weights and biases get their own groups, see `param_groups`) or an
    iterable of tensors (one group).
    """
    groups = param_groups(model, cfg)
    if cfg.update_rule == "paper":
        optimizer = PaperSGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        if cfg.compile:
            # Never as CUDA graphs: zero_grad(set_to_none=True) makes new gradient tensors every
            # step, which a graph would copy into its own buffers first (a second pass over the
            # gradients to save the launches of a few fused kernels).
            optimizer.compile_update(mode=without_cudagraphs(cfg.compile_mode))
        return optimizer
    # dampening 0 and plain (not Nesterov) momentum: the closest PyTorch has to the paper.
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the base rate: each group runs at lr times its `lr_mult` (1 without one)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


class Schedule:
    """The learning rate for each epoch (epochs count from 1).

    plateau (the paper, Section 5: "divide the learning rate by 10 when the validation error
    rate stopped improving with the current learning rate ... reduced three times prior to
    termination"): after each epoch's validation, if the top-1 error (percent) has not fallen
    below the best so far by more than `plateau_threshold` (percentage points) for
    `plateau_patience` epochs in a row, the error has stopped improving: the first
    `max_lr_drops` times, divide lr by 1/lr_factor; the next time, stop training
    (`plateau_stop`; without it the run goes on at the last rate to train.epochs). The best error
    is kept across drops. Patience and threshold are ours: the paper decided by eye.
    step: lr_factor once after each epoch listed in `step_epochs` (e.g. epochs 31-60 run at
    lr/10 for [30, 60, 80]).

    The rate is computed from the base rate and the number of drops (lr / 10**drops), never by
    repeated multiplication, so 0.01 becomes 0.001 and not 0.0010000000000000002.
    """

    def __init__(self, cfg: TrainConfig):
        self.kind = cfg.schedule
        self.base_lr = cfg.lr
        self.divisor = 1.0 / cfg.lr_factor
        self.patience = cfg.plateau_patience
        self.threshold = cfg.plateau_threshold
        self.max_drops = cfg.max_lr_drops
        self.step_epochs = list(cfg.step_epochs)
        self.stop_on_plateau = cfg.plateau_stop
        self.best = math.inf
        self.bad_epochs = 0
        self.drops = 0
        self.stopped = False  # plateau: the error stopped improving after the last drop

    def lr(self, epoch: int) -> float:
        """The rate to train epoch `epoch` (1-based) with."""
        drops = self.drops if self.kind == "plateau" else bisect.bisect_left(self.step_epochs, epoch)
        return self.base_lr / self.divisor**drops

    def observe(self, epoch: int, val_top1_error: float) -> bool:
        """Record epoch `epoch`'s validation top-1 error; True if the rate drops for the next epoch."""
        if self.kind != "plateau":
            return bisect.bisect_left(self.step_epochs, epoch + 1) > bisect.bisect_left(self.step_epochs, epoch)
        if val_top1_error < self.best - self.threshold:
            self.best = val_top1_error
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return False
        if self.drops < self.max_drops:
            self.drops += 1
            self.bad_epochs = 0
            return True
        if self.stop_on_plateau:
            self.stopped = True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops,
                "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"schedule state is for {state.get('kind')!r}, not {self.kind!r}")
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.drops = int(state["drops"])
        self.stopped = bool(state.get("stopped", False))
