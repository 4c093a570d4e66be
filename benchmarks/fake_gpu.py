"""A stub CUDA driver for Triton: compile and "launch" kernels for an H100 without a GPU.

Why: an eager engine pays host time for every op (Python dispatch, our wrappers, Triton's
launch path, a torch allocation). To measure that host time on a machine with no GPU, we let
the kernel launchers take their *real* GPU path (TRITON_INTERPRET unset or 0) against a driver
that says "one H100, sm_90". Everything Triton does on the host runs for real: argument
binding and specialisation, the kernel-cache lookup, the autotuner (every config is compiled
to a cubin with ptxas, as on the GPU), the grid lambda. Only the two calls that need a device
are no-ops: loading the cubin (`utils.load_binary`) and launching it (the launcher, which here
counts launches and checks the grid against CUDA's limits). Storage is CPU torch memory, so
kernels "run" on garbage: nothing a kernel writes can be read back.

What it does not do: run anything, time anything on a device, or stand in for the real
`cuLaunchKernel` (a few microseconds each, not counted here, so a step measured on this stub is
a lower bound on the host time of a real step). Autotuning "benchmarks" return 1.0 for every
config, so the autotuner keeps its first config that compiles and fits.

Relies on Triton internals (tested on triton 3.6.0 and 3.9.0): `triton.runtime.driver`
(set_active and its private `_active`), the driver protocol that `JITFunction.run`,
`CompiledKernel._init_handles` and `Autotuner` use (get_current_target / _device / _stream,
launcher_cls(src, metadata) called with (gx, gy, gz, stream, function, packed_metadata, ...),
utils.load_binary / get_device_properties / unload_module, get_benchmarker) and
`triton.backends.compiler.GPUTarget`, `triton.compiler.compiler.CompiledKernel` (module,
function, _run: reset on uninstall). `install()` compiles and launches a one-line kernel as a
self-test and raises FakeGPUUnavailable with the reason if any of that moved.

Use it only in a process that has no real GPU and is meant for it (the host-overhead benchmark,
or a subprocess of a test): kernels compiled under the stub stay in Triton's caches.

    from benchmarks import fake_gpu
    with fake_gpu.fake_gpu() as gpu:        # or gpu = fake_gpu.install()
        ...                                  # launch kernels; gpu.launches counts them
"""
from __future__ import annotations

import collections
import contextlib
import os
import types
from typing import Iterator

SM90_SHARED_MEM = 232448          # bytes of shared memory per block an H100 allows (opt-in max)
SM90_PROPERTIES = {"max_shared_mem": SM90_SHARED_MEM, "multiprocessor_count": 132,
                   "max_num_regs": 65536, "warpSize": 32, "sm_clock_rate": 1980000,
                   "mem_clock_rate": 2619000, "mem_bus_width": 5120}
TESTED_TRITON = ("3.6.0", "3.9.0")


class FakeGPUUnavailable(RuntimeError):
    """The stub cannot be installed here (no triton, a real GPU, the interpreter, or Triton's
    internals moved). The message says which."""


class GridError(RuntimeError):
    """A launch asked for a grid CUDA would refuse (x >= 2**31 or y, z > 65535)."""


class FakeGPU:
    """What install() returns: launch counts (total and per kernel name) and uninstall()."""

    def __init__(self):
        self.launches = 0
        self.by_kernel: collections.Counter = collections.Counter()
        self._previous_driver = None
        self._previous_props = None
        self._previous_current = None
        self._previous_do_bench = None

    def _launcher(self, src, metadata):
        """Stands in for the driver's launcher class: called once per compiled kernel; returns
        the function Triton calls on every launch."""
        name = getattr(metadata, "name", None) or getattr(getattr(src, "fn", None), "__name__", "?")
        by_kernel = self.by_kernel

        def launch(gx, gy, gz, *rest):
            if not (0 < gx < 2 ** 31 and 0 < gy <= 65535 and 0 < gz <= 65535):
                raise GridError(f"{name}: grid ({gx}, {gy}, {gz}) exceeds CUDA's limits")
            self.launches += 1
            by_kernel[name] += 1
        return launch

    def uninstall(self) -> None:
        """Give Triton back the driver it had and torch its get_device_properties (kernels
        compiled meanwhile stay in Triton's caches)."""
        import gc

        import torch
        from triton.compiler.compiler import CompiledKernel
        from triton.runtime import driver
        # Kernels loaded "by" the stub forget their fake handles, so a real driver loads them anew.
        # (type(), not isinstance(): isinstance reads __class__, which warns on some torch proxies.)
        for obj in gc.get_objects():
            if type(obj) is CompiledKernel and obj.module is _FAKE_MODULE:
                obj.module, obj.function, obj._run = None, None, None
        driver._active = self._previous_driver
        if self._previous_props is not None:
            torch.cuda.get_device_properties = self._previous_props
            torch.cuda.current_device = self._previous_current
        if self._previous_do_bench is not None:
            import triton.testing
            triton.testing.do_bench = self._previous_do_bench


_FAKE_MODULE = object()            # stands for every loaded cubin module


