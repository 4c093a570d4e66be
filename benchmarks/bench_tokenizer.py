"""Tokenizer benchmark: our byte-level BPE against Hugging Face `tokenizers` and tiktoken, same run.

Three measurements, each on the same text for both sides and checked for correctness first:

1. **Training** a vocabulary of 8192 (incl. ``<|endoftext|>``) on ``../shared/data/books/``
   (6.3 MB) with GPT-2's split pattern, against HF `tokenizers`' byte-level BPE trainer (its
   ByteLevel pre-tokenizer uses the same GPT-2 regex). Both may use every CPU core: HF through
   its Rust threads, ours through its counting processes. Wall time, median of `--repeat` runs.
   Target: no slower than HF.
2. **Encoding throughput**, one thread, on the whole books text, against a `tiktoken.Encoding`
   built from *our* ranks (and again with GPT-2's ranks, from ``../shared/data/gpt2/``). Ids are
   compared before timing. "cold" is one pass with an empty chunk cache (what a single pass over
   a new corpus sees); "warm" is a second pass. Target: at least half of tiktoken's MB/s.
3. **Streaming encode memory**: `encode_file` over a temporary file made of the books repeated
   (several times larger than what the chunk cache can hold), in a fresh subprocess, peak RSS
   growth over the loaded tokenizer; tiktoken, which has no streaming API, reads the file and
   encodes it in memory in its own subprocess for comparison.

Rows go to ``benchmarks/results/tokenizer-cpu.json`` (schema of docs/DESIGN.md plus ``mb_per_s`` and
``peak_mem_mb``); a markdown table is printed. It does not download anything; without the
shared data or the two baselines it says so and exits 0. Takes about a minute.

    python -m benchmarks.bench_tokenizer [--data ../shared/data] [--repeat 3] [--copies 5]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minigrad.tokenizer import BPETokenizer  # noqa: E402  (after the path tweak, for `python benchmarks/...`)

EOT = "<|endoftext|>"
VOCAB_SIZE = 8192


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or 'unknown CPU'} ({os.cpu_count()} cores)"


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def versions() -> dict[str, str]:
    import regex
    import tiktoken
    import tokenizers

    return {"python": platform.python_version(), "regex": regex.__version__,
            "tiktoken": tiktoken.__version__, "tokenizers": tokenizers.__version__}


def paired_times(ours, baseline, repeat: int) -> tuple[float, float, object]:
    """Median ms of `ours()` and of `baseline()`, run alternately so that both see the same
    machine load; returns (ours_ms, baseline_ms, last result of ours)."""
    times_a, times_b, result = [], [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = ours()
        times_a.append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline()
        times_b.append(time.perf_counter() - start)
    return statistics.median(times_a) * 1000, statistics.median(times_b) * 1000, result


def hf_train(files: list[Path]):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(f) for f in files], trainer)
    return tok


# Peak memory: Linux keeps the high-water mark of resident memory (VmHWM); writing "5" to
# /proc/self/clear_refs resets it to the current RSS, so after loading the tokenizer we reset it
# and report VmHWM at the end minus VmRSS before: the growth caused by encoding alone.
_STREAM_CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
which, model, path = sys.argv[2], sys.argv[3], sys.argv[4]
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
from minigrad.tokenizer import BPETokenizer
tok = BPETokenizer.load(model)
enc = tok.to_tiktoken() if which == "tiktoken" else None
import gc; gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_mb("VmRSS")
start = time.perf_counter()
if which == "ours":
    n = sum(1 for _ in tok.encode_file(path))
else:
    with open(path, encoding="utf-8", newline="") as f:
        n = len(enc.encode_ordinary(f.read()))
print(n, (time.perf_counter() - start) * 1000, status_mb("VmHWM") - before)
"""


