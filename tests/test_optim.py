"""minigrad.optim against torch.optim (the oracle): SGD and AdamW variants over several steps
with the same parameters and gradients, param groups, state_dict round trips, bf16 master
weights where a backend has bf16, and the warmup + cosine schedule."""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest

import minigrad
import minigrad.nn as nn
from minigrad.optim import SGD, AdamW, LambdaLR, WarmupCosine, cosine_with_warmup
from minigrad.serialization import load, save

torch = pytest.importorskip("torch")
from backend_testing import cuda_backend  # noqa: E402  (tests/ is on sys.path)

SHAPES = [(4, 3), (5,), (2, 3, 2)]
STEPS = 5


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=2e-6, atol=1e-7)


def _make(dtype, seed=0):
    """The same initial parameters as minigrad Parameters and torch leaves."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [nn.Parameter(minigrad.tensor(a, dtype=dtype)) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    return ours, theirs


def _grads(dtype, step):
    rng = np.random.default_rng(1000 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run(opt, topt, ours, theirs, dtype, steps=STEPS, skip=None, sched=None, tsched=None):
    for step in range(steps):
        for i, (p, pt, g) in enumerate(zip(ours, theirs, _grads(dtype, step))):
            if skip is not None and i == skip:            # a parameter without a grad this step
                p.grad, pt.grad = None, None
                continue
            p.grad = minigrad.tensor(g, dtype=dtype)
            pt.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        if sched is not None:
            sched.step()
            tsched.step()
        for p, pt in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), pt.detach().numpy(), **_tol(dtype))


SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
             dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.1),
             dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
             dict(lr=0.1, momentum=0.5, maximize=True)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch(dtype, kw):
    ours, theirs = _make(dtype)
    _run(SGD(ours, **kw), torch.optim.SGD(theirs, **kw), ours, theirs, dtype)


ADAMW_CASES = [dict(), dict(lr=1e-2), dict(lr=3e-3, weight_decay=0.0),
               dict(lr=5e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kw", ADAMW_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items())
                         or "defaults")
def test_adamw_matches_torch(dtype, kw):
    ours, theirs = _make(dtype)
    _run(AdamW(ours, **kw), torch.optim.AdamW(theirs, **kw), ours, theirs, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_param_groups_match_torch(dtype):
    ours, theirs = _make(dtype)
    g = lambda ps: [dict(params=ps[:2], lr=3e-3, weight_decay=0.1),  # noqa: E731
                    dict(params=ps[2:], lr=1e-2, weight_decay=0.0)]
    _run(AdamW(g(ours), betas=(0.9, 0.95)), torch.optim.AdamW(g(theirs), betas=(0.9, 0.95)),
         ours, theirs, dtype)
    ours, theirs = _make(dtype)
    h = lambda ps: [dict(params=ps[:1], lr=0.2, momentum=0.5), dict(params=ps[1:])]  # noqa: E731
    _run(SGD(h(ours), lr=0.05, weight_decay=0.01), torch.optim.SGD(h(theirs), lr=0.05, weight_decay=0.01),
         ours, theirs, dtype)


def test_missing_grad_is_skipped_like_torch():
    ours, theirs = _make("float64")
    opt, topt = AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    _run(opt, topt, ours, theirs, "float64", skip=1)
    assert ours[1] not in opt.state                           # never stepped: no state made
    ours, theirs = _make("float64")
    _run(SGD(ours, lr=0.1, momentum=0.9), torch.optim.SGD(theirs, lr=0.1, momentum=0.9),
         ours, theirs, "float64", skip=0)


def test_adamw_with_schedule_matches_torch():
    ours, theirs = _make("float64")
    opt, topt = AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    lam = lambda s: 0.5 ** s  # noqa: E731
    _run(opt, topt, ours, theirs, "float64", steps=4, sched=LambdaLR(opt, lam),
         tsched=torch.optim.lr_scheduler.LambdaLR(topt, lam))
    assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"])


def test_zero_grad_and_validation():
    ours, _ = _make("float32")
    opt = SGD(ours, lr=0.1)
    for p in ours:
        p.grad = minigrad.ones(*p.shape)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in ours)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        AdamW([ours[0], ours[0]])
    with pytest.raises(ValueError, match="more than once"):
        AdamW([dict(params=ours[:2]), dict(params=ours[1:])])
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        AdamW([dict(params=ours, momentum=0.9)])
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(ours, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="invalid lr"):
        SGD(ours, lr=-1.0)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([ours[0] * 2.0], lr=0.1)
    with pytest.raises(NotImplementedError, match="amsgrad"):
        AdamW(ours, amsgrad=True)
    assert "Parameter Group 0" in repr(AdamW(ours))


@pytest.mark.parametrize("make_opt", [lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
                                      lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True)],
                         ids=["adamw", "sgd"])
@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_round_trip_continues_the_same_run(make_opt, through_file):
    a, _ = _make("float32")
    opt_a = make_opt(a)
    for step in range(3):
        for p, g in zip(a, _grads("float32", step)):
            p.grad = minigrad.tensor(g)
        opt_a.step()
    sd = opt_a.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and sd["param_groups"][0]["params"] == [0, 1, 2]
    if through_file:                                           # as train.py checkpoints it
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ckpt.safetensors")
            save({"params": [p.detach() for p in a], "optimizer": sd, "iter": 3}, path)
            ck = load(path)
        assert ck["iter"] == 3
        b = [nn.Parameter(t) for t in ck["params"]]
        sd = ck["optimizer"]
    else:
        b = [nn.Parameter(minigrad.tensor(p.numpy())) for p in a]
    opt_b = make_opt(b)
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for step in range(3, 6):
        for pa, pb, g in zip(a, b, _grads("float32", step)):
            pa.grad, pb.grad = minigrad.tensor(g), minigrad.tensor(g)
        opt_a.step()
        opt_b.step()
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa.numpy(), pb.numpy())   # bit-identical continuation
    # the loaded state is a copy: stepping A did not touch B's arrays
    sa, sb = opt_a.state[a[0]], opt_b.state[b[0]]
    key = "exp_avg" if "exp_avg" in sa else "momentum_buffer"
    assert sa[key].data is not sb[key].data


def test_load_state_dict_mismatch_errors():
    a, _ = _make("float32")
    opt = AdamW(a)
    with pytest.raises(ValueError, match="2 parameter groups but the optimizer has 1"):
        opt.load_state_dict({"state": {}, "param_groups": [dict(params=[0]), dict(params=[1])]})
    with pytest.raises(ValueError, match="group 0 has 3 parameters"):
        opt.load_state_dict({"state": {}, "param_groups": [dict(params=[0])]})
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"foo": 1})
    groups = AdamW(a).state_dict()["param_groups"]
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"state": {0: {"step": 1, "exp_avg": minigrad.zeros(2),
                                           "exp_avg_sq": minigrad.zeros(2)}},
                             "param_groups": groups})


def _bf16_backend():
    """The backend that has bfloat16 (the Triton one, also under TRITON_INTERPRET=1; the NumPy
    backend has none), or a skip when torch/triton are not installed."""
    return cuda_backend()


def test_adamw_bf16_master_weights():
    """bf16 params keep an fp32 master in the state that follows torch's fp32 AdamW, and the
    param is the master rounded to bf16."""
    _bf16_backend()
    rng = np.random.default_rng(0)
    w0 = torch.tensor(rng.standard_normal((8, 16)).astype(np.float32)).bfloat16().float()
    p = nn.Parameter(minigrad.tensor(w0.numpy(), dtype="bfloat16", device="cuda"))
    ref = w0.clone().requires_grad_(True)
    opt, topt = AdamW([p], lr=1e-3, weight_decay=0.1), torch.optim.AdamW([ref], lr=1e-3, weight_decay=0.1)
    for step in range(5):
        g = torch.tensor(rng.standard_normal((8, 16)).astype(np.float32)).bfloat16().float()
        p.grad = minigrad.tensor(g.numpy(), dtype="bfloat16", device="cuda")
        ref.grad = g
        opt.step()
        topt.step()
    st = opt.state[p]
    assert st["master"].dtype == "float32" and st["exp_avg"].dtype == "float32"
    np.testing.assert_allclose(st["master"].numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    master = st["master"].numpy()
    rounded = torch.from_numpy(master).bfloat16().float().numpy()
    if os.environ.get("TRITON_INTERPRET") == "1":
        # Triton's interpreter converts fp32 -> bf16 in kernels/adamw.py by truncation (a GPU
        # rounds to nearest even): accept any bf16 neighbour of the master there
        ulp = 2.0 ** (np.floor(np.log2(np.abs(master))) - 7)
        assert (np.abs(p.numpy() - master) < ulp).all()
    else:
        np.testing.assert_array_equal(p.numpy(), rounded)
    # 5 steps of lr=1e-3 are below bf16's resolution for most weights: without the master
    # the parameter would barely move; with it, the master moved by about 5e-3
    assert np.abs(st["master"].numpy() - w0.numpy()).max() > 1e-3


# ---------------------------------------------------------------------------- schedules
def _nanogpt_get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """nanoGPT's train.py get_lr, verbatim."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_cosine_with_warmup_is_nanogpts_get_lr():
    for it in range(0, 130):
        assert cosine_with_warmup(it, 6e-4, 6e-5, 10, 100) == \
            pytest.approx(_nanogpt_get_lr(it, 6e-4, 6e-5, 10, 100), rel=1e-15)
    assert cosine_with_warmup(10, 1.0, 0.1, 10, 100) == 1.0             # peak right after warmup
    assert cosine_with_warmup(100, 1.0, 0.1, 10, 100) == pytest.approx(0.1)
    assert cosine_with_warmup(5, 1.0, 0.1, 0, 0) == 0.1                 # degenerate: no decay span


