"""The AdamW update, one fused elementwise pass per parameter (or per group of parameters).

Math (torch.optim.AdamW, decoupled weight decay; t = step, bias corrections on the host):
    p  = p * (1 - lr * wd)
    m  = m + (1 - b1) * (g - m)                 (torch's lerp, i.e. b1 m + (1-b1) g)
    v  = b2 * v + (1 - b2) * g * g
    p  = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
With `master` (float32 weights of a bfloat16/float16 parameter) the update reads and writes
master, and param receives master rounded to its own dtype.

Work split: a 1-D grid of BLOCK-element programs over the flattened tensors; every element
is independent. `adamw_step_multi_dev_` updates a list of parameters in ONE launch: the host
builds a small int64 table (the five data pointers and the size of each tensor, plus one
(tensor, start) entry per MULTI_CHUNK-element chunk; cached by address in
kernels/multi_tensor.py, so a step over the same tensors uploads nothing), and each program
looks up its chunk and casts the stored addresses back to typed pointers. The tensors of
one launch must share their dtypes (the launcher groups them by dtype automatically). The
step's scalars are read from a 7-element device array that `adamw_hyper_` writes (one tiny
launch per step), so the update launches themselves never change: a CUDA graph can replay them.

Bytes moved per element: read p (or master), g, m, v; write p (and master), m, v:
fp32 = 28 bytes; bf16 param + fp32 master + bf16 grad = 4+2+4+4 read, 4+2+4+4 write = 28.
Bandwidth bound.

Requirements: all tensors of one parameter have the same number of elements and are
contiguous (optimizer state is always allocated contiguous; a non-contiguous one raises
ValueError). exp_avg/exp_avg_sq/master are float32 (float64 for a float64 parameter,
whose hyper-parameters are still passed to the kernel as float32 scalars). Accumulation is
float32 (float64 for float64).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from .helpers import FLOAT_DTYPES, TL_DTYPES, _cast_value, cdiv, interpreting
from .multi_tensor import pointer_table

BLOCK = 1024
# Elements per program of the multi-tensor kernel (keeps the host-built chunk table short:
# ~2K entries for GPT-2 small's 124M parameters).
MULTI_CHUNK = 64 * BLOCK
HYPER_SIZE = 7             # the step's scalars in device memory, see _adamw_hyper_kernel
_HYPER_DTYPES = (torch.float32, torch.float64)   # values are passed to the kernel as float32 either way


# ---------------------------------------------------------------------------- kernels
@triton.jit
def _adamw_update(p, g, m, v, decay, one_minus_beta1, beta2, one_minus_beta2,
                  step_size, bc2_sqrt, eps):
    """The AdamW formulas on loaded blocks (shared by both kernels)."""
    p = p * decay
    m = m + one_minus_beta1 * (g - m)
    v = v * beta2 + one_minus_beta2 * g * g
    denom = tl.sqrt(v) / bc2_sqrt + eps
    p = p - step_size * (m / denom)
    return p, m, v


@triton.jit
def _adamw_step_kernel(param_ptr, master_ptr, exp_avg_ptr, exp_avg_sq_ptr,
                       grad_ptr,
                       n,
                       decay,             # 1 - lr * weight_decay
                       one_minus_beta1, beta2, one_minus_beta2,
                       step_size,         # lr / (1 - beta1^step)
                       bc2_sqrt,          # sqrt(1 - beta2^step)
                       eps,
                       HAS_MASTER: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if HAS_MASTER:
        p = tl.load(master_ptr + offs, mask=mask).to(ACC)
    else:
        p = tl.load(param_ptr + offs, mask=mask).to(ACC)
    g = tl.load(grad_ptr + offs, mask=mask).to(ACC)
    m = tl.load(exp_avg_ptr + offs, mask=mask).to(ACC)
    v = tl.load(exp_avg_sq_ptr + offs, mask=mask).to(ACC)
    p, m, v = _adamw_update(p, g, m, v, decay, one_minus_beta1, beta2, one_minus_beta2,
                            step_size, bc2_sqrt, eps)
    tl.store(exp_avg_ptr + offs, _cast_value(m, exp_avg_ptr.dtype.element_ty), mask=mask)
    tl.store(exp_avg_sq_ptr + offs, _cast_value(v, exp_avg_sq_ptr.dtype.element_ty), mask=mask)
    if HAS_MASTER:
        tl.store(master_ptr + offs, _cast_value(p, master_ptr.dtype.element_ty), mask=mask)
    tl.store(param_ptr + offs, _cast_value(p, param_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _adamw_step_multi_kernel(table_ptr,      # (T, 6) int64: param, master, m, v, grad addresses, numel
                             chunk_ptr,      # (n_chunks, 2) int64: tensor index, first element
                             hyper_ptr,      # (7,) float32/64 written by _adamw_hyper_kernel: the scalars
                             P_DTYPE: tl.constexpr, S_DTYPE: tl.constexpr, G_DTYPE: tl.constexpr,
                             HAS_MASTER: tl.constexpr, ACC: tl.constexpr,
                             CHUNK: tl.constexpr,    # elements per program, a multiple of BLOCK
                             BLOCK: tl.constexpr):
    """One CHUNK of one tensor of the group per program (see module doc). The step's scalars
    are read from device memory, so the launch is the same every step (a CUDA graph can replay it)."""
    pid = tl.program_id(0)
    t = tl.load(chunk_ptr + pid * 2)
    start = tl.load(chunk_ptr + pid * 2 + 1)
    row = table_ptr + t * 6
    param_ptr = tl.load(row + 0).to(tl.pointer_type(P_DTYPE))
    master_ptr = tl.load(row + 1).to(tl.pointer_type(S_DTYPE))
    exp_avg_ptr = tl.load(row + 2).to(tl.pointer_type(S_DTYPE))
    exp_avg_sq_ptr = tl.load(row + 3).to(tl.pointer_type(S_DTYPE))
    grad_ptr = tl.load(row + 4).to(tl.pointer_type(G_DTYPE))
    n = tl.load(row + 5)
    decay = tl.load(hyper_ptr + 0).to(ACC)
    one_minus_beta1 = tl.load(hyper_ptr + 1).to(ACC)
    beta2 = tl.load(hyper_ptr + 2).to(ACC)
    one_minus_beta2 = tl.load(hyper_ptr + 3).to(ACC)
    step_size = tl.load(hyper_ptr + 4).to(ACC)
    bc2_sqrt = tl.load(hyper_ptr + 5).to(ACC)
    eps = tl.load(hyper_ptr + 6).to(ACC)
    for inner in range(0, CHUNK, BLOCK):
        offs = start + inner + tl.arange(0, BLOCK)
        mask = offs < n
        if HAS_MASTER:
            p = tl.load(master_ptr + offs, mask=mask).to(ACC)
        else:
            p = tl.load(param_ptr + offs, mask=mask).to(ACC)
        g = tl.load(grad_ptr + offs, mask=mask).to(ACC)
        m = tl.load(exp_avg_ptr + offs, mask=mask).to(ACC)
        v = tl.load(exp_avg_sq_ptr + offs, mask=mask).to(ACC)
        p, m, v = _adamw_update(p, g, m, v, decay, one_minus_beta1, beta2, one_minus_beta2,
                                step_size, bc2_sqrt, eps)
        tl.store(exp_avg_ptr + offs, _cast_value(m, S_DTYPE), mask=mask)
        tl.store(exp_avg_sq_ptr + offs, _cast_value(v, S_DTYPE), mask=mask)
        if HAS_MASTER:
            tl.store(master_ptr + offs, _cast_value(p, S_DTYPE), mask=mask)
        tl.store(param_ptr + offs, _cast_value(p, P_DTYPE), mask=mask)


@triton.jit
def _adamw_hyper_kernel(hyper_ptr, decay, one_minus_beta1, beta2, one_minus_beta2, step_size,
                        bc2_sqrt, eps):
    """Write the step's seven scalars (computed on the host in double precision) to hyper (7,)."""
    tl.store(hyper_ptr + 0, decay)
    tl.store(hyper_ptr + 1, one_minus_beta1)
    tl.store(hyper_ptr + 2, beta2)
    tl.store(hyper_ptr + 3, one_minus_beta2)
    tl.store(hyper_ptr + 4, step_size)
    tl.store(hyper_ptr + 5, bc2_sqrt)
    tl.store(hyper_ptr + 6, eps)


