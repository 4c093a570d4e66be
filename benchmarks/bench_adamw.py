"""Benchmark kernels/adamw.py against torch.optim.AdamW (single-tensor, foreach, fused).

Case: the GPT-2-small parameter set (124M parameters in 148 tensors: token and position
embeddings, 12 blocks of layernorms, attention and MLP weights and biases, the final
layernorm), float32 params, grads and state. Ours: one launch per tensor (`adamw_step_`) and
the multi-tensor single launch (`adamw_step_multi_`). Also bfloat16 params with float32
master weights (no torch equivalent: baseline none). GB/s counts 28 bytes a parameter
(read p, g, m, v; write p, m, v; with masters: read master, g(bf16), m, v, write master,
p(bf16), m, v = 28 bytes too); pct_of_peak is against a device-to-device copy measured in
the run.

    python -m benchmarks.bench_adamw          (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

HP = dict(lr=6e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def gpt2_small_shapes(n_layer=12, C=768, V=50304, T=1024):
    shapes = [(V, C), (T, C)]
    for _ in range(n_layer):
        shapes += [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,),
                   (C,), (C,), (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return shapes + [(C,), (C,)]


def _row(bench, case, dtype, ours_ms, baseline, base_ms, nbytes):
    return common.bandwidth_row(bench, case, dtype, ours_ms, base_ms, nbytes, baseline=baseline)


def main() -> int:
    if not common.require_cuda("bench_adamw"):
        return 0
    import torch
    from minigrad.kernels.adamw import adamw_step_, adamw_step_multi_

    shapes = gpt2_small_shapes()
    n_params = sum(torch.Size(s).numel() for s in shapes)
    case = f"GPT-2 small {n_params / 1e6:.1f}M params, {len(shapes)} tensors"
    nbytes = 28 * n_params
    params = [torch.randn(s, device="cuda") * 0.02 for s in shapes]
    grads = [torch.randn_like(p) * 1e-3 for p in params]
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]

    # correctness: 3 steps against torch (single-tensor path) on copies
    tp = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.AdamW(tp, lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"],
                            weight_decay=HP["weight_decay"], foreach=False)
    ours = [p.clone() for p in params]
    m2, v2 = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    for step in (1, 2, 3):
        for p, g in zip(tp, grads):
            p.grad = g
        opt.step()
        adamw_step_multi_(ours, grads, m2, v2, step=step, **HP)
    for a, b in zip(ours, tp):
        torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=1e-5)
    del tp, opt, ours, m2, v2

    def per_tensor():
        for p, g, m, v in zip(params, grads, ms, vs):
            adamw_step_(p, g, m, v, step=10, **HP)

    baselines = {}
    for label, kw in (("torch.AdamW(foreach=False)", dict(foreach=False)),
                      ("torch.AdamW(foreach=True)", dict(foreach=True)),
                      ("torch.AdamW(fused=True)", dict(fused=True))):
        tp = [torch.nn.Parameter(p.clone()) for p in params]
        for p, g in zip(tp, grads):
            p.grad = g
        opt = torch.optim.AdamW(tp, lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"],
                                weight_decay=HP["weight_decay"], **kw)
        opt.step()
        baselines[label] = common.time_ms(opt.step)
        del tp, opt
        torch.cuda.empty_cache()

    rows = []
    ours_single = common.time_ms(per_tensor)
    ours_multi = common.time_ms(lambda: adamw_step_multi_(params, grads, ms, vs, step=10, **HP))
    for label, base in baselines.items():
        rows.append(_row("adamw_step", case + " per-tensor launches", torch.float32, ours_single, label, base,
                         nbytes))
        rows.append(_row("adamw_step_multi", case + " one launch", torch.float32, ours_multi, label, base, nbytes))
        # rows are keyed by (benchmark, case, dtype): keep the baseline name in the case
        rows[-2]["case"] += f" vs {label}"
        rows[-1]["case"] += f" vs {label}"

    # bfloat16 params with float32 master weights (what mixed-precision training uses)
    masters = params
    p16 = [p.to(torch.bfloat16) for p in params]
    g16 = [g.to(torch.bfloat16) for g in grads]
    rows.append(_row("adamw_step_multi", case + " bf16 params + fp32 master, one launch", torch.bfloat16,
                     common.time_ms(lambda: adamw_step_multi_(p16, g16, ms, vs, step=10, masters=masters, **HP)),
                     "none", None, nbytes))
    for r in rows:
        common.print_row(r)
    print("wrote", common.write_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
