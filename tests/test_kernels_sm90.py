"""Every Triton kernel outside attention and the classic matmul (their own test files compile
those) built for an H100 (sm_90), no GPU needed.

The interpreter never runs Triton's compiler, so type errors in loops, unsupported ops,
pointer casts, bool pointers, atomics and shared-memory overflow only show up on a GPU. Each
test compiles one kernel family (in a subprocess without TRITON_INTERPRET, see
`check_compiles_for_sm90`) in the configurations its launchers pick on a GPU for realistic
shapes: softmax C = 1024 / 8192 single block and 64K multi block, layernorm C = 768 / 4096 /
32768, cross-entropy V = 50304, the flat kernels' 1024/2048-element blocks, the persistent and
split-K matmuls at GPT-2's forward and weight-gradient shapes, float32 /
bfloat16 / float16 / float64 and int64 / bool where the launcher allows them. The variants
cover the distinct code paths (constexpr branches, dtypes), not the full product.

The signature mirrors what Triton's launcher would specialise: unit strides (which Triton
turns into the constant 1 at run time) are passed as constexpr 1, pointers are 16-byte
aligned, Python floats are fp32, ints i32 (i64 where the value needs it, e.g. float64 bit
patterns). Every compiled kernel must fit in the H100's 227 KB of shared memory per block.
"""
import pytest

from kernel_testing import check_compiles_for_sm90  # first: it sets up the interpreter

# Shared by every family script: compile one variant and check its shared memory.
_HELPER = r"""
import triton.language as tl

SMEM_LIMIT = 232448          # H100: 227 KB of shared memory per block
_MAX_SHARED = [0, ""]


def sm90(fn, const, types, num_warps=4, num_stages=3, tag=""):
    '''Compile `fn` for sm_90. const: constexpr values (unit strides as 1); types: Triton
    type per non-constexpr argument ("*bf16", "i64", "fp32", ...), "i32" when absent;
    every pointer argument must be listed.'''
    unknown = set(const) - set(fn.arg_names)
    assert not unknown, (fn.__name__, "constexprs that are not arguments", unknown)
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in const:
            sig[name] = "constexpr"
            continue
        sig[name] = types.get(name, "i32")
        if sig[name].startswith("*"):
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name.endswith("_ptr"):
            raise AssertionError(f"{fn.__name__}: no pointer type for {name}")
    k = triton.compile(ASTSource(fn, sig, const, attrs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": num_warps, "num_stages": num_stages})
    assert k.asm.get("cubin"), (fn.__name__, "no cubin")
    shared = k.metadata.shared
    label = f"{fn.__name__}[{tag}]"
    assert shared <= SMEM_LIMIT, (label, shared)
    if shared > _MAX_SHARED[0]:
        _MAX_SHARED[:] = [shared, label]
    print(f"ok {label}: shared {shared}")
    return k


def done():
    print(f"max shared {_MAX_SHARED[0]} bytes ({_MAX_SHARED[1]})")
"""

# Per float dtype name: the launchers' accumulation dtype and statistics/partials dtype.
_FLOATS = r"""
ACC = {"bf16": tl.float32, "fp16": tl.float32, "fp32": tl.float32, "fp64": tl.float64}
STAT = {"bf16": "fp32", "fp16": "fp32", "fp32": "fp32", "fp64": "fp64"}   # float32 stats/partials
"""

_SOFTMAX = r"""
from minigrad.kernels import softmax as S

def single(block_c):
    return S._single_block_config(block_c)        # (rows, num_warps)

# single block: C = 1024 (4 rows, 8 warps) and C = 8192 (1 row, 16 warps)
for dt, log, c in [("bf16", False, 1024), ("fp32", True, 1024), ("fp16", False, 8192),
                   ("fp64", True, 1024)]:
    rows, w = single(c)
    t = {"y_ptr": "*" + dt, "x_ptr": "*" + dt}
    sm90(S._softmax_fwd_kernel, dict(LOG=log, ACC=ACC[dt], ROWS=rows, BLOCK_C=c, stride_xn=1),
         t, num_warps=w, tag=f"{dt} C={c} log={log}")
    t = {"dx_ptr": "*" + dt, "dy_ptr": "*" + dt, "y_ptr": "*" + dt}
    sm90(S._softmax_bwd_kernel, dict(LOG=log, ACC=ACC[dt], ROWS=rows, BLOCK_C=c,
                                     stride_dyn=1, stride_yn=1),
         t, num_warps=w, tag=f"{dt} C={c} log={log}")
# multi block: C = 65536 walks MULTI_BLOCK chunks, 8 warps
for dt, log in [("bf16", False), ("fp32", True), ("fp64", False)]:
    t = {"y_ptr": "*" + dt, "x_ptr": "*" + dt}
    sm90(S._softmax_fwd_multiblock_kernel, dict(LOG=log, ACC=ACC[dt], BLOCK_C=S.MULTI_BLOCK,
                                                stride_xn=1), t, num_warps=8, tag=f"{dt} log={log}")
    t = {"dx_ptr": "*" + dt, "dy_ptr": "*" + dt, "y_ptr": "*" + dt}
    sm90(S._softmax_bwd_multiblock_kernel, dict(LOG=log, ACC=ACC[dt], BLOCK_C=S.MULTI_BLOCK,
                                                stride_dyn=1, stride_yn=1),
         t, num_warps=8, tag=f"{dt} log={log}")
done()
"""

