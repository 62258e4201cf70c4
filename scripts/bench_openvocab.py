#!/usr/bin/env python3
"""Open vocabulary: words the model never had as commands, spotted live through the CTC keyword path.

`OPEN_WORDS` are twelve words that are no command word, no `_unknown_` word and none of the prose words of
the corpus (`utterances.common_words`). Held-out voices of the split (the corpus's own speaker draw for it)
say each of them alone and inside sentences, end to end with pauses over the split's noise bed at
`--snr-db`; the live recogniser and a `KeywordListener(keywords=OPEN_WORDS)` listen. False alarms are what it
hears in the split's prose and homophone prose utterances and its `_sentences_` (no keyword in them), per
hour. Both at every threshold of `THRESHOLDS`, drawn as a DET curve (miss rate against false alarms an
hour) in `docs/det_openvocab.png`.

Writes `docs/bench_openvocab.json` (or `--json-out`) and, for the test split, the `open vocabulary` section of
docs/BENCHMARKS.md.

Usage:
    .venv/bin/python scripts/bench_openvocab.py --data data/synth-default --split validation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bench_streaming
import numpy as np
from bench_transcribe import write_section
from det_plot import det_plot

from speechrnn.audio import SAMPLE_RATE
from speechrnn.checkpoint import load_model
from speechrnn.corpus import SENTENCE
from speechrnn.kws import KeywordConfig
from speechrnn.latency import LIVE
from speechrnn.live import KeywordListener
from speechrnn.render import trimmed
from speechrnn.streaming import TorchStep
from speechrnn.synthesizers import Synthesizer, available_engines
from speechrnn.voices import draw_speakers

ROOT = Path(__file__).resolve().parents[1]
MARKS = ("<!-- openvocab:start -->", "<!-- openvocab:end -->")
OPEN_WORDS = (
    "avocado", "hamster", "saxophone", "volcano", "penguin", "tornado", "cactus", "giraffe", "pumpkin",
    "lantern", "dolphin", "trumpet",
)  # fmt: skip
SENTENCES = ("{}", "please say {}", "i saw a {} yesterday", "the {} is over there", "look at that {} now")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SPLIT_DRAW = {"validation": "validation", "test": "testing"}  # the voices' split names


def said(split: str, speakers: int, seed: int) -> list[tuple[np.ndarray, str, str]]:
    """Every open word in every sentence frame, each by one of `speakers` held-out voices of the split:
    `(audio at 16 kHz, the keyword, the text)`; what a voice cannot say is left out."""
    rng = np.random.default_rng(seed)
    voices = draw_speakers(rng, speakers, SPLIT_DRAW[split], available_engines())
    synth = Synthesizer()
    out = []
    for i, word in enumerate(OPEN_WORDS):
        for j, frame in enumerate(SENTENCES):
            voice, text = voices[(i * len(SENTENCES) + j) % len(voices)], frame.format(word)
            (spoken,) = synth.synthesize(voice, [text], [int(rng.integers(2**62))])
            if spoken is not None:
                x = trimmed(*spoken, voice.warp, text)
                out.append(((x / (np.abs(x).max() + 1e-9) * 0.3).astype(np.float32), word, text))
    return out


def stream(clips: list[np.ndarray], bed: np.ndarray, rng: np.random.Generator, snr_db: float):
    """Clips end to end with 0.5-1.2 s pauses over the noise bed: the audio and each clip's span (s)."""
    gaps = rng.uniform(0.5, 1.2, size=len(clips) + 1)
    total = int((sum(c.size for c in clips) / SAMPLE_RATE + gaps.sum()) * SAMPLE_RATE) + SAMPLE_RATE
    audio, spans, pos = np.zeros(total, np.float32), [], int(gaps[0] * SAMPLE_RATE)
    for clip, gap in zip(clips, gaps[1:], strict=True):
        audio[pos : pos + clip.size] += clip
        spans.append((pos / SAMPLE_RATE, (pos + clip.size) / SAMPLE_RATE))
        pos += clip.size + int(gap * SAMPLE_RATE)
    level = float(np.median([np.sqrt(np.mean(c**2)) for c in clips]))
    offset = int(rng.integers(0, bed.size))
    audio += np.resize(np.roll(bed, -offset), total).astype(np.float32) * level * 10 ** (-snr_db / 20)
    return audio, spans