class _Utils:
    """The part of the driver that talks to the device: nothing to talk to."""

    def get_device_properties(self, device):
        return dict(SM90_PROPERTIES)

    def load_binary(self, name, kernel, shared, device):
        from triton.runtime.errors import OutOfResources
        if not kernel:
            raise RuntimeError(f"{name}: empty cubin")
        if shared > SM90_SHARED_MEM:
            raise OutOfResources(shared, SM90_SHARED_MEM, "shared memory")
        # (module, function, n_regs, n_spills, max threads per block). The module must not be
        # None: Triton re-runs _init_handles on every launch until it is set (3.9 calls it from
        # launch_metadata each time, a cheap early return on a real GPU).
        return _FAKE_MODULE, object(), 64, 0, 1024

    def unload_module(self, module):
        pass


def _constant_benchmark(fn, quantiles=None, **kwargs):
    """The autotuner's timer: run the candidate once (it compiles), call every config equal."""
    fn()
    return [1.0] * len(quantiles) if quantiles else 1.0


def _make_driver(gpu: FakeGPU):
    import torch
    from triton.backends.compiler import GPUTarget

    class FakeH100Driver:
        utils = _Utils()
        launcher_cls = staticmethod(gpu._launcher)

        def is_active(self):
            return True

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_current_device(self):
            return 0

        def set_current_device(self, device):
            pass

        def get_current_stream(self, device=None):
            return 0

        def get_device_capability(self, device=None):
            return (9, 0)

        def get_active_torch_device(self):
            return torch.device("cpu")          # storage lives in host memory

        def get_device_interface(self):
            return torch.cuda

        def get_benchmarker(self):
            return _constant_benchmark

        def map_python_to_cpp_type(self, ty):
            return ty

        def get_empty_cache_for_benchmark(self):
            return torch.empty(1)

        def clear_cache(self, cache):
            pass

    return FakeH100Driver()


def _check_environment() -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise FakeGPUUnavailable("TRITON_INTERPRET=1: kernels run in Triton's interpreter, which "
                                 "never calls a driver; run with TRITON_INTERPRET=0")
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as e:
        raise FakeGPUUnavailable(f"needs torch and triton ({e})") from e
    if torch.cuda.is_available():
        raise FakeGPUUnavailable("a real CUDA GPU is present: measure on it (benchmarks/"
                                 "bench_train.py) instead of on a stub")


def _self_test(gpu: FakeGPU) -> None:
    """Compile (for sm_90) and launch one tiny kernel through the normal path; the launch must
    reach our launcher exactly once."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def _fake_gpu_probe_kernel(out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(out_ptr + offs, offs, mask=offs < n)

    before = gpu.launches
    _fake_gpu_probe_kernel[(1,)](torch.empty(16, dtype=torch.int32), 16, BLOCK=16)
    if gpu.launches != before + 1:
        raise RuntimeError(f"the probe launch reached the stub {gpu.launches - before} times, not once")
    gpu.launches = before
    gpu.by_kernel.clear()


def install() -> FakeGPU:
    """Make Triton compile for and "launch" on a fake H100; torch.cuda.get_device_properties
    reports its 132 SMs (kernels size grids from it) and current_device() device 0. Raises FakeGPUUnavailable (with the reason)
    where that is impossible or Triton's internals moved."""
    _check_environment()
    import torch
    import triton
    gpu = FakeGPU()
    try:
        from triton.runtime import driver
        gpu._previous_driver = driver._active
        driver.set_active(_make_driver(gpu))
    except Exception as e:
        raise FakeGPUUnavailable(f"cannot replace Triton {triton.__version__}'s driver ({type(e).__name__}: "
                                 f"{e}); tested on triton {', '.join(TESTED_TRITON)}") from e
    props = types.SimpleNamespace(multi_processor_count=SM90_PROPERTIES["multiprocessor_count"],
                                  name="fake H100 (benchmarks/fake_gpu.py)", major=9, minor=0,
                                  total_memory=80 * 2 ** 30)
    gpu._previous_props = torch.cuda.get_device_properties
    gpu._previous_current = torch.cuda.current_device
    torch.cuda.get_device_properties = lambda *a, **k: props
    torch.cuda.current_device = lambda: 0          # launchers ask which device to query
    # code that times candidates with triton.testing.do_bench directly (not through the driver's
    # benchmarker) gets the same constant timer
    import triton.testing
    gpu._previous_do_bench = triton.testing.do_bench
    triton.testing.do_bench = _constant_benchmark
    try:
        _self_test(gpu)
    except Exception as e:
        gpu.uninstall()
        raise FakeGPUUnavailable(
            f"Triton {triton.__version__}'s launch path no longer fits the stub ({type(e).__name__}: "
            f"{str(e)[:300]}); benchmarks/fake_gpu.py was tested on triton {', '.join(TESTED_TRITON)}"
        ) from e
    return gpu


@contextlib.contextmanager
def fake_gpu() -> Iterator[FakeGPU]:
    """install() for the duration of a with-block, then restore Triton's driver and torch's
    get_device_properties."""
    gpu = install()
    try:
        yield gpu
    finally:
        gpu.uninstall()

