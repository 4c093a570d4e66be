"""minigrad.nn: Module/Parameter bookkeeping, layers against torch.nn with copied weights,
containers, init, and clip_grad_norm_ against torch.nn.utils.clip_grad_norm_."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
import minigrad.nn as nn
import minigrad.nn.functional as F
from minigrad.nn import init
from minigrad.nn.utils import clip_grad_norm_

torch = pytest.importorskip("torch")
from backend_testing import cuda_backend  # noqa: E402  (tests/ is on sys.path)


def _t(x: minigrad.Tensor):
    """A torch tensor with a minigrad tensor's values (float64 stays float64)."""
    return torch.from_numpy(x.numpy().copy())


def _copy_params(ours: nn.Module, theirs) -> None:
    with torch.no_grad():
        for name, p in ours.named_parameters():
            dict(theirs.named_parameters())[name].copy_(_t(p))


def _close(a, b, dtype):
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    a = a.numpy() if isinstance(a, minigrad.Tensor) else a
    b = b.detach().numpy() if hasattr(b, "detach") else b
    np.testing.assert_allclose(a, b, **tol)


def _check_forward_backward(m: nn.Module, ref, x: minigrad.Tensor, dtype: str) -> None:
    """Run our module on x and the torch one on a copy, backpropagate the same random gradient
    through both, and compare the outputs and the gradients of x."""
    xt = _t(x).requires_grad_(True)
    y, yt = m(x), ref(xt)
    _close(y, yt, dtype)
    g = minigrad.randn(*y.shape, dtype=dtype)
    y.backward(g)
    yt.backward(_t(g))
    _close(x.grad, xt.grad, dtype)


# ---------------------------------------------------------------------------- Parameter / Module
def test_parameter_wraps_same_data():
    t = minigrad.randn(3, 4)
    p = nn.Parameter(t)
    assert isinstance(p, minigrad.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data                              # no copy
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    y = (p * 2.0).sum()
    assert type(y) is minigrad.Tensor                     # ops on a Parameter give plain Tensors
    y.backward()
    np.testing.assert_allclose(p.grad.numpy(), 2.0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.ln = nn.LayerNorm(8)
        self.register_buffer("mask", minigrad.ones(8))
        self.register_buffer("cache", minigrad.zeros(2), persistent=False)
        self.scale = 0.5                                  # a plain attribute

    def forward(self, x):
        return self.ln(self.fc(x)) * self.mask * self.scale


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.wte.weight                # weight tying, as GPT-2

    def forward(self, idx):
        x = self.wte(idx)
        return self.head(x)


def test_registration_and_names():
    m = Tied()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["wte.weight", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.ln.weight",
                     "blocks.0.ln.bias", "blocks.1.fc.weight", "blocks.1.fc.bias",
                     "blocks.1.ln.weight", "blocks.1.ln.bias"]      # tied head.weight once
    assert len(list(m.parameters())) == 9
    assert m.num_parameters() == 40 + 2 * (32 + 8 + 8 + 8)
    sd = m.state_dict()
    assert "head.weight" in sd and "wte.weight" in sd             # state_dict keeps both names
    assert "blocks.0.mask" in sd and "blocks.0.cache" not in sd    # non-persistent buffer left out
    assert [n for n, _ in m.named_children()] == ["wte", "blocks", "head"]
    assert len(list(m.modules())) == 1 + 1 + 1 + 2 * 3 + 1
    assert [n for n, _ in m.named_buffers()] == ["blocks.0.mask", "blocks.0.cache", "blocks.1.mask",
                                                  "blocks.1.cache"]
    assert m.blocks[0].scale == 0.5 and "scale" not in m.blocks[0]._parameters
    # state_dict tensors share memory with the parameters (torch does too)
    assert sd["wte.weight"].data is m.wte.weight.data


def test_setattr_rules():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = minigrad.zeros(3, 2)                  # a plain Tensor onto a Parameter slot
    m.bias = None
    assert m.bias is None and "bias" not in dict(m.named_parameters())

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(minigrad.zeros(1))     # forgot super().__init__()
    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope
    del m.weight
    assert "weight" not in dict(m.named_parameters())


def test_train_eval_zero_grad_requires_grad():
    m = Tied()
    assert all(x.training for x in m.modules())
    assert m.eval() is m and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    out = m(minigrad.tensor([[1, 2, 3]]))
    out.sum().backward()
    assert m.wte.weight.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_apply_and_repr_match_torch():
    seen = []
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.LayerNorm(4), nn.GELU(), nn.Embedding(10, 4),
                      nn.SiLU(), nn.Tanh())
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Sequential" and seen[0] == "Linear"
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.LayerNorm(4),
                              torch.nn.GELU(), torch.nn.Embedding(10, 4), torch.nn.SiLU(),
                              torch.nn.Tanh())
    assert repr(m) == repr(ref)
    assert repr(Tied()).startswith("Tied(\n  (wte): Embedding(10, 4)\n  (blocks): ModuleList(\n"
                                   "    (0): Block(\n      (fc): Linear(in_features=4")


