#!/usr/bin/env python3
"""Transcription benchmark: what `speechrnn transcribe` gets right, how precise its word times are, and what
a long recording costs.

1. Held-out-voice test phrases of a synthetic corpus (`_phrases_` in `testing_list.txt`, or with `--split
   validation` in `validation_list.txt`, to choose settings on): WER and CER of
   greedy CTC, of the lexicon beam search as shipped (unsure words become `<unk>`), and of the beam search
   forced into the lexicon (no `<unk>`). Word start/end errors against the times the corpus builder
   recorded (`_meta_/clips.jsonl`), over the phrases transcribed exactly.
2. A continuous recording (10 minutes by default) made of test clips (command words, phrases, unknown words,
   sentences with no command in them) with pauses between them and background noise under everything
   (the corpus's noises, its babble made again of the test voices' sentences, as bench_streaming does),
   transcribed as one file: keyword recall, false alarms, peak memory and real-time factor on one core.

Writes docs/bench_transcribe.json and the `transcribe` section of docs/BENCHMARKS.md.

Usage:
    .venv/bin/python scripts/bench_transcribe.py --data data/synth-default [--model CKPT] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_streaming
import numpy as np
import soundfile as sf
import torch

from speechrnn.audio import SAMPLE_RATE, load_audio
from speechrnn.checkpoint import default_model_path, load_model
from speechrnn.decoding import (
    UNK_WORD,
    DecodingOptions,
    beam_search,
    char_error_rate,
    greedy_decode,
    step_energy,
    word_error_rate,
    words_to_text,
)
from speechrnn.transcribe import default_lexicon, label_head, label_posteriors, transcribe

ROOT = Path(__file__).resolve().parents[1]
MARK_START, MARK_END = "<!-- transcribe:start -->", "<!-- transcribe:end -->"
TOLERANCE_S = 0.1  # "within 100 ms"
MATCH_SLACK_S = (
    0.3  # a keyword counts as found if a hypothesis of the same word overlaps its span widened by this
)


# ----------------------------------------------------------------------------------------------- corpus


def read_corpus(data: Path, split: str = "test") -> list[dict]:
    """The split's records of `_meta_/clips.jsonl` (held-out voices), each with its `kind`."""
    meta = data / "_meta_" / "clips.jsonl"
    tests = data / f"{split}_list.txt"
    for f in (meta, tests):
        if not f.is_file():
            sys.exit(f"bench_transcribe: {f} is missing: expected a corpus built by `speechrnn synth`")
    test = set(tests.read_text().split())
    records = []
    with open(meta) as f:
        for line in f:
            r = json.loads(line)
            if r["path"] in test:
                folder = r["path"].split("/")[0]
                r["kind"] = {"_phrases_": "phrase", "_sentences_": "sentence", "_unknown_": "unknown"}.get(
                    folder, "word"
                )
                records.append(r)
    return records


# ---------------------------------------------------------------------------------------------- phrases


