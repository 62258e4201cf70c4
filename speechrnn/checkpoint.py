"""Checkpoints: one self-describing file, loadable with `torch.load(weights_only=True)`, written atomically.

Every file here is written through `atomic_write`: a temp file `.<name>.<random>.tmp` beside it, then a
rename, so a kill leaves the old file or the new one, never half of one; `remove_stale_temps` clears what a
kill left behind.

Layout (format version 1): `format`, `version`, `model_config`, `feature_config`, `labels`, `vocab`, `model`
(state dict, which holds the normalisation statistics), optional `train` (training config, progress,
optimiser state, metrics history) and optional `info` (free-form: data, command, timings).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import torch

from .errors import SpeechRNNError
from .features import FeatureConfig
from .model import ModelConfig, Recognizer
from .vocab import VOCAB

FORMAT = "speechrnn-checkpoint"
VERSION = 1
DEFAULT_MODEL = "model.pt"  # inside speechrnn/assets/


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("speechrnn") / "assets" / DEFAULT_MODEL))


def save_checkpoint(
    path: str | os.PathLike, model: Recognizer, train: dict | None = None, info: dict | None = None
) -> None:
    """Write `model` (and optional training state) to `path` atomically: a temp file, then a rename."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "feature_config": model.features.to_dict(),
        "labels": list(model.labels),
        "vocab": list(VOCAB),
        "model": state,
    }
    if model.thresholds:
        ckpt["thresholds"] = model.thresholds
    if train is not None:
        ckpt["train"] = train
    if info is not None:
        ckpt["info"] = info
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Create `path` (and its folder) through `write(temp_path)` and a rename: readers see the old file or the
    new one, never a part. The temp file is removed if `write` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(path: str | os.PathLike) -> None:
    """Raise a SpeechRNNError unless a file can be written at `path` (its folder may not exist yet): checked
    before the work whose result it will hold."""
    path = Path(path)
    if path.is_dir():
        raise SpeechRNNError(f"{path}: is a folder, expected the path of a file to write")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SpeechRNNError(f"{path}: cannot be created, {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpeechRNNError(f"{path}: cannot be created, permission denied in {folder}")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed `atomic_write` of `path` left (also those of older versions, which had
    no `.tmp` suffix); returns what was deleted. Call it where no other process writes `path`."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}(\.tmp)?")
    stale = [p for p in path.parent.glob(f".{glob_escape(path.name)}.*") if pattern.fullmatch(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def glob_escape(name: str) -> str:
    """`name` with glob's special characters taken literally."""
    return re.sub(r"([*?[])", r"[\1]", name)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint dictionary (tensors on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for foreign or damaged files
        raise SpeechRNNError(
            f"{path}: not a speechrnn checkpoint (could not be loaded: {type(err).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SpeechRNNError(f"{path}: not a speechrnn checkpoint (expected format {FORMAT!r})")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SpeechRNNError(
            f"{path}: checkpoint format version {version} is newer than this speechrnn understands ({VERSION}); upgrade speechrnn"
        )
    if list(ckpt.get("vocab", [])) != list(VOCAB):
        raise SpeechRNNError(
            f"{path}: checkpoint vocabulary differs from this speechrnn's ({len(VOCAB)} symbols)"
        )
    weights = ckpt.get("model")
    if isinstance(weights, dict):
        for name, value in weights.items():
            # NaN weights load and run, and every score they give is NaN: a silent wrong answer.
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not value.isfinite().all():
                bad = int((~value.isfinite()).sum())
                raise SpeechRNNError(
                    f"{path}: weight {name} holds {bad} NaN or infinite values, expected finite numbers "
                    "(a diverged or damaged model)"
                )
    return ckpt


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> Recognizer:
    """Build a `Recognizer` from a checkpoint dictionary."""
    try:
        model = Recognizer(
            ModelConfig(**ckpt["model_config"]),
            tuple(ckpt["labels"]),
            FeatureConfig(**ckpt["feature_config"]),
        )
        model.load_state_dict(ckpt["model"])
        model.thresholds = check_thresholds(ckpt.get("thresholds", {}), model.labels, source)
    except (KeyError, TypeError, ValueError, RuntimeError, SpeechRNNError) as err:
        reason = " ".join(str(err).split())  # load_state_dict's report spans lines
        reason = reason if len(reason) <= 300 else reason[:300] + " ..."
        raise SpeechRNNError(f"{source}: checkpoint does not describe a valid model ({reason})") from None
    return model.eval()


def check_thresholds(table: dict, labels: tuple[str, ...], source: str) -> dict[str, dict[str, float]]:
    """A model's per-keyword threshold table, checked: `{"label"|"ctc": {keyword: threshold in (0, 1]}}`, the
    label head's keywords among its labels."""
    if not isinstance(table, dict) or not set(table) <= {"label", "ctc"}:
        raise SpeechRNNError(
            f"{source}: thresholds must map 'label' and 'ctc' to tables, got {table!r}"[:300]
        )
    out = {}
    for decision, words in table.items():
        ok = isinstance(words, dict) and all(
            isinstance(t, int | float) and 0 < t <= 1 and (decision == "ctc" or w in labels)
            for w, t in words.items()
        )
        if not ok:
            raise SpeechRNNError(f"{source}: bad {decision!r} thresholds {words!r}"[:300])
        out[decision] = {str(w): float(t) for w, t in words.items()}
    return out


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Recognizer:
    """Load a trained model for inference (evaluation mode).

    Args:
        path: checkpoint file; None = the default model shipped inside the package.
        device: where to put it.
    """
    path = Path(path) if path is not None else default_model_path()
    if path == default_model_path() and not path.is_file():
        raise SpeechRNNError(f"the default model is missing from the package ({path}); pass --model CKPT")
    return model_from_checkpoint(read_checkpoint(path), str(path)).to(device)


def _unlearned(setting):
    """A checkpoint setting as averaging compares it: dropout is training's, not the architecture's."""
    return {k: v for k, v in setting.items() if k != "dropout"} if isinstance(setting, dict) else setting


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> Recognizer:
    """The uniform average of the weights of several checkpoints of one model (a "model soup", or
    stochastic weight averaging when they are snapshots along one training run).

    Averaging works where the checkpoints lie in one basin of the loss: snapshots of one run, or fine-tunes
    that start from the same weights. The checkpoints must agree on everything that is not learned: the
    architecture, the features, the labels and the normalisation statistics.
    """
    if not paths:
        raise SpeechRNNError("average_checkpoints: expected at least one checkpoint")
    first = read_checkpoint(paths[0])
    model = model_from_checkpoint(first, str(paths[0]))
    buffers = {name for name, _ in model.named_buffers()}
    total = {k: v.double() for k, v in first["model"].items() if k not in buffers}
    for path in paths[1:]:
        ckpt = read_checkpoint(path)
        for key in ("model_config", "feature_config", "labels"):
            if _unlearned(ckpt[key]) != _unlearned(first[key]):
                raise SpeechRNNError(f"{path}: its {key} differs from {paths[0]}'s; only one model averages")
        for name in buffers:
            if not torch.equal(ckpt["model"][name], first["model"][name]):
                raise SpeechRNNError(
                    f"{path}: its {name} differs from {paths[0]}'s (a different normalisation)"
                )
        for k in total:
            total[k] += ckpt["model"][k].double()
    state = dict(first["model"])
    state.update({k: (v / len(paths)).to(first["model"][k].dtype) for k, v in total.items()})
    model.load_state_dict(state)
    model.thresholds = {}  # calibrated for other weights
    return model.eval()
