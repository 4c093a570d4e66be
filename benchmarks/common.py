"""Shared helpers for every benchmark script: timing, ceilings, provenance, result rows.

Each `benchmarks/bench_<family>.py` does the same five things; this module holds them once:

1. **Refuse politely without a GPU.** `require_cuda("bench_x")` prints why and returns False;
   the script then exits 0 (CI imports the scripts but has no GPU).
2. **Time on the device.** `time_ms(fn)` is the median of many CUDA-event-timed runs after a
   warm-up (`triton.testing.do_bench(..., return_mode="median")`, which also flushes L2 between
   runs). Use it for ours and the baseline alike, in the same process.
3. **Measure the ceiling in the same run** (a figure that was not measured is never written):
   - `copy_bandwidth_gbps()`: a large device-to-device copy (read + write bytes / time), the
     practical memory-bandwidth ceiling for bandwidth-bound kernels (softmax, layernorm, ...).
   - `cublas_peak_tflops(dtype)`: the best torch.matmul (cuBLAS) TFLOP/s over a few large square
     sizes, the practical compute ceiling for matmul-like kernels. Both are cached per process.
4. **Say where the numbers come from.** `device_name()`, `device_slug()`, `versions()`,
   `git_sha()`, `today()`.
5. **Write machine-readable rows.** `make_row(...)` builds one row with the schema of
   docs/DESIGN.md (benchmark, case, dtype, device, ours_ms, baseline, baseline_ms, ratio,
   tflops/gbps, pct_of_peak, versions, git_sha, date), and `bandwidth_row(...)` one for a
   bandwidth-bound kernel (GB/s and % of the measured copy bandwidth); `write_rows(rows)` merges them into
   `benchmarks/results/<name>-<device-slug>.json` (default name "kernels"), replacing rows with
   the same (benchmark, case, dtype) and keeping the others, so scripts can run in any order.

Typical script:

    from benchmarks import common
    def main():
        if not common.require_cuda("bench_softmax"):
            return 0
        ours = common.time_ms(lambda: softmax_fwd(x))
        base = common.time_ms(lambda: torch.softmax(x, -1))
        gbps = 2 * x.numel() * x.element_size() / (ours * 1e-3) / 1e9
        row = common.make_row("softmax_fwd", "4096x50304", x.dtype, ours, "torch", base,
                              gbps=gbps, pct_of_peak=100 * gbps / common.copy_bandwidth_gbps())
        common.print_row(row); common.write_rows([row])

This module imports torch and triton lazily inside functions, so importing it never fails and
never touches a GPU. It does no work at import.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
from typing import Any, Callable, Iterable, Optional

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_cache: dict[str, Any] = {}


# ---------------------------------------------------------------------------- environment
def has_cuda() -> bool:
    """True when torch sees a CUDA device (False when torch itself is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def require_cuda(script: str) -> bool:
    """Print a clear message and return False when no CUDA GPU is present (caller exits 0)."""
    if has_cuda():
        return True
    print(f"{script}: no CUDA GPU available; this benchmark needs one. Nothing was measured.")
    return False


def device_name() -> str:
    """The GPU's marketing name, e.g. 'NVIDIA H100 80GB HBM3' (or 'cpu')."""
    if not has_cuda():
        return "cpu"
    import torch
    return torch.cuda.get_device_name(0)


def device_slug(name: Optional[str] = None) -> str:
    """File-name-safe device name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    name = device_name() if name is None else name
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def versions() -> dict[str, str]:
    """Versions that decide performance: python, torch, triton, CUDA runtime, driver."""
    out = {"python": platform.python_version()}
    try:
        import torch
        out["torch"] = torch.__version__
        out["cuda"] = str(torch.version.cuda)
    except ImportError:
        pass
    try:
        import triton
        out["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if drv.returncode == 0 and drv.stdout.strip():
            out["driver"] = drv.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def git_sha() -> str:
    """Short sha of HEAD (with '-dirty' when the tree has changes), or 'unknown'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def today() -> str:
    """UTC date-time of the run, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------- timing
def time_ms(fn: Callable[[], Any], warmup_ms: int = 25, rep_ms: int = 200) -> float:
    """Median milliseconds of fn() over many CUDA-event-timed runs after warm-up.

    Uses triton.testing.do_bench, which clears L2 between runs so each run starts cold (the
    honest setting for kernels that stream big tensors). `fn` must not sync the host itself.
    """
    import triton.testing
    return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


def copy_bandwidth_gbps(nbytes: int = 1 << 30) -> float:
    """Measured device-to-device copy bandwidth in GB/s (read + write bytes / time).

    A plain large copy is the best a bandwidth-bound kernel can hope for on this device, so
    "% of peak" for such kernels is relative to this figure. Cached per process.
    """
    key = f"copy_gbps_{nbytes}"
    if key not in _cache:
        import torch
        src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
        dst = torch.empty_like(src)
        ms = time_ms(lambda: dst.copy_(src))
        _cache[key] = 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9
        del src, dst
    return _cache[key]


def cublas_peak_tflops(dtype: Any = None, sizes: Iterable[int] = (4096, 8192)) -> float:
    """Best measured torch.matmul (cuBLAS) TFLOP/s over large square sizes; bfloat16 default.

    This is the practical compute ceiling on this device for this dtype, measured in this run
    (not the datasheet figure). Cached per (dtype, sizes).
    """
    import torch
    dtype = torch.bfloat16 if dtype is None else dtype
    key = f"cublas_{dtype}_{tuple(sizes)}"
    if key not in _cache:
        best = 0.0
        for n in sizes:
            a = torch.randn(n, n, device="cuda", dtype=dtype)
            b = torch.randn(n, n, device="cuda", dtype=dtype)
            ms = time_ms(lambda: torch.matmul(a, b))
            best = max(best, 2 * n ** 3 / (ms * 1e-3) / 1e12)
            del a, b
        _cache[key] = best
    return _cache[key]


# ---------------------------------------------------------------------------- result rows
def dtype_name(dtype: Any) -> str:
    """'torch.bfloat16' -> 'bfloat16'; strings pass through."""
    return str(dtype).replace("torch.", "")


def round_sig(x: float, digits: int = 4) -> float:
    """x rounded to `digits` significant digits.

    Ratios and rates span orders of magnitude (tokens/s is ~50 for the tiny CPU benchmark on a
    busy machine and ~1e6 on a GPU; a ratio can be 0.04 or 12): rounding them to a fixed number
    of decimals left small values with few significant digits. That was the flakiness of
    tests/test_bench_train.py under load: tokens/s rounded to 0.1 is off by up to 1e-3
    relative once a slowed step brings it under ~50 tokens/s.
    """
    return float(f"{x:.{digits}g}")


def make_row(benchmark: str, case: str, dtype: Any, ours_ms: float, baseline: str,
             baseline_ms: Optional[float], *, tflops: Optional[float] = None,
             gbps: Optional[float] = None, pct_of_peak: Optional[float] = None,
             peak: Optional[str] = None, **extra: Any) -> dict[str, Any]:
    """One result row in the schema of docs/DESIGN.md.

    ratio = baseline_ms / ours_ms (above 1: we are faster). `peak` says what pct_of_peak is
    relative to (e.g. "measured cuBLAS bf16 761.2 TFLOP/s"). Extra keyword fields are kept.
    """
    row: dict[str, Any] = {
        "benchmark": benchmark, "case": case, "dtype": dtype_name(dtype),
        "device": device_name(), "ours_ms": round(ours_ms, 5), "baseline": baseline,
        "baseline_ms": None if baseline_ms is None else round(baseline_ms, 5),
        "ratio": None if not baseline_ms else round_sig(baseline_ms / ours_ms),
    }
    if tflops is not None:
        row["tflops"] = round(tflops, 2)
    if gbps is not None:
        row["gbps"] = round(gbps, 1)
    if pct_of_peak is not None:
        row["pct_of_peak"] = round(pct_of_peak, 1)
    if peak is not None:
        row["peak"] = peak
    row.update(extra)
    row.update({"versions": versions_cached(), "git_sha": git_sha_cached(), "date": today()})
    return row


def bandwidth_row(benchmark: str, case: str, dtype: Any, ours_ms: float, baseline_ms: Optional[float],
                  nbytes: int, *, baseline: str = "torch", **extra: Any) -> dict[str, Any]:
    """A make_row for a bandwidth-bound kernel: GB/s from `nbytes` (the bytes the pass must move
    at the least) over ours_ms, and pct_of_peak against copy_bandwidth_gbps() measured in this run."""
    gbps = nbytes / (ours_ms * 1e-3) / 1e9
    peak = copy_bandwidth_gbps()
    return make_row(benchmark, case, dtype, ours_ms, baseline, baseline_ms, gbps=gbps,
                    pct_of_peak=100 * gbps / peak,
                    peak=f"measured device-to-device copy {peak:.0f} GB/s", **extra)


def versions_cached() -> dict[str, str]:
    if "versions" not in _cache:
        _cache["versions"] = versions()
    return _cache["versions"]


def git_sha_cached() -> str:
    if "git_sha" not in _cache:
        _cache["git_sha"] = git_sha()
    return _cache["git_sha"]


def print_row(row: dict[str, Any]) -> None:
    """One human-readable line per row (the JSON file is the record)."""
    perf = (f"{row['tflops']:8.1f} TFLOP/s" if "tflops" in row
            else f"{row['gbps']:8.1f} GB/s" if "gbps" in row else "")
    pct = f" {row['pct_of_peak']:5.1f}% of peak" if "pct_of_peak" in row else ""
    base = (f"{row['baseline']} {row['baseline_ms']:.4f} ms  ratio {row['ratio']:.3f}"
            if row.get("baseline_ms") else "")
    print(f"{row['benchmark']:<18} {row['case']:<40} {row['dtype']:<9} ours {row['ours_ms']:.4f} ms  "
          f"{base}  {perf}{pct}", flush=True)


def results_path(name: str = "kernels", device: Optional[str] = None) -> str:
    """benchmarks/results/<name>-<device-slug>.json"""
    return os.path.join(RESULTS_DIR, f"{name}-{device_slug(device)}.json")


def write_rows(rows: list[dict[str, Any]], name: str = "kernels") -> str:
    """Merge rows into benchmarks/results/<name>-<device-slug>.json and return the path.

    A row replaces an existing one with the same (benchmark, case, dtype); all others are kept.
    The file is a JSON list sorted by (benchmark, case, dtype) so diffs stay readable.
    """
    if not rows:
        return ""
    path = results_path(name, rows[0].get("device"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    existing: list[dict[str, Any]] = []
    if os.path.exists(path):
        with open(path) as f:
            try:
                existing = json.load(f)
            except json.JSONDecodeError:
                print(f"warning: {path} was not valid JSON; starting it afresh", file=sys.stderr)
    key = lambda r: (r.get("benchmark"), r.get("case"), r.get("dtype"))  # noqa: E731
    merged = {key(r): r for r in existing}
    merged.update({key(r): r for r in rows})
    out = sorted(merged.values(), key=lambda r: tuple(str(x) for x in key(r)))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path
