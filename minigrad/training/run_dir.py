"""The run folder (train.py's out_dir): checked before any work, cleaned after a crash, logs read
leniently.

- `prepare_out_dir`: the folder exists (or is created) and is writable, checked *before* data
  preparation, which can take minutes; temp files left by a checkpoint write that was killed
  (power loss, SIGKILL: nothing could clean up) are removed; a log line torn by such a kill is
  cut off, so the next row does not glue onto it.
- `read_log`: the rows of log.jsonl; a line that is not JSON (a torn last line) is skipped with
  a notice, never fatal.
- `claim_run_folder`: one run per folder. A lock held for the run's life refuses a second run
  started into the same folder at the same time; a folder that holds a run (a checkpoint or a
  log) takes only `--resume` (continue it) or `--overwrite` (replace it), never a silent mix.
- `RunLog` keeps what a run leaves for people watching it current: after each eval a row in
  log.jsonl / log.csv (`append_logs`), the step losses in steps.csv and loss.png redrawn
  (`plot_losses`), and once more at the end or on Ctrl-C;
  `open_wandb` starts Weights & Biases logging when it is installed; `complete_log` restores
  the row of a checkpoint whose log row a kill prevented.
- `start_run`: train.py's first step, all of the above in order: the command line parsed and
  checked, the folder prepared and claimed, and with --resume the checkpoint read and its
  settings taken.

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

from .checkpoint import load_checkpoint, resume_settings
from .distributed import is_main_rank
from .presets import PRESETS
from .settings import (DATA_SETTINGS, PATH_SETTINGS, TRAIN_RULES, SettingsError, command_line_rules,
                       parse_config, validate_settings)

# minigrad/serialization.py `atomic_write`: mkstemp(prefix="." + name + ".", suffix=".tmp")
CHECKPOINT_TEMP_GLOB = ".ckpt_*.safetensors.*.tmp"
STEP_LOG = "steps.csv"          # step,loss: the training loss of every step
LOG_FILES = ("log.jsonl", "log.csv", STEP_LOG)
RUN_FILES = ("ckpt_last.safetensors", "ckpt_best.safetensors", "loss.png") + LOG_FILES
LOCK_FILE = ".run.lock"
_held_locks: dict = {}          # resolved out_dir -> the open lock file this process holds
_said = {"no matplotlib": False}


def _notice(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def prepare_out_dir(out_dir: "str | os.PathLike[str]", resume: bool = False) -> Path:
    """Create `out_dir` if needed and make sure files can be written in it; then remove crash debris.

    Raises SettingsError naming --out_dir when it is a file, cannot be created or is read-only,
    or, with `resume`, does not exist (a resume never creates the folder it failed to find).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SettingsError(f"--out_dir={out_dir} is a file, expected a folder for checkpoints and logs")
    if resume and not out_dir.exists():
        raise SettingsError(f"--resume: --out_dir={out_dir} does not exist, so there is no run to continue")
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


def claim_run_folder(out_dir: Path, resume: bool, overwrite: bool, writer: bool = True) -> None:
    """Make `out_dir` this run's: refuse a folder in use by a running training process, and one
    that holds a run unless resuming it or replacing it (`overwrite`: its checkpoints, logs and
    plot are deleted first). Only the `writer` (rank 0 under torchrun) locks and deletes; every
    rank makes the same checks. The lock is an advisory file lock the OS releases when the
    process ends, however it ends, so a crash leaves no stale lock."""
    if resume and overwrite:
        raise SettingsError("--resume continues the run in --out_dir and --overwrite replaces it: "
                            "give one of them")
    if writer:
        _lock(out_dir)
    existing = [name for name in ("ckpt_last.safetensors", "ckpt_best.safetensors", "log.jsonl")
                if (out_dir / name).is_file()]
    if not existing or resume:
        return
    if not overwrite:
        raise SettingsError(f"--out_dir={out_dir} holds a run ({', '.join(existing)}): continue it "
                            "with --resume, replace it with --overwrite=true, or choose another "
                            "--out_dir")
    if writer:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
        _notice(f"--overwrite: removed the previous run's {', '.join(existing)} from {out_dir}")


