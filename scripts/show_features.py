"""Plot what the front end sees: waveform and MFCC of a few clips, one column per clip, into a PNG.

    python scripts/show_features.py CORPUS_DIR_OR_FILES... [--out runs/demo/features.png] [--clips 4]

Given a corpus in the Speech Commands layout, it takes the first clip of the first few word folders and,
where there is one, of `_phrases_/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechrnn.audio import SAMPLE_RATE, list_audio_files, load_audio  # noqa: E402
from speechrnn.corpus import PHRASES_DIR  # noqa: E402
from speechrnn.errors import SpeechRNNError  # noqa: E402
from speechrnn.features import FeatureConfig, mfcc  # noqa: E402


def pick_clips(paths: list[Path], count: int) -> list[Path]:
    """Up to `count` clips: files as given; from a corpus folder, one per word folder plus one phrase."""
    picked: list[Path] = []
    for path in paths:
        if not path.is_dir():
            picked.append(path)
            continue
        words = [d for d in sorted(path.iterdir()) if d.is_dir() and not d.name.startswith("_")]
        firsts = [files[0] for d in words if (files := list_audio_files([d]))]
        phrases = list_audio_files([path / PHRASES_DIR]) if (path / PHRASES_DIR).is_dir() else []
        picked += (firsts[: count - 1] + phrases[:1]) if phrases else firsts[:count]
        if not firsts and not phrases:  # not a corpus: any audio files in it
            picked += list_audio_files([path])[:count]
    return picked[:count]


def plot(clips: list[Path], out: Path, config: FeatureConfig | None = None) -> None:
    config = config or FeatureConfig()
    fig, axes = plt.subplots(2, len(clips), figsize=(4 * len(clips), 5.5), squeeze=False, sharey="row")
    for column, path in enumerate(clips):
        audio = load_audio(path)
        features = mfcc(audio, config).numpy()  # (frames, n_mfcc)
        # Per-coefficient standardisation, as the model's normalisation does with corpus statistics;
        # unscaled, c0 (loudness, around -70) would take the whole colour range.
        shown = (features - features.mean(0)) / (features.std(0) + 1e-5)
        seconds = audio.size / SAMPLE_RATE
        wave, ceps = axes[0, column], axes[1, column]
        wave.plot(np.arange(audio.size) / SAMPLE_RATE, audio, linewidth=0.4)
        wave.set(title=f"{path.parent.name}/{path.name}", xlim=(0, seconds), xlabel="s")
        wave.title.set_fontsize(8)
        image = ceps.imshow(
            shown.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-3,
            vmax=3,
            extent=(0, features.shape[0] * config.hop_ms / 1000, 0, config.n_mfcc),
        )
        ceps.set(xlabel="s")
        fig.colorbar(image, ax=ceps, fraction=0.05)
        print(f"  {path}: {seconds:.2f} s, {features.shape[0]} frames x {features.shape[1]} MFCC")
    axes[0, 0].set_ylabel("waveform")
    axes[1, 0].set_ylabel("MFCC coefficient (standardised)")
    fig.suptitle(
        f"What the model sees: {config.n_mfcc} MFCC from {config.n_mels} log-mel bands, "
        f"{config.win_ms:g} ms window every {config.hop_ms:g} ms"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="a corpus folder, or audio files")
    parser.add_argument("--out", type=Path, default=Path("runs/demo/features.png"), help="PNG to write")
    parser.add_argument("--clips", type=int, default=4, help="how many clips to plot")
    args = parser.parse_args(argv)
    clips = pick_clips(args.paths, max(1, args.clips))
    if not clips:
        print(f"show_features: no audio files in {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    try:
        plot(clips, args.out)
    except SpeechRNNError as err:
        print(f"show_features: error: {err}", file=sys.stderr)
        return 2
    print(f"show_features: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
