"""alexnet.training.optim: PaperSGD's foreach update against the per-tensor update it replaced, bit
for bit; its compiled update (inductor) against the same update with each product rounded before
it is added, bit for bit, and against the eager update within an ulp of each tensor's largest
value (why: the compiled test's docstring), with one compile per distinct lr; CorrectlyRoundedAdam and correctly_rounded_sqrt,
Adam whose bits do not depend on the CPU, checked against torch.optim.Adam and against square
roots computed independently. (PaperSGD against numpy and the bias conventions: tests/test_train.py.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from alexnet.config import ModelConfig, TrainConfig
from alexnet.model.net import build_model
from alexnet.training.optim import CorrectlyRoundedAdam, PaperSGD, build_optimizer, correctly_rounded_sqrt, set_lr


def _per_tensor_paper_step(params: list[torch.Tensor], velocities: dict[int, torch.Tensor], lr: float,
                           momentum: float, wd: float) -> None:
    """The paper's update one tensor at a time: PaperSGD's code before it used foreach ops."""
    for p in params:
        if p.grad is None:
            continue
        v = velocities.setdefault(id(p), torch.zeros_like(p))
        v.mul_(momentum).add_(p, alpha=-wd * lr).add_(p.grad, alpha=-lr)
        p.add_(v)


@pytest.mark.parametrize("mults", [(1.0, 1.0), (2.0, 0.0)])
def test_the_foreach_update_is_the_per_tensor_update_bit_for_bit(mults):
    """30 steps on the paper net's parameters (the tiny pipeline's width), random gradients, an lr
    drop halfway, weight decay and momentum, the bias lr and decay multipliers, one frozen tensor."""
    cfg = TrainConfig(lr=0.01, momentum=0.9, weight_decay=0.0005, bias_lr_mult=mults[0], bias_decay_mult=mults[1])
    net = build_model(ModelConfig(width=0.25), 10, generator=torch.Generator().manual_seed(0))
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    ours = build_optimizer(net, cfg)
    assert isinstance(ours, PaperSGD) and len(list(net.parameters())) == 16
    theirs = {n: p.detach().clone() for n, p in net.named_parameters()}
    velocities: dict[int, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        lr = cfg.lr if step < 15 else cfg.lr / 10
        set_lr(ours, lr)
        for name, p in net.named_parameters():
            # conv3.bias frozen: no gradient, so neither path touches it
            grad = None if name == "features.conv3.bias" else torch.randn(p.shape, generator=gen) * 0.1
            p.grad, theirs[name].grad = grad, None if grad is None else grad.clone()
        ours.step()
        for bias in (False, True):
            group = [t for n, t in theirs.items() if n.endswith("bias") == bias]
            _per_tensor_paper_step(group, velocities, lr * (mults[0] if bias else 1.0), cfg.momentum,
                                   cfg.weight_decay * (mults[1] if bias else 1.0))
    for name, p in net.named_parameters():
        assert torch.equal(p.detach(), theirs[name]), name
        if name != "features.conv3.bias":
            assert torch.equal(ours.state[p]["velocity"], velocities[id(theirs[name])]), name
            assert not torch.equal(p.detach(), start[name]), name
    assert "velocity" not in ours.state[dict(net.named_parameters())["features.conv3.bias"]]


def test_paper_sgd_refuses_sparse_gradients():
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        PaperSGD([w], lr=0.1).step()


def test_the_square_root_is_correctly_rounded():
    """A float64 square root rounded once to float32 is the correctly rounded float32 root (53 bits
    are more than twice 24 + 2): every value must equal it."""
    x = np.random.default_rng(0).random(100_000, dtype=np.float32) * np.float32(1e-3)
    exact = np.sqrt(x.astype(np.float64)).astype(np.float32)
    ours = correctly_rounded_sqrt(torch.from_numpy(x)).numpy()
    assert ours.dtype == np.float32 and np.array_equal(ours, exact)


def _train(opt_class, steps=5):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = opt_class(net.parameters(), lr=3e-3)
    x, y = torch.randn(32, 20), torch.randn(32, 4)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()], opt


def test_it_is_torch_adam_but_for_the_square_root():
    ours, opt = _train(CorrectlyRoundedAdam)
    theirs, _ = _train(torch.optim.Adam)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)  # a last-bit root moves a step by ulps
    state = opt.state[next(iter(opt.state))]
    assert state["step"] == 5 and set(state) == {"step", "exp_avg", "exp_avg_sq"}


def test_one_step_by_hand():
    """Adam's first step moves each weight by lr * g / (|g| + eps) (bias-corrected moments)."""
    w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = CorrectlyRoundedAdam([w], lr=0.1, eps=1e-8)
    (w * torch.tensor([0.3, -4.0, 0.0])).sum().backward()
    opt.step()
    expected = torch.tensor([1.0 - 0.1 * 0.3 / (0.3 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 0.5])
    torch.testing.assert_close(w.detach(), expected, rtol=1e-6, atol=1e-7)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="CorrectlyRoundedAdam"):
        CorrectlyRoundedAdam([torch.zeros(1, requires_grad=True)], lr=0)


