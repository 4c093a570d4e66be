"""benchmarks/gpu_check.py's `kernels` stage: every kernel family against the NumPy specification.

Each check runs one backend method (or one performance-layer operation) on the Triton backend and
on the NumPy backend (minigrad/backends/numpy_backend.py, the specification) with the same inputs
and compares, at small shapes so that compiling (fixed configs: one variant per kernel) is most of
the time. float32 is held to IEEE tolerances (the kernels multiply in IEEE float32 by default:
kernels/helpers.py fp32_dot_precision); bfloat16 inputs are the float32 ones rounded to bfloat16,
the specification runs in float32 on them, and the Triton result must match it rounded to
bfloat16 within a couple of bf16 steps. NaN and inf must land where the specification puts them
(bf16 casts of NaN, inf, overflow and ties; exp/log/sqrt/div/max of NaN and inf; sums and maxima
with NaN; softmax rows with -inf). The families: copy and casts, elementwise (unary, binary,
compare, where, add_), reductions, movement (permute, concat, slice backward), the classic,
persistent and split-K matmuls with their epilogues, softmax and log-softmax, layernorm and
rmsnorm, GELU and SiLU, dropout (and attention dropout against softmax -> dropout -> @ v with the
same seed), embedding, cross-entropy (and the fused in-place loss), attention, multi-tensor AdamW
and clipping.
"""
from __future__ import annotations

import numpy as np


