"""Evaluation: accuracy, per-class precision/recall/F1, confusion matrix, and CTC error rates on phrases.

`--chunk-ms`/`--lookahead-ms` evaluate the same checkpoint under latency control, so the cost of streaming
is a number next to the full-context one.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .checkpoint import atomic_write, check_writable, load_model
from .config import EVAL_BATCH_SIZE, INFERENCE_DEVICE, check_device, check_range
from .decoding import char_error_rate, greedy_decode, word_error_rate
from .errors import SpeechRNNError
from .model import Recognizer
from .speechcommands import SpeechCommandsDataset, collate
from .streaming import latency_steps
from .train_streams import IGNORE, windowed_targets


@torch.no_grad()
def evaluate_model(
    model: Recognizer,
    dataset: Dataset,
    *,
    device: str | torch.device = INFERENCE_DEVICE,
    batch_size: int = EVAL_BATCH_SIZE,
    chunk: int | None = None,
    lookahead: int = 0,
    progress_bar: bool = True,
) -> dict:
    """Score `model` on every item of `dataset` (a `SpeechCommandsDataset` without augmentation, training
    streams, or both concatenated).

    Args:
        chunk, lookahead: latency control in encoder steps (None = full context).

    Returns:
        `n`, `accuracy`, `loss`, `labels`, `per_class` ({label: precision, recall, f1, support}),
        `confusion` (rows = truth, columns = prediction), and where the split has texts: `wer`, `cer`,
        `n_phrases` (WER/CER over phrase clips), `wer_all` (over every clip with a transcript). With
        training streams: `stream_accuracy` and `stream_loss` of the windowed label head over the steps
        that have a target (`streams.step_targets`), and `stream_steps`.
    """
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=0)
    n_labels = len(model.labels)
    confusion = torch.zeros(n_labels, n_labels, dtype=torch.long)
    loss_sum, n = 0.0, 0
    stream_loss, stream_hits, stream_steps = 0.0, 0, 0
    refs, hyps, phrase_refs, phrase_hyps = [], [], [], []
    for batch in tqdm(loader, desc="evaluating", disable=not progress_bar, unit="batch"):
        batch = batch.to(device)
        feats, lengths = model.featurize(batch.audio, batch.audio_lengths)
        out, _ = model(feats, lengths, chunk=chunk, lookahead=lookahead)
        labelled = batch.labels >= 0
        if labelled.any():
            logits = out.pooled_logits()[labelled]
            truth = batch.labels[labelled]
            loss_sum += nn.functional.cross_entropy(logits, truth, reduction="sum").item()
            n += int(labelled.sum())
            pred = logits.argmax(-1)
            confusion.index_put_((truth.cpu(), pred.cpu()), torch.ones_like(truth.cpu()), accumulate=True)
        streams = batch.stream_rows
        if streams:
            pooled, targets = windowed_targets(model, out, batch.spans, streams)
            keep = targets != IGNORE
            pooled, targets = pooled[keep], targets[keep]
            stream_loss += nn.functional.cross_entropy(pooled, targets, reduction="sum").item()
            stream_hits += int((pooled.argmax(-1) == targets).sum())
            stream_steps += int(keep.sum())
        texts = greedy_decode(out.ctc_log_probs.cpu(), out.lengths.cpu())
        for i, hyp in enumerate(texts):
            ref = batch.texts[i]  # '' where the clip has no transcript
            if not ref:
                continue
            refs.append(ref)
            hyps.append(hyp)
            if int(batch.labels[i]) < 0:
                phrase_refs.append(ref)
                phrase_hyps.append(hyp)
    if was_training:
        model.train()
    result = {
        "n": n,
        "accuracy": (confusion.diag().sum() / max(n, 1)).item(),
        "loss": loss_sum / max(n, 1),
        "labels": list(model.labels),
        "per_class": _per_class(confusion, model.labels),
        "confusion": confusion.tolist(),
        "chunk_steps": chunk,
        "lookahead_steps": lookahead,
    }
    if phrase_refs:
        result.update(wer=word_error_rate(phrase_refs, phrase_hyps), cer=char_error_rate(phrase_refs, phrase_hyps),
                      n_phrases=len(phrase_refs))  # fmt: skip
    if refs:
        result["wer_all"] = word_error_rate(refs, hyps)
    if stream_steps:
        result.update(stream_accuracy=stream_hits / stream_steps, stream_loss=stream_loss / stream_steps,
                      stream_steps=stream_steps)  # fmt: skip
    return result


def finite_json(value):
    """`value` with every float that is not finite replaced by None: JSON has no NaN or infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _per_class(confusion: torch.Tensor, labels: tuple[str, ...]) -> dict:
    tp = confusion.diag().double()
    precision = tp / confusion.sum(0).double().clamp_min(1)
    recall = tp / confusion.sum(1).double().clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return {
        label: {
            "precision": precision[i].item(),
            "recall": recall[i].item(),
            "f1": f1[i].item(),
            "support": int(confusion[i].sum()),
        }  # fmt: skip
        for i, label in enumerate(labels)
    }


