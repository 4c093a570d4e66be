"""The run-time switches and caches a GPU's first run depends on (issue 18 items 4-6), on the CPU.

- MINIGRAD_AUTOTUNE=0: every tuned family launches its fixed config (no candidate timing, one
  compile per kernel variant), read at launch time.
- MINIGRAD_TF32 / ALLOW_TF32: float32 tl.dot is IEEE unless asked (matmul and attention).
- launch_tuned's cross-process cache (helpers.TuneCache): the second process reads the pick
  instead of running the autotuner; a kernel or config-list change makes a new key.
- attention's tuning key: sequence lengths bucketed to powers of two, short queries never tuned.
- the AUX-epilogue config filter of the matmul autotuners.
- fast/triton_ops.py's CUDA graph restores the caller's stream when a capture fails.
"""
from __future__ import annotations

import json
import types

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import triton  # noqa: E402

from minigrad.kernels import attention as A  # noqa: E402
from minigrad.kernels import helpers as H  # noqa: E402
from minigrad.kernels import matmul as MM  # noqa: E402
from minigrad.kernels import matmul_auto as AUTO  # noqa: E402
from minigrad.kernels.matmul_tiles import prune_for_epilogue  # noqa: E402


def test_minigrad_autotune_0_means_fixed_configs(monkeypatch):
    monkeypatch.setattr(H, "interpreting", lambda: False)            # as on a GPU
    monkeypatch.setattr(MM, "AUTOTUNE", True)
    monkeypatch.setattr(A, "AUTOTUNE", True)
    monkeypatch.delenv("MINIGRAD_AUTOTUNE", raising=False)
    assert H.autotune_enabled() and MM.tile_config(torch.bfloat16) is None and A._use_autotune(1024)
    monkeypatch.setenv("MINIGRAD_AUTOTUNE", "0")
    assert not H.autotune_enabled()
    assert MM.tile_config(torch.bfloat16) == MM._fixed_config(torch.bfloat16)
    assert not A._use_autotune(1024)
    key = AUTO._plan_key(torch.empty(4, 8), torch.empty(8, 2), None, None, None, None, None, None, None)[0]
    monkeypatch.setenv("MINIGRAD_AUTOTUNE", "1")
    assert AUTO._plan_key(torch.empty(4, 8), torch.empty(8, 2), None, None, None, None, None, None,
                          None)[0] != key                          # a plan is per switch setting


def test_float32_dot_is_ieee_unless_tf32_is_allowed(monkeypatch):
    monkeypatch.delenv("MINIGRAD_TF32", raising=False)
    assert H.fp32_dot_precision(False) == "ieee" and H.fp32_dot_precision(True) == "tf32"
    monkeypatch.setenv("MINIGRAD_TF32", "1")
    assert H.fp32_dot_precision(False) == "tf32"
    monkeypatch.setenv("MINIGRAD_TF32", "0")
    monkeypatch.setattr(A, "interpreting", lambda: False)
    monkeypatch.setattr(A, "ALLOW_TF32", False)
    assert A._dot_mode(torch.float32) == "ieee" and A._dot_mode(torch.bfloat16) == "tf32"
    monkeypatch.setattr(A, "ALLOW_TF32", True)
    assert A._dot_mode(torch.float32) == "tf32"
    a = torch.empty(1, 1, 4, 8)
    meta = MM.epilogue_meta(a, a, a.transpose(-1, -2), None, None, "none")
    assert meta["DOT_PRECISION"] == "ieee"                               # MM.ALLOW_TF32 is False


class FakeTuner:
    """What launch_tuned needs of triton.autotune's wrapper: [grid](...) and best_config."""

    def __init__(self, name="_fake_kernel", configs=("a",)):
        self.base_fn = types.SimpleNamespace(__name__=name)
        self.configs, self.runs = list(configs), 0
        self.best_config = triton.Config({"BLOCK_M": 64}, num_warps=8, num_stages=3)

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            self.runs += 1
        return run


class FakeKernel:
    def __init__(self):
        self.launches = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append(kwargs)