def _lock(out_dir: Path) -> None:
    try:
        import fcntl
    except ImportError:                     # not a POSIX system: no lock, the checks still run
        return
    key = str(out_dir.resolve())
    previous = _held_locks.pop(key, None)    # this process's earlier run (tests call main twice)
    if previous is not None:
        previous.close()
    f = open(out_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip() or "another process"
        f.close()
        raise SettingsError(f"--out_dir={out_dir} is in use by another training run ({owner}); "
                            "wait for it to finish or choose another --out_dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    _held_locks[key] = f


def release_run_folder(out_dir: Path) -> None:
    """Give the folder's lock back (the end of a run; the OS does it if the process dies)."""
    f = _held_locks.pop(str(Path(out_dir).resolve()), None)
    if f is not None:
        f.close()


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


def append_logs(out_dir: Path, row: dict, step_losses: Optional[dict] = None) -> None:
    """Append one eval's row to log.jsonl and log.csv, and `step_losses` (step -> training loss)
    to steps.csv."""
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    _append_csv(out_dir / "log.csv", list(row), [row])
    _append_steps(out_dir, step_losses or {})


def _append_steps(out_dir: Path, step_losses: dict) -> None:
    if step_losses:
        _append_csv(out_dir / STEP_LOG, ["step", "loss"],
                    [{"step": s, "loss": v} for s, v in sorted(step_losses.items())])


def _append_csv(path: Path, fields: list, rows: list) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerows(rows)


def read_step_losses(out_dir: "str | os.PathLike[str]") -> dict[int, float]:
    """step -> training loss from steps.csv; a step logged twice (a resumed run retrains the steps
    after its checkpoint) keeps its newest loss; unreadable lines are skipped."""
    path, out = Path(out_dir) / STEP_LOG, {}
    if path.is_file():
        with open(path, newline="", errors="replace") as f:
            for r in csv.DictReader(f):
                try:
                    out[int(r["step"])] = float(r["loss"])
                except (KeyError, TypeError, ValueError):
                    continue
    return out


class RunLog:
    """What a run leaves for the people watching it, kept current as it goes: after every eval a
    row in log.jsonl / log.csv (and Weights & Biases with `wandb_project`), each step's training
    loss since the last eval in steps.csv, and loss.png redrawn; `close` (the end of a run, or
    Ctrl-C) writes the steps since the last eval and draws once more. Only the `writer` (rank 0
    under torchrun) writes."""

    def __init__(self, out_dir: Path, plot: bool, writer: bool = True, wandb_project: Optional[str] = None,
                 config: Optional[dict] = None):
        self.out_dir, self.plot, self.writer = out_dir, plot, writer
        self.written = -1                           # the newest step already in steps.csv
        self.wandb = open_wandb(wandb_project, out_dir.name, config or {}) if writer and wandb_project else None

    def _new_steps(self, losses: dict) -> dict:
        new = {s: v for s, v in losses.items() if s > self.written}
        self.written = max(new, default=self.written)
        return new

    def eval(self, row: dict, losses: dict) -> None:
        if self.wandb is not None:
            self.wandb.log(row, step=row["step"])
        if self.writer:
            append_logs(self.out_dir, row, self._new_steps(losses))
            if self.plot:
                plot_losses(self.out_dir)

    def close(self, losses: dict) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
        if self.writer:
            _append_steps(self.out_dir, self._new_steps(losses))
            if self.plot:
                plot_losses(self.out_dir)


def plot_losses(out_dir: Path) -> Optional[Path]:
    """out_dir/loss.png: every step's training loss, train/val loss per eval with the best
    checkpoint marked, and val perplexity (None without matplotlib)."""
    rows = read_log(out_dir)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if not _said["no matplotlib"]:              # once per process, not once per eval
            _said["no matplotlib"] = True
            _notice("--plot: matplotlib is not installed, so no loss.png is drawn (pip install "
                    "matplotlib, or minigrad's [train] extra; --plot=false silences this)")
        return None
    steps_loss = read_step_losses(out_dir)
    if not rows and not steps_loss:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if steps_loss:
        s = sorted(steps_loss)
        a.plot(s, [steps_loss[i] for i in s], color="0.75", lw=0.8, label="train (each step)")
    if rows:
        steps = [r["step"] for r in rows]
        a.plot(steps, [r["train_loss"] for r in rows], "o-", ms=3, label="train (eval)")
        a.plot(steps, [r["val_loss"] for r in rows], "o-", ms=3, label="val (eval)")
        best = min(rows, key=lambda r: r["val_loss"])          # what ckpt_best.safetensors holds
        a.plot([best["step"]], [best["val_loss"]], "*", color="C3", ms=14,
               label=f"best: step {best['step']}, val {best['val_loss']:.4f}")
        b.plot(steps, [r["val_ppl"] for r in rows], "o-", ms=3, color="C1")
    a.set_xlabel("iteration"), a.set_ylabel("cross-entropy loss"), a.legend(), a.grid(alpha=0.3)
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


def complete_log(out_dir: Path, row: Optional[dict]) -> bool:
    """A checkpoint carries the log row of its eval; if a kill came between writing the checkpoint
    and appending that row, append it now (log rows are written after their checkpoint, so only
    the newest can be missing). Returns True when a row was restored."""
    if not row or any(r.get("step") == row.get("step") for r in read_log(out_dir)):
        return False
    append_logs(out_dir, row)
    _notice(f"log.jsonl: restored the row of step {row.get('step')} from the checkpoint (the run was "
            "stopped between saving it and logging it)")
    return True


def start_run(config_cls, argv: list[str], model_keys: tuple):
    """train.py's settings and run folder, before any work: (cfg, given, out_dir, ckpt).

    The command line is parsed over `config_cls` (after --preset) and every setting checked, then
    the settings typed together; the out_dir is made ready (writable, crash debris removed) and
    claimed for this run. With --resume, ckpt is the run's ckpt_last and cfg its settings, except
    those given on the command line and the paths (`PATH_SETTINGS`); a setting of the model
    (`model_keys`) or the data (`DATA_SETTINGS`) given with another value is a CheckpointError.
    `given` holds the names typed on the command line. Without --resume ckpt is None."""
    cfg, given = parse_config(config_cls, list(argv), PRESETS)
    validate_settings(cfg, TRAIN_RULES)
    cfg = command_line_rules(cfg, given)        # settings typed together that clash; --init_from=resume
    out_dir = prepare_out_dir(cfg.out_dir, cfg.resume)   # writable, crash debris removed: before any work
    claim_run_folder(out_dir, cfg.resume, cfg.overwrite, writer=is_main_rank())   # one run per folder
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(out_dir / "ckpt_last.safetensors")
        cfg = resume_settings(ckpt, cfg, given, tuple(model_keys) + DATA_SETTINGS, PATH_SETTINGS)
        validate_settings(cfg, TRAIN_RULES)     # the file's values pass the same checks
        complete_log(out_dir, ckpt.meta.get("log_row"))    # a kill between its save and its log row
    return cfg, given, out_dir, ckpt