@torch.no_grad()
def bench_phrases(model, data: Path, phrases: list[dict], beam: int, batch_size: int = 32) -> dict:
    lexicon, head = default_lexicon(model), label_head(model)
    shipped = DecodingOptions(beam=beam)
    forced = DecodingOptions(beam=beam, min_word_score=0.0)
    step = model.steps_to_seconds(1)
    refs, greedy, beamed, beamed_forced = [], [], [], []
    start_err, end_err, ctc_start_err, ctc_end_err = [], [], [], []
    step_samples = model.config.stride * model.features.hop_length
    seconds = time.process_time()
    for i in range(0, len(phrases), batch_size):
        batch = phrases[i : i + batch_size]
        clips = [load_audio(data / r["path"]) for r in batch]
        lengths = torch.tensor([c.size for c in clips])
        audio = torch.zeros(len(clips), int(lengths.max()))
        for k, c in enumerate(clips):
            audio[k, : c.size] = torch.from_numpy(c)
        feats, frames = model.featurize(audio, lengths)
        out, _ = model(feats, frames)  # full context, as `transcribe` runs clips
        for k, r in enumerate(batch):
            lp = out.ctc_log_probs[k, : int(out.lengths[k])]
            refs.append(r["text"])
            greedy.append(greedy_decode(lp)[0])
            energy = step_energy(clips[k], step_samples)[: lp.shape[0]]
            n = lp.shape[0]
            probs = label_posteriors(model, out.attn_logits[k, :n], out.label_logits[k, :n])
            confirmed = {"head": head, "label_probs": probs}  # as `transcribe` scores command words
            words = beam_search(lp, lexicon, shipped, step, energy=energy, **confirmed)
            ctc_only = beam_search(
                lp, lexicon, shipped, step, **confirmed
            )  # word edges from the CTC path alone
            beamed.append(words_to_text(words))
            beamed_forced.append(words_to_text(beam_search(lp, lexicon, forced, step)))
            if [w.word for w in words] == [w["word"] for w in r["words"]]:
                for w, c, ref in zip(words, ctc_only, r["words"], strict=True):
                    start_err.append(w.start - ref["start"])
                    end_err.append(w.end - ref["end"])
                    ctc_start_err.append(c.start - ref["start"])
                    ctc_end_err.append(c.end - ref["end"])
    seconds = time.process_time() - seconds
    return {
        "phrases": len(refs),
        "words": sum(len(r.split()) for r in refs),
        "wer": {
            "greedy": word_error_rate(refs, greedy),
            "beam": word_error_rate(refs, beamed),
            "beam_no_unk": word_error_rate(refs, beamed_forced),
        },
        "cer": {
            "greedy": char_error_rate(refs, greedy),
            "beam": char_error_rate(refs, beamed),
            "beam_no_unk": char_error_rate(refs, beamed_forced),
        },
        "unk_words": sum(h.split().count(UNK_WORD) for h in beamed),
        "exact_phrases": sum(r == h for r, h in zip(refs, beamed, strict=True)),
        "word_times": {
            "words": len(start_err),
            "start": _errors(start_err),
            "end": _errors(end_err),
            "ctc_only_start": _errors(ctc_start_err),
            "ctc_only_end": _errors(ctc_end_err),
        },
        "cpu_seconds": seconds,
        "examples": [
            {"ref": r, "greedy": g, "beam": b} for r, g, b in zip(refs, greedy, beamed, strict=True) if r != b
        ][:10],
    }


def _errors(signed: list[float]) -> dict:
    if not signed:
        return {}
    err = np.abs(np.asarray(signed))
    return {
        "median_ms": float(np.median(err) * 1000),
        "p90_ms": float(np.percentile(err, 90) * 1000),
        "within_100ms": float(np.mean(err <= TOLERANCE_S + 1e-9)),
        "mean_signed_ms": float(np.mean(signed) * 1000),  # bias: negative = earlier than the truth
    }


# ------------------------------------------------------------------------------------------- recording


def build_recording(
    data: Path, records: list[dict], keywords: set[str], minutes: float, path: Path, seed: int
):
    """Write a recording of test clips with pauses and a noise bed; return the keyword truth and a summary."""
    rng = np.random.default_rng(seed)
    by_kind = {k: [r for r in records if r["kind"] == k] for k in ("word", "phrase", "unknown", "sentence")}
    by_kind["word"] = [r for r in by_kind["word"] if r["text"] in keywords]
    kinds = [k for k in ("word", "phrase", "unknown", "sentence") if by_kind[k]]
    weights = np.array([{"word": 0.45, "phrase": 0.25, "unknown": 0.15, "sentence": 0.15}[k] for k in kinds])
    sentences = [data / r["path"] for r in by_kind["sentence"]]
    noises = [n for n in bench_streaming.held_out_noises(data, sentences).values() if n.size > SAMPLE_RATE]
    total = int(minutes * 60 * SAMPLE_RATE)
    truth, counts, pos = [], dict.fromkeys(kinds, 0), 0
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as out:

        def write(audio: np.ndarray) -> None:
            nonlocal pos
            bed = np.zeros(audio.size)
            if noises:
                noise = noises[rng.integers(len(noises))]
                start = rng.integers(0, max(1, noise.size - audio.size))
                piece = np.resize(noise[start:], audio.size)  # loops a short noise
                bed = piece * 10 ** (rng.uniform(-55.0, -35.0) / 20)  # noise RMS -55 to -35 dBFS
            out.write(np.clip(audio + bed, -1, 1).astype(np.float32))
            pos += audio.size

        while pos < total:
            write(np.zeros(int(rng.uniform(0.5, 3.0) * SAMPLE_RATE)))  # a pause
            kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
            r = by_kind[kind][rng.integers(len(by_kind[kind]))]
            offset = pos / SAMPLE_RATE
            if kind in ("word", "phrase"):
                for w in r["words"]:
                    if w["word"] in keywords:
                        truth.append((w["word"], offset + w["start"], offset + w["end"]))
            counts[kind] += 1
            write(load_audio(data / r["path"]).astype(np.float64))
    return truth, {"seconds": pos / SAMPLE_RATE, "items": counts}


