"""Helpers that several kernel families share: no kernels of its own, no launch functions.

Every family file (copy.py, elementwise.py, softmax.py, matmul.py, ...) imports what it needs
from here, so a family file holds only its own kernels and launchers. What is here, and who uses it:

- `_cast_value` / `_to_bf16_rtne` (@triton.jit): the one way a kernel converts a value to the
  dtype it stores; bfloat16 rounds to nearest even on the GPU and in the interpreter alike.
  Every family stores through them (tests/test_bf16_rounding.py checks both).
- `_flat_index`, `_unravel`, `_offset` (@triton.jit) and `MAX_RANK`, `block_size`, `pad_sizes`,
  `pad_strides`, `needs_int64`, `check_rank`: the flat strided-index scheme of the copy,
  elementwise and dropout kernels (dims collapsed by copy.py's `collapse_dims`, padded to
  MAX_RANK, a BLOCK of flat indices per program unravelled into element offsets).
- `cdiv`, `next_power_of_2`: grid and block arithmetic on the host, for every launcher.
- `interpreting`: whether kernels run in Triton's CPU interpreter (tests, CI), read at launch.
- `launch_tuned`: an autotuned launch that pays for Triton's autotuner once per signature
  (matmul, its persistent and split-K variants, attention), or once per caller-given tuning key
  (attention buckets its sequence lengths), and remembers the pick across processes
  (`TuneCache`, a JSON file per GPU and Triton version).
- `autotune_enabled`, `fp32_dot_precision`: the two run-time switches every tuned family reads
  at launch: `MINIGRAD_AUTOTUNE=0` (each family's fixed config, no timing: a cold start compiles
  one variant per kernel) and `MINIGRAD_TF32=1` (float32 tl.dot through TF32 tensor cores instead
  of IEEE float32, the default).
- `check_tensor`, `check_float`, `acc_dtype`, `rows_view`, `FLOAT_DTYPES`, `TL_DTYPES`: input
  checks and dtype choices the row-wise families (softmax, layernorm, cross_entropy, embedding)
  and the others repeat.

Nothing here runs at import, and nothing here imports minigrad.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

MAX_RANK = 6              # dims of the flat strided-index scheme, after collapsing
GPU_BLOCK = 1024          # elements per program on the GPU (4 warps, 8 elements per thread)
INTERPRET_BLOCK = 128     # small so tests at small sizes cover multiple programs and tails
INT32_LIMIT = 2 ** 31 - 1

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16,
             torch.float64: tl.float64}


# ----------------------------------------------------------------------------- stores
@triton.jit
def _to_bf16_rtne(x):
    """float32 -> bfloat16, round to nearest even, done on the bits. Every bf16 store in kernels/
    goes through here (via `_cast_value`).

    The GPU's cvt instruction does this natively, but Triton's interpreter truncates; doing it
    by hand (a few integer ops, free in a memory-bound kernel) gives identical bits on both.
    Finite values round to nearest even and overflow to inf; inf stays inf; NaN stays a quiet
    NaN with its sign. tests/test_bf16_rounding.py mirrors these lines in NumPy: keep them in step.
    """
    bits = x.to(tl.uint32, bitcast=True)
    # Adding 0x7FFF plus the lowest kept bit carries into bit 16 exactly when the dropped half is
    # above one half, or equal to it with an odd kept part. For finite values and inf the sum
    # cannot pass 2**32 (-inf is 0xFF800000), so a carry into the exponent is a correct round to inf.
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    # A NaN must not take that path: 0x7FFFFFFF would carry past the sign bit into -0.0, and a NaN
    # whose payload sits only in the low 16 bits (0x7F800001) would truncate to inf. Keep its sign
    # and top payload bits and set the quiet bit (bit 22, bf16 bit 6) so the payload is never 0.
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    bits = tl.where(is_nan, bits | 0x00400000, rounded)
    return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def _cast_value(x, OUT_DTYPE: tl.constexpr):
    """Cast to OUT_DTYPE with numpy semantics: to bool means != 0; to 16-bit floats via fp32,
    rounding to nearest even."""
    if OUT_DTYPE == tl.int1:
        y = x != 0
    elif OUT_DTYPE == tl.bfloat16:
        if x.dtype == tl.bfloat16:
            y = x
        else:
            y = _to_bf16_rtne(x.to(tl.float32))
    elif (OUT_DTYPE == tl.float16) and (x.dtype != tl.float16):
        y = x.to(tl.float32).to(OUT_DTYPE)
    else:
        y = x.to(OUT_DTYPE)
    return y


# ----------------------------------------------------------------------------- flat strided indices
@triton.jit
def _flat_index(BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    """This program's BLOCK flat indices, in int64 when the tensors are too big for int32."""
    pid = tl.program_id(0)
    if INDEX64:
        pid = pid.to(tl.int64)
    return pid * BLOCK + tl.arange(0, BLOCK)