def _rounded_products_paper_step(params: list[torch.Tensor], velocities: dict[int, torch.Tensor], lr: float,
                                 momentum: float, wd: float) -> None:
    """The paper's update one tensor at a time with each product rounded to float32 before it is
    added: what inductor's C++ code computes (built with -ffp-contract=off, it lowers a + alpha * b
    on the CPU to a product and a sum)."""
    for p in params:
        if p.grad is None:
            continue
        v = velocities.setdefault(id(p), torch.zeros_like(p))
        v.mul_(momentum).add_(p * (-wd * lr)).add_(p.grad * -lr)
        p.add_(v)


def _ulp(t: torch.Tensor) -> torch.Tensor:
    """One unit in the last place of the largest magnitude in `t`."""
    top = t.detach().abs().max()
    return torch.nextafter(top, torch.tensor(float("inf"))) - top


def _caffe_groups_step(step, named: dict[str, torch.Tensor], velocities: dict[int, torch.Tensor], lr: float,
                       cfg: TrainConfig) -> None:
    """`step` (one of the references above) on weights and on biases at 2x the rate and no decay."""
    for bias in (False, True):
        step([t for n, t in named.items() if n.endswith("bias") == bias], velocities, lr * (2.0 if bias else 1.0),
             cfg.momentum, 0.0 if bias else cfg.weight_decay)


