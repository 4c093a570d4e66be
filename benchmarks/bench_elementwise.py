"""Benchmark kernels/elementwise.py (and copy.py, reduce.py, dropout.py) against torch eager.

Cases on a (8192, 3072) tensor (GPT-2-small MLP activations for 8 x 1024 tokens), bf16 and fp32:
add, mul, GELU (tanh) forward and backward, a bias add through a stride-0 expanded view, a
transposed copy (contiguous()), a bf16 -> fp32 cast, a column sum (bias gradient) and dropout.
GB/s counts the bytes each kernel must move (inputs read + outputs written), and pct_of_peak
compares them with a large device-to-device copy measured in the same run.

    python -m benchmarks.bench_elementwise        (needs a CUDA GPU; exits 0 without one)
"""
from __future__ import annotations

import sys

from benchmarks import common

SHAPE = (8192, 3072)


def _check(name, ours, ref, x):
    """Compare before timing; sums get an absolute slack for their different addition order."""
    import torch
    if name == "dropout_fwd":
        y, mask = ours
        assert abs(mask.float().mean().item() - 0.9) < 1e-3, "dropout keep rate"
        torch.testing.assert_close(y.float(), x.float() * mask / 0.9, rtol=2e-2, atol=2e-2)
        return
    rtol = 2e-2 if x.dtype == torch.bfloat16 else 1e-5
    atol = 1.0 if name.startswith("sum") else rtol
    torch.testing.assert_close(ours.float(), ref.float(), rtol=rtol, atol=atol, msg=f"{name} mismatch")


def main() -> int:
    if not common.require_cuda("bench_elementwise"):
        return 0
    import torch
    import torch.nn.functional as F

    from minigrad.kernels import copy as kcopy
    from minigrad.kernels import dropout as kdrop
    from minigrad.kernels import elementwise as ew
    from minigrad.kernels import reduce as kred

    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(SHAPE, device="cuda", dtype=dtype)
        y = torch.randn(SHAPE, device="cuda", dtype=dtype)
        dy = torch.randn(SHAPE, device="cuda", dtype=dtype)
        bias = torch.randn(SHAPE[1], device="cuda", dtype=dtype)
        be = bias.expand(SHAPE)
        es = x.element_size()
        n = x.numel()

        def gelu_bwd_torch(dy=dy, x=x):
            # torch's fused GELU backward kernel (what autograd runs)
            return torch.ops.aten.gelu_backward(dy, x, approximate="tanh")

        cases = [
            # name, ours, torch, bytes moved
            ("add", lambda: ew.binary("add", x, y), lambda: x + y, 3 * n * es),
            ("mul", lambda: ew.binary("mul", x, y), lambda: x * y, 3 * n * es),
            ("add_scalar", lambda: ew.binary("mul", x, 0.5), lambda: x * 0.5, 2 * n * es),
            ("bias_add_expanded", lambda: ew.binary("add", x, be), lambda: x + be, 2 * n * es),
            ("gelu_tanh_fwd", lambda: ew.gelu_fwd(x, "tanh"), lambda: F.gelu(x, approximate="tanh"),
             2 * n * es),
            ("gelu_tanh_bwd", lambda: ew.gelu_bwd(dy, x, "tanh"), gelu_bwd_torch, 3 * n * es),
            ("gelu_erf_fwd", lambda: ew.gelu_fwd(x, "none"), lambda: F.gelu(x), 2 * n * es),
            ("copy_transposed", lambda: kcopy.copy(x.t()), lambda: x.t().contiguous(), 2 * n * es),
            ("sum_dim0", lambda: kred.reduce_sum(x, [0]), lambda: x.sum(0), n * es),
            ("sum_dim1", lambda: kred.reduce_sum(x, [1]), lambda: x.sum(1), n * es),
            ("dropout_fwd", lambda: kdrop.dropout_fwd(x, 0.1, 1234),
             lambda: torch.nn.functional.dropout(x, 0.1, True), n * (2 * es + 1)),
        ]
        if dtype == torch.bfloat16:
            cases.append(("cast_to_fp32", lambda: ew.cast(x, torch.float32), lambda: x.float(),
                          n * (es + 4)))
        for name, ours_fn, base_fn, nbytes in cases:
            _check(name, ours_fn(), base_fn(), x)          # correctness before timing
            ours_ms = common.time_ms(ours_fn)
            base_ms = common.time_ms(base_fn)
            row = common.bandwidth_row(name, f"{SHAPE[0]}x{SHAPE[1]}", dtype, ours_ms, base_ms, nbytes)
            common.print_row(row)
            rows.append(row)
    path = common.write_rows(rows)
    print(f"wrote {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
