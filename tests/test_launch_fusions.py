"""The performance layer's launch-saving operations (fast/ops.py) against the NumPy specification
and independent math.

- AdamW over many parameters in one call (`FastOps.adamw_step_multi_`) with the step's scalars
  in device memory (`FastOps.adamw_hyper_`): NumPy spec == AdamW's formula by hand, Triton ==
  NumPy.
- Gradient clipping in one call (`FastOps.clip_by_total_norm`): NumPy == a hand computation with
  np.linalg.norm, Triton == NumPy, across several dtypes and chunk boundaries.
- Pointer tables (kernels/multi_tensor.py) are reused for the same addresses (no upload).
- Token ids that come from the host are range-checked there: an accelerated model never reads
  them back.

Small shapes: the Triton side runs in the interpreter in CI.
"""
from __future__ import annotations

import kernel_testing  # noqa: F401  (interpreter only when there is no CUDA; before kernels)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import minigrad  # noqa: E402
from minigrad import fast  # noqa: E402
from checked_backend import CheckedBackend  # noqa: E402
from minigrad.backends.numpy_backend import NumpyBackend  # noqa: E402
from minigrad.backends.triton_backend import TritonBackend  # noqa: E402
from minigrad.fast import functional as FF  # noqa: E402
from minigrad.fast.ops import HYPER_SIZE, FastOps, fast_ops  # noqa: E402

NB = FastOps(CheckedBackend(NumpyBackend()))               # the specification
TB = fast_ops(CheckedBackend(TritonBackend()))
RNG = np.random.default_rng(11)
HYPER = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def _adamw_inputs(shapes):
    ps = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    ms = [0.1 * RNG.standard_normal(s).astype(np.float32) for s in shapes]
    vs = [np.abs(RNG.standard_normal(s)).astype(np.float32) for s in shapes]
    return ps, gs, ms, vs