# ---------------------------------------------------------------------------- helpers
def _scalars(lr, beta1, beta2, eps, weight_decay, step):
    """Host-side scalars, computed in Python double precision like torch does."""
    if step < 1:
        raise ValueError(f"step must be >= 1 (the first update is step 1), got {step}")
    return (1.0 - lr * weight_decay, 1.0 - beta1, float(beta2), 1.0 - beta2,
            lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step), float(eps))


def _check_param(param, grad, exp_avg, exp_avg_sq, master, where=""):
    tensors = {"param": param, "grad": grad, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if master is not None:
        tensors["master"] = master
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}{where} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}{where} must be a float tensor, got {t.dtype}")
        if t.numel() != param.numel():
            raise ValueError(f"{name}{where} has {t.numel()} elements, param has {param.numel()}")
        if t.device != param.device:
            raise ValueError(f"{name}{where} is on {t.device}, param on {param.device}")
        if not t.is_contiguous():
            raise ValueError(f"{name}{where} must be contiguous (shape {tuple(t.shape)}, strides "
                             f"{tuple(t.stride())})")
    state_dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
    for name in ("exp_avg", "exp_avg_sq", "master"):
        if name in tensors and tensors[name].dtype != state_dtype:
            raise TypeError(f"{name}{where} must be {state_dtype} for a {param.dtype} param, "
                            f"got {tensors[name].dtype}")