_LAYERNORM = r"""
from minigrad.kernels import layernorm as L

# (x dtype, weight dtype or None, has bias, is_rms, C)
cases = [("bf16", "fp32", True, False, 768),     # GPT-2: bf16 activations, fp32 params
         ("bf16", "bf16", False, True, 4096),    # RMSNorm, Llama-sized
         ("fp32", "fp32", True, False, 4096),
         ("fp16", None, False, False, 32768),    # MAX_COLS, no affine
         ("bf16", "fp32", True, False, 32768),   # MAX_COLS with dw/db accumulators
         ("fp64", "fp64", True, False, 768)]
for dt, wdt, bias, rms, c in cases:
    tag = f"{dt} w={wdt} bias={bias} rms={rms} C={c}"
    st = STAT[dt]
    block_c, rows, w = L._tile_config(c, 4096)
    t = {"y_ptr": "*" + dt, "x_ptr": "*" + dt, "mean_ptr": "*" + st, "rstd_ptr": "*" + st,
         "w_ptr": "*" + (wdt or dt), "b_ptr": "*" + ((wdt if bias else None) or dt), "eps": "fp32"}
    const = dict(IS_RMS=rms, HAS_WEIGHT=wdt is not None, HAS_BIAS=bias, ACC=ACC[dt],
                 ROWS=rows, BLOCK_C=block_c, stride_xn=1)
    const.update({s: 1 for s in ("stride_w", "stride_b") if wdt is not None})
    sm90(L._layernorm_fwd_kernel, const, t, num_warps=w, tag=tag)
    block_c, rows, w = L._tile_config(c, 2048)
    t = {"dx_ptr": "*" + dt, "dw_part_ptr": "*" + (st if wdt else dt),
         "db_part_ptr": "*" + (st if wdt else dt), "dy_ptr": "*" + dt, "x_ptr": "*" + dt,
         "w_ptr": "*" + (wdt or dt), "mean_ptr": "*" + st, "rstd_ptr": "*" + st}
    const = dict(IS_RMS=rms, HAS_WEIGHT=wdt is not None, ACC=ACC[dt], ROWS=rows, BLOCK_C=block_c,
                 stride_dyn=1, stride_xn=1, stride_mean=1, stride_rstd=1)
    if wdt is not None:
        const["stride_w"] = 1
    sm90(L._layernorm_bwd_kernel, const, t, num_warps=w, tag=tag)
    if wdt is not None:
        block_cr = L.dwdb_block(c)
        t = {"dw_ptr": "*" + wdt, "db_ptr": "*" + wdt, "dw_part_ptr": "*" + st, "db_part_ptr": "*" + st}
        sm90(L._layernorm_bwd_dwdb_kernel, dict(HAS_DB=not rms, BLOCK_G=32, BLOCK_C=block_cr), t,
             num_warps=4, tag=tag)
done()
"""