@pytest.mark.parametrize("step", [1, 7])
def test_numpy_adamw_multi_equals_the_formula_by_hand(step):
    """The multi-tensor spec (scalars from the hyper array) gives torch.optim.AdamW's formula,
    written out here in float64."""
    shapes = [(3, 5), (7,), (1,)]
    ps, gs, ms, vs = ([a.astype(np.float64) for a in group] for group in _adamw_inputs(shapes))
    lr, b1, b2, eps, wd = (HYPER[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay"))
    want = []
    for p, g, m, v in zip(ps, gs, ms, vs):
        m2, v2 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p2 = p * (1 - lr * wd) - lr / (1 - b1 ** step) * m2 / (np.sqrt(v2 / (1 - b2 ** step)) + eps)
        want += [p2, m2, v2]
    hyper = NB.b.empty((HYPER_SIZE,), "float64")
    NB.adamw_hyper_(hyper, step=step, **HYPER)
    NB.adamw_step_multi_(ps, gs, ms, vs, hyper)
    for got, w in zip([a for trio in zip(ps, ms, vs) for a in trio], want):
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)


def test_adamw_hyper_holds_the_bias_corrected_scalars():
    """hyper = [1 - lr wd, 1 - b1, b2, 1 - b2, lr / (1 - b1^t), sqrt(1 - b2^t), eps], by hand."""
    lr, b1, b2, eps, wd, t = 0.01, 0.8, 0.9, 1e-6, 0.5, 3
    want = [1 - lr * wd, 1 - b1, b2, 1 - b2, lr / (1 - b1 ** 3), (1 - b2 ** 3) ** 0.5, eps]
    for be, rtol in ((NB, 1e-15), (TB, 1e-6)):            # Triton passes the scalars as float32
        hyper = be.b.empty((HYPER_SIZE,), "float64")
        be.adamw_hyper_(hyper, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, step=t)
        np.testing.assert_allclose(be.b.to_numpy(hyper), want, rtol=rtol)
    with pytest.raises(ValueError, match="step must be >= 1"):
        NB.adamw_hyper_(NB.b.empty((7,), "float64"), step=0, **HYPER)


@pytest.mark.parametrize("with_master", [False, True])
def test_triton_adamw_multi_matches_numpy(with_master):
    """Several parameters of different sizes in one call, fp32 or bf16 with fp32 masters."""
    shapes = [(3, 5), (1100,), (2,)]                       # 1100 crosses a 1024-element block
    ps, gs, ms, vs = _adamw_inputs(shapes)
    outs = []
    for ops in (NB, TB):
        be = ops.b
        dt = "bfloat16" if with_master and ops is TB else "float32"
        bp = [be.from_numpy(p, dt) for p in ps]
        masters = [be.from_numpy(p) for p in ps] if with_master else None
        bm, bv = [be.from_numpy(m) for m in ms], [be.from_numpy(v) for v in vs]
        hyper = be.empty((HYPER_SIZE,), "float64")
        for step in (1, 2):
            ops.adamw_hyper_(hyper, step=step, **HYPER)
            ops.adamw_step_multi_(bp, [be.from_numpy(g, dt) for g in gs], bm, bv, hyper, masters)
        outs.append([be.to_numpy(a) for a in (masters if with_master else bp) + bm + bv])
    if with_master:         # NumPy ran fp32 grads; Triton bf16-rounded ones: compare loosely
        tol = dict(rtol=2e-2, atol=2e-3)
    else:
        tol = dict(rtol=1e-5, atol=1e-6)
    for t_out, n_out in zip(*outs[::-1]):
        np.testing.assert_allclose(t_out, n_out, **tol)


def test_numpy_clip_by_total_norm_is_the_hand_computed_clip():
    xs = [RNG.standard_normal(s) for s in ((4, 3), (5,), (0, 2))]
    for max_norm in (0.5, 1e3):                            # clips, then leaves them as they are
        total, out = NB.clip_by_total_norm([x.astype(np.float64) for x in xs], max_norm)
        norm = np.sqrt(sum(np.sum(x * x) for x in xs))
        assert float(total) == pytest.approx(norm, rel=1e-12)
        coef = min(1.0, max_norm / (norm + 1e-6))
        for x, y in zip(xs, out):
            np.testing.assert_allclose(y, x * coef, rtol=1e-12)


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("bfloat16", "float32"), ("float64", "float32")])
def test_triton_clip_by_total_norm_matches_numpy(dtypes):
    """Mixed dtypes (one launch group per dtype), sizes crossing a chunk, a clipping max_norm."""
    shapes = [(3, 5), (2100,), (1,)]
    xs = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    kinds = [dtypes[i % 2] for i in range(len(xs))]
    ref = [x.astype(np.float64) if k == "float64" else x for x, k in zip(xs, kinds)]
    if "bfloat16" in kinds:
        ref = [torch.from_numpy(x).to(torch.bfloat16).float().numpy() if k == "bfloat16" else x
               for x, k in zip(ref, kinds)]
    n_total, n_out = NB.clip_by_total_norm([NB.b.from_numpy(x) for x in ref], 2.0)
    t_total, t_out = TB.clip_by_total_norm([TB.b.from_numpy(x, k) for x, k in zip(xs, kinds)], 2.0)
    assert TB.b.dtype(t_total) == ("float64" if "float64" in kinds else "float32")
    rtol = 1e-2 if "bfloat16" in kinds else 1e-5
    np.testing.assert_allclose(TB.b.to_numpy(t_total), n_total, rtol=1e-5)
    for k, t, n in zip(kinds, t_out, n_out):
        assert TB.b.dtype(t) == k
        np.testing.assert_allclose(TB.b.to_numpy(t), n, rtol=rtol, atol=1e-6)