def test_autotune_picks_survive_the_process(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGRAD_AUTOTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(H.TuneCache, "device_name", staticmethod(lambda: "Fake GPU 80GB"))
    for attr in ("TUNE_CACHE", "_TUNED", "TUNE_RUNS"):
        monkeypatch.setattr(H, attr, H.TuneCache() if attr == "TUNE_CACHE" else {})
    x = torch.empty(4)
    tuner, kernel = FakeTuner(), FakeKernel()
    assert H.launch_tuned(tuner, kernel, None, (x, 96), {"HAS_BIAS": True}) is None
    assert tuner.runs == 1 and H.TUNE_RUNS == {"_fake_kernel": 1}
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and "Fake_GPU_80GB" in files[0].name
    assert list(json.loads(files[0].read_text()).values()) == [{"BLOCK_M": 64, "num_warps": 8, "num_stages": 3}]
    # a new process: nothing in memory, a fresh cache object reading the same file
    monkeypatch.setattr(H, "_TUNED", {})
    monkeypatch.setattr(H, "TUNE_CACHE", H.TuneCache())
    tuner2 = FakeTuner()
    extra = H.launch_tuned(tuner2, kernel, None, (x, 96), {"HAS_BIAS": True})
    assert tuner2.runs == 0 and extra == {"BLOCK_M": 64, "num_warps": 8, "num_stages": 3}
    assert kernel.launches[-1]["BLOCK_M"] == 64 and kernel.launches[-1]["HAS_BIAS"] is True
    # another config list (or kernel source) is another kernel: tuned afresh
    tuner3 = FakeTuner(configs=("a", "b"))
    H.launch_tuned(tuner3, kernel, None, (x, 96), {"HAS_BIAS": True})
    assert tuner3.runs == 1
    monkeypatch.setenv("MINIGRAD_AUTOTUNE_CACHE", "off")                 # and the cache can be off
    assert H.TuneCache()._file() is None


def test_attention_tunes_per_power_of_two_bucket_and_never_short_queries(monkeypatch):
    monkeypatch.setattr(A, "autotune_enabled", lambda: True)
    monkeypatch.setattr(A, "AUTOTUNE", True)
    assert not any(A._use_autotune(T) for T in range(1, A.SHORT_QUERY + 1))
    assert A._use_autotune(A.SHORT_QUERY + 1)
    keys = {A._tune_key(T, S) for T in (17, 40, 64, 100) for S in range(T, 1025)}
    assert keys <= {(t, s) for t in (32, 64, 128) for s in (32, 64, 128, 256, 512, 1024)} and len(keys) < 20
    short = A._fixed_for("fwd", {"D_PAD": 64, "HAS_DROPOUT": False}, 2, 1)
    assert short["BLOCK_M"] == 16 or H.interpreting()


def test_aux_epilogues_time_only_tiles_that_do_not_spill():
    configs = MM._AUTOTUNE_CONFIGS
    kept = prune_for_epilogue(configs, {}, AUX="pre")
    assert 0 < len(kept) < len(configs)
    assert all(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 64 * 32 * c.num_warps for c in kept)
    assert not any(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] > 128 * 128 for c in kept)
    assert prune_for_epilogue(configs, {}, AUX="none") == configs


def test_failed_capture_gives_the_stream_back(monkeypatch):
    """torch.cuda.graph's __exit__ raises from capture_end before it restores the stream it made
    current; the capture must set the caller's stream again (fast/triton_ops.py _CudaGraph)."""
    from minigrad.fast import triton_ops
    current = ["default"]

    class Graph:                                   # torch.cuda.graph as it behaves on a failure
        def __init__(self, g):
            pass

        def __enter__(self):
            current[0] = "capture stream"

        def __exit__(self, *exc):
            raise RuntimeError("operation not permitted when stream is capturing")
    cuda = types.SimpleNamespace(CUDAGraph=lambda: None, graph=Graph, synchronize=lambda: None,
                                 current_stream=lambda: current[0],
                                 set_stream=lambda s: current.__setitem__(0, s))
    monkeypatch.setattr(triton_ops.torch, "cuda", cuda)
    graph = triton_ops._CudaGraph()
    with pytest.raises(RuntimeError, match="capturing"):
        graph.capture(lambda: None)
    assert current[0] == "default"
