"""Benchmark kernels/layernorm.py (LayerNorm, RMSNorm; forward and backward) against torch eager.

Cases: GPT-2-small activations (8192 tokens x 768) and a wide model (16384 x 4096).
Baselines: F.layer_norm / aten.native_layer_norm_backward; F.rms_norm and its autograd
backward. GB/s counts the bytes each pass must move (forward: read x + write y; backward:
read x, dy + write dx; weights and statistics are negligible) against a device-to-device copy
measured in the same run.

    python -m benchmarks.bench_layernorm      (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

CASES = [((8192, 768), "GPT-2 small 8192x768"), ((16384, 4096), "wide 16384x4096")]
EPS = 1e-5


def main() -> int:
    if not common.require_cuda("bench_layernorm"):
        return 0
    import torch
    import torch.nn.functional as F
    from minigrad.kernels.layernorm import layernorm_bwd, layernorm_fwd, rmsnorm_bwd, rmsnorm_fwd

    rows = []
    for shape, name in CASES:
        C = shape[-1]
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(shape, device="cuda", dtype=dtype)
            dy = torch.randn_like(x)
            w = torch.randn(C, device="cuda", dtype=dtype)
            b = torch.randn(C, device="cuda", dtype=dtype)
            nb = x.numel() * x.element_size()

            # LayerNorm
            y, mean, rstd = layernorm_fwd(x, w, b, EPS)
            torch.testing.assert_close(y.float(), F.layer_norm(x, (C,), w, b, EPS).float(), atol=5e-2, rtol=5e-2)
            ref = torch.ops.aten.native_layer_norm_backward(dy, x, (C,), mean.view(-1, 1), rstd.view(-1, 1),
                                                            w, b, [True, True, True])
            dx, dw, db = layernorm_bwd(dy, x, w, mean, rstd)
            torch.testing.assert_close(dx.float(), ref[0].float(), atol=5e-2, rtol=5e-2)
            torch.testing.assert_close(dw.float(), ref[1].float(), atol=1.0, rtol=5e-2)
            m2, r2 = mean.view(-1, 1), rstd.view(-1, 1)
            rows.append(common.bandwidth_row("layernorm_fwd", name, dtype, common.time_ms(lambda: layernorm_fwd(x, w, b, EPS)),
                                             common.time_ms(lambda: F.layer_norm(x, (C,), w, b, EPS)), 2 * nb))
            rows.append(common.bandwidth_row("layernorm_bwd", name, dtype,
                                             common.time_ms(lambda: layernorm_bwd(dy, x, w, mean, rstd)),
                                             common.time_ms(lambda: torch.ops.aten.native_layer_norm_backward(
                                                 dy, x, (C,), m2, r2, w, b, [True, True, True])), 3 * nb))

            # RMSNorm (torch: F.rms_norm forward, its autograd graph for the backward)
            y, rstd = rmsnorm_fwd(x, w, EPS)
            xr = x.detach().requires_grad_(True)
            wr = w.detach().requires_grad_(True)
            yr = F.rms_norm(xr, (C,), wr, EPS)
            torch.testing.assert_close(y.float(), yr.float(), atol=5e-2, rtol=5e-2)
            gx, gw = torch.autograd.grad(yr, (xr, wr), dy, retain_graph=True)
            dx, dw = rmsnorm_bwd(dy, x, w, rstd)
            torch.testing.assert_close(dx.float(), gx.float(), atol=5e-2, rtol=5e-2)
            rows.append(common.bandwidth_row("rmsnorm_fwd", name, dtype, common.time_ms(lambda: rmsnorm_fwd(x, w, EPS)),
                                             common.time_ms(lambda: F.rms_norm(x, (C,), w, EPS)), 2 * nb))
            rows.append(common.bandwidth_row("rmsnorm_bwd", name, dtype, common.time_ms(lambda: rmsnorm_bwd(dy, x, w, rstd)),
                                             common.time_ms(lambda: torch.autograd.grad(yr, (xr, wr), dy, retain_graph=True)),
                                             3 * nb))
            for r in rows[-4:]:
                common.print_row(r)
    print("wrote", common.write_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
