"""Benchmark our matmul against torch.matmul (cuBLAS) at GPT-2-small training shapes: the rows time
kernels/matmul_auto.py's `matmul` (the performance layer's entry point: kernels/matmul.py's
kernels, the variant picked per shape by timing, launches replayed).

    python -m benchmarks.bench_matmul            (needs a CUDA GPU; exits 0 with a message without)

Cases (B*T = 8192 tokens, GPT-2 small, C = 768):
  forward   x @ W for qkv (768 -> 2304), fc (768 -> 3072), proj (3072 -> 768), lm head (768 -> 50304)
  backward  dX = dY @ W^T and dW = X^T @ dY of the qkv layer, as transposed *views* (no copies)
  fused     fc + bias + GELU(tanh) in our epilogue vs torch addmm + F.gelu
  square    4096^3
in bfloat16, plus float16 and float32 rows for a few. float32 runs on TF32 tensor cores on both
sides (torch.backends.cuda.matmul.allow_tf32 = True for those rows), so the comparison is fair.

Variants (kernels/matmul_persistent.py, kernels/matmul_splitk.py): for the four weight-gradient
shapes dW = X^T @ dY (768 x {768, 2304, 3072} and 3072 x 768, K = 8192) and two forward shapes,
each variant forced (classic, persistent, split-K at every candidate split count) and the
autotuner's own pick, each against cuBLAS; rows "variant <name> <case>". Every variant is first
checked against torch on a ragged transposed shape (`check_variants`, which also runs under the
interpreter: `TRITON_INTERPRET=1 python -m benchmarks.bench_matmul --check`).

Timing: median of CUDA-event-timed runs (benchmarks.common.time_ms); autotuning happens in an
untimed first call. TFLOP/s = 2*M*N*K / time. pct_of_peak is relative to the best cuBLAS
TFLOP/s measured in this same run for that dtype (square 4096 and 8192), not a datasheet number.
Rows go to benchmarks/results/kernels-<device>.json. Target on H100: bf16 >= 0.9x cuBLAS.
"""
from __future__ import annotations

import sys


def _cases():
    """(case name, M, K, N, layout, dtypes); layout: 'nn', 'tn' (a = X^T view), 'nt' (b = W^T view)."""
    import torch
    bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32
    return [
        ("gpt2 qkv 8192x768 @ 768x2304", 8192, 768, 2304, "nn", [bf16, fp16, fp32]),
        ("gpt2 fc 8192x768 @ 768x3072", 8192, 768, 3072, "nn", [bf16]),
        ("gpt2 proj 8192x3072 @ 3072x768", 8192, 3072, 768, "nn", [bf16]),
        ("gpt2 lm_head 8192x768 @ 768x50304", 8192, 768, 50304, "nn", [bf16]),
        ("gpt2 qkv dX 8192x2304 @ (768x2304)^T", 8192, 2304, 768, "nt", [bf16]),
        ("gpt2 qkv dW (8192x768)^T @ 8192x2304", 768, 8192, 2304, "tn", [bf16]),
        ("square 4096^3", 4096, 4096, 4096, "nn", [bf16, fp16, fp32]),
    ]


def _operands(M, K, N, layout, dtype):
    import torch
    if layout == "tn":      # a is the transpose of a stored (K, M) activation
        a = torch.randn(K, M, device="cuda", dtype=dtype).t()
    else:
        a = torch.randn(M, K, device="cuda", dtype=dtype)
    if layout == "nt":      # b is the transpose of a stored (N, K) weight
        b = torch.randn(N, K, device="cuda", dtype=dtype).t()
    else:
        b = torch.randn(K, N, device="cuda", dtype=dtype)
    return a, b


def _check_correct(matmul):
    import torch
    a, b = _operands(8192, 768, 2304, "nn", torch.bfloat16)
    got, want = matmul(a, b).float(), torch.matmul(a, b).float()
    err = (got - want).abs().max().item()
    if not torch.allclose(got, want, atol=0.25, rtol=2e-2):
        raise SystemExit(f"bench_matmul: WRONG RESULT on the first case (max abs err {err:.3g}); not timing")
    print(f"correctness ok on the first case (max abs err vs torch {err:.3g})")


def _variant_cases():
    """(case, M, K, N, layout): the weight gradients (a = X^T view) and two forward shapes."""
    return [
        ("dW attn.proj (8192x768)^T @ 8192x768", 768, 8192, 768, "tn"),
        ("dW qkv (8192x768)^T @ 8192x2304", 768, 8192, 2304, "tn"),
        ("dW fc (8192x768)^T @ 8192x3072", 768, 8192, 3072, "tn"),
        ("dW mlp.proj (8192x3072)^T @ 8192x768", 3072, 8192, 768, "tn"),
        ("fwd qkv 8192x768 @ (2304x768)^T", 8192, 768, 2304, "nt"),
        ("fwd fc 8192x768 @ (3072x768)^T", 8192, 768, 3072, "nt"),
    ]


