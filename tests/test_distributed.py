"""Data-parallel training (minigrad/training/distributed.py) on CPU with gloo, in real processes.

- 2 ranks with batch B per rank give the losses of 1 rank with batch 2B, step for step;
- rank 0's checkpoint resumes on 1 rank and continues that same curve;
- a rank that dies, or hangs, makes the other exit with a clear error, not hang;
- only rank 0 writes checkpoints and logs (the other ranks run with an out_dir of their own,
  which must stay empty), also when Ctrl-C saves;
- a 2-rank run resumed with dropout repeats the uninterrupted run's losses bit for bit;
- Ctrl-C or SIGTERM on one rank, or SIGTERM to torchrun, stops every rank at one step, saved;
- the bucketing and the overlap, in-process with a stand-in for the other rank.

The multi-process runs use a tiny model on a small synthetic text; the reference runs are
in-process `train.main` calls. tests/distributed_worker.py is the process torchrun starts.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch.distributed")

import minigrad  # noqa: E402
import train  # noqa: E402
from minigrad import nn  # noqa: E402
from minigrad.training.distributed import Distributed, GradientReducer, assign_buckets  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "distributed_worker.py")
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--eval_iters=2",
        "--sample_tokens=0", "--plot=false", "--progress=false", "--log_interval=1000",
        "--warmup_iters=2", "--lr_decay_iters=30", "--learning_rate=1e-2", "--eval_interval=10"]
B = 4                                    # per-rank batch; the 1-rank reference uses 2 * B


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=REPO)
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """~20 kB of pseudo-words over 12 letters: enough windows, tokenised in milliseconds."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijkl"), size=rng.integers(2, 7))) for _ in range(200)]
    lines = [" ".join(rng.choice(words, size=8)) for _ in range(500)]
    path = tmp_path_factory.mktemp("text") / "words.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, text):
    """A 20-step 2-rank run (torchrun) and a 30-step 1-rank reference with twice the batch."""
    d = tmp_path_factory.mktemp("ddp")
    common = [f"--data={text}", f"--data_cache={d / 'cache'}", *TINY]
    ref = train.main([*common, f"--out_dir={d / 'one'}", f"--batch_size={2 * B}", "--max_iters=30"])
    two, stdout = _torchrun(d / "two.json", [*common, f"--out_dir={d / 'two'}", f"--batch_size={B}",
                                             "--max_iters=20"], "--separate_out_dir")
    return {"dir": d, "common": common, "ref": ref, "two": two, "stdout": stdout}


