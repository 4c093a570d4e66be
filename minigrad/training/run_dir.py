"""The run folder (train.py's out_dir): checked before any work, cleaned after a crash, logs read
leniently.

- `prepare_out_dir`: the folder exists (or is created) and is writable, checked *before* data
  preparation, which can take minutes; temp files left by a checkpoint write that was killed
  (power loss, SIGKILL: nothing could clean up) are removed; a log line torn by such a kill is
  cut off, so the next row does not glue onto it.
- `read_log`: the rows of log.jsonl; a line that is not JSON (a torn last line) is skipped with
  a notice, never fatal.
- `append_logs` adds one eval's row to log.jsonl and log.csv; `plot_losses` draws loss.png;
  `open_wandb` starts Weights & Biases logging when it is installed.

Only files this project writes are touched: the temp-file pattern is the one
minigrad/serialization.py's atomic writer uses for checkpoints (".<name>.<random>.tmp").
"""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from .settings import SettingsError

# minigrad/serialization.py `_atomic_write`: mkstemp(prefix="." + name + ".", suffix=".tmp")
CHECKPOINT_TEMP_GLOB = ".ckpt_*.safetensors.*.tmp"
LOG_FILES = ("log.jsonl", "log.csv")


def _notice(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def prepare_out_dir(out_dir: "str | os.PathLike[str]") -> Path:
    """Create `out_dir` if needed and make sure files can be written in it; then remove crash debris.

    Raises SettingsError naming --out_dir when it is a file, cannot be created or is read-only.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SettingsError(f"--out_dir={out_dir} is a file, expected a folder for checkpoints and logs")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):     # the real test: can a file be created here?
            pass
    except OSError as err:
        raise SettingsError(f"--out_dir={out_dir} is not a writable folder ({err.strerror or err})") from None
    remove_stale_temp_files(out_dir)
    for name in LOG_FILES:
        cut_torn_last_line(out_dir / name)
    return out_dir


def remove_stale_temp_files(out_dir: Path) -> list[Path]:
    """Delete the temp files of checkpoint writes that never finished; returns what was removed."""
    stale = sorted(p for p in Path(out_dir).glob(CHECKPOINT_TEMP_GLOB) if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        _notice(f"removed {len(stale)} temp file(s) left by an interrupted checkpoint write: "
                + ", ".join(p.name for p in stale))
    return stale


def cut_torn_last_line(path: Path) -> bool:
    """If `path` does not end with a newline, its last line was torn by a kill: cut it off.

    Rows are appended whole, each ending in a newline, so only the last line can be torn."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        content = f.read()
        keep = content.rfind(b"\n") + 1             # 0 when the only line is torn
        f.truncate(keep)
    _notice(f"{path.name}: dropped a torn last line ({len(content) - keep} bytes) left by an "
            "interrupted run")
    return True


def read_log(out_dir: "str | os.PathLike[str]") -> list[dict]:
    """The rows of out_dir/log.jsonl (empty when there is none); lines that are not JSON objects
    are skipped with a notice."""
    path = Path(out_dir) / "log.jsonl"
    if not path.is_file():
        return []
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        _notice(f"{path}: ignored {bad} line(s) that are not complete JSON rows (a torn last line "
                "from an interrupted run?)")
    return rows


def append_logs(out_dir: Path, row: dict) -> None:
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    path = out_dir / "log.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def plot_losses(out_dir: Path) -> Optional[Path]:
    """out_dir/loss.png: train/val loss and val perplexity per eval (None without matplotlib)."""
    rows = read_log(out_dir)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(steps, [r["train_loss"] for r in rows], label="train")
    a.plot(steps, [r["val_loss"] for r in rows], label="val")
    a.set_xlabel("iteration"), a.set_ylabel("cross-entropy loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(steps, [r["val_ppl"] for r in rows], color="C1")
    b.set_xlabel("iteration"), b.set_ylabel("val perplexity"), b.set_yscale("log"), b.grid(alpha=0.3)
    fig.suptitle(str(out_dir))
    fig.tight_layout()
    path = out_dir / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def open_wandb(project: str, name: str, config: dict):
    """A wandb run (resumed if it exists), or None with a note when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        print("note: --wandb_log=true but wandb is not installed; logging to log.jsonl only")
        return None
    wandb.init(project=project, name=name, config=config, resume="allow")
    return wandb