def match_keywords(truth: list[tuple[str, float, float]], words) -> tuple[int, list]:
    """One-to-one matches of recognised words to keyword occurrences; returns hits and unmatched words."""
    used = [False] * len(truth)
    hits, false_alarms = 0, []
    for w in words:
        if w.word == UNK_WORD:
            continue
        for i, (word, start, end) in enumerate(truth):
            if (
                not used[i]
                and word == w.word
                and w.start < end + MATCH_SLACK_S
                and w.end > start - MATCH_SLACK_S
            ):
                used[i], hits = True, hits + 1
                break
        else:
            false_alarms.append(w)
    return hits, false_alarms


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_recording(model, data: Path, records: list[dict], minutes: float, beam: int, seed: int) -> dict:
    keywords = set(default_lexicon(model))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.wav"
        truth, summary = build_recording(data, records, keywords, minutes, path, seed)
        transcribe(
            np.zeros(SAMPLE_RATE * 40, np.float32), model, long_seconds=0
        )  # warm up the streaming path
        base = _rss()
        peak, done = [base], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss())
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            result = transcribe(path, model, beam=beam)
        finally:
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            done.set()
            watcher.join()
    hits, false_alarms = match_keywords(truth, result.words)
    hours = summary["seconds"] / 3600
    return {
        **summary,
        "keywords": len(truth),
        "found": hits,
        "recall": hits / max(len(truth), 1),
        "false_alarms": len(false_alarms),
        "false_alarms_per_hour": len(false_alarms) / hours,
        "unk_words": sum(w.word == UNK_WORD for w in result.words),
        "recognised_words": len(result.words),
        "label": result.label,
        "peak_rss_mb": max(peak[0], _rss()) / 2**20,
        "rss_growth_mb": (peak[0] - base) / 2**20,
        "max_rss_mb_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "rtf_cpu": cpu / summary["seconds"],
        "rtf_wall": wall / summary["seconds"],
        "false_alarm_examples": [f"{w.word} at {w.start:.2f} s ({w.score:.2f})" for w in false_alarms[:10]],
    }


# --------------------------------------------------------------------------------------------- report


