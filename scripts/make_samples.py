#!/usr/bin/env python3
"""Copy a few clips of a built corpus into data/samples/ (lossless FLAC) and write their README table.

One clip per kind of voice the corpus has, training and held out alike, and two phrases: what the demo
transcribes and streams through `listen`.

    python scripts/make_samples.py data/synth-default --out data/samples
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import soundfile as sf

from speechrnn.speechcommands import META_FILE, _read_meta

# (label or "_phrase_", base voice prefix): the first such clip (by path) of the corpus is taken.
WANTED = (
    ("marvin", "piper:"),
    ("yes", "espeak:"),
    ("seven", "mbrola:us2"),
    ("left", "flite:awb"),
    ("stop", "flite:rms"),
    ("happy", "pico:en-US"),
    ("go", "festival:kal_diphone"),
    ("down", "mbrola:en1"),
    ("_phrase_", "mbrola:us3"),
    ("_phrase_", "pico:en-GB"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="a corpus built by `speechrnn synth`")
    ap.add_argument("--out", type=Path, default=Path("data/samples"))
    args = ap.parse_args()

    records = sorted(_read_meta(args.corpus / META_FILE).values(), key=lambda r: r["path"])
    splits = json.loads((args.corpus / "_meta_" / "voices.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.flac"):
        old.unlink()
    rows = []
    for label, voice in WANTED:
        r = next(r for r in records if r["label"] == label and r["voice"].startswith(voice))
        name = f"{'phrase' if label == '_phrase_' else label}_{r['speaker']}.flac"
        audio, rate = sf.read(args.corpus / r["path"], dtype="int16")
        sf.write(args.out / name, audio, rate, format="FLAC", subtype="PCM_16")
        words = ", ".join(f"{w['word']} {w['start']:.2f}-{w['end']:.2f}" for w in r["words"])
        rows.append(f"| `{name}` | {r['text']} | {r['voice']} | {splits[r['speaker']]['split']} | {words} |")
    build = json.loads((args.corpus / "_meta_" / "build.json").read_text())
    (args.out / "README.md").write_text(
        "# Sample clips of the synthetic corpus\n\n"
        f"Ten clips of `speechrnn synth --preset {build['preset']} --seed {build['seed']}`, copied by "
        "`scripts/make_samples.py` (lossless FLAC copies of the 16 kHz PCM_16 WAVs, to stay small): single "
        "words from every engine and two phrases. Times are the `clips.jsonl` word times (s).\n\n"
        "| file | text | voice | split | words |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    held = sum("| testing |" in r or "| validation |" in r for r in rows)
    print(f"wrote {len(rows)} clips ({held} by held-out voices) and README.md to {args.out}")


if __name__ == "__main__":
    main()