def test_kernel_clip_with_small_chunks_matches_numpy():
    """Many programs per tensor (chunk = one block): the partial sums add up exactly once."""
    from minigrad.kernels import multi_tensor as mt
    xs = [torch.from_numpy(RNG.standard_normal(s).astype(np.float32)) for s in ((2500,), (1025,))]
    total, coef, out = mt.clip_by_total_norm(xs, 1.0, chunk=mt.BLOCK)
    norm = np.sqrt(sum(float(np.sum(x.numpy().astype(np.float64) ** 2)) for x in xs))
    assert float(total) == pytest.approx(norm, rel=1e-5)
    assert float(coef) == pytest.approx(1.0 / (norm + 1e-6), rel=1e-5)
    for x, y in zip(xs, out):
        np.testing.assert_allclose(y.numpy(), x.numpy() * float(coef), rtol=1e-6)


def test_pointer_tables_are_reused_for_the_same_addresses():
    from minigrad.kernels import multi_tensor as mt
    a, b = torch.empty(5), torch.empty(3000)
    rows = [(a.data_ptr(), 5), (b.data_ptr(), 3000)]
    first = mt.pointer_table(rows, [5, 3000], 1024, a.device)
    again = mt.pointer_table(list(rows), [5, 3000], 1024, a.device)
    assert all(x is y for x, y in zip(again, first))                          # no new upload
    table, chunks, n = first
    assert n == 1 + 3 and chunks.tolist() == [[0, 0], [1, 0], [1, 1024], [1, 2048]]
    assert table.tolist() == [list(r) for r in rows]
    assert mt.pointer_table(rows[::-1], [3000, 5], 1024, a.device)[0] is not table


def test_chunk_tables_follow_the_sizes_not_the_addresses():
    """New gradient addresses with the same sizes upload only their address table: the chunk
    list (NumPy-built) is shared, and equals the per-chunk enumeration written out by hand."""
    from minigrad.kernels import multi_tensor as mt
    numels = [1, 1024, 1025, 0, 4097]
    spec = [[slot, start] for slot, n in enumerate(numels) for start in range(0, n, 1024)]
    xs = [torch.empty(max(n, 1)) for n in numels]
    ys = [torch.empty(max(n, 1)) for n in numels]                     # other addresses, same sizes
    t1, c1, n1 = mt.pointer_table([(x.data_ptr(), n) for x, n in zip(xs, numels)], numels, 1024, xs[0].device)
    t2, c2, n2 = mt.pointer_table([(y.data_ptr(), n) for y, n in zip(ys, numels)], numels, 1024, ys[0].device)
    assert c1.tolist() == spec and n1 == len(spec) == 1 + 1 + 2 + 0 + 5
    assert c2 is c1 and n2 == n1 and t2 is not t1
    assert t2.tolist() == [[y.data_ptr(), n] for y, n in zip(ys, numels)]


def test_host_batches_are_checked_on_the_host_not_read_back(monkeypatch):
    """An accelerated GPT given NumPy ids and targets (as train.py) never calls value_range (a
    device read) in a training step; out-of-range host ids still give the clear error."""
    from minigrad.models import gpt
    from minigrad.nn import functional as F

    def no_read_back(values):
        raise AssertionError("value_range called: the ids were read back from the device")
    for module in (F, gpt, FF):
        monkeypatch.setattr(module, "value_range", no_read_back)
    minigrad.manual_seed(0)
    model, _ = fast.accelerate(gpt.GPT(gpt.GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2,
                                                     n_embd=8)))
    x = RNG.integers(0, 11, size=(2, 8))
    _, loss = model(x, np.roll(x, -1, axis=1), return_logits=False)
    assert np.isfinite(loss.item())
    with pytest.raises(IndexError, match=r"got values in \[0, 11\]"):
        model(np.array([[0, 11]]))
    with pytest.raises(IndexError, match=r"target class ids must be in \[0, 10\]"):
        monkeypatch.undo()                                  # the invalid target is read back
        model(x, np.full((2, 8), 12), return_logits=False)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_triton_qkv_attention_matches_numpy(dtype):
    """Forward (heads merged) and backward (one (B, T, 3C) gradient) against the NumPy spec;
    T = 5 leaves a ragged tail in every block."""
    B, T, nh, hs = 2, 5, 2, 4
    qkv = RNG.standard_normal((B, T, 3 * nh * hs)).astype(np.float32)
    dy = RNG.standard_normal((B, T, nh * hs)).astype(np.float32)
    if dtype == "bfloat16":
        qkv, dy = (torch.from_numpy(a).to(torch.bfloat16).float().numpy() for a in (qkv, dy))
    outs = []
    for ops, dt in ((NB, "float32"), (TB, dtype)):
        x = ops.b.from_numpy(qkv, dt)
        y, lse = ops.qkv_attention_fwd(x, nh, True, 0.5)
        d = ops.qkv_attention_bwd(ops.b.from_numpy(dy, dt), x, y, lse, nh, True, 0.5)
        outs.append([ops.b.to_numpy(a) for a in (y, lse, d)])
    tol = dict(rtol=3e-2, atol=3e-2) if dtype == "bfloat16" else dict(rtol=1e-4, atol=1e-5)
    for t_out, n_out in zip(outs[1], outs[0]):
        np.testing.assert_allclose(t_out, n_out, **tol)