def _torch_import_rss() -> float:
    """Resident memory of a fresh Python that has imported torch: the floor under any number here (MB)."""
    code = "import torch; print(open('/proc/self/statm').read().split()[1])"
    pages = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(pages) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(result: dict) -> str:
    p, r, m = result["phrases"], result["recording"], result["machine"]
    split = result.get("split", "test")
    wt = p["word_times"]
    names = {
        "word": "command words",
        "phrase": "phrases",
        "unknown": "unknown words",
        "sentence": "sentences",
    }
    items = ", ".join(f"{n} {names[kind]}" for kind, n in r["items"].items())

    def times(key: str) -> str:
        e = wt.get(key) or {}
        if not e:
            return "n/a"
        within = 100 * e["within_100ms"]
        return (
            f"median {e['median_ms']:.0f} ms, p90 {e['p90_ms']:.0f} ms, {within:.1f} % within 100 ms "
            f"(mean signed {e['mean_signed_ms']:+.0f} ms)"
        )

    lines = [
        MARK_START,
        "## Transcription",
        "",
        f"`{result['command']}` — {result['date']}, {m['cpu']}, one thread (torch {m['torch']}); model "
        f"`{result['model']}`; corpus `{result['data']}`{' (quick run)' if result['quick'] else ''}.",
        "",
        f"Held-out-voice {split} phrases: {p['phrases']} phrases, {p['words']} words; lexicon = the model's "
        f"{result['lexicon_size']} command words, beam {result['beam']}.",
        "",
        "| decoder | WER | CER |",
        "| --- | --- | --- |",
        f"| greedy CTC | {100 * p['wer']['greedy']:.2f} % | {100 * p['cer']['greedy']:.2f} % |",
        f"| beam search, lexicon, unsure words as `<unk>` (shipped) | {100 * p['wer']['beam']:.2f} % | "
        f"{100 * p['cer']['beam']:.2f} % |",
        f"| beam search, lexicon, no `<unk>` | {100 * p['wer']['beam_no_unk']:.2f} % | "
        f"{100 * p['cer']['beam_no_unk']:.2f} % |",
        "",
        f"Word times against where the corpus builder placed the words ({wt['words']} words of the "
        f"{p['exact_phrases']} phrases transcribed exactly):",
        f"- start: {times('start')}",
        f"- end: {times('end')}",
        f"- from the CTC path alone, before the edges are set with the speech energy: start "
        f"{times('ctc_only_start')}; end {times('ctc_only_end')}",
        "",
        f"Continuous recording: {r['seconds'] / 60:.1f} min of {split} clips ({items}) with 0.5-3 s pauses "
        "and background noise (-55 to -35 dBFS; babble of test voices) under everything, transcribed as one file (streamed):",
        "",
        "| keywords | found | recall | false alarms | per hour | `<unk>` | peak RSS | RTF CPU | RTF wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {r['keywords']} | {r['found']} | {100 * r['recall']:.1f} % | {r['false_alarms']} | "
        f"{r['false_alarms_per_hour']:.0f} | {r['unk_words']} | {r['peak_rss_mb']:.0f} MB "
        f"(+{r['rss_growth_mb']:.0f} MB) | {r['rtf_cpu']:.4f} | {r['rtf_wall']:.4f} |",
        "",
        "RTF = processing time / audio duration (CPU time of the process on one thread; wall time depends on "
        "what else the machine runs). Peak RSS is the whole process during the transcription, of which "
        f"{m['torch_import_rss_mb']:.0f} MB is `import torch` alone; the growth is over the process just "
        "before it.",
        MARK_END,
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str, marks: tuple[str, str] = (MARK_START, MARK_END)) -> None:
    """Replace a section of BENCHMARKS.md between `marks` (or add it), leaving the other sections alone."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    if marks[0] in text and marks[1] in text:
        before, rest = text.split(marks[0], 1)
        after = rest.split(marks[1], 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _short(path: str | os.PathLike) -> str:
    """A path relative to the repository where it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="synthetic corpus (speechrnn synth)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=None, help="recording length (default 10; quick 2)")
    parser.add_argument(
        "--phrases", type=int, default=None, help="at most this many test phrases (quick: 60)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split", default="test", choices=("test", "validation"), help="held-out voices to measure on"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smaller run: 60 phrases, a 2-minute recording"
    )
    parser.add_argument("--json-out", type=Path, default=ROOT / "docs" / "bench_transcribe.json")
    parser.add_argument("--md-out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # "on one core"
    torch.manual_seed(args.seed)
    model = load_model(args.model)
    records = read_corpus(args.data, {"test": "testing", "validation": "validation"}[args.split])
    phrases = [r for r in records if r["kind"] == "phrase"]
    limit = args.phrases if args.phrases is not None else (60 if args.quick else None)
    if limit is not None:
        phrases = phrases[:limit]
    if not phrases:
        sys.exit(f"bench_transcribe: no {args.split} phrases in {args.data}")
    minutes = args.minutes if args.minutes is not None else (2.0 if args.quick else 10.0)

    print(f"bench_transcribe: {len(phrases)} {args.split} phrases...", file=sys.stderr)
    phrase_result = bench_phrases(model, args.data, phrases, args.beam)
    print(f"bench_transcribe: a {minutes:g}-minute recording...", file=sys.stderr)
    recording = bench_recording(model, args.data, records, minutes, args.beam, args.seed)
    data_name, model_name = (_short(p) for p in (args.data, args.model or default_model_path()))
    result = {
        "command": "scripts/bench_transcribe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "split": args.split,
        "quick": args.quick,
        "model": model_name,
        "data": data_name,
        "beam": args.beam,
        "lexicon_size": len(default_lexicon(model)),
        "machine": {
            "cpu": _cpu_name(),
            "torch": torch.__version__.split("+")[0],
            "threads": 1,
            "torch_import_rss_mb": _torch_import_rss(),
        },
        "phrases": phrase_result,
        "recording": recording,
    }
    print(json.dumps(result, indent=1))
    if not args.no_write:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
        write_section(args.md_out, markdown(result))
        print(f"bench_transcribe: wrote {args.json_out} and {args.md_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
