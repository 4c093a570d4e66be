"""End to end: small MLPs built from minigrad.nn really learn with minigrad.optim (loss falls
far below its start), and a training run resumes exactly from a checkpoint."""
from __future__ import annotations

import math

import numpy as np

import minigrad
import minigrad.nn as nn
import minigrad.nn.functional as F
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import SGD, AdamW, WarmupCosine
from minigrad.serialization import load, save


def _sine_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-math.pi, math.pi, size=(n, 1)).astype(np.float32)
    return minigrad.tensor(x), minigrad.tensor(np.sin(x))


def _mlp():
    return nn.Sequential(nn.Linear(1, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 1))


def test_mlp_regresses_a_sine_with_adamw():
    minigrad.manual_seed(0)
    x, y = _sine_data()
    model = _mlp()
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    sched = WarmupCosine(opt, warmup_steps=20, decay_steps=150)
    losses = []
    for _ in range(150):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0], (losses[0], losses[-1])
    model.eval()
    with minigrad.no_grad():
        xt, yt = _sine_data(128, seed=1)                        # held-out points
        assert F.mse_loss(model(xt), yt).item() < 0.02


def test_mlp_classifies_two_spirals_with_sgd():
    minigrad.manual_seed(1)
    rng = np.random.default_rng(0)
    n = 150
    t = rng.uniform(0.25, 1.0, size=n) * 3 * math.pi
    cls = rng.integers(0, 2, size=n)
    r = t / (3 * math.pi)
    ang = t + cls * math.pi
    pts = np.stack([r * np.cos(ang), r * np.sin(ang)], 1) + rng.normal(0, 0.02, (n, 2))
    x, target = minigrad.tensor(pts.astype(np.float32)), minigrad.tensor(cls.astype(np.int64))
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    first = None
    for _ in range(400):
        loss = F.cross_entropy(model(x), target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first, (first, loss.item())
    acc = (model(x).argmax(-1) == target).to(dtype="float32").mean().item()
    assert acc > 0.9


def test_training_resumes_exactly_from_a_checkpoint(tmp_path):
    """Train 6 steps; or train 3, checkpoint model + optimizer + schedule, rebuild everything
    from the file and train 3 more: the same losses, the same weights."""
    x, y = _sine_data(64)

    def build():
        minigrad.manual_seed(0)
        model = _mlp()
        opt = AdamW(model.parameters(), lr=3e-3)
        return model, opt, WarmupCosine(opt, warmup_steps=2, decay_steps=6)

    def train(model, opt, sched, steps):
        out = []
        for _ in range(steps):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            out.append(loss.item())
        return out

    model, opt, sched = build()
    straight = train(model, opt, sched, 6)

    model, opt, sched = build()
    first = train(model, opt, sched, 3)
    path = tmp_path / "ckpt.safetensors"
    save({"model": model.state_dict(), "optimizer": opt.state_dict(),
          "schedule": sched.state_dict()}, path)
    model, opt, sched = build()
    ck = load(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["schedule"])
    assert first + train(model, opt, sched, 3) == straight