def test_qkv_self_attention_equals_split_heads_attention():
    """fast's qkv_self_attention (one Function) == nanoGPT's split / transpose / sdpa / merge,
    values and gradients (NumPy backend, float64: an independent composition through autograd)."""
    from minigrad.nn import functional as F
    B, T, nh, hs = 2, 4, 3, 2
    C = nh * hs
    a = RNG.standard_normal((B, T, 3 * C))
    w = RNG.standard_normal((B, T, C))
    x1 = minigrad.tensor(a, dtype="float64", requires_grad=True)
    y1 = FF.qkv_self_attention(x1, nh)
    (y1 * minigrad.tensor(w, dtype="float64")).sum().backward()
    x2 = minigrad.tensor(a, dtype="float64", requires_grad=True)
    q, k, v = (t.reshape(B, T, nh, hs).transpose(1, 2) for t in x2.split(C, dim=2))
    y2 = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    (y2 * minigrad.tensor(w, dtype="float64")).sum().backward()
    np.testing.assert_allclose(y1.numpy(), y2.numpy(), rtol=1e-12)
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-10, atol=1e-12)
    for qkv_self_attention in (FF.qkv_self_attention, F.qkv_self_attention):
        with pytest.raises(ValueError, match="divisible by n_head=4"):
            qkv_self_attention(x1, 4)


def test_linear_function_equals_matmul_plus_bias():
    """fast's linear (one Function, bias in the epilogue) == x @ W^T + b composed from primitives:
    values and all three gradients (NumPy, float64, a 3-d input); W's .grad is contiguous."""
    x, w, b, gy = (RNG.standard_normal(s) for s in ((2, 3, 4), (5, 4), (5,), (2, 3, 5)))
    grads = []
    for fused_path in (True, False):
        xt, wt, bt = (minigrad.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
        y = FF.linear(xt, wt, bt) if fused_path else xt.matmul(wt.transpose(0, 1)) + bt
        (y * minigrad.tensor(gy, dtype="float64")).sum().backward()
        grads.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()])
        if fused_path:
            assert wt.grad.backend.is_contiguous(wt.grad.data)
    for a, c in zip(*grads):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads[0][3], gy.sum(axis=(0, 1)), rtol=1e-12)   # db by hand


def test_triton_matmul_bias_matches_numpy():
    a, w, bias = (RNG.standard_normal(s).astype(np.float32) for s in ((5, 7), (3, 7), (3,)))
    outs = [ops.b.to_numpy(ops.matmul_bias(ops.b.from_numpy(a), ops.b.permute(ops.b.from_numpy(w), (1, 0)),
                                           ops.b.from_numpy(bias))) for ops in (NB, TB)]
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0], a @ w.T + bias, rtol=1e-5, atol=1e-6)