def run(rep, dry: bool) -> None:
    import torch

    import minigrad
    from minigrad.fast.ops import FastOps, fast_ops
    from minigrad.kernels import matmul_auto

    TB, NB = minigrad.get_backend("cuda"), minigrad.get_backend("cpu")
    spec_ops, fast = FastOps(NB), fast_ops(TB)
    rng = np.random.default_rng(0)
    F32, BF16 = (1e-4, 1e-4), (3e-2, 3e-2)              # (atol, rtol)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def bf16(x):
        """x rounded to bfloat16 (torch's cast is the oracle for the rounding), as float32."""
        return torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(torch.bfloat16).float().numpy()

    def close(name: str, got, want, tol=F32, bf=False, **extra):
        """One check: NaN where the spec has NaN, equal infinities, the rest within tol. bf: the
        spec is rounded to bfloat16 first (what the kernel stores)."""
        got = np.asarray(got, np.float64)
        want = np.asarray(bf16(want) if bf else want, np.float64)
        ok = got.shape == want.shape
        err = float("nan")
        if ok:
            nan_ok = bool((np.isnan(got) == np.isnan(want)).all())
            inf = np.isinf(want) | np.isinf(got)
            inf_ok = bool((got[inf] == want[inf]).all())
            fin = ~(np.isnan(want) | inf)
            err = float(np.max(np.abs(got[fin] - want[fin]), initial=0.0))
            ok = nan_ok and inf_ok and bool(np.allclose(got[fin], want[fin], atol=tol[0], rtol=tol[1]))
        rep.check(name, ok, max_abs_err=err, tol=list(tol), shape=list(got.shape), **extra)

    def both(method: str, *args, **kwargs):
        """method on each backend; args are host arrays (uploaded as float32/int64) or values."""
        def build(be):
            def one(a):
                if isinstance(a, list):
                    return [one(x) for x in a]
                return be.from_numpy(a) if isinstance(a, np.ndarray) else a
            return [one(a) for a in args]
        return getattr(TB, method)(*build(TB), **kwargs), getattr(NB, method)(*build(NB), **kwargs)

    def host(be, out):
        return [host(be, o) for o in out] if isinstance(out, (tuple, list)) else be.to_numpy(out)

    def compare(name: str, method: str, *args, tol=F32, **kwargs):
        t, n = both(method, *args, **kwargs)
        t, n = host(TB, t), host(NB, n)
        for i, (a, b) in enumerate(zip(t, n) if isinstance(t, list) else [(t, n)]):
            close(f"{name}[{i}]" if isinstance(t, list) else name, a, b, tol)

    def tb16(a):
        return TB.from_numpy(a, "bfloat16")

    special = np.array([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 2e-38, 1.00390625, 1.01171875,
                        0.0, -0.0, 65504.0, 1.5], np.float32)

    # ---- copy and casts: bf16 rounding of NaN, inf, overflow and ties
    x = np.concatenate([special, randn(52)])
    close("astype f32->bf16 (NaN, inf, overflow, ties)", TB.to_numpy(TB.astype(TB.from_numpy(x), "bfloat16")), bf16(x), (0, 0))
    # subnormals: the interpreter flushes them to zero; recorded, not checked (the GPU may too)
    sub = np.array([1e-40, -3e-39], np.float32)
    rep.row(info="astype f32->bf16 of subnormals", values=sub.tolist(),
            got=TB.to_numpy(TB.astype(TB.from_numpy(sub), "bfloat16")).tolist(), exact=bf16(sub).tolist())
    t = TB.permute(TB.from_numpy(randn(3, 5, 7)), (2, 0, 1))
    close("permute + contiguous (copy kernel)", TB.to_numpy(TB.contiguous(t)),
          np.transpose(TB.to_numpy(TB.permute(t, (1, 2, 0))), (2, 0, 1)), (0, 0))

    # ---- elementwise, float32 and bf16 with NaN / inf
    a = np.concatenate([special, randn(20)]).reshape(4, 8)
    b = np.concatenate([special[::-1], randn(20)]).reshape(4, 8)
    pos = np.abs(a)
    for op, inp in (("exp", a), ("log", pos), ("sqrt", pos), ("tanh", a), ("neg", a)):
        compare(f"unary {op} f32", "unary", op, inp)
        close(f"unary {op} bf16", TB.to_numpy(TB.unary(op, tb16(inp))),
              NB.to_numpy(NB.unary(op, NB.from_numpy(bf16(inp)))), BF16, bf=True)
    for op in ("add", "mul", "div", "maximum", "minimum"):
        compare(f"binary {op} f32", "binary", op, a, b)
        close(f"binary {op} bf16", TB.to_numpy(TB.binary(op, tb16(a), tb16(b))),
              NB.to_numpy(NB.binary(op, NB.from_numpy(bf16(a)), NB.from_numpy(bf16(b)))), BF16, bf=True)
    compare("binary pow f32 (scalar exponent)", "binary", "pow", pos, 1.5)
    for op in ("lt", "eq", "ne"):
        got = TB.to_numpy(TB.compare(op, tb16(a), tb16(b)))
        want = NB.to_numpy(NB.compare(op, NB.from_numpy(bf16(a)), NB.from_numpy(bf16(b))))
        rep.check(f"compare {op} bf16 (NaN compares false, ne true)", bool((got == want).all()))
    cond = randn(4, 8) > 0
    compare("where f32", "where", cond, a, b)
    dst = TB.from_numpy(bf16(a), "bfloat16")
    fast.add_(dst, tb16(b))
    close("add_ in place bf16", TB.to_numpy(dst), bf16(a) + bf16(b), BF16, bf=True)

    # ---- reductions
    r = randn(6, 33, 10)
    compare("reduce_sum f32 axis 1", "reduce_sum", r, (1,), False)
    compare("reduce_sum f32 all", "reduce_sum", r, (0, 1, 2), False, tol=(1e-3, 1e-4))
    compare("reduce_max f32 axes (0, 2)", "reduce_max", r, (0, 2), True)
    compare("argmax f32", "argmax", r, 1, tol=(0, 0))
    wn = randn(8, 40)
    wn[1, 3], wn[5, 0], wn[6, :] = np.nan, np.inf, -np.inf
    close("reduce_sum bf16 columns (NaN, inf)", TB.to_numpy(TB.reduce_sum(tb16(wn), (0,), False)),
          NB.to_numpy(NB.reduce_sum(NB.from_numpy(bf16(wn)), (0,), False)), (0.1, 3e-2), bf=True)
    dy = randn(64 if dry else 4096, 96)
    close("reduce_sum bf16 over rows (bias gradients)", TB.to_numpy(TB.reduce_sum(tb16(dy), (0,), False)),
          NB.to_numpy(NB.reduce_sum(NB.from_numpy(bf16(dy)), (0,), False)), (0.1, 2e-2), bf=True)
    close("reduce_max bf16 rows (NaN, -inf rows)", TB.to_numpy(TB.reduce_max(tb16(wn), (1,), False)),
          NB.to_numpy(NB.reduce_max(NB.from_numpy(bf16(wn)), (1,), False)), (0, 0))

    # ---- movement through copies
    xs = [randn(3, 4), randn(3, 2), randn(3, 5)]
    compare("concat axis 1", "concat", xs, 1, tol=(0, 0))
    compare("slice_backward", "slice_backward", randn(2, 3), (4, 6), (slice(1, 3), slice(0, 6, 2)), tol=(0, 0))

    # ---- matmul: the core wrapper (classic) and the performance layer's variants with epilogues
    M, K, N = (19, 24, 21) if dry else (67, 96, 80)
    A, Bm = randn(M, K), randn(K, N)
    compare("matmul classic f32 (IEEE)", "matmul", A, Bm)
    compare("matmul classic f32 batched transposed", "matmul", randn(3, M, K),
            np.ascontiguousarray(np.swapaxes(randn(3, N, K), 1, 2)))
    close("matmul classic bf16", TB.to_numpy(TB.matmul(tb16(A), tb16(Bm))), bf16(A) @ bf16(Bm), BF16, bf=True)
    Ka = 520 if not dry else 64                               # a K long enough for split-K's ranges
    A2, B2, bias = randn(M, Ka), randn(Ka, N), randn(N)
    pre_np = bf16(A2) @ bf16(B2) + bf16(bias)
    gelu = 0.5 * pre_np * (1 + np.tanh(0.7978845608028654 * (pre_np + 0.044715 * pre_np ** 3)))
    for variant in ("classic", "persistent", "splitk"):
        for dt, tol in (("float32", F32), ("bfloat16", BF16)):
            cast = (lambda z: z) if dt == "float32" else bf16
            aa, bb = TB.from_numpy(cast(A2), dt), TB.from_numpy(cast(B2), dt)
            y = matmul_auto.matmul(aa, bb, variant=variant)
            close(f"matmul {variant} {dt}", TB.to_numpy(y), cast(A2) @ cast(B2),
                  (1e-3, 1e-4) if dt == "float32" else tol, bf=dt != "float32")
            if dt == "bfloat16":
                pre = torch.empty((M, N), dtype=torch.bfloat16, device=aa.device)
                y = matmul_auto.matmul(aa, bb, bias=TB.from_numpy(bf16(bias), dt), activation="gelu",
                                       pre_out=pre, variant=variant)
                close(f"matmul {variant} bf16 bias + GELU epilogue (pre_out)", TB.to_numpy(y), gelu, BF16, bf=True)
                close(f"matmul {variant} bf16 pre_out", TB.to_numpy(pre), pre_np, BF16, bf=True)
            # the bias gradient from the dW matmul: A = dy^T, a transposed view; its row sums = db
            g = TB.from_numpy(cast(A2.T.copy()), dt)                         # (Ka, M): dy
            rows = torch.empty((M,), dtype=g.dtype, device=g.device)
            y = matmul_auto.matmul(g.t(), bb, rowsum=rows, variant=variant)  # A = dy^T (M, Ka)
            close(f"matmul {variant} {dt} with rowsum", TB.to_numpy(y), cast(A2) @ cast(B2),
                  (1e-3, 1e-4) if dt == "float32" else tol, bf=dt != "float32")
            close(f"matmul {variant} {dt} rowsum (db from the dW matmul)", TB.to_numpy(rows),
                  cast(A2).sum(axis=1), (1e-3, 1e-4) if dt == "float32" else tol, bf=dt != "float32")

    # ---- softmax family, norms, activations
    s = randn(7, 33) * 3
    s[2, :5] = -np.inf
    compare("softmax_fwd f32 (-inf entries)", "softmax_fwd", s)
    compare("log_softmax_fwd f32", "log_softmax_fwd", randn(7, 33))
    y_sm = NB.to_numpy(NB.softmax_fwd(NB.from_numpy(s)))
    compare("softmax_bwd f32", "softmax_bwd", randn(7, 33), y_sm)
    close("softmax_fwd bf16 (-inf entries)", TB.to_numpy(TB.softmax_fwd(tb16(s))),
          NB.to_numpy(NB.softmax_fwd(NB.from_numpy(bf16(s)))), (1e-2, 2e-2), bf=True)
    C = 96 if not dry else 40
    xl, w, bb_ = randn(9, C), randn(C), randn(C)
    compare("layernorm_fwd f32", "layernorm_fwd", xl, w, bb_, 1e-5)
    _, mean, rstd = NB.layernorm_fwd(NB.from_numpy(xl), NB.from_numpy(w), NB.from_numpy(bb_), 1e-5)
    compare("layernorm_bwd f32", "layernorm_bwd", randn(9, C), xl, w, NB.to_numpy(mean), NB.to_numpy(rstd),
            tol=(1e-3, 1e-4))
    compare("rmsnorm_fwd f32", "rmsnorm_fwd", xl, w, 1e-5)
    yb, _, _ = TB.layernorm_fwd(tb16(xl), tb16(w), tb16(bb_), 1e-5)
    yn, _, _ = NB.layernorm_fwd(NB.from_numpy(bf16(xl)), NB.from_numpy(bf16(w)), NB.from_numpy(bf16(bb_)), 1e-5)
    close("layernorm_fwd bf16", TB.to_numpy(yb), NB.to_numpy(yn), BF16, bf=True)
    for approx in ("tanh", "none"):
        compare(f"gelu_fwd {approx} f32", "gelu_fwd", a, approx)
        compare(f"gelu_bwd {approx} f32", "gelu_bwd", randn(4, 8), randn(4, 8), approx)
    compare("silu_fwd f32", "silu_fwd", randn(4, 8))

    # ---- dropout: rate, y = x * mask / (1 - p), attention dropout = softmax -> dropout -> @ v
    xd = randn(64, 50)
    yd, mask = TB.dropout_fwd(TB.from_numpy(xd), 0.25, 17)
    m = TB.to_numpy(mask)
    rep.check("dropout keep rate (3200 draws, 5 sigma)", abs(m.mean() - 0.75) < 5 * (0.75 * 0.25 / m.size) ** 0.5,
              keep=float(m.mean()))
    close("dropout_fwd y = x * mask / (1 - p)", TB.to_numpy(yd), np.where(m, xd / 0.75, 0))
    compare("dropout_bwd", "dropout_bwd", randn(64, 50), m, 0.25)
    Bh, H, T, S, D = 1, 2, 24, 32, 16
    q, k, v = randn(Bh, H, T, D), randn(Bh, H, S, D), randn(Bh, H, S, D)
    o, _ = TB.attention_fwd(TB.from_numpy(q), TB.from_numpy(k), TB.from_numpy(v), False, 0.25, None, 0.3, 5)
    p_ = NB.to_numpy(NB.softmax_fwd(NB.from_numpy((q @ np.swapaxes(k, -1, -2)) * 0.25)))
    _, keep = TB.dropout_fwd(TB.from_numpy(np.ones((Bh, H, T, S), np.float32)), 0.3, 5)
    close("attention dropout == softmax -> dropout(same seed) -> @ v", TB.to_numpy(o),
          (p_ * TB.to_numpy(keep) / 0.7) @ v, (1e-4, 1e-4))

    # ---- embedding, cross-entropy (and the fused in-place loss)
    wte, idx = randn(11, 20), np.array([[1, 5, 1], [10, 0, 5]])
    compare("embedding_fwd", "embedding_fwd", wte, idx, tol=(0, 0))
    compare("embedding_bwd (repeated ids)", "embedding_bwd", randn(2, 3, 20), idx, 11)
    Nr, V = 9, 70
    logits, tg = randn(Nr, V) * 2, rng.integers(0, V, Nr)
    tg[2] = -100
    compare("cross_entropy_fwd f32 (ignore_index)", "cross_entropy_fwd", logits, tg, -100)
    _, lse = NB.cross_entropy_fwd(NB.from_numpy(logits), NB.from_numpy(tg), -100)
    compare("cross_entropy_bwd f32", "cross_entropy_bwd", randn(Nr), logits, tg, NB.to_numpy(lse), -100)
    big = np.concatenate([logits, randn(Nr, 10)], 1)                  # 10 padded vocabulary columns
    lt = TB.from_numpy(bf16(big), "bfloat16")
    losses = fast.cross_entropy_fwd_bwd_(lt, TB.from_numpy(tg), -100, V)
    ln = NB.from_numpy(bf16(big))
    want = spec_ops.cross_entropy_fwd_bwd_(ln, NB.from_numpy(tg), -100, V)
    close("fused in-place cross-entropy bf16: losses", TB.to_numpy(losses), NB.to_numpy(want), (2e-2, 1e-2))
    close("fused in-place cross-entropy bf16: d logits", TB.to_numpy(lt), NB.to_numpy(ln), (1e-2, 2e-2), bf=True)

    # ---- attention forward and backward
    for causal, (T, S) in ((True, (33, 33)), (False, (5, 21)), (True, (1, 40))):
        q, k, v, do = randn(1, 2, T, 32), randn(1, 2, S, 32), randn(1, 2, S, 32), randn(1, 2, T, 32)
        compare(f"attention_fwd f32 causal={causal} T={T} S={S}", "attention_fwd", q, k, v, causal, 32 ** -0.5)
        o, lse = NB.attention_fwd(NB.from_numpy(q), NB.from_numpy(k), NB.from_numpy(v), causal, 32 ** -0.5)
        compare(f"attention_bwd f32 causal={causal} T={T} S={S}", "attention_bwd", do, q, k, v, NB.to_numpy(o),
                NB.to_numpy(lse), causal, 32 ** -0.5, tol=(2e-4, 2e-4))
        ob, _ = TB.attention_fwd(tb16(q), tb16(k), tb16(v), causal, 32 ** -0.5)
        ref, _ = NB.attention_fwd(NB.from_numpy(bf16(q)), NB.from_numpy(bf16(k)), NB.from_numpy(bf16(v)),
                                  causal, 32 ** -0.5)
        close(f"attention_fwd bf16 causal={causal} T={T} S={S}", TB.to_numpy(ob), NB.to_numpy(ref), (6e-2, 3e-2))

    # ---- multi-tensor AdamW and clipping against the performance layer's specification
    shapes = [(33, 7), (5,), (1000,)]
    params = [randn(*sh) for sh in shapes]
    grads = [randn(*sh) for sh in shapes]

    def adamw_on(be, ops):
        p = [be.from_numpy(x) for x in params]
        g = [be.from_numpy(x) for x in grads]
        m = [be.from_numpy(np.full(x.shape, 0.1, np.float32)) for x in params]
        v2 = [be.from_numpy(np.full(x.shape, 0.2, np.float32)) for x in params]
        hyper = be.empty((7,), "float64")
        ops.adamw_hyper_(hyper, lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, step=3)
        ops.adamw_step_multi_(p, g, m, v2, hyper)
        return [be.to_numpy(t) for t in p + m + v2]
    for i, (got, want) in enumerate(zip(adamw_on(TB, fast), adamw_on(NB, spec_ops))):
        close(f"adamw multi-tensor f32 [{i}]", got, want, (1e-6, 1e-5))
    tg_ = [TB.from_numpy(x) for x in grads]
    total = fast.clip_by_total_norm_(tg_, 1.0)
    ng = [NB.from_numpy(x) for x in grads]
    want_total, want_scaled = spec_ops.clip_by_total_norm(ng, 1.0)
    close("clip multi-tensor norm", TB.to_numpy(total), NB.to_numpy(want_total), (1e-5, 1e-5))
    for i, (got, want) in enumerate(zip(tg_, want_scaled)):
        close(f"clip multi-tensor in place [{i}]", TB.to_numpy(got), NB.to_numpy(want), (1e-6, 1e-5))

