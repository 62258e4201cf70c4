#!/usr/bin/env python3
"""Phrase WER on many more phrases than the corpus holds: phrases glued from a split's isolated command-word
clips, as the corpus builder glues its `_phrases_` (one speaker, 2-4 words, 80-300 ms between them), so that
models can be told apart where the corpus's 250 validation phrases (some 750 words) cannot.

Each word is its clip's speech (`render.speech_span`) with a 15 ms margin; the phrase has 0.1-0.4 s of
silence before and after, and the whole a faint noise floor. Every model reads the same phrases, decoded as
`scripts/bench_transcribe.py` decodes the corpus's phrases (`bench_phrases`).

Usage:
    .venv/bin/python scripts/glued_phrases.py --data data/synth-default --split validation --model A.pt B.pt
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from bench_transcribe import bench_phrases, read_corpus

from speechrnn.audio import SAMPLE_RATE, load_audio
from speechrnn.checkpoint import load_model
from speechrnn.render import PHRASE_EDGE_S, PHRASE_GAP_S, speech_span

MARGIN = int(0.015 * SAMPLE_RATE)


def glue(data: Path, split: str, n: int, out: Path, seed: int = 0) -> list[dict]:
    """Write `n` glued phrases under `out`; their records as `read_corpus` gives the corpus's phrases."""
    rng = np.random.default_rng(seed)
    by_speaker = collections.defaultdict(list)
    for r in read_corpus(data, split):
        if not r["path"].startswith("_"):  # a command word's own folder
            by_speaker[r["speaker"]].append(r)
    speakers = sorted(s for s, rs in by_speaker.items() if len(rs) >= 4)
    records = []
    for i in range(n):
        clips = by_speaker[speakers[rng.integers(len(speakers))]]
        chosen = [clips[j] for j in rng.choice(len(clips), size=int(rng.integers(2, 5)), replace=False)]
        pieces = [np.zeros(int(rng.uniform(*PHRASE_EDGE_S) * SAMPLE_RATE))]
        words, pos = [], len(pieces[0])
        for k, r in enumerate(chosen):
            audio = load_audio(data / r["path"])
            s, e = speech_span(audio)
            speech = audio[max(0, s - MARGIN) : e + MARGIN]
            if k:
                gap = np.zeros(int(rng.uniform(*PHRASE_GAP_S) * SAMPLE_RATE))
                pieces.append(gap)
                pos += len(gap)
            pieces.append(speech)
            start = pos + min(s, MARGIN)
            words.append(
                {"word": r["label"], "start": start / SAMPLE_RATE, "end": (start + e - s) / SAMPLE_RATE}
            )
            pos += len(speech)
        pieces.append(np.zeros(int(rng.uniform(*PHRASE_EDGE_S) * SAMPLE_RATE)))
        phrase = np.concatenate(pieces)
        phrase = phrase + rng.standard_normal(len(phrase)) * 10 ** (-80 / 20)
        path = out / f"glued_{i:05d}.wav"
        sf.write(path, phrase.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        records.append({"path": str(path), "text": " ".join(w["word"] for w in words), "words": words})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="synthetic corpus (speechrnn synth)")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--phrases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--model", nargs="+", default=[None], help="checkpoints (default: the shipped model)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        records = glue(args.data, args.split, args.phrases, Path(tmp), args.seed)
        words = sum(len(r["words"]) for r in records)
        for name in args.model:
            result = bench_phrases(load_model(name), args.data, records, args.beam)
            print(
                json.dumps(
                    {
                        "model": name or "shipped",
                        "phrases": len(records),
                        "words": words,
                        "wer": result["wer"],
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
