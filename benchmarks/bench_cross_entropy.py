"""Benchmark kernels/cross_entropy.py against torch eager F.cross_entropy (reduction='none').

Case: GPT-2-small language-model head, 8192 tokens x 50304 classes (the padded vocabulary),
1% of targets ignored. Rows: forward, backward (from saved lse), and forward+backward
(ours: the two launches, and the fused single-launch `cross_entropy_fwd_bwd`; torch:
forward + autograd backward). GB/s counts the minimum bytes: forward reads the logits once
(N*V*elt), backward reads them and writes dlogits (2*N*V*elt), forward+backward needs the
same 2*N*V*elt at best; pct_of_peak is against a device-to-device copy measured in the run.

    python -m benchmarks.bench_cross_entropy  (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

N, V, IGNORE = 8192, 50304, -100


def main() -> int:
    if not common.require_cuda("bench_cross_entropy"):
        return 0
    import torch
    import torch.nn.functional as F
    from minigrad.kernels.cross_entropy import cross_entropy_bwd, cross_entropy_fwd, cross_entropy_fwd_bwd

    rows = []
    case = f"{N}x{V}"
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(N, V, device="cuda", dtype=dtype) * 2
        t = torch.randint(0, V, (N,), device="cuda")
        t[::100] = IGNORE
        dl = torch.full((N,), 1.0 / N, device="cuda")
        nb = x.numel() * x.element_size()

        losses, lse = cross_entropy_fwd(x, t, IGNORE)
        xr = x.detach().requires_grad_(True)
        ref = F.cross_entropy(xr.float(), t, ignore_index=IGNORE, reduction="none")
        torch.testing.assert_close(losses, ref.detach(), atol=1e-3, rtol=1e-3)
        (gref,) = torch.autograd.grad(ref, xr, dl)
        dx = cross_entropy_bwd(dl, x, t, lse, IGNORE)
        torch.testing.assert_close(dx.float(), gref.float(), atol=1e-5, rtol=2e-2)
        _, _, dx2 = cross_entropy_fwd_bwd(x, t, IGNORE, 1.0 / N)
        torch.testing.assert_close(dx2.float(), gref.float(), atol=1e-5, rtol=2e-2)
        del xr, ref, gref, dx, dx2

        xr = x.detach().requires_grad_(True)
        yr = F.cross_entropy(xr, t, ignore_index=IGNORE, reduction="none")

        def torch_fwd_bwd():
            xx = x.detach().requires_grad_(True)
            loss = F.cross_entropy(xx, t, ignore_index=IGNORE, reduction="none")
            return torch.autograd.grad(loss, xx, dl)

        def ours_fwd_bwd():
            _, l = cross_entropy_fwd(x, t, IGNORE)
            return cross_entropy_bwd(dl, x, t, l, IGNORE)

        base_fb = common.time_ms(torch_fwd_bwd)
        rows.append(common.bandwidth_row("cross_entropy_fwd", case, dtype, common.time_ms(lambda: cross_entropy_fwd(x, t, IGNORE)),
                                         common.time_ms(lambda: F.cross_entropy(x, t, ignore_index=IGNORE, reduction="none")), nb))
        rows.append(common.bandwidth_row("cross_entropy_bwd", case, dtype,
                                         common.time_ms(lambda: cross_entropy_bwd(dl, x, t, lse, IGNORE)),
                                         common.time_ms(lambda: torch.autograd.grad(yr, xr, dl, retain_graph=True)), 2 * nb))
        rows.append(common.bandwidth_row("cross_entropy_fwd+bwd", case, dtype, common.time_ms(ours_fwd_bwd), base_fb, 2 * nb))
        rows.append(common.bandwidth_row("cross_entropy_fused", case + " fwd_bwd one launch", dtype,
                                         common.time_ms(lambda: cross_entropy_fwd_bwd(x, t, IGNORE, 1.0 / N)), base_fb, 2 * nb))
        for r in rows[-4:]:
            common.print_row(r)
        del x, xr, yr
        torch.cuda.empty_cache()
    print("wrote", common.write_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
