"""Benchmark kernels/attention.py against torch SDPA with the FlashAttention backend forced.

    python -m benchmarks.bench_attention         (needs a CUDA GPU; exits 0 with a message without)

Cases: causal, bfloat16 (and one float16 and one non-causal row)
  GPT-2 small  B=8 and B=16, H=12, T=1024, D=64
  long         B=4, H=32, T=4096, D=128
Baseline: torch.nn.functional.scaled_dot_product_attention inside
`torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)` (FlashAttention-2 kernels in torch).

Forward: ours = attention_fwd (returns o and lse); torch = SDPA forward without grad.
Backward: timed **alone** on both sides, with the forward done once outside the timing:
ours = attention_bwd (dq-and-delta + dk/dv kernels); torch = torch.autograd.grad of the flash
SDPA output with retain_graph (flash backward kernel; no .grad accumulation).

FLOPs: forward 4*B*H*T*S*D (two matmuls), halved for causal; backward 2.5x forward (five
matmuls, counting the recomputed q @ k^T), the FlashAttention papers' convention. pct_of_peak is
relative to the best cuBLAS bf16 matmul TFLOP/s measured in this same run.
Targets on H100: forward >= 1.0x, backward >= 0.8x torch flash.
"""
from __future__ import annotations

import math
import sys


CASES = [   # (B, H, T, D, causal, dtype name)
    (8, 12, 1024, 64, True, "bfloat16"),
    (16, 12, 1024, 64, True, "bfloat16"),
    (16, 12, 1024, 64, False, "bfloat16"),
    (16, 12, 1024, 64, True, "float16"),
    (4, 32, 4096, 128, True, "bfloat16"),
]


def _inputs(B, H, T, D, dtype):
    import torch
    # q, k, v as (B, H, T, D) views of a packed (B, T, 3, H, D) buffer, as in a GPT
    qkv = torch.randn(B, T, 3, H, D, device="cuda", dtype=dtype)
    q, k, v = (qkv[:, :, i].permute(0, 2, 1, 3) for i in range(3))
    do = torch.randn(B, H, T, D, device="cuda", dtype=dtype)
    return q, k, v, do


def main() -> int:
    from benchmarks import common
    if not common.require_cuda("bench_attention"):
        return 0
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from minigrad.kernels import attention as A

    A.AUTOTUNE = True
    peak = common.cublas_peak_tflops(torch.bfloat16)
    peak_note = f"measured cuBLAS bfloat16 {peak:.1f} TFLOP/s"
    print(f"device: {common.device_name()}; {peak_note}")
    rows = []
    for idx, (B, H, T, D, causal, dname) in enumerate(CASES):
        dtype = getattr(torch, dname)
        scale = 1.0 / math.sqrt(D)
        q, k, v, do = _inputs(B, H, T, D, dtype)
        qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            ref_o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal, scale=scale)
        o, lse = A.attention_fwd(q, k, v, causal, scale)                 # autotunes (untimed)
        dq, dk, dv = A.attention_bwd(do, q, k, v, o, lse, causal, scale)
        if idx == 0:                                                     # correctness first
            ref_grads = torch.autograd.grad(ref_o, (qg, kg, vg), do, retain_graph=True)
            errs = [(a.float() - b.float()).abs().max().item()
                    for a, b in zip((o, dq, dk, dv), (ref_o, *ref_grads))]
            if not all(e < 0.1 for e in errs):
                raise SystemExit(f"bench_attention: WRONG RESULT (max abs err o/dq/dk/dv {errs}); not timing")
            print(f"correctness ok on the first case (max abs err o/dq/dk/dv {[f'{e:.3g}' for e in errs]})")

        fwd_flops = 4 * B * H * T * T * D * (0.5 if causal else 1.0)
        case = f"B{B} H{H} T{T} D{D} {'causal' if causal else 'full'}"
        ours_f = common.time_ms(lambda: A.attention_fwd(q, k, v, causal, scale))
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.no_grad():   # entered once, untimed
            base_f = common.time_ms(
                lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale))
        ours_b = common.time_ms(lambda: A.attention_bwd(do, q, k, v, o, lse, causal, scale))
        base_b = common.time_ms(lambda: torch.autograd.grad(ref_o, (qg, kg, vg), do, retain_graph=True))
        for bench, ours, base, flops in (("attention_fwd", ours_f, base_f, fwd_flops),
                                         ("attention_bwd", ours_b, base_b, 2.5 * fwd_flops)):
            tflops = flops / (ours * 1e-3) / 1e12
            row = common.make_row(bench, case, dtype, ours, "torch sdpa flash", base, tflops=tflops,
                                  pct_of_peak=100 * tflops / peak, peak=peak_note,
                                  timing="bwd alone (fwd outside timing)" if bench.endswith("bwd") else "fwd")
            common.print_row(row)
            rows.append(row)
        del q, k, v, do, qg, kg, vg, ref_o, o, lse, dq, dk, dv
        torch.cuda.empty_cache()
    print(f"wrote {len(rows)} rows to {common.write_rows(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