@triton.jit
def _unravel(idx, d1, d2, d3, d4, d5, RANK: tl.constexpr):
    """Split flat row-major indices over sizes (d0, d1, ..., d5) into per-dim indices.

    Only the RANK innermost dims are used (d0 is never needed: the outermost index is what is
    left after dividing by all inner sizes). Unused entries are returned unchanged (garbage)
    and must be ignored by the caller, which `_offset` does with the same RANK.
    """
    i0 = idx
    i1 = idx
    i2 = idx
    i3 = idx
    i4 = idx
    i5 = idx
    if RANK > 1:
        i4 = idx // d5
        i5 = idx % d5
    if RANK > 2:
        i3 = i4 // d4
        i4 = i4 % d4
    if RANK > 3:
        i2 = i3 // d3
        i3 = i3 % d3
    if RANK > 4:
        i1 = i2 // d2
        i2 = i2 % d2
    if RANK > 5:
        i0 = i1 // d1
        i1 = i1 % d1
    return i0, i1, i2, i3, i4, i5


@triton.jit
def _offset(i0, i1, i2, i3, i4, i5, s0, s1, s2, s3, s4, s5, RANK: tl.constexpr):
    """Element offsets = multi-index . strides over the RANK innermost dims."""
    off = i5 * s5
    if RANK > 1:
        off += i4 * s4
    if RANK > 2:
        off += i3 * s3
    if RANK > 3:
        off += i2 * s2
    if RANK > 4:
        off += i1 * s1
    if RANK > 5:
        off += i0 * s0
    return off


def block_size(dtype: torch.dtype | None = None) -> int:
    """Elements per program for the flat elementwise/copy kernels."""
    if interpreting():
        return INTERPRET_BLOCK
    if dtype is not None and dtype.itemsize <= 2:
        return 2 * GPU_BLOCK       # 16-byte vectors of 16-bit values
    return GPU_BLOCK


def pad_sizes(sizes: Sequence[int]) -> list[int]:
    """(d1..d5) kernel arguments for collapsed sizes (left-padded with 1s)."""
    padded = [1] * (MAX_RANK - len(sizes)) + list(sizes)
    return padded[1:]


def pad_strides(strides: Sequence[int]) -> list[int]:
    """(s0..s5) kernel arguments for collapsed strides (left-padded with 0s)."""
    return [0] * (MAX_RANK - len(strides)) + list(strides)


def needs_int64(sizes: Sequence[int], strides_list: Sequence[Sequence[int]]) -> bool:
    """True when a flat index or some operand offset may not fit in int32."""
    numel = 1
    for n in sizes:
        numel *= n
    if numel > INT32_LIMIT:
        return True
    for strides in strides_list:
        span = sum((n - 1) * abs(s) for n, s in zip(sizes, strides))
        if span > INT32_LIMIT:
            return True
    return False


def check_rank(sizes: Sequence[int], what: str) -> None:
    if len(sizes) > MAX_RANK:
        raise ValueError(f"{what}: at most {MAX_RANK} non-mergeable dims are supported after "
                         f"collapsing, got sizes {list(sizes)}; make the input contiguous first")


# ----------------------------------------------------------------------------- launch arithmetic
# Grid arithmetic runs on the host for every launch (hundreds per training step): plain integer
# code here costs ~0.05 us, triton.cdiv / triton.next_power_of_2 ~1.5 us (measured with
# benchmarks/bench_host_overhead.py, docs/perf-notes.md).
def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for positive b."""
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def interpreting() -> bool:
    """True when kernels run in the Triton CPU interpreter (decided at launch time)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def autotune_enabled() -> bool:
    """Whether tuned families may time their candidate configs: not in the interpreter, and not
    with MINIGRAD_AUTOTUNE=0 in the environment (read at every launch, so it can be set any time
    before the first one). Off, each family launches its fixed config (`_fixed_config` in
    kernels/matmul.py, `_fixed` in kernels/attention.py): the configs the tests and the GPU check
    run, and one compile per kernel variant instead of one per candidate config."""
    return os.environ.get("MINIGRAD_AUTOTUNE", "1") != "0" and not interpreting()