def test_to_dtype_keeps_parameter_identity():
    m = Block()
    p_before = m.fc.weight
    vals = p_before.numpy()
    opt = minigrad.optim.SGD(m.parameters(), lr=0.1)
    m.to(minigrad.float64)
    assert m.fc.weight is p_before and p_before.dtype == "float64"
    np.testing.assert_array_equal(p_before.numpy(), vals)
    assert m.mask.dtype == "float64"                          # floating buffers are cast too
    out = m(minigrad.randn(2, 4, dtype="float64"))
    (out * minigrad.randn(2, 8, dtype="float64")).sum().backward()
    opt.step()                                                # the optimizer still holds them
    assert p_before.dtype == "float64" and not np.allclose(p_before.numpy(), vals)
    m.to("cpu")
    assert m.to("cpu", "float32").fc.weight.dtype == "float32"


def test_to_cuda_moves_parameters_when_available():
    cuda_backend()
    m = nn.Linear(3, 2)
    w = m.weight.numpy()
    m.to("cuda")
    assert m.weight.device == "cuda" and m.bias.device == "cuda"
    np.testing.assert_array_equal(m.weight.numpy(), w)
    y = m(minigrad.randn(4, 3, device="cuda"))
    assert y.device == "cuda" and y.shape == (4, 2)


# ---------------------------------------------------------------------------- load_state_dict
def test_load_state_dict_round_trip_and_casts():
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and pa.data is not pb.data
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    # NumPy values and float64 values load into a float32 model (cast), in place
    w = b.fc.weight
    sd = {k: v.numpy().astype(np.float64) for k, v in a.state_dict().items()}
    sd["fc.weight"] = sd["fc.weight"] + 1.0
    b.load_state_dict(sd)
    assert b.fc.weight is w and w.dtype == "float32"
    np.testing.assert_allclose(w.numpy(), a.fc.weight.numpy() + 1.0, rtol=1e-6)


def test_load_state_dict_errors():
    m = Block()
    sd = m.state_dict()
    del sd["ln.bias"]
    sd["extra.weight"] = minigrad.zeros(3)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert "Missing key(s) in state_dict: \"ln.bias\"" in msg
    assert "Unexpected key(s) in state_dict: \"extra.weight\"" in msg
    res = m.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["ln.bias"] and res.unexpected_keys == ["extra.weight"]

    sd = m.state_dict()
    sd["fc.weight"] = minigrad.zeros(4, 8)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight: copying a param with "
                                           r"shape \(4, 8\) from checkpoint, the shape in current "
                                           r"model is \(8, 4\)"):
        m.load_state_dict(sd, strict=False)                   # shape errors even when not strict
    sd = m.state_dict()
    sd["mask"] = minigrad.ones(8, dtype="int64")
    with pytest.raises(RuntimeError, match="dtype mismatch for mask: checkpoint has int64, the "
                                           "model has float32"):
        m.load_state_dict(sd)
    with pytest.raises(TypeError, match="dict"):
        m.load_state_dict([1, 2])


# ---------------------------------------------------------------------------- layers vs torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, bias):
    minigrad.manual_seed(1)
    m = nn.Linear(5, 3, bias=bias, dtype=dtype)
    assert m.weight.shape == (3, 5) and m.weight.dtype == dtype
    ref = torch.nn.Linear(5, 3, bias=bias, dtype=getattr(torch, dtype))
    _copy_params(m, ref)
    x = minigrad.randn(2, 4, 5, dtype=dtype, requires_grad=True)
    _check_forward_backward(m, ref, x, dtype)
    _close(m.weight.grad, ref.weight.grad, dtype)
    if bias:
        _close(m.bias.grad, ref.bias.grad, dtype)


def test_linear_init_is_torch_default_and_seeded():
    minigrad.manual_seed(0)
    a = nn.Linear(64, 256)
    minigrad.manual_seed(0)
    b = nn.Linear(64, 256)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())   # host generator: seeded
    bound = 1 / math.sqrt(64)
    w = a.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(a.bias.numpy()).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound * 10      # U(-b, b) has std b/sqrt(3)
    assert not np.array_equal(a.weight.numpy()[:4], a.bias.numpy()[:4])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_matches_torch(dtype):
    m = nn.Embedding(7, 3, dtype=dtype)
    ref = torch.nn.Embedding(7, 3, dtype=getattr(torch, dtype))
    _copy_params(m, ref)
    idx = np.array([[0, 3, 3], [6, 1, 3]])
    y, yt = m(minigrad.tensor(idx)), ref(torch.from_numpy(idx))
    _close(y, yt, dtype)
    g = minigrad.randn(*y.shape, dtype=dtype)
    y.backward(g)
    yt.backward(_t(g))
    _close(m.weight.grad, ref.weight.grad, dtype)              # repeated id 3 accumulates