def check_variants(device: str) -> None:
    """Every matmul variant against torch (float64 oracle) on a small ragged weight-gradient-style
    shape with bias + GELU; raises SystemExit on a wrong result. Runs on the GPU or the interpreter."""
    import torch
    from minigrad.kernels.matmul import matmul
    for dtype, tol in ((torch.float32, 2e-2), (torch.bfloat16, 6e-2)):
        a = torch.randn(100, 40, device=device).to(dtype).t()              # (40, 100): X^T
        b = torch.randn(100, 24, device=device).to(dtype)
        bias = torch.randn(24, device=device).to(dtype)
        want = torch.nn.functional.gelu(a.double() @ b.double() + bias.double(), approximate="tanh")
        for variant, split_k in (("classic", None), ("persistent", None), ("splitk", 3)):
            got = matmul(a, b, bias=bias, activation="gelu", variant=variant, split_k=split_k)
            err = ((got.double() - want).abs() / (1 + want.abs())).max().item()
            if err > tol:
                raise SystemExit(f"bench_matmul: variant {variant} WRONG ({dtype}, rel err {err:.3g})")
    print("variants ok: classic, persistent, splitk (float32, bfloat16)")


def _variant_rows(common, matmul, peak: float) -> list:
    import torch
    from minigrad.kernels import matmul_persistent, matmul_splitk
    dtype = torch.bfloat16
    programs = matmul_persistent.num_programs(torch.device("cuda"))
    rows = []
    for case, M, K_, N, layout in _variant_cases():
        a, b = _operands(M, K_, N, layout, dtype)
        base = common.time_ms(lambda: torch.matmul(a, b))
        runs = [("classic", None), ("persistent", None)]
        runs += [("splitk", s) for s in matmul_splitk.split_candidates(M, N, K_, programs)]
        runs.append((None, None))                                 # the autotuner's pick
        for variant, split_k in runs:
            fn = lambda: matmul(a, b, variant=variant, split_k=split_k)   # noqa: E731
            fn()                                                  # autotune outside the timing
            ours = common.time_ms(fn)
            tflops = 2 * M * N * K_ / (ours * 1e-3) / 1e12
            name = "auto" if variant is None else variant + (f" S={split_k}" if split_k else "")
            row = common.make_row("matmul", f"variant {name} {case}", dtype, ours, "cublas", base,
                                  tflops=tflops, pct_of_peak=100 * tflops / peak,
                                  peak=f"measured cuBLAS bfloat16 {peak:.1f} TFLOP/s")
            common.print_row(row)
            rows.append(row)
        del a, b
    return rows


def main() -> int:
    from benchmarks import common
    if "--check" in sys.argv[1:]:
        check_variants("cuda" if common.has_cuda() else "cpu")
        return 0
    if not common.require_cuda("bench_matmul"):
        return 0
    import torch
    import torch.nn.functional as F
    from minigrad.kernels import matmul as K
    from minigrad.kernels.matmul_auto import matmul

    K.AUTOTUNE = True
    torch.backends.cuda.matmul.allow_tf32 = True      # float32 rows: TF32 on both sides
    _check_correct(matmul)
    check_variants("cuda")
    peaks = {}
    rows = []
    print(f"device: {common.device_name()}")
    for case, M, K_, N, layout, dtypes in _cases():
        for dtype in dtypes:
            if dtype not in peaks:
                peaks[dtype] = common.cublas_peak_tflops(dtype)
                print(f"measured cuBLAS peak {common.dtype_name(dtype)}: {peaks[dtype]:.1f} TFLOP/s")
            a, b = _operands(M, K_, N, layout, dtype)
            matmul(a, b)                                     # autotune outside the timed region
            ours = common.time_ms(lambda: matmul(a, b))
            base = common.time_ms(lambda: torch.matmul(a, b))
            tflops = 2 * M * N * K_ / (ours * 1e-3) / 1e12
            peak = f"measured cuBLAS {common.dtype_name(dtype)} {peaks[dtype]:.1f} TFLOP/s"
            row = common.make_row("matmul", case, dtype, ours, "cublas", base, tflops=tflops,
                                  pct_of_peak=100 * tflops / peaks[dtype], peak=peak)
            common.print_row(row)
            rows.append(row)
            del a, b

    # Fused epilogue: our one kernel vs torch's addmm (bias fused in cuBLAS) + a GELU kernel.
    dtype = torch.bfloat16
    a, b = _operands(8192, 768, 3072, "nn", dtype)
    bias = torch.randn(3072, device="cuda", dtype=dtype)
    matmul(a, b, bias=bias, activation="gelu")
    ours = common.time_ms(lambda: matmul(a, b, bias=bias, activation="gelu"))
    base = common.time_ms(lambda: F.gelu(torch.addmm(bias, a, b), approximate="tanh"))
    tflops = 2 * 8192 * 768 * 3072 / (ours * 1e-3) / 1e12
    row = common.make_row("matmul", "gpt2 fc + bias + gelu_tanh fused 8192x768 @ 768x3072", dtype,
                          ours, "torch addmm+gelu", base, tflops=tflops,
                          pct_of_peak=100 * tflops / peaks[dtype],
                          peak=f"measured cuBLAS bfloat16 {peaks[dtype]:.1f} TFLOP/s")
    common.print_row(row)
    rows.append(row)
    rows += _variant_rows(common, matmul, peaks[dtype])
    print(f"wrote {len(rows)} rows to {common.write_rows(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