def stream_run(which: str, model: Path, path: Path) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(REPO), which, str(model), str(path)],
                         capture_output=True, text=True, check=True)
    n, ms, mem = out.stdout.split()
    return int(n), float(ms), float(mem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = Path(os.environ.get("MINIGRAD_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--copies", type=int, default=5,
                        help="books repeated this many times for the streaming file")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tokenizer-cpu.json")
    args = parser.parse_args(argv)

    books = sorted((args.data / "books").glob("*.txt"))
    gpt2_dir = args.data / "gpt2"
    if not books:
        print(f"bench_tokenizer: no books under {args.data / 'books'}; nothing was measured.")
        return 0
    try:
        import tiktoken  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as err:
        print(f"bench_tokenizer: needs tiktoken and tokenizers ({err}); nothing was measured.")
        return 0

    device, sha, date, vers = cpu_name(), git_sha(), datetime.date.today().isoformat(), versions()
    rows: list[dict] = []

    def row(case, ours_ms, baseline, baseline_ms, **extra):
        r = {"benchmark": "tokenizer", "case": case, "dtype": None, "device": device,
             "ours_ms": round(ours_ms, 2), "baseline": baseline, "baseline_ms": round(baseline_ms, 2),
             "ratio": round(baseline_ms / ours_ms, 3), **extra,
             "versions": vers, "git_sha": sha, "date": date}
        rows.append(r)
        return r

    text = "".join(p.read_text(encoding="utf-8") for p in books)
    mb = len(text.encode("utf-8")) / 1e6

    # 1. training -----------------------------------------------------------------------------
    def ours_train():
        return BPETokenizer.train(books, VOCAB_SIZE, special_tokens=[EOT], pattern="gpt2", verbose=False)

    hf = hf_train(books)
    ours_ms, hf_ms, ours = paired_times(ours_train, lambda: hf_train(books), args.repeat)
    assert ours.n_vocab == hf.get_vocab_size() == VOCAB_SIZE, (ours.n_vocab, hf.get_vocab_size())
    row(f"train vocab {VOCAB_SIZE}, books {mb:.1f} MB, gpt2 pattern, {os.cpu_count()} cores", ours_ms,
        "hf-tokenizers", hf_ms, mb_per_s=round(mb / (ours_ms / 1000), 2),
        baseline_mb_per_s=round(mb / (hf_ms / 1000), 2))

    # 2. encoding throughput ------------------------------------------------------------------
    encoders = [("trained 8192", ours)]
    if (gpt2_dir / "vocab.json").exists():
        gpt2 = BPETokenizer.from_gpt2_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")
        encoders.append(("gpt2 50257", gpt2))
    for name, tok in encoders:
        enc = tok.to_tiktoken()
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text), f"{name}: ids differ from tiktoken"
        vocab, merges, specials, pattern = tok.vocab, tok.merges, tok.special_tokens, tok.pattern

        def cold_pass():
            fresh = BPETokenizer(vocab, merges, specials, pattern)  # built outside the timed call below
            start = time.perf_counter()
            fresh.encode_ordinary(text)
            return time.perf_counter() - start

        cold, tik = [], []
        for _ in range(args.repeat):  # alternate ours and tiktoken so both see the same load
            cold.append(cold_pass() * 1000)
            start = time.perf_counter()
            enc.encode_ordinary(text)
            tik.append((time.perf_counter() - start) * 1000)
        cold_ms = statistics.median(cold)
        warm_ms, tik_warm_ms, _ = paired_times(
            lambda: tok.encode_ordinary(text), lambda: enc.encode_ordinary(text), args.repeat
        )
        tik_ms = statistics.median(tik + [tik_warm_ms])
        for kind, ms in (("cold cache, one pass", cold_ms), ("warm cache", warm_ms)):
            row(f"encode_ordinary {name}, books {mb:.1f} MB, 1 thread, {kind}", ms, "tiktoken", tik_ms,
                mb_per_s=round(mb / (ms / 1000), 2), baseline_mb_per_s=round(mb / (tik_ms / 1000), 2))

    # 3. streaming encode memory --------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "books_x.txt"
        with open(big, "w", encoding="utf-8", newline="") as f:
            for _ in range(args.copies):
                f.write(text)
        model = Path(tmp) / "ours.model"
        ours.save(model)
        big_mb = big.stat().st_size / 1e6
        n_ours, ms_ours, mem_ours = stream_run("ours", model, big)
        n_tik, ms_tik, mem_tik = stream_run("tiktoken", model, big)
        assert n_ours == n_tik, (n_ours, n_tik)
        row(f"streaming encode_file, trained 8192, {big_mb:.0f} MB file ({args.copies}x books), "
            "cache 65536 chunks",
            ms_ours, "tiktoken", ms_tik, mb_per_s=round(big_mb / (ms_ours / 1000), 2),
            baseline_mb_per_s=round(big_mb / (ms_tik / 1000), 2), peak_mem_mb=round(mem_ours, 1),
            baseline_peak_mem_mb=round(mem_tik, 1),
            baseline_note="tiktoken: whole file read and encoded in memory")

    # output ----------------------------------------------------------------------------------
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(f"\nMachine: {device}; {date}; " + ", ".join(f"{k} {v}" for k, v in vers.items()) + "\n")
    print("| case | ours | baseline | ratio (baseline/ours time) |")
    print("|---|---|---|---|")
    for r in rows:
        ours_s = f"{r['ours_ms'] / 1000:.2f} s"
        base_s = f"{r['baseline_ms'] / 1000:.2f} s"
        if "peak_mem_mb" in r:
            ours_s += f", {r['mb_per_s']} MB/s, peak +{r['peak_mem_mb']} MB"
            base_s += f", {r['baseline_mb_per_s']} MB/s, peak +{r['baseline_peak_mem_mb']} MB"
        elif r["case"].startswith("encode"):
            ours_s += f" ({r['mb_per_s']} MB/s)"
            base_s += f" ({r['baseline_mb_per_s']} MB/s)"
        print(f"| {r['case']} | {ours_s} | {r['baseline']}: {base_s} | {r['ratio']:.2f} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