_CROSS_ENTROPY = r"""
from minigrad.kernels import cross_entropy as X

V = 50304
block = X._pick_block(V, None)
w = X._num_warps(block)
for dt, tdt in [("bf16", "i64"), ("fp32", "i64"), ("fp16", "i32"), ("fp64", "i64")]:
    st = STAT[dt]
    tag = f"{dt} targets {tdt} V={V}"
    sm90(X._cross_entropy_fwd_kernel, dict(ACC=ACC[dt], BLOCK_V=block, stride_xn=1, stride_t=1),
         {"loss_ptr": "*" + st, "lse_ptr": "*" + st, "x_ptr": "*" + dt, "t_ptr": "*" + tdt},
         num_warps=w, tag=tag)
    # dlosses is often a stride-0 expanded scalar gradient: stride_dl stays a runtime value
    sm90(X._cross_entropy_bwd_kernel, dict(ACC=ACC[dt], BLOCK_V=block, stride_xn=1, stride_t=1,
                                           stride_lse=1),
         {"dx_ptr": "*" + dt, "dloss_ptr": "*" + st, "x_ptr": "*" + dt, "t_ptr": "*" + tdt,
          "lse_ptr": "*" + st}, num_warps=w, tag=tag)
    sm90(X._cross_entropy_fwd_bwd_kernel, dict(ACC=ACC[dt], BLOCK_V=block, stride_xn=1, stride_t=1,
                                               stride_dxn=1),
         {"loss_ptr": "*" + st, "lse_ptr": "*" + st, "dx_ptr": "*" + dt, "x_ptr": "*" + dt,
          "t_ptr": "*" + tdt, "grad_scale": "fp32"}, num_warps=w, tag=tag)
done()
"""

_EMBEDDING = r"""
from minigrad.kernels import embedding as E

for dt, idt, inner in [("bf16", "i64", 768), ("fp32", "i32", 768), ("fp64", "i64", 64),
                       ("fp16", "i64", 4096)]:
    bn, bc, w = E._tiles(inner)
    tag = f"{dt} idx {idt} inner={inner}"
    sm90(E._embedding_fwd_kernel, dict(BLOCK_N=bn, BLOCK_C=bc, stride_xi=1, stride_idx=1),
         {"out_ptr": "*" + dt, "x_ptr": "*" + dt, "idx_ptr": "*" + idt}, num_warps=w, tag=tag)
    acc = "fp64" if dt == "fp64" else "fp32"
    sm90(E._embedding_bwd_kernel, dict(BLOCK_N=bn, BLOCK_C=bc, stride_si=1, stride_idx=1),
         {"acc_ptr": "*" + acc, "src_ptr": "*" + dt, "idx_ptr": "*" + idt}, num_warps=w, tag=tag)
    if acc != dt:
        sm90(E._embedding_bwd_cast_kernel, dict(BLOCK=1024),
             {"out_ptr": "*" + dt, "acc_ptr": "*fp32"}, num_warps=4, tag=tag)
done()
"""

_ADAMW = r"""
from minigrad.kernels import adamw as A

F = {n: "fp32" for n in ("decay", "one_minus_beta1", "beta2", "one_minus_beta2", "step_size",
                         "bc2_sqrt", "eps")}
TL = {"bf16": tl.bfloat16, "fp16": tl.float16, "fp32": tl.float32, "fp64": tl.float64}
# (param, state/master, grad, has master, n type)
for p, s, g, master, nt in [("bf16", "fp32", "bf16", True, "i32"), ("fp32", "fp32", "fp32", False, "i32"),
                            ("fp16", "fp32", "fp32", True, "i64"), ("fp64", "fp64", "fp64", False, "i32")]:
    tag = f"param {p} state {s} grad {g} master={master}"
    acc = tl.float64 if p == "fp64" else tl.float32
    sm90(A._adamw_step_kernel, dict(HAS_MASTER=master, ACC=acc, BLOCK=A.BLOCK),
         {"param_ptr": "*" + p, "master_ptr": "*" + (s if master else p), "exp_avg_ptr": "*" + s,
          "exp_avg_sq_ptr": "*" + s, "grad_ptr": "*" + g, "n": nt, **F}, num_warps=4, tag=tag)
    sm90(A._adamw_step_multi_kernel,
         dict(P_DTYPE=TL[p], S_DTYPE=TL[s], G_DTYPE=TL[g], HAS_MASTER=master, ACC=acc,
              CHUNK=A.MULTI_CHUNK, BLOCK=A.BLOCK),
         {"table_ptr": "*i64", "chunk_ptr": "*i64", "hyper_ptr": "*fp64"}, num_warps=4, tag=tag)
sm90(A._adamw_hyper_kernel, {}, {"hyper_ptr": "*fp64", **F}, num_warps=1, tag="hyper")
from minigrad.kernels import multi_tensor as MT
for x in ("bf16", "fp32", "fp64"):
    acc = tl.float64 if x == "fp64" else tl.float32
    meta = dict(X_DTYPE=TL[x], ACC=acc, CHUNK=MT.CHUNK, BLOCK=MT.BLOCK)
    sm90(MT._sum_squares_multi_kernel, meta,
         {"partial_ptr": "*" + STAT[x], "table_ptr": "*i64", "chunk_ptr": "*i64"}, tag="sumsq " + x)
    sm90(MT._scale_multi_kernel, meta,
         {"table_ptr": "*i64", "chunk_ptr": "*i64", "coef_ptr": "*" + STAT[x]}, tag="scale " + x)
    sm90(MT._clip_coef_kernel, dict(ACC=acc, BLOCK=MT.BLOCK),
         {"total_ptr": "*" + STAT[x], "coef_ptr": "*" + STAT[x], "partial_ptr": "*" + STAT[x],
          "max_norm": "fp32"}, tag="clip coef " + x)
done()
"""

