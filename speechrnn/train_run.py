"""A training run on disk: its files beside the best checkpoint, its progress, and how it is saved and resumed.

`check_run_out` says before any work whether a run can write at `out`; `_open_run` clears what a killed run
left; `_save` writes a checkpoint with the run's config and progress; `_resume` reads them back, so that
`train` continues exactly where it stopped. Every file is written atomically.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .checkpoint import (
    atomic_write,
    check_writable,
    glob_escape,
    model_from_checkpoint,
    read_checkpoint,
    remove_stale_temps,
    save_checkpoint,
)
from .config import TrainConfig
from .errors import SpeechRNNError
from .model import Recognizer


@dataclass
class Progress:
    """Where a run is; saved with every checkpoint so that `--resume` continues from it."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # batches of the current epoch already done
    step: int = 0  # optimiser steps done in total, after the spelling phase
    spelled: int = 0  # steps of the spelling phase done (`TrainConfig.spell_steps`)
    best: float = -1.0  # best validation accuracy so far
    seconds: float = 0.0  # training wall time so far
    history: list = field(default_factory=list)  # one dict of metrics per finished epoch


def _save(path: Path, model: Recognizer, cfg: TrainConfig, progress: Progress, optimizer=None) -> None:
    """A checkpoint with the run's config and progress, and the optimiser's state where one is given."""
    train = {"config": cfg.to_dict(), "progress": asdict(progress)}
    if optimizer is not None:
        train["optimizer"] = optimizer.state_dict()
    save_checkpoint(path, model, train=train)


def _plot_history(history: list[dict], out: Path) -> None:
    """Loss and accuracy curves as a PNG beside the checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    a.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(epochs, [h["val_accuracy"] for h in history], label="validation accuracy (full context)")
    for key, name in (("val_accuracy_streaming", "streaming"), ("val_stream_accuracy", "streams, per step")):
        if any(h.get(key) is not None for h in history):
            values = [h.get(key) for h in history]
            b.plot(
                epochs,
                [float("nan") if v is None else v for v in values],
                label=f"validation accuracy ({name})",
            )
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend()
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


@dataclass(frozen=True)
class RunFiles:
    """The files of a training run, all beside its best checkpoint `best`."""

    best: Path  # the best checkpoint (validation accuracy)
    last: Path  # the latest state, with the optimiser's: what `resume` continues
    metrics: Path  # one JSON line per epoch
    curves: Path  # loss and accuracy curves

    @classmethod
    def beside(cls, out: str | os.PathLike) -> RunFiles:
        out = Path(out)
        return cls(
            out,
            out.with_suffix(".last.pt"),
            out.with_suffix(".metrics.jsonl"),
            out.with_suffix(".curves.png"),
        )

    def epoch(self, n: int) -> Path:
        """Weights after epoch `n` (`keep_epochs`)."""
        return self.best.with_suffix(f".epoch{n}.pt")

    def existing(self) -> list[Path]:
        """The run's files that exist now."""
        fixed = [p for p in (self.best, self.last, self.metrics, self.curves) if p.exists()]
        stem = glob_escape(self.best.stem)
        return fixed + sorted(self.best.parent.glob(f"{stem}.epoch[0-9]*.pt"))

    def remove_stale_temps(self) -> None:
        """Delete the temp files a killed write of any of the run's files left."""
        temp_of_epoch = re.compile(rf"\.{re.escape(self.best.stem)}\.epoch(\d+)\.pt\.")
        found = (
            temp_of_epoch.match(p.name)
            for p in self.best.parent.glob(f".{glob_escape(self.best.stem)}.epoch*")
        )
        epochs = {int(m.group(1)) for m in found if m}
        for path in (self.best, self.last, self.metrics, self.curves, *map(self.epoch, epochs)):
            remove_stale_temps(path)


def check_run_out(out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> RunFiles:
    """Check, before any work, that a run can write its files at `out`; returns them.

    Raises:
        SpeechRNNError: `out` is a folder; a run is there already and neither `resume` nor `overwrite` is
            given; `resume` without a state to resume from; both; a folder that cannot be created.
    """
    if not str(out) or not Path(out).name or Path(out).name in (".", ".."):
        raise SpeechRNNError(f"--out: expected the path of a checkpoint file, got {str(out)!r}")
    files = RunFiles.beside(out)
    if resume and overwrite:
        raise SpeechRNNError(
            "--resume continues the run at --out, --overwrite replaces it: give one, not both"
        )
    for path in (files.best, files.last, files.metrics, files.curves):
        if path.is_dir():
            raise SpeechRNNError(
                f"{path}: is a folder, expected the path of a checkpoint file (e.g. {path}/model.pt)"
            )
    check_writable(files.best)
    if resume:
        if not files.last.is_file():
            raise SpeechRNNError(f"--resume: no checkpoint to resume from at {files.last}")
    elif not overwrite and (found := files.existing()):
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise SpeechRNNError(
            f"{files.best}: a training run is there already ({names}); continue it with --resume, or "
            "start again with --overwrite (which deletes those files)"
        )
    return files


def _resume(last: Path, cfg: TrainConfig) -> tuple[TrainConfig, Progress, Recognizer, dict]:
    """The run's config (with this invocation's machine settings), progress, model and optimiser state."""
    ckpt = read_checkpoint(last)
    state = ckpt.get("train")
    if not isinstance(state, dict) or not {"config", "progress", "optimizer"} <= state.keys():
        raise SpeechRNNError(f"{last}: holds no training state to resume from (config, progress, optimizer)")
    try:
        saved = TrainConfig.from_dict(state["config"])
        progress = Progress(**state["progress"])
    except (KeyError, TypeError, ValueError) as err:
        raise SpeechRNNError(f"{last}: its training state cannot be read ({err})") from None
    cfg = replace(
        saved, device=cfg.device, workers=cfg.workers, threads=cfg.threads, max_minutes=cfg.max_minutes
    )
    return cfg, progress, model_from_checkpoint(ckpt, str(last)).train(), state["optimizer"]


def _open_run(files: RunFiles, progress: Progress, *, overwrite: bool) -> None:
    """Clear what a killed run left (temp files, log lines past its last state), or the old run's files."""
    files.remove_stale_temps()
    if overwrite:
        for path in files.existing():
            path.unlink()
    elif progress.history or files.metrics.exists():
        _write_metrics(files.metrics, progress.history)


def _write_metrics(path: Path, history: list[dict]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in history)
    atomic_write(path, lambda tmp: Path(tmp).write_text(lines))


def _end_epoch(
    files: RunFiles,
    model: Recognizer,
    cfg: TrainConfig,
    progress: Progress,
    optimizer,
    record: dict,
    keep: bool,
) -> None:
    """Log the epoch (replacing a partial record of it), save the best and the last state, plot."""
    progress.history = [h for h in progress.history if h["epoch"] != record["epoch"]] + [record]
    print(json.dumps(record), flush=True)
    _write_metrics(files.metrics, progress.history)
    if record["val_accuracy"] > progress.best:
        progress.best = record["val_accuracy"]
        _save(files.best, model, cfg, progress, optimizer)
    _save(files.last, model, cfg, progress, optimizer)
    if keep:  # weights alone: a third of the size
        _save(files.epoch(progress.epoch), model, cfg, progress)
    _plot_history(progress.history, files.curves)
