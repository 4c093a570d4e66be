"""The training benchmarks on the CPU at tiny sizes: the torch baseline is our GPT, the scripts run.

- benchmarks/torch_baseline.py (the fast nanoGPT-style model the GPU benchmarks time us
  against) gives our GPT's logits, loss and gradients from the same weights, over several
  option combinations: that is the baseline's own correctness check.
- benchmarks/bench_train.py (one step, ours vs torch eager) runs every case with --tiny,
  checks the first-step losses agree and returns rows with docs/DESIGN.md's fields.
- benchmarks/bench_train_run.py (a whole run) trains ours (train.py) and torch with the same
  recipe: both learn, and they follow the same curve (same weights, batches, schedule, groups).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minigrad  # noqa: E402
from benchmarks import bench_train, bench_train_run  # noqa: E402
from benchmarks.torch_baseline import TorchGPT, copy_from_minigrad, host_weights  # noqa: E402
from minigrad.models.gpt import GPT, GPTConfig  # noqa: E402

SCHEMA = ("benchmark", "case", "dtype", "device", "ours_ms", "baseline", "baseline_ms", "ratio",
          "versions", "git_sha", "date", "tokens_per_s", "mfu", "peak_mem_gb")

OPTIONS = [
    dict(bias=True, activation="gelu", tie_weights=True, pad_vocab_multiple=64, dropout=0.1),
    dict(bias=False, qkv_bias=True, activation="swiglu", tie_weights=False, norm="rmsnorm"),
    dict(bias=False, activation="gelu_exact", tie_weights=True, pad_vocab_multiple=8),
    dict(bias=True, activation="silu", tie_weights=False, pad_vocab_multiple=1),
]


def _half_unit(value: float, digits: int) -> float:
    """Half a unit in the last place of `value` written with `digits` significant digits: the
    most that benchmarks.common.round_sig can have moved it."""
    return 0.5 * 10 ** (math.floor(math.log10(abs(value))) - digits + 1)


def assert_rounded_ratio(ratio, num, den, digits=4, num_err=0.0, den_err=0.0):
    """`ratio` is num/den rounded to `digits` significant digits, where num and den are the
    stored (rounded) figures with absolute errors num_err, den_err. Machine load changes the
    timings, never this bound, so the check cannot flake (a fixed relative tolerance did, for
    small ratios rounded to 4 decimals)."""
    exact = num / den
    propagated = exact * (num_err / num + den_err / den)
    assert abs(ratio - exact) <= _half_unit(exact, digits) * 1.0001 + propagated, (ratio, num, den)


def test_round_sig_keeps_relative_precision():
    from benchmarks.common import round_sig
    assert round_sig(0.000123456) == 0.0001235 and round_sig(123456.0) == 123500.0
    assert round_sig(12.34567) == 12.35 and round_sig(1.0) == 1.0
    for x in (0.0123456, 3.14159e-5, 987.654):                 # error within half a 4th digit
        assert abs(round_sig(x) - x) <= _half_unit(x, 4)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: o["activation"])
def test_torch_baseline_equals_our_gpt(options):
    """Same weights -> same logits, loss and gradients (float32, eval mode so dropout is off)."""
    cfg = GPTConfig(block_size=16, vocab_size=61, n_layer=2, n_head=2, n_embd=32, **options)
    minigrad.manual_seed(0)
    ours = GPT(cfg)
    theirs = TorchGPT(cfg)
    copy_from_minigrad(theirs, ours)
    ours.eval(), theirs.eval()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, cfg.vocab_size, size=(2, 2, 16))
    logits, loss = ours(x, y)
    tlogits, tloss = theirs(torch.from_numpy(x), torch.from_numpy(y))
    assert tuple(tlogits.shape) == (2, 16, cfg.vocab_size)           # sliced to the true vocab
    np.testing.assert_allclose(tlogits.detach().numpy(), logits.numpy(), rtol=1e-4, atol=1e-5)
    assert tloss.item() == pytest.approx(loss.item(), rel=1e-5)
    loss.backward()
    tloss.backward()
    grads = {n: p.grad.numpy() for n, p in ours.named_parameters()}
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name], rtol=1e-3, atol=1e-6, err_msg=name)


def test_copy_from_minigrad_refuses_a_different_model():
    a = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=16, bias=True))
    b = TorchGPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=16, bias=False))
    with pytest.raises(ValueError, match="parameter names differ"):
        copy_from_minigrad(b, a)
    c = TorchGPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=32, bias=True))
    with pytest.raises(ValueError, match="shape"):
        copy_from_minigrad(c, host_weights(a))


def test_bench_train_tiny_cpu(capsys):
    args = bench_train.parse_args(["--device=cpu", "--tiny", "--no_write", "--steps=2", "--warmup=1"])
    rows, crashed = bench_train.run(args)
    assert crashed == []
    assert [r["case"].split()[0] for r in rows] == list(bench_train.CASES)
    for r in rows:
        assert all(k in r for k in SCHEMA), [k for k in SCHEMA if k not in r]
        assert r["benchmark"] == "train_step_vs_eager" and r["baseline"] == "torch"
        assert r["dtype"] == "float32" and r["loss_check_ok"]
        assert abs(r["loss_ours"][0] - r["loss_torch"][0]) <= 1e-4          # identical weights
        assert abs(r["loss_ours"][1] - r["loss_torch"][1]) <= 1e-3          # after one clip + AdamW
        assert r["loss_ours"][1] < r["loss_ours"][0]
        assert r["ours_ms"] > 0 and r["baseline_ms"] > 0
        # ratio and tokens/s come from the unrounded times; ours_ms/baseline_ms are stored to
        # 5 decimals (error <= 5e-6 ms), ratio to 4 and tokens/s to 6 significant digits
        assert_rounded_ratio(r["ratio"], r["baseline_ms"], r["ours_ms"], 4, 5e-6, 5e-6)
        tokens = r["batch_size"] * r["block_size"]
        assert_rounded_ratio(r["tokens_per_s"], tokens * 1000, r["ours_ms"], 6, 0.0, 5e-6)
        assert r["flops_per_token"] == 6 * r["params"] + 6 * 2 * 64 * r["block_size"]
        assert r["mfu"] is None and r["peak_mem_gb"] is None                 # no GPU: not measured
    out = capsys.readouterr().out
    assert "check step 0" in out and "| case | impl | ms/step" in out
    failed = dict(rows[0], baseline="torch.compile", baseline_ms=None, ratio=None,
                  baseline_tokens_per_s=None, baseline_mfu=None, baseline_peak_mem_gb=None)
    assert "| torch.compile | n/a |" in bench_train.markdown([rows[0], failed])


@pytest.fixture
def small_text(shared_data, tmp_path):
    path = shared_data / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    p = tmp_path / "small.txt"
    p.write_text(path.read_text(encoding="utf-8")[:120_000], encoding="utf-8")
    return p


def test_bench_train_run_ours_and_torch_follow_the_same_curve(small_text, tmp_path, capsys):
    settings = [f"--data={small_text}", f"--data_cache={tmp_path / 'cache'}", "--device=cpu",
                "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
                "--max_iters=20", "--eval_interval=10", "--eval_iters=2", "--learning_rate=1e-2",
                "--warmup_iters=2", "--grad_accum_steps=2"]
    rows = {impl: bench_train_run.run(impl, settings) for impl in ("ours", "torch")}
    for impl, r in rows.items():
        assert all(k in r for k in SCHEMA[:11]), impl
        assert r["iters"] == 20 and [s for s, _ in r["val_losses"]] == [0, 10, 20]
        vals = [v for _, v in r["val_losses"]]
        assert all(math.isfinite(v) for v in vals)
        assert vals[-1] < vals[0] - 0.5, (impl, vals)                      # it learns
        assert r["wall_s"] >= r["train_s"] > 0 and r["tokens_per_s"] > 0
    ours, theirs = rows["ours"], rows["torch"]
    assert ours["ckpt_saves"] >= 2 and ours["wall_s_without_ckpt"] <= ours["wall_s"]
    # the same recipe: equal weights, batches, schedule and groups give the same curve
    np.testing.assert_allclose([v for _, v in theirs["val_losses"]], [v for _, v in ours["val_losses"]],
                               atol=2e-3)
    paired = bench_train_run.pair(theirs, ours)
    assert paired["ours_ms"] == ours["ours_ms"]
    assert_rounded_ratio(paired["ratio"], theirs["baseline_ms"], ours["ours_ms"])   # from the stored ms
    assert bench_train_run.main(["--impl=torch", "--no_write", *settings, "--max_iters=2"]) == 0
    assert "| run | device | iters | wall s" in capsys.readouterr().out