def _torchrun(summary, argv: list[str], *worker_opts: str) -> tuple[dict, str]:
    """train.main(argv) on 2 ranks under torchrun: (rank 0's summary, the job's stdout)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
           str(summary), *worker_opts, "--", *argv]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(summary.read_text()), r.stdout


def test_two_ranks_with_batch_b_match_one_rank_with_batch_2b(runs):
    ref, two = runs["ref"], runs["two"]
    got = [two["losses"][str(i)] for i in range(20)]
    want = [ref["losses"][i] for i in range(20)]
    assert got[-1] < got[0] - 0.05                           # it trained (ln 13 = 2.56 at the start)
    np.testing.assert_allclose(got, want, rtol=2e-5)         # float32 sums in another order
    # evals are averaged over ranks: the same numbers as the 1-rank eval of the same global batches
    for e2, e1 in zip(two["evals"], ref["evals"][:3]):
        assert e2["step"] == e1["step"]
        np.testing.assert_allclose([e2["train_loss"], e2["val_loss"]], [e1["train_loss"], e1["val_loss"]],
                                   rtol=2e-5)
    # the log is rank 0's alone, with the global token count (both ranks' batches)
    rows = [json.loads(x) for x in (runs["dir"] / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert rows[-1]["tokens"] == 20 * 2 * B * 16
    assert runs["stdout"].count("step 20:") == 1             # only rank 0 prints


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_only_rank_0_writes_checkpoints_and_logs(runs):
    """Rank 1 ran with its own out_dir (tests/distributed_worker.py --separate_out_dir): it made
    the folder (each rank checks it can write there) but wrote nothing in it."""
    d = runs["dir"]
    assert (d / "two.rank1").is_dir() and _files(d / "two.rank1") == []
    written = set(_files(d / "two"))
    assert {"ckpt_best.safetensors", "ckpt_last.safetensors", "log.csv", "log.jsonl"} <= written


def test_rank0_checkpoint_resumes_on_one_rank(runs):
    """Resume the 2-rank checkpoint on 1 rank with the same global batch: steps 20..29 follow
    the 1-rank reference run."""
    d, ref = runs["dir"], runs["ref"]
    resumed = train.main([f"--out_dir={d / 'two'}", f"--data_cache={d / 'cache'}", "--resume",
                          f"--batch_size={2 * B}", "--max_iters=30", "--plot=false", "--progress=false"])
    assert sorted(resumed["losses"]) == list(range(20, 30))
    np.testing.assert_allclose([resumed["losses"][i] for i in range(20, 30)],
                               [ref["losses"][i] for i in range(20, 30)], rtol=5e-5)


def test_two_rank_resume_with_dropout_repeats_the_uninterrupted_run_bit_for_bit(tmp_path, text):
    """Each rank draws its own dropout masks; a 2-rank run stopped at step 4 and resumed on 2
    ranks must draw the very masks of the uninterrupted run on every rank, so every loss after
    the resume (the step losses and the last eval) is equal to the last bit."""
    common = [f"--data={text}", f"--data_cache={tmp_path / 'cache'}", *TINY, f"--batch_size={B}",
              "--dropout=0.1", "--eval_interval=4"]
    straight, _ = _torchrun(tmp_path / "a.json", [*common, f"--out_dir={tmp_path / 'a'}", "--max_iters=8"])
    first, _ = _torchrun(tmp_path / "b.json", [*common, f"--out_dir={tmp_path / 'b'}", "--max_iters=4"])
    resumed, _ = _torchrun(tmp_path / "c.json", [f"--out_dir={tmp_path / 'b'}",
                                                 f"--data_cache={tmp_path / 'cache'}", "--resume", "--max_iters=8"])
    assert first["iters"] == 4 and sorted(resumed["losses"], key=int) == ["4", "5", "6", "7"]
    for i in range(4):
        assert first["losses"][str(i)] == straight["losses"][str(i)], i
    for i in range(4, 8):
        assert resumed["losses"][str(i)] == straight["losses"][str(i)], i
    assert resumed["evals"][-1]["step"] == straight["evals"][-1]["step"] == 8
    assert resumed["evals"][-1]["val_loss"] == straight["evals"][-1]["val_loss"]
    assert resumed["evals"][-1]["train_loss"] == straight["evals"][-1]["train_loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["exit", "hang"])
def test_a_lost_rank_stops_the_others_with_a_clear_error(tmp_path, text, mode):
    """Rank 1 exits (or hangs) at its 3rd step; rank 0 must exit on its own, with an error that
    names the failed collective and the timeout setting, well within the test's patience."""
    port, timeout_s = _free_port(), 3
    args = ["--", f"--data={text}", f"--data_cache={tmp_path / 'cache'}", f"--out_dir={tmp_path / 'o'}",
            *TINY, f"--batch_size={B}", "--max_iters=20", f"--dist_timeout={timeout_s}"]
    procs = []
    for rank in (0, 1):
        env = dict(_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, WORKER, "-", f"--fail={mode}:3", *args], cwd=REPO,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        t0 = time.time()
        out, err = procs[0].communicate(timeout=120)
        waited = time.time() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert procs[0].returncode == 1, out[-2000:] + err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: rank 0 of 2:") and "--dist_timeout=3" in last, err[-2000:]
    # a dead peer's socket closes at once; a silent one is caught by the timeout
    assert ("by peer" in last) if mode == "exit" else ("Timed out" in last), last
    assert waited < 90


