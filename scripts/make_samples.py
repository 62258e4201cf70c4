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

from speechrnn.corpus import META_DIR, META_FILE, PHRASE
from speechrnn.speechcommands import _read_meta
from speechrnn.voices import split_of_base

# (label or PHRASE, base voice prefix): the first such clip (by path) of the corpus is taken; a word the
# voice did not say in this build gives way to its first command word.
WANTED = (
    ("marvin", "piper:"),
    ("yes", "espeak:"),
    ("seven", "mbrola:us2"),
    ("left", "flite:awb"),
    ("stop", "flite:rms"),
    ("happy", "pico:en-US"),
    ("go", "festival:kal_diphone"),
    ("down", "mbrola:en1"),
    ("right", "rhvoice:clb"),
    (PHRASE, "mbrola:us3"),
    (PHRASE, "pico:en-GB"),
)


def _pick(records: list[dict], label: str, voice: str) -> dict:
    """The first clip of `label` by `voice`; else (a build may lack that pair) its first command word."""
    by_voice = [r for r in records if r["voice"].startswith(voice)]
    for wanted in (
        lambda r: r["label"] == label,
        lambda r: label != PHRASE and not r["label"].startswith("_"),
    ):
        found = [r for r in by_voice if wanted(r)]
        if found:
            return found[0]
    raise SystemExit(f"make_samples: the corpus has no {label} clip by a {voice} voice")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="a corpus built by `speechrnn synth`")
    ap.add_argument("--out", type=Path, default=Path("data/samples"))
    args = ap.parse_args()

    records = sorted(_read_meta(args.corpus / META_FILE).values(), key=lambda r: r["path"])
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.flac"):
        old.unlink()
    rows, splits = [], []
    for label, voice in WANTED:
        r = _pick(records, label, voice)
        splits.append(split_of_base(r["voice"].split()[0]))  # the description starts with the base voice
        name = f"{'phrase' if label == PHRASE else r['label']}_{r['speaker']}.flac"
        audio, rate = sf.read(args.corpus / r["path"], dtype="int16")
        sf.write(args.out / name, audio, rate, format="FLAC", subtype="PCM_16")
        words = ", ".join(f"{w['word']} {w['start']:.2f}-{w['end']:.2f}" for w in r["words"])
        rows.append(f"| `{name}` | {r['text']} | {r['voice']} | {splits[-1]} | {words} |")
    build = json.loads((args.corpus / META_DIR / "build.json").read_text())
    (args.out / "README.md").write_text(
        "# Sample clips of the synthetic corpus\n\n"
        f"{len(rows)} clips of `speechrnn synth --preset {build['preset']} --seed {build['seed']}`, copied by "
        "`scripts/make_samples.py` (lossless FLAC copies of the 16 kHz PCM_16 WAVs, to stay small): single "
        "words from every engine and two phrases. Times are the `clips.jsonl` word times (s).\n\n"
        "| file | text | voice | split | words |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    held = sum(split != "train" for split in splits)
    print(f"wrote {len(rows)} clips ({held} by held-out voices) and README.md to {args.out}")


if __name__ == "__main__":
    main()