def test_embedding_init_is_standard_normal():
    w = nn.Embedding(500, 40).weight.numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,affine,bias", [(6, True, True), (6, True, False), (6, False, True),
                                               ((3, 4), True, True)])
def test_layernorm_matches_torch(dtype, shape, affine, bias):
    m = nn.LayerNorm(shape, eps=1e-5, elementwise_affine=affine, bias=bias, dtype=dtype)
    ref = torch.nn.LayerNorm(shape, eps=1e-5, elementwise_affine=affine, bias=bias,
                             dtype=getattr(torch, dtype))
    if affine:                                                 # move weights off their 1/0 init
        init.normal_(m.weight)
        if bias:
            init.normal_(m.bias)
    _copy_params(m, ref)
    ns = (shape,) if isinstance(shape, int) else shape
    x = minigrad.randn(2, 5, *ns, dtype=dtype, requires_grad=True)
    _check_forward_backward(m, ref, x, dtype)
    for name, p in m.named_parameters():
        _close(p.grad, dict(ref.named_parameters())[name].grad, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rmsnorm_matches_torch(dtype, eps):
    m = nn.RMSNorm(8, eps=eps, dtype=dtype)
    ref = torch.nn.RMSNorm(8, eps=eps, dtype=getattr(torch, dtype))
    init.normal_(m.weight)
    _copy_params(m, ref)
    x = minigrad.randn(3, 8, dtype=dtype, requires_grad=True)
    _check_forward_backward(m, ref, x, dtype)
    _close(m.weight.grad, ref.weight.grad, dtype)
    assert nn.RMSNorm(8, elementwise_affine=False).weight is None


def test_dropout_train_and_eval():
    d = nn.Dropout(0.25)
    x = minigrad.ones(2000)
    y = d(x).numpy()
    kept = y != 0
    assert 0.68 < kept.mean() < 0.82
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("ours,theirs", [(nn.GELU(), torch.nn.GELU()),
                                         (nn.GELU("tanh"), torch.nn.GELU("tanh")),
                                         (nn.SiLU(), torch.nn.SiLU()), (nn.ReLU(), torch.nn.ReLU()),
                                         (nn.Tanh(), torch.nn.Tanh()),
                                         (nn.Identity(), torch.nn.Identity())])
def test_activation_modules_match_torch(ours, theirs):
    x = minigrad.randn(4, 5, dtype="float64", requires_grad=True)
    xt = _t(x).requires_grad_(True)
    y, yt = ours(x), theirs(xt)
    _close(y, yt, "float64")
    y.sum().backward()
    yt.sum().backward()
    _close(x.grad, xt.grad, "float64")


# ---------------------------------------------------------------------------- containers
def test_sequential():
    minigrad.manual_seed(3)
    s = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    x = minigrad.randn(4, 3)
    np.testing.assert_allclose(s(x).numpy(), s[2](s[1](s[0](x))).numpy())
    assert len(s) == 3 and isinstance(s[-1], nn.Linear) and list(s)[1] is s[1]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[1] is s[2]
    s.append(nn.Tanh())
    assert len(s) == 4 and [n for n, _ in s.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="out of range"):
        s[7]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    with pytest.raises(TypeError, match="holds Modules"):
        nn.Sequential(lambda x: x)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    ml.append(nn.Linear(2, 3))
    ml.extend([nn.ReLU()])
    assert len(ml) == 4 and isinstance(ml[-2], nn.Linear) and ml[2].out_features == 3
    assert [type(m).__name__ for m in ml] == ["Linear", "Linear", "Linear", "ReLU"]
    assert [n for n, _ in ml.named_parameters()][:3] == ["0.weight", "0.bias", "1.weight"]
    ml[1] = nn.Tanh()
    assert isinstance(ml[1], nn.Tanh)
    del ml[0]
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2"]     # renumbered
    assert isinstance(ml[:2], nn.ModuleList) and len(ml[:2]) == 2
    ml.insert(0, nn.SiLU())
    assert isinstance(ml[0], nn.SiLU) and len(ml) == 4


def test_module_dict():
    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    md["c"] = nn.Linear(2, 1)
    assert len(md) == 3 and "c" in md and list(md) == ["a", "b", "c"]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "c.weight", "c.bias"]
    assert md.pop("b").__class__ is nn.ReLU and list(md.keys()) == ["a", "c"]
    with pytest.raises(KeyError, match="no key 'zz'"):
        md["zz"]