def plot_confusion(result: dict, path: str | os.PathLike) -> None:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = torch.tensor(result["confusion"], dtype=torch.float64)
    norm = conf / conf.sum(1, keepdim=True).clamp_min(1)
    labels = result["labels"]
    size = max(6, 0.3 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {result['accuracy']:.1%} on {result['n']} clips")
    fig.tight_layout()
    suffix = Path(path).suffix.lower().lstrip(".") or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=suffix))
    plt.close(fig)


def format_report(result: dict) -> str:
    """Readable summary: headline numbers and the per-class table."""
    lines = [f"accuracy {result['accuracy']:.2%} on {result['n']} clips"]
    if "wer" in result:
        lines.append(
            f"phrase WER {result['wer']:.2%}, CER {result['cer']:.2%} on {result['n_phrases']} phrases (greedy CTC)"
        )
    lines.append(f"{'label':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for label, m in result["per_class"].items():
        lines.append(f"{label:<12} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1']:6.3f} {m['support']:8d}")
    return "\n".join(lines)


def evaluate(
    *,
    model: str | None,
    data: str,
    split: str = "test",
    chunk_ms: float | None = None,
    lookahead_ms: float = 0.0,
    device: str = INFERENCE_DEVICE,
    batch_size: int = EVAL_BATCH_SIZE,
    as_json: bool = False,
    plot: str | None = None,
) -> dict:
    """The `speechrnn eval` command: load, score, print (JSON or a table), optionally plot the confusion matrix.

    Everything is checked before the evaluation starts: the split, the device, the batch size and where the
    plot goes (its folder is created). The JSON holds no NaN (not JSON): a value that is not a finite
    number, such as the loss of a model that overflows, is null.
    """
    if split not in ("train", "validation", "test"):
        raise SpeechRNNError(f"--split must be train, validation or test, got {split!r}")
    check_device(device)
    check_range("--batch-size", batch_size, 1, integer=True)
    if plot:
        check_writable(plot)
    net = load_model(model, device=device)
    dataset = SpeechCommandsDataset(data, split, labels=net.labels)  # words outside the labels -> _unknown_
    chunk, lookahead = latency_steps(net, chunk_ms, lookahead_ms if chunk_ms is not None else 0.0)
    result = evaluate_model(net, dataset, device=device, batch_size=batch_size, chunk=chunk, lookahead=lookahead,
                            progress_bar=sys.stderr.isatty())  # fmt: skip
    result["split"], result["model"] = split, str(model) if model else "default"
    if plot:
        plot_confusion(result, plot)
    if as_json:
        print(json.dumps(finite_json(result)))
    else:
        print(format_report(result))
        if plot:
            print(f"confusion matrix: {Path(plot)}")
    return result