_ELEMENTWISE = r"""
from minigrad.kernels import elementwise as W

TL = {"bf16": tl.bfloat16, "fp16": tl.float16, "fp32": tl.float32, "fp64": tl.float64,
      "i64": tl.int64, "i1": tl.int1}
COMPUTE = {"bf16": tl.float32, "fp16": tl.float32, "fp32": tl.float32, "fp64": tl.float64,
           "i64": tl.int64, "i1": tl.int1}

def block(dt):
    return 2048 if dt in ("bf16", "fp16", "i1") else 1024   # block_size(): 16-bit -> 2048

def layout(prefixes, rank):
    '''constexprs of a launch: contiguous (rank 1, unit innermost strides) or strided rank 3.'''
    c = dict(RANK=rank, INDEX64=rank == 3)
    if rank == 1:
        c.update({p + "_s5": 1 for p in prefixes})
    return c

float_ops = W.UNARY_OPS + ("gelu", "gelu_tanh", "silu")
unary = [("fp32", op, 1) for op in float_ops]
unary += [("bf16", "gelu_tanh", 1), ("fp16", "gelu", 3), ("fp64", "gelu", 1), ("fp64", "tanh", 1),
          ("fp64", "sin", 3), ("bf16", "silu", 3)]
unary += [("i64", op, 1) for op in W.INT_UNARY_OPS]
for dt, op, rank in unary:
    sm90(W._unary_fwd_kernel, dict(OP=op, COMPUTE=COMPUTE[dt], IS_FLOAT=dt.startswith("fp") or dt == "bf16",
                                   BLOCK=block(dt), **layout(["x"], rank)),
         {"out_ptr": "*" + dt, "x_ptr": "*" + dt}, tag=f"{op} {dt} rank {rank}")

# (dtype, op, a scalar, b scalar, out dtype, rank); float scalars travel as i64 bit patterns
binary = [("fp32", op, False, False, None, 1) for op in W.BINARY_OPS]
binary += [("bf16", "mul", False, True, None, 1), ("bf16", "add", False, False, None, 3),
           ("fp16", "sub", True, False, None, 1), ("fp64", "pow", False, True, None, 1),
           ("fp64", "maximum", False, False, None, 3),
           ("i64", "add", False, True, None, 1), ("i64", "maximum", False, False, None, 3)]
binary += [(dt, op, False, False, dt, 1) for dt in ("bf16", "fp32", "fp64")
           for op in ("gelu_bwd", "gelu_tanh_bwd", "silu_bwd")]
binary += [("fp32", op, False, op == "lt", "i1", 1) for op in W.COMPARE_OPS]
binary += [("bf16", "eq", False, True, "i1", 3), ("fp64", "ge", False, False, "i1", 1),
           ("i64", "ne", False, True, "i1", 1), ("i1", "eq", False, False, "i1", 1),
           ("i1", "ne", False, True, "i1", 3)]
for dt, op, a_s, b_s, out, rank in binary:
    is_float = dt not in ("i64", "i1")
    val = "i64" if is_float else "i32"
    sm90(W._binary_fwd_kernel,
         dict(OP=op, COMPUTE=COMPUTE[dt], IS_FLOAT=is_float, A_SCALAR=a_s, B_SCALAR=b_s,
              SCALAR_BITS=is_float, BLOCK=block(out or dt), **layout(["a", "b"], rank)),
         {"out_ptr": "*" + (out or dt), "a_ptr": "*" + dt, "b_ptr": "*" + dt,
          "a_value": val if a_s else "i32", "b_value": val if b_s else "i32"},
         tag=f"{op} {dt}->{out or dt} scalar a={a_s} b={b_s} rank {rank}")

for dt, a_s, b_s, rank in [("fp32", False, False, 1), ("bf16", False, True, 1), ("fp32", True, True, 1),
                           ("fp64", True, False, 3), ("i64", False, True, 1), ("i1", False, False, 3),
                           ("i1", True, False, 1)]:
    is_float = dt not in ("i64", "i1")
    val = "i64" if is_float else "i32"
    sm90(W._where_fwd_kernel,
         dict(COMPUTE=COMPUTE[dt], A_SCALAR=a_s, B_SCALAR=b_s, SCALAR_BITS=is_float,
              BLOCK=block(dt), **layout(["c", "a", "b"], rank)),
         {"out_ptr": "*" + dt, "cond_ptr": "*i1", "a_ptr": "*" + dt, "b_ptr": "*" + dt,
          "a_value": val if a_s else "i32", "b_value": val if b_s else "i32"},
         tag=f"{dt} scalar a={a_s} b={b_s} rank {rank}")

for dt in ("fp32", "bf16", "fp16", "fp64", "i64", "i1"):
    is_float = dt not in ("i64", "i1")
    sm90(W._fill_fwd_kernel, dict(SCALAR_BITS=is_float, COMPUTE=tl.float64 if is_float else tl.int64,
                                  INDEX64=False, BLOCK=block(dt)),
         {"out_ptr": "*" + dt, "value": "i64" if is_float else "i32"}, tag=dt)
for dt, index64 in [("i64", False), ("fp32", False), ("bf16", False), ("fp64", True), ("i1", False)]:
    sm90(W._arange_fwd_kernel, dict(INDEX64=index64, BLOCK=block(dt)),
         {"out_ptr": "*" + dt, "start": "i32", "step": "i32", "N": "i64" if index64 else "i32"},
         tag=f"{dt} index64={index64}")
done()
"""