def _softmax_minus_onehot(x, t, n_classes, ignore):
    """By hand: the gradient of sum(losses) over the first n_classes columns, 0 elsewhere."""
    d = np.zeros_like(x)
    z = x[:, :n_classes] - x[:, :n_classes].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for i, ti in enumerate(t):
        if ti != ignore:
            d[i, :n_classes] = p[i]
            d[i, ti] -= 1.0
    losses = np.array([0.0 if ti == ignore else -np.log(p[i, ti]) for i, ti in enumerate(t)])
    return losses, d


def test_cross_entropy_fwd_bwd_overwrites_logits_with_their_gradient():
    """NumPy spec vs hand computation, Triton vs NumPy: padded vocabulary (n_classes 5 of 8
    columns), an ignored row (-100)."""
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    t = np.array([1, -100, 4, 0])
    want_losses, want_d = _softmax_minus_onehot(x.astype(np.float64), t, 5, -100)
    for ops, tol in ((NB, 1e-5), (TB, 1e-5)):
        logits = ops.b.from_numpy(x)
        losses = ops.cross_entropy_fwd_bwd_(logits, ops.b.from_numpy(t), -100, 5)
        np.testing.assert_allclose(ops.b.to_numpy(losses), want_losses, rtol=tol, atol=tol)
        np.testing.assert_allclose(ops.b.to_numpy(logits), want_d, rtol=tol, atol=tol)


@pytest.mark.parametrize("device,dtype,tol", [("cpu", "float64", 1e-10), ("cuda", "float32", 2e-5)])
def test_linear_cross_entropy_scales_each_row_by_its_own_upstream_gradient(device, dtype, tol):
    """functions.LinearCrossEntropy moves the upstream gradient from the (N, Vp) logits gradient
    onto x: with a different weight per row (a mean would give every row the same), its dx and dW
    must still be those of sum_i w_i * loss_i by hand in float64: dlogits = w_i (softmax - onehot)
    over the first n_classes columns (padding and ignored rows 0), dx = dlogits W, dW = dlogits^T x."""
    from minigrad.fast import functions
    if device == "cuda":
        from backend_testing import cuda_backend
        cuda_backend()
    N, C, Vp, n_classes = 5, 6, 8, 7
    x = RNG.standard_normal((N, C))
    w = RNG.standard_normal((Vp, C))
    t = np.array([1, -100, 6, 0, 3])
    row_w = np.array([0.5, 2.0, -1.5, 3.0, 0.25])                         # upstream d(out)/d(loss_i)
    want_losses, d = _softmax_minus_onehot(x @ w.T, t, n_classes, -100)   # d: (N, Vp), padding 0
    dlogits = d * row_w[:, None]
    xt, wt = (minigrad.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in (x, w))
    losses = functions.LinearCrossEntropy.apply(xt, wt, minigrad.tensor(t, device=device),
                                                n_classes=n_classes, ignore_index=-100)
    (losses * minigrad.tensor(row_w, dtype=dtype, device=device)).sum().backward()
    np.testing.assert_allclose(losses.numpy(), want_losses, rtol=tol, atol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), dlogits @ w, rtol=tol, atol=tol)
    np.testing.assert_allclose(wt.grad.numpy(), dlogits.T @ x, rtol=tol, atol=tol)


def test_linear_cross_entropy_with_mixed_dtypes_takes_the_two_call_path():
    """x float32 and W float64 cannot share one matmul: the loss is cross_entropy_in_place over
    linear(x, W) (the core promotes), and equals F.cross_entropy of the same logits."""
    from minigrad.nn import functional as F
    x = RNG.standard_normal((3, 4))
    w = RNG.standard_normal((5, 4))
    t = np.array([0, 4, 2])
    got = FF.linear_cross_entropy(minigrad.tensor(x, dtype="float32"), minigrad.tensor(w, dtype="float64"),
                                  minigrad.tensor(t))
    want = F.cross_entropy(minigrad.tensor(x @ w.T, dtype="float64"), minigrad.tensor(t))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"x must be \(N, C\) and weight \(Vp, C\)"):
        FF.linear_cross_entropy(minigrad.tensor(x), minigrad.tensor(w.T.copy()), minigrad.tensor(t))