# ---------------------------------------------------------------------------- init
def test_init_functions():
    t = minigrad.empty(300, 200)
    g = minigrad.Generator(5)
    init.normal_(t, mean=1.0, std=0.02, generator=g)
    v = t.numpy()
    assert abs(v.mean() - 1.0) < 1e-3 and abs(v.std() - 0.02) < 1e-3
    again = init.normal_(minigrad.empty(300, 200), 1.0, 0.02, generator=minigrad.Generator(5))
    np.testing.assert_array_equal(again.numpy(), v)
    init.uniform_(t, -0.5, 0.25)
    assert t.numpy().min() >= -0.5 and t.numpy().max() < 0.25
    init.zeros_(t)
    assert not t.numpy().any()
    init.ones_(t)
    assert (t.numpy() == 1).all()
    init.constant_(t, 3.5)
    assert (t.numpy() == 3.5).all()
    init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 500)
    init.kaiming_normal_(t, nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / 200)) < 0.003
    init.trunc_normal_(t, std=1.0, a=-1.0, b=1.0)
    assert np.abs(t.numpy()).max() <= 1.0
    assert init.normal_(minigrad.empty(3, dtype="float64")).dtype == "float64"
    with pytest.raises(TypeError, match="floating point"):
        init.normal_(minigrad.zeros(3, dtype="int64"))


# ---------------------------------------------------------------------------- clip_grad_norm_
@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (1e6, 2.0), (0.3, float("inf")),
                                                (1.0, 1.0), (0.7, 3.0), (0.0, 2.0),
                                                (float("inf"), 2.0), (0.0, 1.0)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, dtype):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (), (2, 2, 2)]
    ours, theirs = [], []
    for s in shapes:
        g = rng.standard_normal(s).astype(dtype)
        p = nn.Parameter(minigrad.zeros(*s, dtype=dtype))
        p.grad = minigrad.tensor(g, dtype=dtype)
        pt = torch.zeros(s, dtype=getattr(torch, dtype), requires_grad=True)
        pt.grad = torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(pt)
    ours.append(nn.Parameter(minigrad.zeros(2, dtype=dtype)))        # no grad: ignored
    n = clip_grad_norm_(ours, max_norm, norm_type)
    nt = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(n, minigrad.Tensor) and n.shape == () and n.dtype == dtype
    _close(n, nt, dtype)
    for p, pt in zip(ours, theirs):
        _close(p.grad, pt.grad, dtype)
    assert ours[-1].grad is None


def test_clip_grad_norm_edge_cases():
    assert clip_grad_norm_([nn.Parameter(minigrad.zeros(2))], 1.0).item() == 0.0
    p = nn.Parameter(minigrad.zeros(2))
    p.grad = minigrad.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    # two leaves of one add receive one gradient array: clipping one must not scale the other
    a, b = nn.Parameter(minigrad.ones(3)), nn.Parameter(minigrad.ones(3))
    ((a + b) * 4.0).sum().backward()
    clip_grad_norm_([a], 1.0)
    np.testing.assert_allclose(b.grad.numpy(), 4.0)
    np.testing.assert_allclose(np.linalg.norm(a.grad.numpy()), 1.0, rtol=1e-5)


def test_functional_reexported():
    assert nn.functional is F


@pytest.mark.parametrize("T,S", [(4, 4), (2, 5)])
def test_sdpa_dropout_path_is_causal(T, S):
    """With dropout (inside the fused op) the causal mask still hides keys after each query,
    bottom-right aligned: changing the value of key j changes exactly the output rows i with
    j <= i + S - T (same dropout seed)."""
    rng = np.random.default_rng(0)
    q, k = (minigrad.tensor(rng.standard_normal((1, n, 8))) for n in (T, S))
    v = rng.standard_normal((1, S, 8))

    def run(values):
        minigrad.manual_seed(1)
        return F.scaled_dot_product_attention(q, k, minigrad.tensor(values), dropout_p=0.2,
                                              is_causal=True).numpy()
    base = run(v)
    visible_changes = 0
    for j in range(S):
        bumped = v.copy()
        bumped[0, j] += 10.0
        changed = np.abs(run(bumped) - base).max(axis=-1)[0] > 1e-6          # (T,)
        sees_j = np.arange(T) + S - T >= j
        # a kept (not dropped) attention weight must change the row; a dropped one may not,
        # so only "never changes where j is masked" is exact
        assert not changed[~sees_j].any(), (j, changed, sees_j)
        visible_changes += int(changed[sees_j].sum())
    # ... and most visible (query, key) pairs do change the output (dropout keeps 80% of them)
    assert visible_changes >= 0.5 * sum(min(S, i + S - T + 1) for i in range(T))
