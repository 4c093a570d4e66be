"""The `items` stage of benchmarks/gpu_check.py: issue 18's three "slow on a real GPU" changes,
timed at GPT-2 / shakespeare-char shapes so the first GPU run can check their predictions
(docs/perf-notes.md section 10). Each row says what it measures and what was predicted.

    db from dW     the weight-gradient matmul that also writes the bias gradient (rowsum=) against
                   the same matmul followed by a column-sum launch (what fast's Linear did before)
    CE scale       the upstream 1/N on the narrow side, two (N, C) multiplies (LinearCrossEntropy),
                   against the pass over the (N, Vp) logits gradient it replaced
    dropout        kernels/dropout.py on a (8192, 3072) bf16 tensor against the bytes it must move;
                   attention forward + backward with dropout against the same without

Fixed configs, as every stage (MINIGRAD_AUTOTUNE=0). --dry_run: tiny shapes on the CPU, the
values checked, the timings meaningless.
"""
from __future__ import annotations

H100_BYTES_PER_S = 3.35e12          # HBM3 peak of an H100 SXM: the dropout kernel's floor


def run(rep, dry: bool) -> None:
    import torch

    from benchmarks.gpu_check_stages import _time
    from minigrad.kernels import attention as A
    from minigrad.kernels import dropout as D
    from minigrad.kernels import elementwise as E
    from minigrad.kernels import matmul_auto
    from minigrad.kernels import reduce as R
    device = "cpu" if dry else "cuda"
    dt = torch.float32 if dry else torch.bfloat16
    tol = 1e-4 if dry else 3e-2
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dt)

    def row(case: str, ours, before, predicted: str, **extra):
        t_ours, t_before = _time(ours, dry), _time(before, dry)
        rep.row(benchmark="issue 18 item", case=case, dtype=str(dt), ms=t_ours, before_ms=t_before,
                saved_ms=t_before - t_ours, predicted=predicted, dry_run=dry, **extra)

    # ---- db from the dW matmul: GPT-2's c_fc, dy (N, 3072) and x (N, 768), N = 8192 rows
    N, C, H = (48, 16, 40) if dry else (8192, 768, 3072)
    dy, x = rand(N, H), rand(N, C)
    db = torch.empty((H,), dtype=dt, device=device)
    dw = matmul_auto.matmul(dy.t(), x, rowsum=db)                      # (H, C) and db (H,)
    want = dy.float().sum(0)
    err = float((db.float() - want).abs().max() / want.abs().max())
    ok = rep.check("db from the dW matmul == the column sums of dy", err <= tol, rel_err=err)
    plain = matmul_auto.matmul(dy.t(), x).float()
    err_w = float((dw.float() - plain).abs().max() / plain.abs().max())
    ok &= rep.check("its dW == the plain matmul's (the same kernel: same bits expected)", err_w <= tol,
                    rel_err=err_w, identical=bool(torch.equal(dw.float(), plain)))
    if ok:
        row(f"dW + db, dy ({N}, {H}), x ({N}, {C})",
            lambda: matmul_auto.matmul(dy.t(), x, rowsum=db),
            lambda: (matmul_auto.matmul(dy.t(), x), R.reduce_sum(dy, (0,))),
            "the column-sum launch gone: ~0.01-0.02 ms saved per bias (48 per GPT-2 micro-batch)")

    # ---- the cross-entropy's 1/N: on (N, C) twice instead of on (N, Vp) once
    Vp = 72 if dry else 50304
    dlogits, g = rand(N, Vp), torch.full((N, 1), 1.0 / N, dtype=dt, device=device)
    row(f"CE upstream scale, N={N} Vp={Vp} C={C}",
        lambda: (E.binary("mul", x, g.expand(N, C)), E.binary("mul", x, g.expand(N, C))),
        lambda: E.binary("mul", dlogits, g.expand(N, Vp)),
        "before ~0.5 ms (1.65 GB at ~3 TB/s), now ~0.02 ms")
    del dlogits

    # ---- dropout: the kernel against its memory floor, attention with dropout against without
    x = rand(*((64, 48) if dry else (8192, 3072)))
    y, mask = D.dropout_fwd(x, 0.1, seed=7)
    kept = float(mask.float().mean())
    if rep.check("dropout keeps ~90% (p = 0.1)", abs(kept - 0.9) <= (0.05 if dry else 0.002), kept=kept):
        floor_ms = 1000 * x.numel() * (2 * x.element_size() + 1) / H100_BYTES_PER_S
        rep.row(benchmark="issue 18 item", case=f"dropout_fwd {tuple(x.shape)} p=0.1", dtype=str(dt),
                ms=_time(lambda: D.dropout_fwd(x, 0.1, seed=7), dry), memory_floor_ms=floor_ms,
                predicted="0.045-0.050 ms (memory floor 0.038 ms; ~0.1 ms before)", dry_run=dry)
    B, nh, T, hd = (1, 2, 16, 16) if dry else (64, 6, 256, 64)
    q, k, v, do = (rand(B, nh, T, hd) for _ in range(4))
    scale = hd ** -0.5

    def fwd_bwd(p: float):
        def go():
            o, lse = A.attention_fwd(q, k, v, True, scale, dropout_p=p, seed=3)
            A.attention_bwd(do, q, k, v, o, lse, True, scale, dropout_p=p, seed=3)
        return go
    with_dropout, without = _time(fwd_bwd(0.2), dry), _time(fwd_bwd(0.0), dry)
    rep.row(benchmark="issue 18 item", case=f"attention fwd+bwd B={B} H={nh} T={T} D={hd} causal",
            dtype=str(dt), dropout_ms=with_dropout, no_dropout_ms=without, ratio=with_dropout / without,
            predicted="ratio ~1.3-1.6 (about 2-2.5 before: sm_90 SASS counts, section 10)", dry_run=dry)
