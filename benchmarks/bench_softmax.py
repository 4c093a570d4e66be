"""Benchmark kernels/softmax.py against torch eager (softmax / log_softmax, forward and backward).

Cases: GPT-2-small attention probabilities (8*12*1024 rows of 1024: batch 8, 12 heads, T=1024)
and a 64K-column case that takes the multi-block (online) path. GB/s counts the bytes each
pass must move (forward: read x + write y; backward: read dy, y + write dx) and pct_of_peak
compares them with a device-to-device copy measured in the same run.

    python -m benchmarks.bench_softmax        (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

CASES = [((8 * 12 * 1024, 1024), "attn probs 98304x1024"), ((4096, 65536), "long rows 4096x65536")]


def main() -> int:
    if not common.require_cuda("bench_softmax"):
        return 0
    import torch
    from minigrad.kernels.softmax import log_softmax_bwd, log_softmax_fwd, softmax_bwd, softmax_fwd

    rows = []
    for (shape, name) in CASES:
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(shape, device="cuda", dtype=dtype) * 3
            dy = torch.randn_like(x)
            nb = x.numel() * x.element_size()
            for log in (False, True):
                fwd, bwd = (log_softmax_fwd, log_softmax_bwd) if log else (softmax_fwd, softmax_bwd)
                tfwd = torch.log_softmax if log else torch.softmax
                tbwd = torch._log_softmax_backward_data if log else torch._softmax_backward_data
                label = "log_softmax" if log else "softmax"
                y = fwd(x)
                y_ref = tfwd(x, -1)
                torch.testing.assert_close(y.float(), y_ref.float(), atol=2e-2, rtol=2e-2)
                dx_ref = tbwd(dy, y_ref, -1, dtype)
                torch.testing.assert_close(bwd(dy, y_ref).float(), dx_ref.float(), atol=5e-2, rtol=5e-2)
                rows.append(common.bandwidth_row(f"{label}_fwd", name, dtype, common.time_ms(lambda: fwd(x)),
                                                 common.time_ms(lambda: tfwd(x, -1)), 2 * nb))
                rows.append(common.bandwidth_row(f"{label}_bwd", name, dtype, common.time_ms(lambda: bwd(dy, y_ref)),
                                                 common.time_ms(lambda: tbwd(dy, y_ref, -1, dtype)), 3 * nb))
                for r in rows[-2:]:
                    common.print_row(r)
            del x, dy, y, y_ref, dx_ref
            torch.cuda.empty_cache()
    print("wrote", common.write_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
