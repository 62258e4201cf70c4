#!/usr/bin/env python3
"""Concatenate audio clips into one recording with pauses and a little noise, as a stand-in for a microphone.

    python scripts/make_stream.py data/samples --out runs/demo/commands.wav [--pause 0.8] [--snr 25]

Prints where each clip starts, so what `speechrnn listen --input` reports can be checked by eye.
"""

from __future__ import annotations

import argparse

import numpy as np

from speechrnn.audio import SAMPLE_RATE, list_audio_files, load_audio, save_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="audio files or folders")
    ap.add_argument("--out", required=True, help="WAV file to write")
    ap.add_argument("--pause", type=float, default=0.8, help="seconds of pause between clips")
    ap.add_argument("--snr", type=float, default=25.0, help="signal-to-noise ratio of the added noise, dB")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    pause = np.zeros(int(args.pause * SAMPLE_RATE), dtype=np.float32)
    pieces, t = [pause], args.pause
    for path in list_audio_files(args.inputs):
        clip = load_audio(path)
        print(f"{t:7.2f} s  {path.name}")
        pieces += [clip, pause]
        t += (clip.size + pause.size) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    power = float(np.mean(audio**2))
    audio = audio + rng.normal(0, np.sqrt(power / 10 ** (args.snr / 10)), audio.size).astype(np.float32)
    save_audio(args.out, audio)
    print(f"wrote {args.out}: {audio.size / SAMPLE_RATE:.1f} s")


if __name__ == "__main__":
    main()