@pytest.mark.parametrize("sig,code", [("sigint", 130), ("sigterm", 143)])
def test_a_stop_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path, text, sig, code):
    """Ctrl-C (SIGINT) or SIGTERM (a scheduler, a container stop, torchrun's shutdown) reaches
    ranks at different steps. Rank 1 alone gets it during its 3rd step: both ranks must agree to
    stop after that step, rank 0 saves ckpt_last at step 3, and both exit 128 + the signal (130,
    143), rank 0 too, which got no signal itself (without the agreement rank 0 would wait in the
    next all-reduce until the timeout)."""
    from minigrad.serialization import read_metadata
    port, out_dir = _free_port(), tmp_path / "o"
    args = ["--", f"--data={text}", f"--data_cache={tmp_path / 'cache'}", f"--out_dir={out_dir}",
            *TINY, f"--batch_size={B}", "--max_iters=20", "--dist_timeout=30"]
    procs = []
    for rank in (0, 1):
        env = dict(_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        cmd = [sys.executable, WORKER, "-", f"--fail={sig}:3", "--separate_out_dir", *args]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    for rank, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == code, f"rank {rank}: {out[-1500:]}{err[-1500:]}"
    assert int(read_metadata(out_dir / "ckpt_last.safetensors")["iter_num"]) == 3
    said = outs[0][1].strip().splitlines()                    # rank 0's stderr: the save and the resume command
    assert any(line.startswith(f"{'SIGTERM' if sig == 'sigterm' else 'interrupted'}: saved ")
               and line.endswith("at step 3; resume with:") for line in said), outs[0][1][-1500:]
    assert "rank 1: stopped at step 3 with the others" in outs[1][1] and "resume with" not in outs[1][1]
    assert _files(tmp_path / "o.rank1") == []                 # rank 1 saved nothing of its own


def test_sigterm_to_torchrun_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path, text):
    """torchrun's own shutdown: stopped with SIGTERM (a scheduler, `docker stop`), it sends SIGTERM
    to every rank and gives them 30 s. The ranks get it at moments of their own, agree on one
    step, and rank 0 saves ckpt_last there and prints the resume command (once); rank 1 says at which
    step it stopped."""
    import re
    from minigrad.serialization import read_metadata
    out_dir = tmp_path / "o"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER, "-",
           "--fail=stop_torchrun:3", "--", f"--data={text}", f"--data_cache={tmp_path / 'cache'}",
           f"--out_dir={out_dir}", *TINY, f"--batch_size={B}", "--max_iters=100000",
           "--eval_interval=100000", "--dist_timeout=30"]
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    steps = re.findall(r"^SIGTERM: saved \S+ at step (\d+); resume with:$", r.stderr, re.MULTILINE)
    steps += re.findall(r"^rank 1: stopped at step (\d+) with the others \(rank 0 saved the checkpoint\)$",
                        r.stderr, re.MULTILINE)
    assert len(steps) == 2 and steps[0] == steps[1], r.stderr[-3000:]
    assert int(steps[0]) >= 3
    assert int(read_metadata(out_dir / "ckpt_last.safetensors")["iter_num"]) == int(steps[0])


# ---------------------------------------------------------------------------------------------
# buckets and overlap, in one process: a stand-in for the other rank


class PeerAddsOne(Distributed):
    """Rank 0 of 2 whose peer's gradient is 1.0 everywhere: all-reduce(SUM) adds 1 in place."""

    def __init__(self, supports_avg: bool):
        super().__init__(rank=0, local_rank=0, world_size=2, timeout_s=1.0, backend="fake",
                         supports_avg=supports_avg)
        self.launched: list[int] = []          # id of each flat buffer, in launch order

    def all_reduce(self, array, average, async_op=False, what=""):
        self.launched.append(id(array))
        array += 1.0                            # NumPy in place, or the torch storage (a test may)
        if average and self.supports_avg:
            array /= 2.0
        return _Done()

    def wait(self, work, what):
        pass


class _Done:
    def wait(self):
        pass


def test_assign_buckets_covers_every_parameter_once_in_reverse_order():
    nbytes = [400, 400, 4000, 400, 400, 400, 40, 40]
    dtypes = ["float32"] * 6 + ["int8", "int8"]
    buckets = assign_buckets(nbytes, dtypes, cap_bytes=1000)
    flat = [i for b in buckets for i in b]
    assert sorted(flat) == list(range(8)) and flat == list(range(7, -1, -1))
    # by hand: [7, 6] int8 | [5, 4] (800 B; 1200 > cap) | [3] (+4000 > cap) | [2] alone (> cap) | [1, 0]
    assert buckets == [[7, 6], [5, 4], [3], [2], [1, 0]]
    for b in buckets:
        assert len({dtypes[i] for i in b}) == 1
        assert len(b) == 1 or sum(nbytes[i] for i in b) <= 1000


