#!/usr/bin/env python3
"""Where `listen`'s label head loses connected command words: how sure it is of each one.

The split's utterances run end to end as one live stream, as `scripts/bench_connected.py` builds it (same
seed, same noise), through the live recogniser. For every command word said, the label head pooled as the
spotter reads it is looked at from 0.1 s before the word's end to 0.8 s after, and the word is counted by the
true word's highest probability there: at least 0.6 (the default threshold), 0.3-0.6, or below 0.3 with the
label that was surest instead (`_unknown_`, `_silence_` or another command word). Words the head is sure of
but `listen` misses are the spotter's to find; the rest are the model's.

Usage:
    .venv/bin/python scripts/label_misses.py --data data/synth-default --split validation [--model M.pt]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import bench_connected
import numpy as np

from speechrnn.checkpoint import default_model_path, load_model
from speechrnn.words import SILENCE, UNKNOWN

BEFORE_END_S, AFTER_END_S = 0.1, 0.8  # where the head's verdict on a word is read, around the word's end
SURE, UNSURE = 0.6, 0.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument(
        "--snr-db", type=float, default=20.0, help="noise under the stream (as bench_connected)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = load_model(args.model or default_model_path())
    records = bench_connected.utterances(args.data, args.split, None, args.seed)
    _, outputs, words, _, _ = bench_connected.live_stream(model, args.data, records, args.snr_db, args.seed)
    outputs = [o for o in outputs if o.steps]
    probs = np.concatenate([o.label_probs() for o in outputs])
    ready = np.concatenate([o.ready_seconds for o in outputs])
    labels = list(model.labels)

    verdicts: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for w in words:
        if w["word"] not in labels or w["word"] in (SILENCE, UNKNOWN):
            continue
        near = probs[(ready >= w["end"] - BEFORE_END_S) & (ready <= w["end"] + AFTER_END_S)]
        if not near.size:
            continue
        true = labels.index(w["word"])
        peak = near[:, true].max()
        if peak >= SURE:
            verdicts[f"sure (>= {SURE:g})"] += 1
        elif peak >= UNSURE:
            verdicts[f"unsure ({UNSURE:g}-{SURE:g})"] += 1
        else:
            others = near.copy()
            others[:, true] = 0.0
            top = labels[int(others.max(axis=0).argmax())]
            verdicts[
                f"below {UNSURE:g}, surest: {top if top in (SILENCE, UNKNOWN) else 'another command'}"
            ] += 1
            if top not in (SILENCE, UNKNOWN):
                confusions[(w["word"], top)] += 1
    total = sum(verdicts.values())
    print(
        f"{args.split}: {total} command words in {len(records)} utterances, model {args.model or 'shipped'}"
    )
    print("| the label head on the word | words | share |\n| --- | --- | --- |")
    for name, n in verdicts.most_common():
        print(f"| {name} | {n} | {100 * n / max(total, 1):.1f} % |")
    print(
        "commonest confusions (said, surest):",
        ", ".join(f"{a}->{b} {n}" for (a, b), n in confusions.most_common(8)),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