def fp32_dot_precision(allow_tf32: bool) -> str:
    """tl.dot's input_precision for float32 operands: "ieee" (the default: float32 products, what
    the NumPy specification computes) unless the family's ALLOW_TF32 flag or MINIGRAD_TF32=1 asks
    for "tf32" (10-bit mantissa products on tensor cores, ~8x the throughput, ~1e-3 relative error
    per product). Other dtypes ignore it."""
    return "tf32" if allow_tf32 or os.environ.get("MINIGRAD_TF32", "0") == "1" else "ieee"


class TuneCache:
    """Autotuning results kept across processes: {key: value} in one JSON file per device name and
    Triton version, in $MINIGRAD_AUTOTUNE_CACHE (a directory; default ~/.cache/minigrad/autotune;
    "off" disables it). A GPT-2 step autotunes ~20 matmul and attention signatures, seconds each:
    a second run on the same GPU reads them back instead. Keys name the kernel by its source hash
    (Triton's cache_key, which covers the helpers it calls) and its config list, so editing a
    kernel or its configs never reuses a stale pick. Written with a rename, so a reader never sees a
    half-written file; concurrent writers (data-parallel ranks) merge what they read first."""

    def __init__(self):
        self.entries: Optional[dict] = None
        self.path: Optional[str] = None

    def _file(self) -> Optional[str]:
        root = os.environ.get("MINIGRAD_AUTOTUNE_CACHE", "")
        if root.lower() in ("off", "0", "none"):
            return None
        root = root or os.path.join(os.path.expanduser("~"), ".cache", "minigrad", "autotune")
        device = self.device_name()
        if device is None:
            return None
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{device}-triton{triton.__version__}")
        return os.path.join(root, name + ".json")

    @staticmethod
    def device_name() -> Optional[str]:
        """The GPU's name (picks are per device model), None without one (no cache)."""
        try:
            return torch.cuda.get_device_properties(torch.cuda.current_device()).name
        except Exception:                      # noqa: BLE001 - no device to name: no cache
            return None

    def _load(self) -> dict:
        path = self._file()
        if path != self.path or self.entries is None:
            self.path, self.entries = path, {}
            if path is not None and os.path.exists(path):
                try:
                    with open(path) as f:
                        self.entries = json.load(f)
                except (OSError, ValueError):  # unreadable or torn: start afresh, never fail a launch
                    self.entries = {}
        return self.entries

    def get(self, key: str):
        return self._load().get(key)

    def put(self, key: str, value) -> None:
        entries = self._load()
        entries[key] = value
        if self.path is None:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            if os.path.exists(self.path):          # merge what other processes wrote meanwhile
                with open(self.path) as f:
                    entries.update({k: v for k, v in json.load(f).items() if k not in entries})
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=0, sort_keys=True)
            os.replace(tmp, self.path)
        except (OSError, ValueError):              # a read-only home: keep the in-memory pick
            pass


TUNE_CACHE = TuneCache()
TUNE_RUNS: dict = {}     # kernel name -> autotuner runs in this process (tests count them)
_TUNED: dict = {}        # (autotuned kernel, launch signature) -> the config its autotuner chose
_TUNER_IDS: dict = {}    # id(tuner) -> (tuner, "name:hash of source and configs") for TuneCache keys


def tuner_name(tuner) -> str:
    """The name of an autotuned kernel (its @triton.jit function's)."""
    fn = getattr(tuner, "base_fn", None)
    return getattr(fn, "__name__", None) or getattr(tuner, "__name__", type(tuner).__name__)


def _tuner_id(tuner) -> str:
    """"name:digest" of an autotuned kernel for TuneCache keys: the digest covers Triton's
    cache_key of the JIT function (its source and the helpers it calls) and the config list."""
    hit = _TUNER_IDS.get(id(tuner))
    if hit is None or hit[0] is not tuner:
        fn = tuner
        while not hasattr(fn, "cache_key") and hasattr(fn, "fn"):     # Autotuner -> Heuristics -> JIT
            fn = fn.fn
        source = str(getattr(fn, "cache_key", None) or getattr(fn, "src", "") or tuner_name(tuner))
        configs = repr([str(c) for c in getattr(tuner, "configs", [])])
        digest = hashlib.sha256((source + configs).encode()).hexdigest()[:16]
        hit = _TUNER_IDS[id(tuner)] = (tuner, f"{tuner_name(tuner)}:{digest}")
    return hit[1]


