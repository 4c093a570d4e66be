"""Benchmark kernels/embedding.py against torch eager (F.embedding and its dense backward).

Case: GPT-2-small token embedding, weight 50304x768, 8192 ids (batch 8 x 1024). GB/s counts
the minimum bytes: forward reads the 8192 gathered rows and writes them (2*n*C*elt);
backward reads dy (n*C*elt) and writes the dense dweight (V*C*elt, dy's dtype on both
sides; ours accumulates in a float32 buffer first, so it moves more than that minimum).
pct_of_peak is against a device-to-device copy measured in the run. Our backward uses float32 atomics (not bitwise deterministic with
repeated ids); torch's is deterministic (sort-based).

    python -m benchmarks.bench_embedding      (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

V, C, B, T = 50304, 768, 8, 1024


def main() -> int:
    if not common.require_cuda("bench_embedding"):
        return 0
    import torch
    import torch.nn.functional as F
    from minigrad.kernels.embedding import embedding_bwd, embedding_fwd

    rows = []
    case = f"{V}x{C} weight, {B * T} ids"
    idx = torch.randint(0, V, (B, T), device="cuda")
    n = idx.numel()
    for dtype in (torch.bfloat16, torch.float32):
        w = torch.randn(V, C, device="cuda", dtype=dtype)
        dy = torch.randn(B, T, C, device="cuda", dtype=dtype)
        assert torch.equal(embedding_fwd(w, idx), F.embedding(idx, w))
        ref = torch.ops.aten.embedding_dense_backward(dy.float(), idx, V, -1, False)
        torch.testing.assert_close(embedding_bwd(dy, idx, V, out_dtype=torch.float32), ref, atol=1e-4, rtol=1e-4)
        elt = w.element_size()
        rows.append(common.bandwidth_row("embedding_fwd", case, dtype, common.time_ms(lambda: embedding_fwd(w, idx)),
                                         common.time_ms(lambda: F.embedding(idx, w)), 2 * n * C * elt))
        # torch's dense backward returns dy's dtype; ours is asked for the same dtype here
        rows.append(common.bandwidth_row("embedding_bwd", case, dtype, common.time_ms(lambda: embedding_bwd(dy, idx, V)),
                                         common.time_ms(lambda: torch.ops.aten.embedding_dense_backward(dy, idx, V, -1, False)),
                                         n * C * elt + V * C * elt))
        for r in rows[-2:]:
            common.print_row(r)
    print("wrote", common.write_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
