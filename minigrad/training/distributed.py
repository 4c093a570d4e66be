"""Data-parallel training on torch.distributed: one process per device, gradients averaged.

`torchrun --nproc_per_node=N train.py ...` starts N copies of train.py with RANK, LOCAL_RANK
and WORLD_SIZE in their environment; `setup_distributed` reads them and returns a
`Distributed` handle. Without torchrun it returns a world of one whose every method is a no-op
and which never imports torch, so a plain `python train.py` is exactly what it was.

torch.distributed is used for communication only; every computation on data stays minigrad's:

- **init**: `init_process_group` with a timeout (`--dist_timeout`): gloo on device cpu, NCCL on
  cuda (each process on GPU `cuda:LOCAL_RANK`).
- **broadcast** of the parameters from rank 0 at the start (identical init by seed makes them
  equal already; the broadcast is the guarantee).
- **bucketed all-reduce of the gradients** (`GradientReducer`): the parameters are grouped into
  a few flat buckets of one dtype (~25 MB each, like torch DDP); each bucket is one flat
  buffer and one all-reduce, not one per parameter. On cpu the buffer is a NumPy array handed
  to gloo through `torch.from_numpy` (shared memory, no copy); on cuda it is the Triton
  backend's own torch storage. The gradients are *copied into* the flat buffer with the
  backend's `copy_` (NumPy's copyto or our Triton copy kernel) and, once reduced, each
  parameter's `.grad` becomes a *view* of the buffer (no copy back).
  Why copy in rather than make the gradients live in the buckets from the start: the engine
  rebinds `.grad` to a fresh array at each accumulation (`grad = grad + g`, out of place, in
  both backends), so a preassigned view would be replaced by the first backward. Keeping
  gradients in place would need an in-place add in the backend interface; one copy per
  bucket per step (bandwidth-bound, small next to backward) is the price of not changing it.
- **overlap**: each parameter gets a post-accumulate-grad hook (minigrad/autograd.py); during
  the last micro-step's backward, a bucket whose gradients are all final is copied and its
  all-reduce launched asynchronously (`async_op=True`) while backward goes on with the rest.
  Buckets are filled from the last parameter to the first (the order backward finishes them)
  and launched strictly in bucket order, so every rank issues the same collectives in the same
  order. On cuda, NCCL's stream waits for the copy and the compute stream waits for NCCL.
- **averaging**: `ReduceOp.AVG` where the backend supports it (NCCL; gloo in recent torch:
  probed once at startup), else SUM followed by one multiply by 1/world with the backend's
  own elementwise op (never torch math).
- **all-reduce of scalars** (eval and training losses) and **barriers**.

A collective that fails (a peer closed its connection because it crashed, or did not answer
within the timeout because it hangs) raises `DistributedError`, which says which rank, what
it was doing and which setting holds the timeout; train.py exits with it instead of hanging.

How the data is split (so that N ranks with batch B equal one rank with batch N*B): every rank
keeps the same data RNG, draws the *global* batch of N*B windows each micro-step, and trains on
its own rows [rank*B, (rank+1)*B) (`local_rows`). The ranks therefore see different data, the
data RNG state is the same on every rank, and a checkpoint (written by rank 0) is rank-agnostic:
it resumes on any number of ranks, continuing the same curve when batch_size * ranks is kept.
Dropout masks differ per rank, and a resumed run must draw the very masks the uninterrupted run
would have, on every rank. A rank's generator state is its own, and rank 0 writes the checkpoint
alone; rather than gathering every rank's state into it, each rank reseeds minigrad's generator
before every step from (seed, step, rank) alone (`seed_dropout_for_step`), so there is nothing
per rank to save: a resume on as many ranks repeats the uninterrupted run bit for bit.

What it deliberately does not do: sharded optimizer state (ZeRO/FSDP), tensor or pipeline
parallelism, elastic membership changes (a lost rank ends the run; resume from the checkpoint).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

import minigrad
from minigrad.autograd import register_post_accumulate_grad_hook
from minigrad.tensor import Tensor

BUCKET_CAP_BYTES = 25 * 2 ** 20          # torch DDP's default bucket size


class DistributedError(RuntimeError):
    """A collective failed: another rank crashed or stalled past the process group timeout."""


def torchrun_env() -> Optional[tuple[int, int, int]]:
    """(rank, local_rank, world_size) from torchrun's environment, or None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         f"{os.environ.get('RANK')!r}, {os.environ.get('WORLD_SIZE')!r}, "
                         f"{os.environ.get('LOCAL_RANK')!r}") from None
    if not 0 <= rank < world:
        raise ValueError(f"expected 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return rank, local_rank, world


def is_main_rank() -> bool:
    """True outside torchrun and on its rank 0: the process that writes checkpoints and logs."""
    env = torchrun_env()
    return env is None or env[0] == 0


# ---------------------------------------------------------------------------------------------
# the process group


@dataclass
class Distributed:
    """This process's place in the job. A world of one (`Distributed()`) does nothing at all."""
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    timeout_s: float = 0.0
    backend: str = ""                    # "gloo", "nccl" or "" (a world of one)
    supports_avg: bool = False           # ReduceOp.AVG works with this backend
    _stdout: Any = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, logs, samples and writes checkpoints."""
        return self.rank == 0

    # ---- communication, each wrapped so that a dead or stalled peer gives a clear error
    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as err:      # torch's DistBackendError is a RuntimeError
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed: {err}. Another rank has "
                f"probably crashed or stalled (its own output says why); ranks wait at most "
                f"--dist_timeout={self.timeout_s:g} s for each other.") from err

    def _as_torch(self, array) -> Any:
        """A torch tensor sharing `array`'s memory: torch.from_numpy on cpu, the storage on cuda."""
        import torch
        return torch.from_numpy(array) if isinstance(array, np.ndarray) else array

    def all_reduce(self, array, average: bool, async_op: bool = False, what: str = "all-reduce"):
        """Sum (or average when the backend can) `array` in place across ranks; a work handle
        when `async_op`. The caller divides by world_size when `average` is asked of a backend
        without AVG (`supports_avg` is False)."""
        import torch.distributed as dist
        op = dist.ReduceOp.AVG if average and self.supports_avg else dist.ReduceOp.SUM
        with self._collective(what):
            return dist.all_reduce(self._as_torch(array), op=op, async_op=async_op)

    def wait(self, work, what: str) -> None:
        with self._collective(what):
            work.wait()

    def barrier(self, what: str = "barrier") -> None:
        if self.world_size > 1:
            import torch.distributed as dist
            with self._collective(what):
                dist.barrier()

    def mean(self, values: Sequence[float]) -> float:
        """The mean of `values` gathered from every rank (each rank may pass its own list)."""
        if self.world_size == 1:
            return float(np.mean(values))
        import torch
        local = torch.tensor([float(np.sum(values)), float(len(values))], dtype=torch.float64,
                             device="cuda" if self.backend == "nccl" else "cpu")
        import torch.distributed as dist
        with self._collective("averaging a loss across ranks"):
            dist.all_reduce(local, op=dist.ReduceOp.SUM)
        total, count = local.tolist()
        return total / count

    def agree_on_stop(self, signum: int) -> int:
        """The stop signal any rank received (this rank's `signum`, 0 for none), the same number on
        every rank. Ctrl-C reaches the ranks at different steps, and SIGTERM may reach one rank
        only; deciding together keeps them stopping at the same step (a rank that left the loop
        alone would leave the others waiting in the next all-reduce until the timeout) and
        exiting with the same code, 128 + the signal, also on ranks that got none. SIGTERM (15)
        outranks Ctrl-C (2) when both arrive: the larger number wins."""
        if self.world_size == 1:
            return int(signum)
        import torch
        import torch.distributed as dist
        local = torch.tensor([float(signum)], dtype=torch.float64,
                             device="cuda" if self.backend == "nccl" else "cpu")
        with self._collective("agreeing on a stop request across ranks"):
            dist.all_reduce(local, op=dist.ReduceOp.MAX)
        return int(local.item())

    def broadcast_parameters(self, params: Iterable[Tensor]) -> None:
        """Give every rank rank 0's parameter values (in place)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist
        for p in params:
            t = self._as_torch(p.data)
            if not t.is_contiguous():
                raise ValueError(f"broadcast_parameters: expected contiguous parameters, got shape "
                                 f"{tuple(t.shape)} with strides {tuple(t.stride())}")
            with self._collective("broadcasting rank 0's initial weights"):
                dist.broadcast(t, src=0)

    # ---- data
    def local_rows(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """This rank's rows of global-batch arrays: rows [rank*B, (rank+1)*B) of (world*B, ...)."""
        out = []
        for a in arrays:
            if len(a) % self.world_size:
                raise ValueError(f"local_rows: expected a global batch divisible by {self.world_size} "
                                 f"ranks, got {len(a)} rows")
            b = len(a) // self.world_size
            out.append(a[self.rank * b:(self.rank + 1) * b])
        return tuple(out)

    @contextlib.contextmanager
    def local_rank0_first(self) -> Iterator[None]:
        """Local rank 0 runs the body first (e.g. tokenising into the cache), the other ranks on
        the same machine after it (reading the cache). Every rank passes one barrier."""
        if self.local_rank != 0:
            self.barrier("waiting for local rank 0 to prepare the data")
        yield
        if self.local_rank == 0:
            self.barrier("waiting for the other ranks after preparing the data")

    def seed_dropout_for_step(self, seed: int, step: int) -> None:
        """Before optimizer step `step`, on every rank of a job of several: seed minigrad's
        generator (dropout's mask seeds) from (seed, step, rank). Each rank draws masks of its
        own, and they depend on nothing a checkpoint would have to hold per rank, so a run
        resumed at any step on as many ranks draws exactly the uninterrupted run's masks.
        (A run resumed on another number of ranks trains on other row splits, so its masks
        differ anyway.) A world of one keeps its single stream, which the checkpoint saves."""
        if self.world_size > 1:
            minigrad.manual_seed([seed, step, self.rank])

    def gradient_reducer(self, params: Iterable[Tensor], bucket_cap_bytes: int = BUCKET_CAP_BYTES
                         ) -> "GradientReducer":
        return GradientReducer(list(params), self, bucket_cap_bytes)

    def close(self) -> None:
        """Leave the process group and give ranks > 0 their stdout back."""
        if self._stdout is not None:
            sys.stdout.close()
            sys.stdout, self._stdout = self._stdout, None
        if self.world_size > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


def setup_distributed(device: str, timeout_s: float) -> Distributed:
    """Join the torchrun job this process belongs to (a world of one outside torchrun).

    `device` is "cpu" (gloo) or "cuda" (NCCL; this process uses GPU LOCAL_RANK). Ranks > 0 get
    a silent stdout (errors still reach stderr): only rank 0 prints.
    """
    env = torchrun_env()
    if env is None or env[2] == 1:
        return Distributed()
    rank, local_rank, world = env
    if timeout_s <= 0:
        raise ValueError(f"--dist_timeout must be a positive number of seconds, got {timeout_s}")
    import torch
    import torch.distributed as dist
    kwargs: dict[str, Any] = {}
    if device == "cuda" and torch.cuda.is_available():
        backend = "nccl"
        torch.cuda.set_device(local_rank)       # minigrad's "cuda" is torch's current device
        kwargs["device_id"] = torch.device("cuda", local_rank)
        # tear the process down when a collective times out, rather than leaving it stuck
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    else:
        backend = "gloo"                        # cpu, and cuda under TRITON_INTERPRET (cpu storage)
    ddp = Distributed(rank, local_rank, world, timeout_s, backend)
    with ddp._collective(f"joining the {backend} process group"):
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    ddp.supports_avg = _probe_avg(ddp)
    if rank > 0:
        ddp._stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
    return ddp


def _probe_avg(ddp: Distributed) -> bool:
    """Whether ReduceOp.AVG works here (NCCL: yes; gloo: in recent torch only). Every rank runs
    the same torch build, so every rank gets the same answer."""
    if ddp.backend == "nccl":
        return True
    import torch
    import torch.distributed as dist
    try:
        dist.all_reduce(torch.ones(1), op=dist.ReduceOp.AVG)
        return True
    except (ValueError, RuntimeError):
        return False


# ---------------------------------------------------------------------------------------------
# gradient buckets


def assign_buckets(nbytes: Sequence[int], dtypes: Sequence[str], cap_bytes: int) -> list[list[int]]:
    """Group parameters (by index) into buckets of one dtype and at most `cap_bytes` each
    (a single larger parameter gets a bucket of its own).

    Filled from the last parameter to the first: backward finishes the last layers first, so
    bucket 0 is complete first and can be reduced while backward goes on.
    """
    if len(nbytes) != len(dtypes):
        raise ValueError(f"assign_buckets: {len(nbytes)} sizes but {len(dtypes)} dtypes")
    buckets: list[list[int]] = []
    size, dtype = 0, None
    for i in reversed(range(len(nbytes))):
        if not buckets or dtypes[i] != dtype or size + nbytes[i] > cap_bytes:
            buckets.append([])
            size, dtype = 0, dtypes[i]
        buckets[-1].append(i)
        size += nbytes[i]
    return buckets


class _Bucket:
    """Some parameters of one dtype, their flat buffer and a view of it per parameter."""

    def __init__(self, params: list[Tensor]):
        self.params = params
        self.backend = b = params[0].backend
        self.dtype = params[0].dtype
        self.numel = sum(p.numel() for p in params)
        self.flat = b.empty((self.numel,), self.dtype)           # (numel,) persistent buffer
        self.views = _views(self.flat, params)
        self.ready = 0                   # gradients final in this backward
        self.work = None                 # the in-flight all-reduce


def _views(flat, params: Sequence[Tensor]) -> list:
    """Views of the flat (numel,) buffer `flat` shaped like each parameter, back to back."""
    b, out, off = params[0].backend, [], 0
    for p in params:
        n = p.numel()
        out.append(b.reshape(b.slice(flat, (slice(off, off + n),)), p.shape))
        off += n
    return out


class GradientReducer:
    """Averages `.grad` of `params` across ranks, one flat all-reduce per bucket.

    Use per optimizer step:

        for micro in range(grad_accum_steps):
            reducer.overlap_backward(micro == grad_accum_steps - 1)
            loss.backward()              # the last one launches bucket all-reduces as it goes
        reducer.average()                # wait; every rank's .grad is now the mean over ranks

    On a world of one both calls do nothing (no hooks are registered).
    """

    def __init__(self, params: list[Tensor], ddp: Distributed, bucket_cap_bytes: int = BUCKET_CAP_BYTES):
        self.ddp = ddp
        self.armed = False
        self.buckets: list[_Bucket] = []
        if ddp.world_size == 1:
            return
        params = [p for p in params if p.requires_grad]
        nbytes = [p.numel() * (2 if p.dtype in ("bfloat16", "float16") else np.dtype(p.dtype).itemsize)
                  for p in params]
        groups = assign_buckets(nbytes, [p.dtype for p in params], bucket_cap_bytes)
        self.buckets = [_Bucket([params[i] for i in g]) for g in groups]
        self._next = 0                   # the next bucket to launch (strictly in order)
        for k, bucket in enumerate(self.buckets):
            for p in bucket.params:
                register_post_accumulate_grad_hook(p, self._hook(k))

    def _hook(self, k: int) -> Callable[[Tensor], None]:
        def on_grad_final(_p: Tensor) -> None:
            if self.armed:
                self.buckets[k].ready += 1
                self._launch_ready()
        return on_grad_final

    def overlap_backward(self, armed: bool) -> None:
        """Whether the next backward launches the all-reduces (True on the last micro-step)."""
        self.armed = armed and bool(self.buckets)

    def _launch_ready(self) -> None:
        while self._next < len(self.buckets):
            bucket = self.buckets[self._next]
            if bucket.ready < len(bucket.params):
                return
            self._launch(self._next)
            self._next += 1

    def _launch(self, k: int) -> None:
        bucket = self.buckets[k]
        b = bucket.backend
        for p, view in zip(bucket.params, bucket.views):
            if p.grad is None:           # unused in this step: contributes zeros
                b.copy_(view, b.full(p.shape, 0, bucket.dtype))
            else:
                b.copy_(view, p.grad.data)
        bucket.work = self.ddp.all_reduce(bucket.flat, average=True, async_op=True,
                                          what=f"all-reduce of gradient bucket {k}")

    def average(self) -> None:
        """Launch what backward did not, wait for every bucket, make each .grad the rank mean."""
        if not self.buckets:
            return
        for k in range(self._next, len(self.buckets)):
            self._launch(k)
        for k, bucket in enumerate(self.buckets):
            self.ddp.wait(bucket.work, f"all-reduce of gradient bucket {k}")
            b, views = bucket.backend, bucket.views
            if not self.ddp.supports_avg:            # SUM, then one multiply by our backend
                views = _views(b.binary("mul", bucket.flat, 1.0 / self.ddp.world_size), bucket.params)
            for p, view in zip(bucket.params, views):
                p.grad = Tensor._wrap(view, b)       # a view of the reduced buffer: no copy back
            bucket.ready, bucket.work = 0, None
        self._next = 0
        self.armed = False