_COPY = r"""
from minigrad.kernels import copy as C

def block(dt):
    return 2048 if dt in ("bf16", "fp16", "i1") else 1024

# (src, dst, rank): same-dtype contiguous / transposed / 6-d, and the casts the backend uses
cases = [("fp32", "fp32", 1), ("bf16", "bf16", 2), ("fp32", "bf16", 1), ("bf16", "fp32", 3),
         ("fp64", "fp16", 1), ("fp16", "bf16", 2), ("fp64", "bf16", 1), ("fp32", "i64", 1),
         ("i64", "fp32", 1), ("i1", "fp32", 1), ("fp32", "i1", 1), ("i64", "i1", 2),
         ("i1", "i1", 1), ("i64", "i64", 6), ("fp16", "fp64", 6)]
for src, dst, rank in cases:
    const = dict(RANK=rank, INDEX64=rank == 6, BLOCK=block(dst))
    if rank == 1:
        const.update(o_s5=1, x_s5=1)
    sm90(C._copy_fwd_kernel, const, {"out_ptr": "*" + dst, "in_ptr": "*" + src},
         tag=f"{src}->{dst} rank {rank}")
done()
"""

_REDUCE = r"""
from minigrad.kernels import reduce as R

def warps(br, bc):
    return 8 if br * bc >= 4096 else 4

# (op, x dtype, out dtype, acc, rows, cols, innermost?, index64)
cases = [("sum", "fp32", "fp32", tl.float32, 8192, 768, True, False),    # row sums
         ("sum", "bf16", "bf16", tl.float32, 768, 8192, False, False),   # bias grad: outer dim
         ("sum", "fp32", "fp32", tl.float32, 1, 1 << 24, True, True),    # full reduction pass 1
         ("max", "bf16", "bf16", tl.float32, 8192, 50304, True, False),
         ("max", "fp64", "fp64", tl.float64, 64, 4096, False, False),
         ("sum", "fp64", "fp64", tl.float64, 4096, 4096, True, False),
         ("sum", "i1", "i64", tl.int64, 8192, 768, True, False),
         ("max", "i64", "i64", tl.int64, 4096, 1024, True, False),
         ("sum", "i64", "i64", tl.int64, 1024, 4096, False, True)]
for op, dt, out, acc, rows, cols, inner, index64 in cases:
    br, bc = R._tile(rows, cols, 1 if inner else rows)
    lowest = R.INT64_MIN if acc == tl.int64 else float("-inf")
    const = dict(OP=op, ACC=acc, LOWEST=lowest, INDEX64=index64, BLOCK_R=br, BLOCK_C=bc)
    if inner:
        const["stride_col"] = 1
    else:
        const["stride_row"] = 1
    sm90(R._reduce_fwd_kernel, const, {"out_ptr": "*" + out, "x_ptr": "*" + dt},
         num_warps=warps(br, bc), tag=f"{op} {dt} {rows}x{cols} inner={inner} index64={index64}")
# bias gradients at GPT-2's widths take the one-launch column plan (R._column_single_pass_tile)
for rows in (768, 2304, 3072):
    br, bc = R._column_single_pass_tile(rows, 8192)
    const = dict(OP="sum", ACC=tl.float32, LOWEST=float("-inf"), INDEX64=False, BLOCK_R=br, BLOCK_C=bc,
                 stride_row=1)
    sm90(R._reduce_fwd_kernel, const, {"out_ptr": "*bf16", "x_ptr": "*bf16"},
         num_warps=warps(br, bc), tag=f"sum bf16 {rows}x8192 one launch")
for dt, acc, rows, cols, inner in [("fp32", tl.float32, 8192, 50304, True), ("bf16", tl.float32, 64, 50304, True),
                                   ("fp64", tl.float64, 4096, 16, False), ("i64", tl.int64, 1024, 1024, True)]:
    br, bc = R._tile(rows, cols, 1 if inner else rows)
    const = dict(ACC=acc, LOWEST=R.INT64_MIN if acc == tl.int64 else float("-inf"), INDEX64=False,
                 BLOCK_R=br, BLOCK_C=bc)
    const["stride_col" if inner else "stride_row"] = 1
    sm90(R._argmax_fwd_kernel, const, {"out_ptr": "*i64", "x_ptr": "*" + dt},
         num_warps=warps(br, bc), tag=f"{dt} {rows}x{cols} inner={inner}")
done()
"""