def _check_multi(params, grads, exp_avgs, exp_avg_sqs, hyper, masters, chunk) -> None:
    n_params = len(params)
    for name, lst in (("grads", grads), ("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs),
                      ("masters", masters)):
        if len(lst) != n_params:
            raise ValueError(f"{name} has {len(lst)} entries, params has {n_params}")
    if n_params and (hyper.shape != (HYPER_SIZE,) or hyper.dtype not in _HYPER_DTYPES
                     or hyper.device != params[0].device):
        raise ValueError(f"hyper must be ({HYPER_SIZE},) float32/float64 on {params[0].device}, got "
                         f"{tuple(hyper.shape)} {hyper.dtype} on {hyper.device}")
    for i in range(n_params):
        _check_param(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], masters[i], where=f"[{i}]")
    if chunk < BLOCK or chunk % BLOCK:
        raise ValueError(f"multi_chunk must be a multiple of BLOCK = {BLOCK}, got {chunk}")


def _groups(params, grads, exp_avgs, masters) -> dict[tuple, list[int]]:
    """Indices of the non-empty parameters by (param, grad, state dtype, has master, device): one
    launch each (a kernel's pointer casts are compiled for one set of dtypes)."""
    groups: dict[tuple, list[int]] = {}
    for i in range(len(params)):
        if params[i].numel() == 0:
            continue
        key = (params[i].dtype, grads[i].dtype, exp_avgs[i].dtype, masters[i] is not None,
               params[i].device)
        groups.setdefault(key, []).append(i)
    return groups


# ---------------------------------------------------------------------------- launchers
def adamw_step_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor,
                exp_avg_sq: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, step: int, master: Optional[torch.Tensor] = None) -> None:
    """One AdamW step of one parameter, in place (param, exp_avg, exp_avg_sq, master).

    `step` counts from 1. With `master` (float32), master is updated and param (e.g.
    bfloat16) gets its rounded copy. grad may have any float dtype.
    """
    _check_param(param, grad, exp_avg, exp_avg_sq, master)
    n = param.numel()
    if n == 0:
        return
    scalars = _scalars(lr, beta1, beta2, eps, weight_decay, step)
    _adamw_step_kernel[(cdiv(n, BLOCK),)](
        param, param if master is None else master, exp_avg, exp_avg_sq, grad, n, *scalars,
        HAS_MASTER=master is not None,
        ACC=tl.float64 if param.dtype == torch.float64 else tl.float32,
        BLOCK=BLOCK, num_warps=4)


