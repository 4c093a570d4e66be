"""The performance layer's matmul: kernels/matmul.py's check -> allocate -> launch, plus two things
that exist only for speed.

    matmul(a, b, bias=None, activation=None, out=None, *, pre_out=None, act_grad_at=None,
           rowsum=None, variant=None, split_k=None)   computes what kernels.matmul.matmul computes

Why a second entry point:
- Host cost per call. The plain wrapper checks shapes, dtypes and devices, collapses batch dims
  into 4-d views and builds the epilogue's meta-parameters on every call: ~57 us of host time
  per call on the stub GPU (benchmarks/bench_host_overhead.py), ~150 calls per GPT-2 training
  step, which repeats the same few signatures. Here a 2-d call whose signature (shapes, strides,
  dtypes, devices, epilogue, alignment, module switches) was seen before skips all of that and
  repeats the launch it led to (kernels/matmul_plan.py): ~20 us per call. The measured numbers
  are in docs/perf-notes.md section 7 (change 11.2j).
- Variant choice per shape. Which of classic, persistent and split-K is fastest depends on the
  shape (docs/perf-notes.md section 8). With `variant=None` (the default) and autotuning on (a GPU,
  kernels.matmul.AUTOTUNE), the first launch of each shape key times every variant (and a few
  split counts) and remembers the fastest (`_pick_variant`); under the interpreter or with
  AUTOTUNE off it launches the classic kernel with fixed tiles, as the plain wrapper does.
  Naming a variant forces it.

The readable path, the core's Triton backend (minigrad/backends/triton_backend.py), calls
kernels/matmul.py's plain wrapper; the performance layer (fast/triton_ops.py: Linear with its
bias, the MLP's activation epilogues) calls this one. Both launch the same kernels with the same
arguments, so results agree bit for bit given the same variant and tiles.

The module switches are kernels/matmul.py's (AUTOTUNE, ALLOW_TF32), the environment's
(MINIGRAD_AUTOTUNE, MINIGRAD_TF32: kernels/helpers.py) and kernels/matmul_persistent.py's (USE_TMA);
they are part of every plan's key. The variant picks are kept across processes in
helpers.TUNE_CACHE, as the tile configs are (a second run on the same GPU times nothing).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton

from . import matmul as _mm
from . import matmul_persistent as _persistent
from . import matmul_plan as _plan
from . import matmul_splitk as _splitk
from .helpers import TUNE_CACHE, autotune_enabled, fp32_dot_precision, interpreting

# (M, N, K, batch, contraction strides, dtype, epilogue) -> (variant, split_k) the timing chose
_CHOSEN: dict[tuple, tuple[str, Optional[int]]] = {}
_VARIANTS_ID = "classic,persistent,splitk/2"     # bump when the candidates or their kernels change


def _pick_variant(c4: torch.Tensor, a4: torch.Tensor, b4: torch.Tensor, bias: Optional[torch.Tensor],
                  aux: Optional[torch.Tensor], meta: dict,
                  rowsum: Optional[torch.Tensor] = None) -> tuple[str, Optional[int]]:
    """The fastest of classic / persistent / split-K (a few split counts) for this launch.

    The first launch of each key runs every candidate once (which autotunes its tile config
    through launch_tuned), times each with device events and remembers the winner; later
    launches cost one dict lookup. Split-K is a candidate only for one matrix whose output has
    less than two waves of 128x128 tiles and a long K (`matmul_splitk.split_candidates`).
    Every variant computes row sums (meta["ROWSUM"], part of the key: a weight gradient with its
    bias gradient is timed apart from one without), so all stay candidates with `rowsum`.
    """
    B0, B1, M, K = a4.shape
    N = b4.shape[3]
    key = (M, N, K, B0 * B1, tuple(a4.stride()[2:]), tuple(b4.stride()[2:]), a4.dtype,
           tuple(meta.items()))
    chosen = _CHOSEN.get(key)
    disk_key = None
    if chosen is None:                            # another process on this GPU may have timed it
        disk_key = repr(("matmul_auto.variant", _VARIANTS_ID) + tuple(str(k) for k in key))
        cached = TUNE_CACHE.get(disk_key)
        if cached is not None:
            chosen = _CHOSEN[key] = (cached[0], cached[1])
    if chosen is None:
        options: list[tuple[str, Optional[int]]] = [("classic", None), ("persistent", None)]
        if B0 * B1 == 1:
            programs = _persistent.num_programs(a4.device)
            options += [("splitk", s) for s in _splitk.split_candidates(M, N, K, programs)]
        times = []
        for variant, split_k in options:
            def run(variant=variant, split_k=split_k):
                _mm.launch(variant, split_k, c4, a4, b4, bias, aux, meta, None, rowsum)
            run()                                     # autotunes its tiles, outside the timing
            times.append(triton.testing.do_bench(run, warmup=5, rep=25))
        chosen = _CHOSEN[key] = options[times.index(min(times))]
        TUNE_CACHE.put(disk_key, list(chosen))
    return chosen


def _check_variant(variant: Optional[str], split_k: Optional[int], dtype: torch.dtype,
                   batch_shape: tuple[int, ...]) -> None:
    """None (pick by timing) or a variant kernels/matmul.py takes."""
    if variant is None:
        if split_k is not None:
            raise ValueError(f"split_k is for variant='splitk'; got variant={variant!r}")
    elif variant not in _mm.VARIANTS:
        raise ValueError(f"unknown matmul variant {variant!r}; expected None or one of {_mm.VARIANTS}")
    else:
        _mm.check_variant(variant, split_k, dtype, batch_shape)


def _plan_key(a, b, bias, activation, out, pre_out, act_grad_at, variant, split_k, rowsum=None,
              ) -> tuple[Optional[tuple], Optional[torch.Tensor]]:
    """(the plan key of a 2-d call, or None when it cannot have a plan; the epilogue's aux tensor)."""
    if not (type(a) is torch.Tensor and type(b) is torch.Tensor and a.dim() == 2 and b.dim() == 2
            and (pre_out is None or act_grad_at is None)):
        return None, None
    aux, aux_mode = ((pre_out, "pre") if pre_out is not None else
                     (act_grad_at, "grad") if act_grad_at is not None else (None, "none"))
    switches = (_mm.AUTOTUNE and autotune_enabled(), fp32_dot_precision(_mm.ALLOW_TF32),
                _persistent.USE_TMA, interpreting())
    try:
        return (_plan.plan_key(a, b, bias, activation, out, aux, aux_mode, variant, split_k, switches,
                               rowsum), aux)
    except AttributeError:                        # a non-tensor bias/out/aux: the checks say so
        return None, None


def matmul(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None,
           activation: Optional[str] = None, out: Optional[torch.Tensor] = None, *,
           pre_out: Optional[torch.Tensor] = None, act_grad_at: Optional[torch.Tensor] = None,
           rowsum: Optional[torch.Tensor] = None, variant: Optional[str] = None,
           split_k: Optional[int] = None) -> torch.Tensor:
    """kernels.matmul.matmul (same arguments, shapes, dtypes and result), with a remembered launch
    for a repeated 2-d signature, and variant=None (the default) timing "classic", "persistent"
    and "splitk" per shape on the GPU (classic with fixed tiles when AUTOTUNE is off or under the
    interpreter); naming a variant forces it (tests, benchmarks).
    """
    key, aux = _plan_key(a, b, bias, activation, out, pre_out, act_grad_at, variant, split_k, rowsum)
    plan = _plan.lookup(key) if key is not None else None
    if plan is not None:                          # every check below passed for this signature
        return plan(a, b, bias, out, aux, rowsum)

    aux, aux_mode = _mm.check_operands(a, b, bias, activation, out, pre_out, act_grad_at, rowsum)
    _check_variant(variant, split_k, a.dtype, tuple(a.shape[:-2]))
    if out is None:
        out = torch.empty(*a.shape[:-2], a.shape[-2], b.shape[-1], dtype=a.dtype, device=a.device)
    if out.numel() == 0:
        return out   # M, N or a batch dim is 0 (K == 0 still runs: c = act(bias) or act(0))
    cfg = _mm.tile_config(a.dtype)                # None: autotuning, so the variants are timed too
    for a4, b4, c4 in _mm.batch_views(a, b, out):
        meta = _mm.epilogue_meta(c4, a4, b4, bias, activation, aux_mode, aux, rowsum)
        chosen = (variant, split_k)
        if variant is None:
            chosen = _pick_variant(c4, a4, b4, bias, aux, meta, rowsum) if cfg is None else ("classic", None)
        launch = _mm.launch(*chosen, c4, a4, b4, bias, aux, meta, cfg, rowsum)
        if key is not None and launch is not None:
            _plan.remember(key, launch, (a.shape[-2], b.shape[-1]), _persistent.before_launch(launch.kwargs))
    return out