def test_gpt_loss_only_forward_matches_the_logits_path():
    """An accelerated model(x, y, return_logits=False) (fused in-place loss) == the readable
    model(x, y): loss and every gradient (NumPy, float64, a padded vocabulary; with and without an
    ignored target)."""
    from minigrad.models.gpt import GPT, GPTConfig
    x = RNG.integers(0, 11, size=(2, 6))
    for y in (RNG.integers(0, 11, size=(2, 6)), np.where(RNG.random((2, 6)) < 0.3, -100, 3)):
        results = []
        for return_logits in (True, False):
            minigrad.manual_seed(1)
            model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8,
                                  pad_vocab_multiple=8), dtype="float64")
            if not return_logits:
                model, _ = fast.accelerate(model)
            logits, loss = model(x, y, return_logits=return_logits)
            assert (logits is None) == (not return_logits)
            loss.backward()
            results.append([loss.item()] + [p.grad.numpy() for p in model.parameters()])
        for a, b in zip(*results):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_layernorm_bwd_of_no_rows_gives_zero_weight_gradients():
    """The partial sums are not zero-filled any more: every program writes its row, even with
    no rows to sum (regression guard: an unlaunched kernel would leave garbage)."""
    from minigrad.kernels import layernorm as K
    x = torch.empty((0, 6))
    w, stat = torch.ones(6), torch.empty(0)
    _, dw, db = K.layernorm_bwd(torch.empty((0, 6)), x, w, stat, stat)
    assert dw.tolist() == [0.0] * 6 and db.tolist() == [0.0] * 6


def test_in_place_cross_entropy_backward_in_bfloat16():
    """float32 losses over bf16 logits: the backward scales the bf16 gradient (regression: the
    dtypes did not match) and gives the NumPy float32 gradient of the mean loss."""
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    x = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    t = np.array([2, 0, 4])
    logits = minigrad.Tensor(x, dtype="bfloat16", device="cuda", requires_grad=True)
    work = logits * 1.0                                  # a non-leaf buffer the loss may overwrite
    loss = FF.cross_entropy_in_place(work, t, n_classes=5)
    loss.backward()
    _, want = _softmax_minus_onehot(x.astype(np.float64), t, 5, -100)
    np.testing.assert_allclose(logits.grad.numpy(), want / 3, rtol=3e-2, atol=3e-3)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_qkv_attention_with_dropout_zero_and_one_match_numpy(p):
    """dropout_p = 0 (the HAS_DROPOUT-free kernels) and 1 (zeros, no NaN) draw nothing random, so
    the two backends must agree on the qkv path, forward and backward."""
    B, T, nh, hs = 2, 9, 2, 8
    qkv = RNG.standard_normal((B, T, 3 * nh * hs)).astype(np.float32)
    dy = RNG.standard_normal((B, T, nh * hs)).astype(np.float32)
    outs = []
    for ops in (NB, TB):
        up = ops.b.from_numpy
        y, lse = ops.qkv_attention_fwd(up(qkv), nh, True, 0.3, p, 5)
        d = ops.qkv_attention_bwd(up(dy), up(qkv), y, lse, nh, True, 0.3, p, 5)
        outs.append([ops.b.to_numpy(a) for a in (y, d)])
    for t_out, n_out in zip(outs[1], outs[0]):
        np.testing.assert_allclose(t_out, n_out, rtol=1e-4, atol=1e-5)
    assert np.isfinite(outs[1][1]).all() and (p < 1 or not outs[1][1].any())   # p = 1: o and grads 0