def launch_tuned(tuner, kernel, grid, args: tuple, meta: dict, derived=None,
                 per_call: Optional[dict] = None, tune_key: Optional[tuple] = None) -> Optional[dict]:
    """kernel[grid](*args, **meta) with the block sizes `tuner` (its triton.autotune wrapper)
    picks, paying for the autotuner only once per distinct launch.

    Triton's Autotuner.run (plus a Heuristics wrapper) costs ~20 us of host time per call even
    when its cache hits, and an eager training step launches a matmul ~100 times. So the first
    launch of each signature goes through the autotuner (which benchmarks every config), its
    `best_config` is remembered here, and later launches call the plain kernel with it.
    The signature (every int argument, every tensor's dtype, the meta-parameters) contains the
    autotuner's own key, so a remembered config is only reused where the autotuner would have
    reused it. `tune_key`, when given, replaces the int arguments in the signature: the caller
    says which sizes matter (attention buckets T and S to powers of two, so a KV cache growing
    by one token per step does not re-tune at every length). `derived(config) -> dict` supplies
    constexprs a heuristics wrapper would compute. `per_call` holds keyword arguments that change
    on every call and cannot change the best config (a dropout seed): passed to the kernel, kept
    out of the signature, so they neither re-run the autotuner nor grow the table.
    The pick is also kept in TUNE_CACHE, so a later process on the same GPU launches it directly.
    Returns the block-size keyword arguments of a direct launch (cfg plus `derived`'s), which a
    caller may keep to launch the plain kernel itself next time; None when the autotuner ran.
    """
    per_call = per_call or {}
    sizes = tune_key if tune_key is not None else tuple(a for a in args if isinstance(a, int))
    key = (id(tuner), sizes, tuple(a.dtype for a in args if isinstance(a, torch.Tensor)),
           tuple(meta.items()))
    cfg = _TUNED.get(key)
    if cfg is None:
        disk_key = repr((_tuner_id(tuner),) + tuple(str(k) for k in key[1:]))
        cfg = TUNE_CACHE.get(disk_key)
        if cfg is None:
            tuner[grid](*args, **per_call, **meta)
            best = tuner.best_config
            name = tuner_name(tuner)
            TUNE_RUNS[name] = TUNE_RUNS.get(name, 0) + 1
            _TUNED[key] = dict(best.kwargs, num_warps=best.num_warps, num_stages=best.num_stages)
            TUNE_CACHE.put(disk_key, _TUNED[key])
            return None
        _TUNED[key] = cfg
    extra = dict(derived(cfg), **cfg) if derived else cfg
    kernel[grid](*args, **per_call, **meta, **extra)
    return extra


# ----------------------------------------------------------------------------- input checks
def check_tensor(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")


def check_float(x: torch.Tensor, name: str) -> None:
    """TypeError unless x is a torch tensor of a supported floating dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32/float16/bfloat16/float64, got {x.dtype}")


def acc_dtype(dtype: torch.dtype):
    """The accumulation dtype for an input dtype: float64 stays float64, the rest use float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def rows_view(x: torch.Tensor, name: str = "x") -> tuple[int, int, int, int]:
    """Describe x (..., C) as N rows of C columns: returns (N, C, row_stride, col_stride).

    The leading dims must collapse into a single row stride (true for contiguous tensors,
    for slices along the last dim and for most views); the last dim may have any stride.
    Otherwise raises ValueError: make the input contiguous first (the backend does that
    with its own copy kernel).
    """
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least 1 dimension (..., C), got a 0-d tensor")
    n_cols = x.shape[-1]
    n_rows = 1
    for size in x.shape[:-1]:
        n_rows *= size
    lead = [(size, stride) for size, stride in zip(x.shape[:-1], x.stride()[:-1]) if size != 1]
    for (_, outer_stride), (inner_size, inner_stride) in zip(lead, lead[1:]):
        if outer_stride != inner_stride * inner_size:
            raise ValueError(
                f"{name} of shape {tuple(x.shape)} and strides {tuple(x.stride())}: the leading "
                f"dims do not collapse into one row stride; pass a contiguous tensor")
    row_stride = lead[-1][1] if lead else n_cols
    return n_rows, n_cols, row_stride, x.stride(-1)
