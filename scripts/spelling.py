#!/usr/bin/env python
"""How well the model spells connected speech, on voices it trained on and on voices it never heard.

    .venv/bin/python scripts/spelling.py --data data/synth-default [--model CKPT] [--per-kind 200]

The CTC head's greedy transcript of each clean utterance (full context, no noise, no augmentation) against
its text: character and word error rates per kind of utterance (`utterances.kind_of`) and per engine, for
the training split and the validation split. The test split is never read.

What it tells: when the training voices' prose is spelled about as badly as the held-out voices', the model
underfits (too small, or trained badly: `spelling_probe.py` tells which), and more of the same material
will not help it; when the training voices are spelled much better, it is the voices it lacks. Writes
docs/spelling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from bench_streaming import SPLIT_LISTS

from speechrnn.audio import load_audio
from speechrnn.checkpoint import load_model
from speechrnn.corpus import UTTERANCE
from speechrnn.decoding import edit_distance, greedy_decode
from speechrnn.utterances import KIND_SHARES, kind_of
from speechrnn.words import SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
BATCH = 16


def utterances_by_split(data: Path) -> dict[str, list[dict]]:
    """Utterance records of the training and validation splits (test is left alone)."""
    held = {s: set((data / SPLIT_LISTS[s]).read_text().split()) for s in ("validation", "test")}
    out: dict[str, list[dict]] = {"train": [], "validation": []}
    for line in (data / "_meta_" / "clips.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line) if line.strip() else {}
        if r.get("label") != UTTERANCE or r["path"] in held["test"]:
            continue
        out["validation" if r["path"] in held["validation"] else "train"].append(r)
    return out


def draw(records: list[dict], words: tuple[str, ...], per_kind: int, seed: int) -> list[dict]:
    """At most `per_kind` records of each kind, drawn evenly with a fixed seed."""
    rng = np.random.default_rng(seed)
    by_kind = defaultdict(list)
    for r in records:
        by_kind[kind_of(r["text"], words)].append(r)
    chosen = []
    for kind in KIND_SHARES:
        rs = by_kind.get(kind, [])
        chosen += [rs[i] for i in sorted(rng.permutation(len(rs))[:per_kind])]
    return chosen


@torch.no_grad()
def transcripts(model, data: Path, records: list[dict]) -> list[str]:
    """Greedy CTC transcript of each clean clip, full context."""
    out = []
    for i in range(0, len(records), BATCH):
        clips = [load_audio(data / r["path"]) for r in records[i : i + BATCH]]
        lengths = torch.tensor([c.size for c in clips])
        audio = torch.zeros(len(clips), int(lengths.max()))
        for j, c in enumerate(clips):
            audio[j, : c.size] = torch.from_numpy(c)
        feats, frames = model.featurize(audio, lengths)
        result, _ = model(feats, frames)
        out += greedy_decode(result.ctc_log_probs, result.lengths)
    return out


def rates(pairs: list[tuple[str, str]]) -> dict:
    """Character and word error rates of `(truth, transcript)` pairs, pooled."""
    chars = sum(len(t) for t, _ in pairs)
    words = sum(len(t.split()) for t, _ in pairs)
    return {
        "utterances": len(pairs),
        "cer": round(sum(edit_distance(t, h) for t, h in pairs) / max(chars, 1), 3),
        "wer": round(sum(edit_distance(t.split(), h.split()) for t, h in pairs) / max(words, 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--per-kind", type=int, default=200, help="utterances of each kind per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "spelling.json")
    args = parser.parse_args(argv)
    if args.per_kind < 1:
        parser.error("--per-kind must be at least 1")
    model = load_model(args.model).eval()
    words = tuple(w for w in model.labels if w not in (SILENCE, UNKNOWN))
    result = {"model": str(args.model or "shipped"), "per_kind": args.per_kind, "splits": {}}
    for split, records in utterances_by_split(args.data).items():
        chosen = draw(records, words, args.per_kind, args.seed)
        if not chosen:
            sys.exit(
                f"spelling: no {split} utterances in {args.data}: build the corpus with `speechrnn synth`"
            )
        print(f"spelling: {split}, {len(chosen)} utterances", file=sys.stderr, flush=True)
        heard = transcripts(model, args.data, chosen)
        by_kind, by_engine = defaultdict(list), defaultdict(list)
        for r, h in zip(chosen, heard, strict=True):
            by_kind[kind_of(r["text"], words)].append((r["text"], h))
            by_engine[r.get("voice", "?").split(":")[0]].append((r["text"], h))
        result["splits"][split] = {
            "kinds": {k: rates(v) for k, v in by_kind.items()},
            "engines": {e: rates(v) for e, v in sorted(by_engine.items())},
            "examples": [{"text": r["text"], "heard": h, "voice": r.get("voice")} for r, h in
                         list(zip(chosen, heard, strict=True))[:: max(1, len(chosen) // 8)]],
        }  # fmt: skip
    print("| kind | train CER / WER | validation CER / WER |\n| --- | --- | --- |")
    for kind in KIND_SHARES:
        cells = [result["splits"][s]["kinds"].get(kind) for s in ("train", "validation")]
        print(
            f"| {kind} | "
            + " | ".join(f"{c['cer']:.3f} / {c['wer']:.3f}" if c else "-" for c in cells)
            + " |"
        )
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"spelling: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