_DROPOUT = r"""
from minigrad.kernels import dropout as D

def block(dt):
    return 2048 if dt in ("bf16", "fp16") else 1024

# the seed offset read from device memory (CUDA-graph steps) with both seed widths; rows whose
# length S is a multiple of 4 (EVEN_S) or not
for dt, rank, seed, offset, even in [("bf16", 1, "i64", True, True), ("fp32", 1, "i32", True, False),
                                     ("fp16", 3, "i64", False, True), ("bf16", 3, "i64", False, False),
                                     ("fp64", 1, "i64", False, True)]:
    compute = tl.float64 if dt == "fp64" else tl.float32
    const = dict(COMPUTE=compute, RANK=rank, INDEX64=rank == 3, BLOCK=block(dt), HAS_SEED_OFFSET=offset,
                 EVEN_S=even)
    if rank == 1:
        const["x_s5"] = 1
    k = sm90(D._dropout_fwd_kernel, const,
             {"y_ptr": "*" + dt, "mask_ptr": "*i1", "x_ptr": "*" + dt, "seed_offset_ptr": "*i64", "p": "fp32",
              "scale_bits": "i64", "seed": seed},
             tag=f"{dt} rank {rank} seed {seed} offset {offset} even {even}")
    # One Philox call per 4 elements: a call is 10 rounds of at most two 32-bit high multiplies
    # (mul.hi, or mul.wide where the low half is used too), so a thread with BLOCK / 4 / 128 calls
    # has at most 20 of them per call; one call per element had 4x that (15 per element measured).
    calls = block(dt) // 4 // (32 * 4)
    muls = k.asm["ptx"].count("mul.hi.u32") + k.asm["ptx"].count("mul.wide.u32")
    assert muls <= 20 * calls, (dt, rank, even, muls, calls)
    print(f"  Philox multiplies per thread: {muls} for {calls} calls ({4 * calls} elements)")
    const = dict(COMPUTE=compute, RANK=rank, INDEX64=rank == 3, BLOCK=block(dt))
    if rank == 1:
        const.update(g_s5=1, m_s5=1)
    sm90(D._dropout_bwd_kernel, const,
         {"dx_ptr": "*" + dt, "dy_ptr": "*" + dt, "mask_ptr": "*i1", "scale_bits": "i64"},
         tag=f"{dt} rank {rank}")
done()
"""


