#!/usr/bin/env python
"""Benchmark of live keyword spotting: compute, memory, and (with --data) accuracy and latency.

Compute: the streaming recogniser and spotter on one core (`torch.set_num_threads(1)`), fed 100 ms audio
blocks with 100 ms recogniser chunks: milliseconds of compute per chunk (CPU time of the thread, so that
other work on a shared machine does not count) and the real-time factor (compute time / audio time; the
wall-clock factor is reported too). Memory: resident set size growth over a long stream after a warm-up.

Accuracy (`--data DIR`, a synthetic corpus with `testing_list.txt`, `_background_noise_/` and
`_meta_/clips.jsonl`): the TensorFlow speech_commands streaming test. Held-out-voice test words and phrases
are laid end to end with noise-only gaps over a background noise bed (the corpus's noises, but babble of
the split's own people: the corpus's babble is training voices); the stream goes through the live
stack; each detection is matched to a spoken word whose span (extended by the tolerance after its end)
contains the detection time, preferring a word of the same label. Reported as percentages of the spoken
command words: matched, correct, wrong, and false positives (detections matching no word), and the words
right under each noise and of each voice (where the misses are). A second stream
of non-command sentences and unknown words over noise gives false alarms per hour. Latency: detection time
minus the end of the spoken word (word times from clips.jsonl), for correct detections. The correct
percentage comes with a 95 % interval from a bootstrap over the stream's speakers: how far another draw of
held-out people could move it.

Writes docs/bench_streaming.json and the section between `<!-- streaming:start -->` and
`<!-- streaming:end -->` of docs/BENCHMARKS.md (created if absent; other sections are left alone).

Usage:
    .venv/bin/python scripts/bench_streaming.py [--model CKPT] [--data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from speechrnn import noise as noise_gen
from speechrnn.audio import SAMPLE_RATE, load_audio
from speechrnn.checkpoint import default_model_path, load_model
from speechrnn.config import DECIDE, DECISIONS
from speechrnn.corpus import BACKGROUND_DIR, SENTENCE
from speechrnn.latency import LIVE
from speechrnn.live import RESET_AFTER_SILENCE_MS, KeywordListener
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.recognizer import StreamingRecognizer, StreamOutput
from speechrnn.spotter import KeywordSpotter, SpotterConfig
from speechrnn.streaming import TorchStep
from speechrnn.words import KWS12_WORDS, SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- streaming:start -->", "<!-- streaming:end -->"
BLOCK_MS = 100  # audio per block, as a microphone delivers it
WARMUP_S = 10.0  # audio streamed before memory is first measured
BABBLE_SEED = 7  # the held-out babble's draw
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # thresholds reported in the sweep
TARGETS = {
    "correct_pct": ">= 95",
    "false_positive_pct": "<= 2",
    "latency_median_ms": "<= 300",
    "rtf": "<= 0.05",
}


# --- setup ----------------------------------------------------------------------------------------------


def bench_model(path: str | None) -> tuple[Recognizer, str]:
    """The model to measure and a sentence saying which it is."""
    if path is not None:
        return load_model(path), f"checkpoint {path}"
    if default_model_path().is_file():
        return load_model(), f"shipped model ({default_model_path().relative_to(ROOT)})"
    torch.manual_seed(0)
    labels = (SILENCE, UNKNOWN, *KWS12_WORDS)
    model = Recognizer(ModelConfig(n_labels=len(labels)), labels).eval()
    return (
        model,
        "random-init model of the default architecture (no trained model found: accuracy is meaningless)",
    )


def rss_mb(field: str = "VmRSS") -> float:
    """Resident set size (`VmRSS`) or its peak so far (`VmHWM`) in MiB, from /proc (else getrusage's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


# --- compute and memory ---------------------------------------------------------------------------------


def synthetic_blocks(seconds: float, seed: int = 0):
    """Noise with tone bursts, generated block by block (compute does not depend on what is said)."""
    rng = np.random.default_rng(seed)
    n = SAMPLE_RATE * BLOCK_MS // 1000
    t = np.arange(n) / SAMPLE_RATE
    for i in range(int(seconds * 1000 / BLOCK_MS)):
        block = 0.01 * rng.standard_normal(n)
        if i % 15 < 5:
            block += 0.2 * np.sin(2 * np.pi * (300 + 40 * (i % 7)) * (t + i * n / SAMPLE_RATE))
        yield block.astype(np.float32)


def measure_compute(model: Recognizer, seconds: float, chunk_ms: float, lookahead_ms: float) -> dict:
    """Per-chunk compute, real-time factor and memory growth over `seconds` of streamed audio."""
    rec = StreamingRecognizer(TorchStep(model, chunk_ms, lookahead_ms))
    spotter = KeywordSpotter(model.labels, rec.step_seconds)
    times, walls, rss_start, peak_start, streamed = [], [], None, 0.0, 0.0
    for block in synthetic_blocks(seconds):
        c0, w0 = time.thread_time(), time.perf_counter()
        spotter.update(rec.accept(block))
        cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
        streamed += block.size / SAMPLE_RATE
        if streamed > min(WARMUP_S, seconds / 4):
            times.append(cpu)
            walls.append(wall)
            if rss_start is None:
                rss_start, peak_start = rss_mb(), rss_mb("VmHWM")
    rss_end, peak_end = rss_mb(), rss_mb("VmHWM")
    ms = 1000 * np.array(times)
    audio_s = len(times) * BLOCK_MS / 1000
    return {
        "stream_seconds": round(seconds, 1),
        "block_ms": BLOCK_MS,
        "chunk_ms": chunk_ms,
        "lookahead_ms": lookahead_ms,
        "chunk_compute_ms": {
            "mean": round(float(ms.mean()), 3),
            "median": round(float(np.median(ms)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3),
            "max": round(float(ms.max()), 3),
        },
        "rtf": round(float(ms.sum() / 1000 / audio_s), 4),
        "rtf_wall": round(float(sum(walls) / audio_s), 4),  # includes waiting for a shared core
        "rss_mb_after_warmup": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 2),
        "peak_rss_growth_mb": round(peak_end - peak_start, 2),  # growth of the high-water mark
        "measured_seconds": round(audio_s, 1),
    }


# --- accuracy -------------------------------------------------------------------------------------------


SPLIT_LISTS = {"test": "testing_list.txt", "validation": "validation_list.txt"}


def split_records(data: Path, split: str = "test") -> list[dict]:
    """clips.jsonl records of the test or validation split (clips without a record are skipped)."""
    listed = set((data / SPLIT_LISTS[split]).read_text().split())
    meta = data / "_meta_" / "clips.jsonl"
    records = []
    for line in meta.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            if r.get("path") in listed:
                records.append(r)
    return records


def held_out_noises(data: Path, speech: list[Path]) -> dict[str, np.ndarray]:
    """The corpus's noise recordings at unit RMS by name, its babble made again of `speech` (held-out voices).

    The corpus's `babble.wav` is spoken by training voices, and training mixes it in: a benchmark over it
    would test babble the model has heard. Here babble is six talkers of `speech` (the split's own
    `_sentences_`: people never heard in training), as long as the corpus's, from a fixed seed.
    """
    files = sorted((data / BACKGROUND_DIR).glob("*.wav"))
    if not files:
        raise SystemExit(f"bench: no noise files in {data / BACKGROUND_DIR}")
    talk = [load_audio(p) for p in speech]
    noises = {}
    for f in files:
        x = load_audio(f)
        if f.stem == "babble" and talk:
            x = noise_gen.babble(x.size, np.random.default_rng(BABBLE_SEED), talk)
        noises[f.stem] = (x / (np.std(x) + 1e-9)).astype(np.float32)
    return noises


class NoiseBed(NamedTuple):
    """Noise recordings end to end, and which one lies under each sample."""

    audio: np.ndarray
    names: tuple[str, ...]
    ends: np.ndarray  # sample at which each recording ends

    def name_at(self, sample: int) -> str:
        """The noise under `sample` (counted round the bed, as `build_stream` loops it)."""
        return self.names[int(np.searchsorted(self.ends, sample % self.audio.size, side="right"))]


def noise_bed(data: Path, records: list[dict]) -> NoiseBed:
    """`held_out_noises` of the split's sentences, end to end."""
    speech = [data / r["path"] for r in records if r.get("label") == SENTENCE]
    noises = held_out_noises(data, speech)
    ends = np.cumsum([x.size for x in noises.values()])
    return NoiseBed(np.concatenate(list(noises.values())), tuple(noises), ends)


def build_stream(
    data: Path, records: list[dict], noise: NoiseBed, rng: np.random.Generator, snr_db: float, gap_s: tuple
) -> tuple[np.ndarray, list[dict]]:
    """Clips end to end with noise-only gaps, over a noise bed at `snr_db` below the median clip level.

    Returns the stream and every spoken word: `{"word", "start", "end", "speaker", "voice", "noise"}`, times
    in stream seconds, `noise` the recording under the word's start.
    """
    clips = [load_audio(data / r["path"]) for r in records]
    gaps = rng.uniform(*gap_s, size=len(clips) + 1)
    total = int((sum(c.size for c in clips) / SAMPLE_RATE + gaps.sum()) * SAMPLE_RATE) + SAMPLE_RATE
    offset = int(rng.integers(0, noise.audio.size))
    stream = np.zeros(total, dtype=np.float32)
    words, pos = [], int(gaps[0] * SAMPLE_RATE)
    for r, clip, gap in zip(records, clips, gaps[1:], strict=True):
        stream[pos : pos + clip.size] += clip
        for w in r.get("words") or []:
            start = pos / SAMPLE_RATE + w["start"]
            words.append(
                {
                    "word": w["word"],
                    "start": start,
                    "end": pos / SAMPLE_RATE + w["end"],
                    "speaker": r.get("speaker", r["path"]),
                    "voice": voice_group(r),
                    "noise": noise.name_at(offset + int(start * SAMPLE_RATE)),
                }
            )
        pos += clip.size + int(gap * SAMPLE_RATE)
    speech_rms = float(np.median([np.sqrt(np.mean(c**2)) for c in clips])) if clips else 0.1
    bed = np.resize(np.roll(noise.audio, -offset), total)
    stream += bed * speech_rms * 10 ** (-snr_db / 20)
    return stream, words


def stream_outputs(
    model: Recognizer, audio: np.ndarray, chunk_ms: float, lookahead_ms: float, ctc: bool = False
) -> list[StreamOutput]:
    """The live recogniser's outputs for a stream fed in 100 ms blocks (only what the spotter needs: the
    label head's, and the CTC head's too for a decision that reads it)."""
    outputs = step_outputs(TorchStep(model, chunk_ms, lookahead_ms), audio)
    return outputs if ctc else [_slim(out) for out in outputs]


def step_outputs(step, audio: np.ndarray) -> list[StreamOutput]:
    """Every output of the live recogniser over `step` (with listen's pause reset) for a stream fed in
    `BLOCK_MS` blocks, as a microphone delivers it."""
    rec = StreamingRecognizer(step, RESET_AFTER_SILENCE_MS)
    block = SAMPLE_RATE * BLOCK_MS // 1000
    return [rec.accept(audio[pos : pos + block]) for pos in range(0, audio.size, block)] + [rec.flush()]


def _slim(out: StreamOutput) -> StreamOutput:
    empty = np.zeros((out.steps, 0), np.float32)
    return StreamOutput(
        out.start,
        empty,
        out.label_logits,
        out.attn_logits[:0],
        empty,
        out.ready_seconds,
        out.c0,
        out.step_seconds,
    )


def detect(
    outputs: list[StreamOutput],
    labels: tuple[str, ...],
    config: SpotterConfig,
    thresholds: dict | None = None,
) -> list:
    spotter = KeywordSpotter(labels, outputs[0].step_seconds, config, thresholds)
    return [d for out in outputs for d in spotter.update(out)]


def listen_events(
    outputs: list[StreamOutput],
    step,
    decide: str,
    threshold: float | None,
    config: SpotterConfig | None = None,
) -> list:
    """The events `listen --decide DECIDE` gives for a stream's outputs (`step`: the backend they came from)."""
    listener = KeywordListener(step, threshold=threshold, decide=decide, config=config)
    return [d for out in outputs for d in listener.hear(out).detections]


def score(detections: list, words: list[dict], keywords: set[str], tolerance_s: float) -> dict:
    """TensorFlow streaming-test statistics and latencies (see the module docstring)."""
    truth = sorted((w for w in words if w["word"] in keywords), key=lambda w: w["start"])
    matched_flags = [False] * len(truth)
    correct_flags = [False] * len(truth)
    correct = wrong = false_pos = 0
    latencies = []
    for d in detections:
        candidates = [
            i
            for i, w in enumerate(truth)
            if not matched_flags[i] and w["start"] <= d.time <= w["end"] + tolerance_s
        ]
        if not candidates:
            false_pos += 1
            continue
        same = [i for i in candidates if truth[i]["word"] == d.keyword]
        i = (same or candidates)[0]
        matched_flags[i] = True
        if truth[i]["word"] == d.keyword:
            correct += 1
            correct_flags[i] = True
            latencies.append(d.time - truth[i]["end"])
        else:
            wrong += 1
    n = max(len(truth), 1)
    lat = np.array(latencies) * 1000
    return {
        "words": len(truth),
        "detections": len(detections),
        "matched_pct": round(100 * (correct + wrong) / n, 2),
        "correct_pct": round(100 * correct / n, 2),
        "wrong_pct": round(100 * wrong / n, 2),
        "false_positive_pct": round(100 * false_pos / n, 2),
        "latency_median_ms": round(float(np.median(lat)), 1) if lat.size else None,
        "latency_p90_ms": round(float(np.percentile(lat, 90)), 1) if lat.size else None,
        "correct_ci95": speaker_interval(truth, correct_flags),
        "correct_by_noise": tally(truth, correct_flags, "noise"),
        "correct_by_voice": tally(truth, correct_flags, "voice"),
    }


def voice_group(record: dict) -> str:
    """The voice a clip's record names, without its per-speaker settings; espeak's accents as one."""
    base = str(record.get("voice") or "unknown").split()[0]
    return "espeak" if base.startswith("espeak:") else base


def tally(words: list[dict], correct: list[bool], key: str) -> dict[str, list[int]] | None:
    """`{value: [correct, spoken]}` command words by their `key` (noise, voice); None when they lack it."""
    if not words or any(key not in w for w in words):
        return None
    counts: dict[str, list[int]] = {}
    for w, ok in zip(words, correct, strict=True):
        row = counts.setdefault(w[key], [0, 0])
        row[0] += ok
        row[1] += 1
    return dict(sorted(counts.items()))


def speaker_interval(words: list[dict], correct: list[bool], draws: int = 2000) -> list[float] | None:
    """95 % interval of the correct percentage over other draws of the stream's speakers (a bootstrap of
    whole speakers: one speaker's words stand or fall together, so words are not independent draws).
    None when the words carry no speaker."""
    if not words or any("speaker" not in w for w in words):
        return None
    index = {s: i for i, s in enumerate(dict.fromkeys(w["speaker"] for w in words))}
    spoken = np.zeros(len(index))
    right = np.zeros(len(index))
    for w, ok in zip(words, correct, strict=True):
        spoken[index[w["speaker"]]] += 1
        right[index[w["speaker"]]] += ok
    picks = np.random.default_rng(0).integers(0, len(index), size=(draws, len(index)))
    pct = 100 * right[picks].sum(axis=1) / spoken[picks].sum(axis=1)
    return [round(float(x), 1) for x in np.percentile(pct, [2.5, 97.5])]


def measure_accuracy(model: Recognizer, data: Path, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    records = split_records(data, args.split)
    keywords = {label for label in model.labels if label not in (SILENCE, UNKNOWN)}
    word_clips = [r for r in records if r.get("label") in keywords]
    phrases = [r for r in records if r.get("label") == "_phrase_"]
    unknown = [r for r in records if r.get("label") == UNKNOWN]
    sentences = [r for r in records if r.get("label") == "_sentence_"]

    def pick(rs: list[dict], n: int) -> list[dict]:
        return [rs[i] for i in sorted(rng.permutation(len(rs))[:n])]

    chosen_clips = {
        "words": pick(word_clips, args.max_words),
        "phrases": pick(phrases, args.max_phrases),
        "unknown": pick(unknown, args.max_words // 10),
    }
    commands = [r for rs in chosen_clips.values() for r in rs]
    commands = [commands[i] for i in rng.permutation(len(commands))]
    if not commands:
        raise SystemExit(f"bench: no {args.split}-split command clips in {data} for the model's labels")
    noise = noise_bed(data, records)
    audio, words = build_stream(data, commands, noise, rng, args.snr_db, (0.4, 1.2))
    ctc = args.decide != "label"
    outputs = stream_outputs(model, audio, args.chunk_ms, args.lookahead_ms, ctc)
    base = SpotterConfig(refractory_ms=args.refractory_ms)
    chosen = replace(base, threshold=args.threshold if args.threshold is not None else base.threshold)
    table = model.thresholds.get("label", {}) if args.threshold is None else {}  # as `listen` decides
    step = TorchStep(model, args.chunk_ms, args.lookahead_ms)

    def events(outs: list[StreamOutput], threshold: float | None, thresholds: dict | None = None) -> list:
        """`listen`'s events at `threshold` (None: the decision's default)."""
        if args.decide != "label":
            return listen_events(outs, step, args.decide, threshold, base)
        return detect(
            outs,
            model.labels,
            replace(base, threshold=base.threshold if threshold is None else threshold),
            thresholds,
        )

    result = score(events(outputs, args.threshold, table), words, keywords, args.tolerance_ms / 1000)
    sweep = {}
    for t in SWEEP:
        detections = events(outputs, t)
        sweep[f"{t:g}"] = score(detections, words, keywords, args.tolerance_ms / 1000)

    fa_clips = pick(sentences, args.max_sentences) + pick(unknown, args.max_sentences)
    fa = {"seconds": 0.0, "false_alarms": None, "per_hour": None}
    fa_sweep = {}
    if fa_clips:
        fa_audio, _ = build_stream(data, fa_clips, noise, rng, args.snr_db, (0.3, 1.0))
        fa_out = stream_outputs(model, fa_audio, args.chunk_ms, args.lookahead_ms, ctc)
        hours = fa_audio.size / SAMPLE_RATE / 3600
        n = len(events(fa_out, args.threshold, table))
        fa = {
            "seconds": round(fa_audio.size / SAMPLE_RATE, 1),
            "false_alarms": n,
            "per_hour": round(n / hours, 1),
        }
        fa_sweep = {f"{t:g}": round(len(events(fa_out, t)) / hours, 1) for t in SWEEP}
    for t, row in sweep.items():
        row["false_alarms_per_hour"] = fa_sweep.get(t)
    return {
        "data": str(data),
        "split": args.split,
        "stream_seconds": round(audio.size / SAMPLE_RATE, 1),
        "clips": {kind: len(rs) for kind, rs in chosen_clips.items()},
        "snr_db": args.snr_db,
        "tolerance_ms": args.tolerance_ms,
        "chunk_ms": args.chunk_ms,
        "lookahead_ms": args.lookahead_ms,
        "decide": args.decide,
        "spotter": {
            k: getattr(chosen, k) for k in ("threshold", "smooth_ms", "min_ms", "refractory_ms", "onset_ms")
        }
        | ({"per_keyword_thresholds": table} if table else {})
        | (
            {}
            if args.decide == "label"
            else {"threshold": args.threshold, "threshold_is_the_decision_default": args.threshold is None}
        ),
        **result,
        "non_command": fa,
        "threshold_sweep": sweep,
    }


# --- report ---------------------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    c, m = results["compute"], results["machine"]
    cpu = c["chunk_compute_ms"]
    quick = " --quick" if results["quick"] else ""
    lines = [
        "## Live keyword spotting (streaming)",
        "",
        f"Measured by `scripts/bench_streaming.py{quick}` on {results['date']}: {results['model']}; "
        f"{m['cpu']}, one thread (load average {m['load_average_1min']} on {m['cores_visible']} shared "
        "cores).",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| CPU time per {c['chunk_ms']:g} ms chunk (median / p99 / max) "
        f"| {cpu['median']:.2f} / {cpu['p99']:.2f} / {cpu['max']:.2f} ms | <= 5 ms |",
        f"| real-time factor, one core (CPU time; wall clock) | {c['rtf']:.4f}; {c['rtf_wall']:.4f} "
        f"| {TARGETS['rtf']} |",
        f"| memory growth over {c['measured_seconds']:g} s of stream (resident; peak) "
        f"| {c['rss_growth_mb']:+.1f}; {c['peak_rss_growth_mb']:+.1f} MiB | none |",
    ]
    a = results.get("accuracy")
    if not a:
        return "\n".join([*lines, "", "Accuracy not measured (run with `--data DIR`)."]) + "\n"
    fa, clips = a["non_command"], a["clips"]
    lines += [
        f"| matched / correct / wrong | {a['matched_pct']:.1f} / {a['correct_pct']:.1f} / "
        f"{a['wrong_pct']:.1f} % | correct {TARGETS['correct_pct']} % |",
        f"| correct, 95 % interval over draws of the speakers | {_interval(a.get('correct_ci95'))} | |",
        f"| false positives | {a['false_positive_pct']:.1f} % | {TARGETS['false_positive_pct']} % |",
        f"| false alarms on non-command speech and noise | {fa['per_hour']} / hour ({fa['seconds']:g} s) | |",
        f"| latency from word end, median / p90 | {a['latency_median_ms']} / {a['latency_p90_ms']} ms "
        f"| median {TARGETS['latency_median_ms']} ms |",
        "",
        f"Accuracy stream: {a['stream_seconds']:g} s from the {a.get('split', 'test')} split of "
        f"`{a['data']}` ({clips['words']} words, {clips['phrases']} phrases, {clips['unknown']} unknown "
        f"words: {a['words']} command words spoken), noise at {a['snr_db']:g} dB SNR, match tolerance {a['tolerance_ms']:g} ms after the word "
        f"end; chunk {a['chunk_ms']:g} ms + look-ahead {a['lookahead_ms']:g} ms; spotter {_spotter_text(a['spotter'])}.",
        "",
        *_tally_line("Correct by the noise under the word", a.get("correct_by_noise")),
        *_tally_line("Correct by voice", a.get("correct_by_voice")),
        "| threshold | correct % | wrong % | false pos. % | false alarms / h | latency median ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t, r in a["threshold_sweep"].items():
        lines.append(
            f"| {t} | {r['correct_pct']:.1f} | {r['wrong_pct']:.1f} | {r['false_positive_pct']:.1f} "
            f"| {r['false_alarms_per_hour']} | {r['latency_median_ms']} |"
        )
    return "\n".join(lines) + "\n"


def _spotter_text(spotter: dict) -> str:
    table = spotter.get("per_keyword_thresholds")
    plain = {k: v for k, v in spotter.items() if k != "per_keyword_thresholds"}
    if not table:
        return str(plain)
    return f"{plain}, per-keyword thresholds from the model ({min(table.values()):g}-{max(table.values()):g})"


def _tally_line(title: str, counts: dict[str, list[int]] | None) -> list[str]:
    if not counts:
        return []
    parts = [f"{name} {100 * c / n:.0f} % ({c}/{n})" for name, (c, n) in counts.items()]
    return [f"{title}: " + ", ".join(parts) + ".", ""]


def _interval(ci: list[float] | None) -> str:
    return f"{ci[0]:.1f}-{ci[1]:.1f} %" if ci else "n/a"


def write_report(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_streaming.json").write_text(json.dumps(results, indent=1) + "\n")
    path = out_dir / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{START}\n{markdown(results)}{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", metavar="CKPT", help="checkpoint (default: the shipped model, else a random-init one)"
    )
    p.add_argument(
        "--data", type=Path, metavar="DIR", help="synthetic corpus for the accuracy and latency stream"
    )
    p.add_argument("--quick", action="store_true", help="short streams: a smoke run, not numbers to quote")
    p.add_argument(
        "--seconds", type=float, help="length of the compute/memory stream (default: 600, quick: 30)"
    )
    p.add_argument("--chunk-ms", type=float, default=100.0, help="recogniser chunk (default: 100)")
    p.add_argument(
        "--lookahead-ms",
        type=float,
        default=LIVE.lookahead_ms,
        help=f"recogniser look-ahead (default: {LIVE.lookahead_ms:g}, as listen)",
    )
    p.add_argument("--threshold", type=float, help="spotter threshold (default: the spotter's)")
    p.add_argument(
        "--refractory-ms",
        type=float,
        default=SpotterConfig.refractory_ms,
        help=f"no event for this long after one (default: {SpotterConfig.refractory_ms:g})",
    )
    p.add_argument(
        "--decide", choices=DECISIONS, default=DECIDE, help=f"how listen decides (default: {DECIDE})"
    )
    p.add_argument(
        "--snr-db", type=float, default=20.0, help="speech-to-noise ratio of the streams (default: 20)"
    )
    p.add_argument(
        "--tolerance-ms", type=float, default=750.0, help="match window after a word's end (default: 750)"
    )
    p.add_argument("--max-words", type=int, help="test word clips in the stream (default: 600, quick: 40)")
    p.add_argument("--max-phrases", type=int, help="test phrase clips (default: 150, quick: 10)")
    p.add_argument(
        "--max-sentences",
        type=int,
        help="sentence and unknown clips for false alarms (default: 400, quick: 20)",
    )
    p.add_argument(
        "--split",
        choices=sorted(SPLIT_LISTS),
        default="test",
        help="voices the accuracy streams are made of: test (the figures to quote) or validation (for tuning)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs", help="where the JSON and BENCHMARKS.md go")
    args = p.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds or (30.0 if quick else 600.0)
    args.max_words = args.max_words or (40 if quick else 600)
    args.max_phrases = args.max_phrases or (10 if quick else 150)
    args.max_sentences = args.max_sentences or (20 if quick else 400)

    torch.set_num_threads(1)
    model, description = bench_model(args.model)
    print(f"bench: {description}", file=sys.stderr)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": quick,
        "model": description,
        "model_config": model.config.to_dict(),
        "machine": machine(),
    }
    with torch.no_grad():
        print(f"bench: compute and memory over {args.seconds:g} s of stream", file=sys.stderr)
        results["compute"] = measure_compute(model, args.seconds, args.chunk_ms, args.lookahead_ms)
        if args.data is not None:
            print(f"bench: accuracy stream from {args.data}", file=sys.stderr)
            results["accuracy"] = measure_accuracy(model, args.data, args)
    write_report(results, args.out_dir)
    print(markdown(results))
    print(
        f"bench: wrote {args.out_dir / 'bench_streaming.json'} and {args.out_dir / 'BENCHMARKS.md'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