def detections(step, outputs: list, threshold: float) -> list:
    listener = KeywordListener(step, keywords=OPEN_WORDS, ctc_config=KeywordConfig(threshold=threshold))
    return [d for out in outputs for d in listener.hear(out).detections]


def recall(found: list, spans: list, words: list[str]) -> float:
    hit = 0
    for (a, b), word in zip(spans, words, strict=True):
        hit += any(d.keyword == word and a <= d.time <= b + 0.8 for d in found)
    return 100 * hit / max(len(words), 1)


def draw(rows: dict, path: Path) -> None:
    curves = {
        name: [(r["false_alarms_per_hour"], 100 - r[key], t) for t, r in rows.items()]
        for key, name in (("recall_alone_pct", "said alone"), ("recall_in_sentences_pct", "inside sentences"))
    }
    det_plot(curves, path, "Spelled keywords never trained as commands (threshold at each point)",
             "false alarms per hour (prose of held-out voices)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument("--split", default="validation", choices=tuple(SPLIT_DRAW))
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--speakers", type=int, default=12, help="held-out voices saying the words")
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    records = bench_streaming.split_records(args.data, args.split)
    bed = bench_streaming.noise_bed(args.data, records).audio
    step = TorchStep(load_model(args.model), LIVE.chunk_ms, LIVE.lookahead_ms)
    material = said(args.split, args.speakers, args.seed)
    audio, spans = stream([m[0] for m in material], bed, rng, args.snr_db)
    words = [m[1] for m in material]
    alone = [m[2] == m[1] for m in material]
    prose = [r for r in records if r.get("label") == SENTENCE or r.get("kind") in ("prose", "homophones")]
    fa_audio, _ = bench_streaming.build_stream(
        args.data, prose, bench_streaming.noise_bed(args.data, records), rng, args.snr_db, (0.4, 1.2)
    )
    start = time.perf_counter()
    outs, fa_outs = bench_streaming.step_outputs(step, audio), bench_streaming.step_outputs(step, fa_audio)
    hours = fa_audio.size / SAMPLE_RATE / 3600
    rows = {}
    for t in THRESHOLDS:
        found, fa = detections(step, outs, t), detections(step, fa_outs, t)
        pick = lambda keep: [x for x, k in zip(spans, alone, strict=True) if k == keep]  # noqa: E731
        pick_w = lambda keep: [x for x, k in zip(words, alone, strict=True) if k == keep]  # noqa: E731
        rows[f"{t:g}"] = {
            "recall_alone_pct": round(recall(found, pick(True), pick_w(True)), 1),
            "recall_in_sentences_pct": round(recall(found, pick(False), pick_w(False)), 1),
            "false_alarms": len(fa),
            "false_alarms_per_hour": round(len(fa) / hours, 1),
        }
    result = {
        "split": args.split,
        "words": list(OPEN_WORDS),
        "said": len(material),
        "said_alone": int(sum(alone)),
        "prose_seconds": round(fa_audio.size / SAMPLE_RATE, 1),
        "snr_db": args.snr_db,
        "model": args.model or "speechrnn/assets/model.pt",
        "compute_seconds": round(time.perf_counter() - start, 1),
        "thresholds": rows,
    }
    suffix = "" if args.split == "test" else "_" + args.split
    out = args.json_out or ROOT / "docs" / f"bench_openvocab{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    draw(rows, ROOT / "docs" / f"det_openvocab{suffix}.png")
    lines = [
        MARKS[0],
        "## Open vocabulary (spelled keywords, held-out voices)",
        "",
        f"`scripts/bench_openvocab.py --split {args.split}`: {len(OPEN_WORDS)} words never trained as commands "
        f"({', '.join(OPEN_WORDS)}), {len(material)} times by held-out voices (alone and inside sentences), "
        f"at {args.snr_db:g} dB SNR; false alarms on {result['prose_seconds'] / 60:.0f} minutes of prose; model "
        f"`{result['model']}`. DET curve: `docs/det_openvocab{suffix}.png`.",
        "",
        "| threshold | recall alone | recall in sentences | false alarms / hour |",
        "| --- | --- | --- | --- |",
        *(
            f"| {t} | {r['recall_alone_pct']:.1f} % | {r['recall_in_sentences_pct']:.1f} % | "
            f"{r['false_alarms_per_hour']:.0f} |"
            for t, r in rows.items()
        ),
        MARKS[1],
    ]
    print("\n".join(lines))
    if args.split == "test":
        write_section(ROOT / "docs" / "BENCHMARKS.md", "\n".join(lines), MARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
