#!/usr/bin/env python3
"""How well the corpus's word times (CTC forced alignment, `speechrnn.utterances.Aligner`), and the times
`transcribe` gives the command words it finds, agree with the times an engine planned: festival's diphone
voices say utterances of the corpus's kinds in one call and tell where each word's first segment starts and
its last segment ends (`synthesizers.festival_words`).

Prints a table per voice for each (start and end errors, the share of words with both within 100 ms) and
writes them to `docs/alignment.json`.

Usage:
    .venv/bin/python scripts/check_alignment.py [--model CKPT] [--texts 40] [--voices rab_diphone ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from speechrnn.audio import resample
from speechrnn.synthesizers import festival_words
from speechrnn.transcribe import transcribe
from speechrnn.utterances import Aligner, utterance_texts
from speechrnn.words import WORDS_V2

ROOT = Path(__file__).resolve().parents[1]
VOICES = ("rab_diphone", "don_diphone", "ked_diphone", "kal_diphone")  # kal is a test voice of the corpus


def said(voice: str, texts: list[str]) -> list[tuple[str, np.ndarray, list[dict]]]:
    """Each text as festival's `voice` says it: `(text, 16 kHz audio, festival's planned word times)`."""
    out = []
    for text in texts:
        audio, rate, planned = festival_words(text, voice)
        out.append((text, resample(audio, rate), planned))
    return out


def agreement(aligner: Aligner, utterances: list[tuple[str, np.ndarray, list[dict]]]) -> dict:
    """The aligner's times of every word against festival's plan."""
    starts, ends = [], []
    for text, audio, planned in utterances:
        found = aligner(audio, text)
        if [w["word"] for w in planned] != text.split():
            continue  # festival read a word otherwise (it never does for these texts; kept honest)
        starts += [f["start"] - p["start"] for f, p in zip(found, planned, strict=True)]
        ends += [f["end"] - p["end"] for f, p in zip(found, planned, strict=True)]
    return summary(starts, ends)


def transcribed(model, utterances: list[tuple[str, np.ndarray, list[dict]]]) -> dict:
    """`transcribe`'s times of the command words it finds against festival's plan of the same words."""
    starts, ends = [], []
    for _, audio, planned in utterances:
        words = transcribe(audio, model).words
        left = list(planned)
        for w in words:
            match = next(
                (p for p in left if p["word"] == w.word and w.start < p["end"] and w.end > p["start"]), None
            )
            if match is not None:
                left.remove(match)
                starts.append(w.start - match["start"])
                ends.append(w.end - match["end"])
    return summary(starts, ends)


def summary(starts: list[float], ends: list[float]) -> dict:
    s, e = np.array(starts), np.array(ends)
    both = (np.abs(s) <= 0.1) & (np.abs(e) <= 0.1)
    return {
        "words": int(s.size),
        "start_median_ms": round(1000 * float(np.median(s)), 1),
        "end_median_ms": round(1000 * float(np.median(e)), 1),
        "start_within_100ms_pct": round(100 * float(np.mean(np.abs(s) <= 0.1)), 1),
        "end_within_100ms_pct": round(100 * float(np.mean(np.abs(e) <= 0.1)), 1),
        "both_within_100ms_pct": round(100 * float(both.mean()), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint to align with (default: the shipped model)")
    parser.add_argument("--texts", type=int, default=40, help="utterances per voice")
    parser.add_argument("--voices", nargs="+", default=list(VOICES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", type=Path, default=ROOT / "docs" / "alignment.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    aligner = Aligner(args.model)
    texts = utterance_texts(WORDS_V2, args.texts, np.random.default_rng(args.seed))
    result = {"aligner": aligner.name, "texts": len(texts), "voices": {}, "transcribe": {}}
    voices = {voice: said(voice, texts) for voice in args.voices}  # synthesised once for both measures
    for title, key, measure in (
        ("forced alignment, every word", "voices", lambda u: agreement(aligner, u)),
        ("`transcribe`, the command words it finds", "transcribe", lambda u: transcribed(aligner.model, u)),
    ):
        print(f"\n{title}\n")
        print("| festival voice | words | start / end median error (ms) | start / end / both within 100 ms |")
        print("| --- | --- | --- | --- |")
        for voice, utterances in voices.items():
            r = result[key][voice] = measure(utterances)
            print(
                f"| {voice} | {r['words']} | {r['start_median_ms']:+.0f} / {r['end_median_ms']:+.0f} | "
                f"{r['start_within_100ms_pct']:.0f} / {r['end_within_100ms_pct']:.0f} / "
                f"{r['both_within_100ms_pct']:.0f} % |"
            )
    args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