def _mlp_grads(device: str):
    minigrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    model.to(device)
    x = minigrad.tensor(np.random.default_rng(1).standard_normal((5, 4)), dtype="float32", device=device)
    return model, (lambda: (model(x) ** 2).mean().backward())


@pytest.mark.parametrize("device,supports_avg", [("cpu", True), ("cpu", False), ("cuda", False)])
def test_reducer_averages_every_gradient_into_views_of_few_flat_buckets(device, supports_avg):
    if device == "cuda":
        pytest.importorskip("triton")
    model, backward = _mlp_grads(device)
    params = list(model.parameters())
    backward()
    expected = [(p.grad.numpy() + 1.0) / 2.0 for p in params]         # the mean of ours and the peer's
    for p in params:
        p.zero_grad_()

    peer = PeerAddsOne(supports_avg)
    reducer = GradientReducer(params, peer, bucket_cap_bytes=200)       # several buckets
    assert 1 < len(reducer.buckets) < len(params)
    assert sorted(id(p) for b in reducer.buckets for p in b.params) == sorted(id(p) for p in params)
    reducer.overlap_backward(True)
    backward()
    # overlap: every bucket was launched during backward, in bucket order, before average()
    assert peer.launched == [id(b.flat) for b in reducer.buckets]
    reducer.average()
    for p, want in zip(params, expected):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6, atol=1e-7)
    # the gradients are views of one reduced flat buffer per bucket (the flat buffer itself with AVG)
    for b in reducer.buckets:
        base = _storage(b.flat if supports_avg else b.params[0].grad.data)
        assert all(_storage(p.grad.data) == base for p in b.params)


def _storage(a) -> int:
    """An id of the memory block behind a NumPy array or torch tensor (shared by all its views)."""
    if isinstance(a, np.ndarray):
        while a.base is not None:
            a = a.base
        return id(a)
    return a.untyped_storage().data_ptr()


def test_reducer_without_overlap_launches_in_average_and_fills_unused_gradients_with_zeros():
    model, backward = _mlp_grads("cpu")
    params = list(model.parameters())
    peer = PeerAddsOne(supports_avg=True)
    reducer = GradientReducer(params, peer, bucket_cap_bytes=200)
    backward()                            # not armed: an accumulation micro-step
    assert peer.launched == []
    params[0].grad = None                 # as if this parameter were unused on this rank
    reducer.average()
    assert len(peer.launched) == len(reducer.buckets)
    np.testing.assert_allclose(params[0].grad.numpy(), np.full(params[0].shape, 0.5))


def test_a_world_of_one_needs_no_torch_and_changes_nothing():
    code = ("import sys, train; from minigrad.training.distributed import setup_distributed; "
            "d = setup_distributed('cpu', 5.0); assert d.world_size == 1; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]     # a plain `python train.py` imports no torch
    ddp = Distributed()
    assert ddp.is_main and ddp.mean([1.0, 2.0]) == 1.5
    assert ddp.agree_on_stop(0) == 0 and ddp.agree_on_stop(15) == 15
    minigrad.manual_seed(5)
    state = minigrad.get_rng_state()
    ddp.seed_dropout_for_step(1337, 7)                       # one process keeps its single stream
    assert minigrad.get_rng_state() == state
    x = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(ddp.local_rows(x)[0], x)
    assert GradientReducer([], ddp).buckets == []
    two = Distributed(rank=1, world_size=2)
    np.testing.assert_array_equal(two.local_rows(np.arange(8).reshape(4, 2))[0], [[4, 5], [6, 7]])
    with pytest.raises(ValueError, match="divisible by 2"):
        two.local_rows(np.zeros((3, 2)))


def test_post_accumulate_grad_hook_sees_the_whole_gradient_once_per_backward():
    """x is used twice, so its gradient has two parts; the hook fires once, after both."""
    from minigrad.autograd import register_post_accumulate_grad_hook
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    remove = register_post_accumulate_grad_hook(x, lambda t: seen.append(t.grad.numpy().copy()))
    (x * x + 3 * x).sum().backward()                         # d/dx = 2x + 3
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0])
    remove()
    (x * x).sum().backward()
    assert len(seen) == 1
    with pytest.raises(RuntimeError, match="leaf"):
        register_post_accumulate_grad_hook(x * 2, lambda t: None)