def test_warmup_cosine_scheduler():
    ps, _ = _make("float32")
    opt = AdamW([dict(params=ps[:1], lr=1.0), dict(params=ps[1:], lr=0.1)])
    sched = WarmupCosine(opt, warmup_steps=3, decay_steps=10)          # min_lr_ratio 0.1 default
    seen = [[g["lr"] for g in opt.param_groups]]
    for _ in range(12):
        sched.step()
        seen.append([g["lr"] for g in opt.param_groups])
    for it, (a, b) in enumerate(seen):
        assert a == pytest.approx(cosine_with_warmup(it, 1.0, 0.1, 3, 10))
        assert b == pytest.approx(cosine_with_warmup(it, 0.1, 0.01, 3, 10))
    assert sched.get_last_lr() == seen[-1]
    # state_dict round trip: a new scheduler resumes at the same step
    sd = sched.state_dict()
    opt2 = AdamW([dict(params=ps[:1], lr=1.0), dict(params=ps[1:], lr=0.1)])
    sched2 = WarmupCosine(opt2, warmup_steps=3, decay_steps=10)
    sched2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx(seen[-1])
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())
    # absolute min_lr
    opt3 = SGD(ps, lr=2.0)
    s3 = WarmupCosine(opt3, 0, 4, min_lr=0.5)
    for _ in range(6):
        s3.step()
    assert opt3.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="not both"):
        WarmupCosine(opt3, 1, 2, min_lr_ratio=0.1, min_lr=0.1)


@pytest.mark.parametrize("make,tmake", [
    (lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
     lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1))], ids=["sgd", "adamw"])
def test_optimizers_on_cuda_backend_match_torch(make, tmake):
    """The same updates through the Triton backend (its adamw_step_ kernel and copy_)."""
    cuda_backend()
    cpu, theirs = _make("float32")
    ours = [nn.Parameter(p.detach().to("cuda")) for p in cpu]
    opt, topt = make(ours), tmake(theirs)
    for step in range(3):
        for p, pt, g in zip(ours, theirs, _grads("float32", step)):
            p.grad = minigrad.tensor(g, device="cuda")
            pt.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, pt in zip(ours, theirs):
        assert p.device == "cuda"
        np.testing.assert_allclose(p.numpy(), pt.detach().numpy(), rtol=1e-5, atol=1e-6)