@pytest.mark.slow
def test_the_compiled_update():
    """`train.compile` compiles PaperSGD's update (inductor; its C++ backend here): 7 steps at three
    rates, weights and biases at Caffe's multipliers (biases: 2x lr, no decay), one frozen tensor,
    the velocities made at the first step; then each optimizer's state_dict loaded into the other
    kind, and one more step.

    Bits: the compiled update is the update with each product rounded before it is added, bit for
    bit. It is not the eager update: eager's v + alpha * w (twice a step) is a fused multiply-add in
    ATen's vectorised CPU kernel, one rounding, where inductor's C++ rounds alpha * w first (it
    compiles with -ffp-contract=off; tried with contraction on, GCC fused another product than
    eager does: still not eager's bits). After the 7 steps each weight and velocity tensor is within
    one ulp of its largest magnitude of the eager one: the tightest bound that holds, asserted
    (element by element, values near zero, where the sums cancel, differ by up to 49 of their ulps).

    Compiles: one per distinct lr, none for another step at a rate seen, none for an optimizer of
    the same shapes resuming at a rate seen."""
    import copy

    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # no cache entries from other tests: they would count
    counters.clear()
    cfg = TrainConfig(lr=0.01, bias_lr_mult=2.0, bias_decay_mult=0.0)
    torch.manual_seed(0)
    # 54, 3, 12, 4, 35 and 7 numbers: vector loops and their tails; 1.bias frozen (no gradient)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Conv2d(3, 4, 1), torch.nn.Linear(5, 7))
    nets = {"compiled": net, "eager": copy.deepcopy(net)}
    opts = {"compiled": build_optimizer(nets["compiled"], replace(cfg, compile=True)),
            "eager": build_optimizer(nets["eager"], cfg)}
    ref = {n: p.detach().clone() for n, p in net.named_parameters()}
    velocities: dict[int, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(1)

    def draw_grads() -> dict[str, torch.Tensor | None]:
        return {n: None if n == "1.bias" else torch.randn(t.shape, generator=gen) for n, t in ref.items()}

    compiles = []
    for lr in (0.01, 0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001):
        grads = draw_grads()
        for name, opt in opts.items():
            set_lr(opt, lr)
            for n, p in nets[name].named_parameters():
                p.grad = grads[n]
            opt.step()
        for n, t in ref.items():
            t.grad = grads[n]
        _caffe_groups_step(_rounded_products_paper_step, ref, velocities, lr, cfg)
        compiles.append(counters["stats"]["unique_graphs"])
    assert compiles == [1, 1, 1, 2, 2, 3, 3]
    compiled, eager = (dict(nets[k].named_parameters()) for k in ("compiled", "eager"))
    assert not all(torch.equal(p.detach(), eager[n].detach()) for n, p in compiled.items())
    for n, p in compiled.items():
        assert torch.equal(p.detach(), ref[n]), n
        assert (p - eager[n]).abs().max() <= _ulp(eager[n]), n
        if n != "1.bias":
            v, v_eager = opts["compiled"].state[p]["velocity"], opts["eager"].state[eager[n]]["velocity"]
            assert torch.equal(v, velocities[id(ref[n])]), n
            assert (v - v_eager).abs().max() <= _ulp(v_eager), n
    assert compiled["1.bias"] not in opts["compiled"].state and eager["1.bias"] not in opts["eager"].state

    # Checkpoints: the same state_dict either way; each loads into the other kind and steps on.
    saved = {k: copy.deepcopy(opt.state_dict()) for k, opt in opts.items()}
    assert saved["compiled"]["param_groups"] == saved["eager"]["param_groups"]
    assert ({i: set(s) for i, s in saved["compiled"]["state"].items()} ==
            {i: set(s) for i, s in saved["eager"]["state"].items()} == {i: {"velocity"} for i in (0, 1, 2, 3, 5)})
    grads = draw_grads()
    for saved_by, compile_, reference in (("eager", True, _rounded_products_paper_step),
                                          ("compiled", False, _per_tensor_paper_step)):
        resumed = copy.deepcopy(nets[saved_by])
        opt = build_optimizer(resumed, replace(cfg, compile=compile_))
        opt.load_state_dict(saved[saved_by])
        expected = {n: p.detach().clone() for n, p in resumed.named_parameters()}
        vs = {id(expected[n]): opt.state[p]["velocity"].clone() for n, p in resumed.named_parameters()
              if n != "1.bias"}
        for n, p in resumed.named_parameters():
            p.grad = expected[n].grad = grads[n]
        opt.step()
        _caffe_groups_step(reference, expected, vs, 0.0001, cfg)
        for n, p in resumed.named_parameters():
            assert torch.equal(p.detach(), expected[n]), (saved_by, n)
            if n != "1.bias":
                assert torch.equal(opt.state[p]["velocity"], vs[id(expected[n])]), (saved_by, n)
    assert counters["stats"]["unique_graphs"] == 3  # the resumed compiled update: shapes and rate seen


@pytest.mark.parametrize("mode,update_mode", [("default", "default"), ("reduce-overhead", "default"),
                                              ("max-autotune", "max-autotune-no-cudagraphs"),
                                              ("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs")])
def test_build_optimizer_compiles_the_update_with_the_net_without_cuda_graphs(monkeypatch, mode, update_mode):
    """train.compile compiles the paper's update in the net's mode less CUDA graphs; without it, or
    for torch.optim.SGD, nothing is compiled."""
    from alexnet.training.optim import paper_update

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **options: calls.append((fn, options)) or fn)
    w = [torch.zeros(2, requires_grad=True)]
    build_optimizer(w, TrainConfig(compile=True, compile_mode=mode))
    assert calls == [(paper_update, {"mode": update_mode})]
    build_optimizer(w, TrainConfig())
    build_optimizer(w, TrainConfig(compile=True, compile_mode=mode, update_rule="pytorch"))
    assert len(calls) == 1