def adamw_hyper_(hyper: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, step: int) -> torch.Tensor:
    """Write one step's scalars into `hyper` (7,) float32/float64 on the device, in one launch (the
    bias corrections of `step` are computed here on the host, in double precision, as torch).
    adamw_step_multi_dev_ reads them, so only this launch changes from step to step."""
    if hyper.shape != (HYPER_SIZE,) or hyper.dtype not in _HYPER_DTYPES or not hyper.is_contiguous():
        raise ValueError(f"hyper must be a contiguous ({HYPER_SIZE},) float32/float64 tensor, got "
                         f"{tuple(hyper.shape)} {hyper.dtype}")
    _adamw_hyper_kernel[(1,)](hyper, *_scalars(lr, beta1, beta2, eps, weight_decay, step), num_warps=1)
    return hyper


def adamw_step_multi_dev_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                          exp_avgs: Sequence[torch.Tensor], exp_avg_sqs: Sequence[torch.Tensor],
                          hyper: torch.Tensor,
                          masters: Optional[Sequence[Optional[torch.Tensor]]] = None,
                          multi_chunk: Optional[int] = None) -> None:
    """adamw_step_ for many parameters in one launch per dtype group, with the step's scalars
    read from `hyper` (7,) float32/float64 (written by adamw_hyper_). The lists are parallel; `masters`
    is None or a list with None entries for parameters without master weights. The pointer
    tables are cached by address (kernels/multi_tensor.py), so repeated calls on the same
    tensors upload nothing. `multi_chunk` (a multiple of BLOCK) overrides the elements per
    program (tests); by default MULTI_CHUNK, one BLOCK in the interpreter (whose programs loop in
    Python)."""
    masters = [None] * len(params) if masters is None else masters
    chunk = multi_chunk if multi_chunk is not None else (BLOCK if interpreting() else MULTI_CHUNK)
    _check_multi(params, grads, exp_avgs, exp_avg_sqs, hyper, masters, chunk)
    for (p_dtype, g_dtype, s_dtype, has_master, device), members in _groups(params, grads, exp_avgs,
                                                                            masters).items():
        rows = [(params[i].data_ptr(), (masters[i] if has_master else params[i]).data_ptr(),
                 exp_avgs[i].data_ptr(), exp_avg_sqs[i].data_ptr(), grads[i].data_ptr(),
                 params[i].numel()) for i in members]
        table_t, chunks_t, n_chunks = pointer_table(rows, [r[5] for r in rows], chunk, device)
        _adamw_step_multi_kernel[(n_chunks,)](
            table_t, chunks_t, hyper,
            P_DTYPE=TL_DTYPES[p_dtype], S_DTYPE=TL_DTYPES[s_dtype], G_DTYPE=TL_DTYPES[g_dtype],
            HAS_MASTER=has_master, ACC=tl.float64 if p_dtype == torch.float64 else tl.float32,
            CHUNK=chunk, BLOCK=BLOCK, num_warps=4)


def adamw_step_multi_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                      exp_avgs: Sequence[torch.Tensor], exp_avg_sqs: Sequence[torch.Tensor],
                      lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                      step: int, masters: Optional[Sequence[Optional[torch.Tensor]]] = None,
                      multi_chunk: Optional[int] = None) -> None:
    """adamw_step_ for many parameters (same hyper-parameters and step): adamw_hyper_ into a
    fresh scalar array, then adamw_step_multi_dev_ (see both)."""
    if not params:
        return
    hyper = torch.empty(HYPER_SIZE, dtype=torch.float32, device=params[0].device)
    adamw_hyper_(hyper, lr, beta1, beta2, eps, weight_decay, step)
    adamw_step_multi_dev_(params, grads, exp_avgs, exp_avg_sqs, hyper, masters, multi_chunk)
