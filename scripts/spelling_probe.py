#!/usr/bin/env python
"""Can the model learn to spell one kind of utterance? A short CTC-only fine-tune that tells.

    .venv/bin/python scripts/spelling_probe.py --data data/synth-default --kind {digits,...,all}
        [--steps 400] [--lr 1e-3] [--augment] [--model CKPT] [--save CKPT]

A copy of the model is trained with the CTC loss alone, full context, on the training split's utterances of
one kind (`utterances.kind_of`) or of all kinds, in batches of 32 drawn at random, for a fixed number of
steps (not minutes: on a shared machine the same minutes hold very different amounts of training). Before
and after, the greedy transcript's character and word error rates per kind, on 150 utterances of the kind
(75 of each with `all`) from the training voices and as many from the validation voices (clean;
`spelling.py` does the decoding). The probe is a diagnosis, not a recipe: it does not train the label head,
and says nothing of what the fine-tune costs it unless the weights are kept (`--save`) and measured with
`speechrnn eval` and `bench_connected.py`.

What it tells: if a few minutes of this move the validation voices' error rates a long way, the model has
the capacity to spell that material and the training recipe, not the model's size, is what holds it.
The test split is never read. Adds its run to docs/spelling_probe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from spelling import draw, rates, transcripts, utterances_by_split

from speechrnn.augment import AugmentConfig
from speechrnn.checkpoint import check_writable, load_model, save_checkpoint
from speechrnn.config import TrainConfig
from speechrnn.errors import SpeechRNNError
from speechrnn.feature_augment import spec_augment
from speechrnn.speechcommands import SpeechCommandsDataset, collate
from speechrnn.utterances import KIND_SHARES, kind_of
from speechrnn.words import SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
PROBE = 150  # utterances of a kind scored per split (half as many of each kind with --kind all)


def score(model, data: Path, probes: dict[str, list[dict]], words: tuple[str, ...]) -> dict:
    """Greedy CER/WER of each probe set by kind, the model left in training mode afterwards."""
    model.eval()
    out = {}
    for split, records in probes.items():
        by_kind = defaultdict(list)
        for r, h in zip(records, transcripts(model, data, records), strict=True):
            by_kind[kind_of(r["text"], words)].append((r["text"], h))
        out[split] = {kind: rates(pairs) for kind, pairs in by_kind.items()}
    model.train()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument(
        "--kind",
        required=True,
        choices=[*KIND_SHARES, "all"],
        help="the utterances to learn, or all of them; with all, every kind is scored",
    )
    parser.add_argument("--model", default=None, help="checkpoint to start from (default: the shipped model)")
    parser.add_argument("--steps", type=int, default=400, help="optimiser steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate, constant")
    parser.add_argument("--augment", action="store_true", help="the training recipe's waveform and feature "
                        "augmentation (default: clean audio)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="also write the fine-tuned checkpoint here")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "spelling_probe.json")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.lr <= 0:
        parser.error("--steps must be at least 1 and --lr positive")
    try:
        if args.save is not None:
            check_writable(args.save)  # before the training, not after it
    except SpeechRNNError as e:
        parser.error(str(e))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = load_model(args.model)
    words = tuple(w for w in model.labels if w not in (SILENCE, UNKNOWN))
    splits = {s: [r for r in rs if args.kind in ("all", kind_of(r["text"], words))]
              for s, rs in utterances_by_split(args.data).items()}  # fmt: skip
    train = splits["train"]
    if not train or not splits["validation"]:
        sys.exit(f"spelling_probe: no {args.kind} utterances in both splits of {args.data}")
    per_kind = PROBE if args.kind != "all" else PROBE // 2
    probes = {split: draw(records, words, per_kind, args.seed) for split, records in splits.items()}
    # The training split as training reads it: with `--augment`, each item drawn is augmented afresh.
    dataset = SpeechCommandsDataset(args.data, "train", "all", augment=AugmentConfig() if args.augment
                                    else None, seed=args.seed, phrases=True)  # fmt: skip
    index = {}
    for i in range(len(dataset)):
        clip, _ = dataset.entry(i)
        if clip is not None:
            index[Path(clip.path).resolve()] = i
    items = [index[(args.data / r["path"]).resolve()] for r in train]

    before = score(model, args.data, probes, words)
    print(
        f"spelling_probe: {len(train)} {args.kind} utterances; before {before}", file=sys.stderr, flush=True
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=TrainConfig.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    losses, t0 = [], time.monotonic()
    for step in range(1, args.steps + 1):
        batch = collate([dataset[items[i]] for i in rng.permutation(len(items))[:BATCH]])
        feats, frames = model.featurize(batch.audio, batch.audio_lengths)
        if args.augment:
            feats = spec_augment(feats, frames, generator)
        out, _ = model(feats, frames)
        loss = torch.nn.functional.ctc_loss(
            out.ctc_log_probs.transpose(0, 1),
            batch.targets,
            out.lengths,
            batch.target_lengths,
            zero_infinity=True,
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TrainConfig.clip_grad)
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0:
            print(
                f"spelling_probe: step {step}, CTC loss {np.mean(losses[-50:]):.3f}",
                file=sys.stderr,
                flush=True,
            )
    minutes = round((time.monotonic() - t0) / 60, 1)
    after = score(model, args.data, probes, words)
    run = {"model": str(args.model or "shipped"), "kind": args.kind, "steps": args.steps, "lr": args.lr,
           "augment": args.augment, "minutes": minutes, "utterances": len(train), "before": before,
           "after": after}  # fmt: skip
    print("| split | kind | CER / WER before | after |\n| --- | --- | --- | --- |")
    for split in probes:
        for kind, b in before[split].items():
            a = after[split][kind]
            print(f"| {split} | {kind} | {b['cer']:.3f} / {b['wer']:.3f} | {a['cer']:.3f} / {a['wer']:.3f} |")
    if args.save is not None:
        save_checkpoint(args.save, model, info={"spelling_probe": run})
    runs = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.write_text(json.dumps(runs + [run], indent=1) + "\n")
    print(f"spelling_probe: added the run to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