# GPT-2 small on 8192 tokens. (case, M, N, K, a layout, b layout); "t" = a transposed view.
_MATMUL_SHAPES = r"""
SHAPES = [("fwd qkv x @ W^T", 8192, 2304, 768, "n", "t"), ("fwd fc", 8192, 3072, 768, "n", "t"),
          ("fwd proj", 8192, 768, 3072, "n", "t"), ("dX qkv dY @ W", 8192, 768, 2304, "n", "n"),
          ("dW attn.proj X^T @ dY", 768, 768, 8192, "t", "n"), ("dW qkv", 768, 2304, 8192, "t", "n"),
          ("dW fc", 768, 3072, 8192, "t", "n"), ("dW mlp.proj", 3072, 768, 8192, "t", "n")]
SMS = 132                    # H100 SXM / H200


def unit_strides(a_layout, b_layout):
    # the strides Triton specialises to 1 for these layouts (c is contiguous)
    return {"stride_am" if a_layout == "t" else "stride_ak": 1,
            "stride_bk" if b_layout == "t" else "stride_bn": 1, "stride_cn": 1}


def configs(cfgs):
    return [(c.kwargs, c.num_warps, c.num_stages) for c in cfgs]
"""

_MATMUL_PERSISTENT = r"""
import itertools

from minigrad.kernels import matmul_persistent as P

TYPES = {n: "*bf16" for n in ("c_ptr", "a_ptr", "b_ptr", "bias_ptr", "aux_ptr", "rowsum_ptr")}
seen = set()
for case, M, N, K, la, lb in SHAPES:
    tiles = triton.cdiv(M, 128) * triton.cdiv(N, 128)
    print(f"{case}: {tiles} tiles of 128x128 = {tiles / SMS:.2f} per SM")
    # TMA path, bf16: every autotune config for the weight-gradient layout (a = X^T), the largest
    # for each other layout; a compile per distinct set of constexprs (compiles are slow)
    # (weight gradients also with ROWSUM: the bias gradient's row sums, tile loop not flattened)
    for (kw, w, st), rowsum in itertools.product(configs(P.AUTOTUNE_CONFIGS)[:None if la == "t" else 1],
                                                 (False, True) if la == "t" else (False,)):
        flags = (la, lb, K % kw["BLOCK_K"] == 0, tuple(kw.values()), w, st, rowsum)
        if flags in seen:
            continue
        seen.add(flags)
        # the MLP's epilogues: fc stores its pre-activation, dX of mlp.proj applies GELU'
        aux = "pre" if "fc" in case else "none"
        const = dict(HAS_BIAS=case.startswith("fwd"), ACTIVATION="gelu_tanh" if "fc" in case else "none",
                     AUX=aux, ROWSUM=rowsum, DOT_PRECISION="tf32", UPCAST_DOT=False, INDEX_64=False,
                     EVEN_K=flags[2], USE_TMA=True, A_T=la == "t", B_T=lb == "t", FLATTEN=not rowsum, B1=1,
                     BATCH=1, **kw, **unit_strides(la, lb))
        sm90(P._matmul_persistent_kernel, const, TYPES, num_warps=w, num_stages=st,
             tag=f"TMA {case} {kw} w{w} s{st}{' rowsum' if rowsum else ''}")
# pointer path (batched, any strides, K tail) in bf16 and float32, and float32 through TMA, in IEEE
# float32 (the default: kernels/helpers.py fp32_dot_precision)
for dt, kw, w, st, tma in [("bf16", dict(BLOCK_M=128, BLOCK_N=256, BLOCK_K=64, GROUP_M=8), 8, 3, False),
                           ("fp32", dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8), 8, 3, False),
                           ("fp32", dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8), 8, 3, True)]:
    const = dict(HAS_BIAS=False, ACTIVATION="gelu_exact", AUX="grad", ROWSUM=False,
                 DOT_PRECISION="ieee" if dt == "fp32" else "tf32",
                 UPCAST_DOT=False, INDEX_64=False, EVEN_K=tma, USE_TMA=tma, A_T=tma, B_T=False, FLATTEN=True, **kw,
                 **unit_strides("t" if tma else "n", "n"))
    sm90(P._matmul_persistent_kernel, const, {n: "*" + dt for n in TYPES}, num_warps=w, num_stages=st,
         tag=f"{dt} {'TMA a^T' if tma else 'pointers, batched, K tail'}, GELU' epilogue")
# row sums on the pointer path (a 2-d weight gradient whose a is not TMA-readable), K tail
const = dict(HAS_BIAS=True, ACTIVATION="none", AUX="none", ROWSUM=True, DOT_PRECISION="tf32", UPCAST_DOT=False,
             INDEX_64=False, EVEN_K=False, USE_TMA=False, A_T=False, B_T=False, FLATTEN=False, B1=1, BATCH=1,
             BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8, **unit_strides("t", "n"))
sm90(P._matmul_persistent_kernel, const, TYPES, num_warps=8, num_stages=3, tag="bf16 pointers, rowsum, K tail")
done()
"""

_MATMUL_SPLITK = r"""
from minigrad.kernels import matmul_splitk as S

picked = {}
for case, M, N, K, la, lb in SHAPES:
    picked[case] = S.split_candidates(M, N, K, SMS)
    print(f"{case}: split-K candidates {picked[case]}")
# the forward shapes already have waves of tiles: no split; every weight gradient has one
assert all(not v for k, v in picked.items() if not k.startswith("dW")), picked
assert all(v for k, v in picked.items() if k.startswith("dW")), picked
# the weight gradients share one layout (a = X^T, b = dY) and K = 8192: every autotune config
# (with the bias gradient's partial row sums, ROWSUM, as GPT-2's biased Linears ask; without, the first)
for i, (kw, w, st) in enumerate(configs(S.AUTOTUNE_CONFIGS)):
    for rowsum in (False, True) if i == 0 else (True,):
        const = dict(DOT_PRECISION="tf32", UPCAST_DOT=False, INDEX_64=False, ROWSUM=rowsum,
                     EVEN_K=8192 % kw["BLOCK_K"] == 0, stride_am=1, stride_bn=1, **kw)
        sm90(S._matmul_splitk_partial_kernel, const,
             {"ws_ptr": "*fp32", "rs_ws_ptr": "*fp32", "a_ptr": "*bf16", "b_ptr": "*bf16"}, num_warps=w,
             num_stages=st, tag=f"dW bf16 {kw} w{w} s{st}{' rowsum' if rowsum else ''}")
sm90(S._matmul_splitk_partial_kernel,
     dict(DOT_PRECISION="tf32", UPCAST_DOT=False, INDEX_64=False, EVEN_K=False, ROWSUM=True, BLOCK_M=128,
          BLOCK_N=128, BLOCK_K=64, GROUP_M=8, stride_ak=1, stride_bn=1),
     {"ws_ptr": "*fp32", "rs_ws_ptr": "*fp32", "a_ptr": "*fp32", "b_ptr": "*fp32"}, num_warps=8, num_stages=3,
     tag="fp32 K tail rowsum")
bm, bn, w = S.REDUCE_BLOCKS
for dt, act, aux, rowsum in [("bf16", "gelu_tanh", "pre", False), ("bf16", "gelu_tanh", "grad", False),
                             ("fp32", "none", "none", False), ("bf16", "none", "none", True)]:
    sm90(S._matmul_splitk_reduce_kernel,
         dict(HAS_BIAS=aux != "grad", ACTIVATION=act, AUX=aux, INDEX_64=False, ROWSUM=rowsum, BLOCK_M=bm,
              BLOCK_N=bn, stride_cn=1),
         {"c_ptr": "*" + dt, "rowsum_ptr": "*" + dt, "ws_ptr": "*fp32", "rs_ws_ptr": "*fp32",
          "bias_ptr": "*" + dt, "aux_ptr": "*" + dt}, num_warps=w, tag=f"{dt} {act} {aux}{' rowsum' if rowsum else ''}")
done()
"""

FAMILIES = {
    "softmax": _SOFTMAX,
    "layernorm": _LAYERNORM,
    "cross_entropy": _CROSS_ENTROPY,
    "embedding": _EMBEDDING,
    "adamw": _ADAMW,
    "elementwise": _ELEMENTWISE,
    "copy": _COPY,
    "reduce": _REDUCE,
    "dropout": _DROPOUT,
    "matmul_persistent": _MATMUL_SHAPES + _MATMUL_PERSISTENT,
    "matmul_splitk": _MATMUL_SHAPES + _MATMUL_SPLITK,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_compiles_for_sm90(family):
    check_compiles_for_sm90(_HELPER + _FLOATS + FAMILIES[family])

