"""`speechrnn synth`: a Speech Commands corpus built offline from local speech synthesisers.

The build is a plan, then work. The plan (a pure function of the settings and the seed) names every clip:
its path, label, text and speaker. The work synthesises the missing clips in parallel, one task per speaker
(festival runs once per task), each clip from its own random generator seeded by the build seed and the
clip's path, so the same seed gives byte-identical WAVs whatever the worker order. Each finished clip appends
its metadata to a part file under `_meta_/parts/`; a killed build therefore resumes where it stopped, and
the lists and `clips.jsonl` are written at the end from the full plan.

Layout (a contract): `<out>/<word>/<speaker>_nohash_<n>.wav` (1 s, 16 kHz mono PCM_16), `_unknown_/`,
`_phrases_/`, `_sentences_/`, `_background_noise_/`, `validation_list.txt`, `testing_list.txt`,
`_meta_/clips.jsonl`, `_meta_/voices.json`, `_meta_/build.json`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from . import noise as noise_gen
from .audio import SAMPLE_RATE
from .errors import SpeechRNNError
from .system import usable_cores
from .texts import sentences, unknown_words
from .voices import Synthesizer, Voice, available_engines, draw_speakers, held_out_bases
from .words import BACKGROUND_DIR, KWS12_WORDS, UNKNOWN, WORDS_V2

FORMAT_VERSION = 1
PHRASES_DIR = "_phrases_"
SENTENCES_DIR = "_sentences_"
META_DIR = "_meta_"
PHRASE_LABEL = "_phrase_"
UNSAYABLE = "unsayable"  # record key of a clip its voice cannot say whole (see `Synthesizer.synthesize`)
UNSAYABLE_FILE = "unsayable.jsonl"  # in META_DIR: those clips, left out of the corpus
SENTENCE_LABEL = "_sentence_"
CLIP_SAMPLES = SAMPLE_RATE  # 1.000 s word clips
MAX_WORD_S = 0.94  # longer words are time-compressed to fit the clip with a little room
TASK_CLIPS = 48  # clips per work unit (one speaker each)
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "testing": 0.1}  # of speakers, hence of clips


@dataclass(frozen=True)
class Preset:
    """How much to build."""

    words: tuple[str, ...]  # command words when --words is not given
    per_word: int  # clips per command word
    unknown: int  # `_unknown_` clips in all
    phrases: int  # multi-word command phrases
    sentences: int  # non-command sentences
    speakers: int  # size of the speaker pool (all splits)
    noise_seconds: float  # length of each background noise file


PRESETS = {
    "tiny": Preset(KWS12_WORDS, 8, 20, 10, 4, 30, 5.0),
    "small": Preset(WORDS_V2, 60, 400, 300, 40, 160, 30.0),
    "default": Preset(WORDS_V2, 550, 5000, 3000, 300, 900, 60.0),
}


@dataclass(frozen=True)
class Clip:
    """One planned clip."""

    path: str  # relative path inside the corpus, e.g. `go/1a2b3c4d_nohash_0.wav`
    label: str  # command word, `_unknown_`, `_phrase_` or `_sentence_`
    text: str  # transcript, lower case
    speaker: str  # speaker id


@dataclass(frozen=True)
class CorpusSummary:
    """What `build_corpus` built."""

    out: str  # corpus directory
    clips: dict[str, int]  # label -> number of clips
    speakers: dict[str, int]  # split -> number of speakers
    split_clips: dict[str, int]  # split -> number of clips
    held_out: dict[str, list[str]]  # split -> base voices never heard in training
    engines: list[str]  # synthesisers used
    synthesized: int  # clips made by this run (the rest already existed)
    seconds: float  # wall time of this run
    noises: list[str] = field(default_factory=list)  # background noise files
    unsayable: dict[str, int] = field(default_factory=dict)  # base voice -> planned clips it could not say


# -------------------------------------------------------------------------------------------------- plan


def _clip_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Plan:
    """Everything the build will make."""

    settings: dict  # seed, preset, words, counts, engines: what makes this plan
    speakers: dict[str, Voice]  # speaker id -> voice
    clips: tuple[Clip, ...]  # every clip, in a fixed order
    noises: tuple[str, ...]  # background noise names (files `<name>.wav`)


def make_plan(
    *,
    words: tuple[str, ...],
    preset: Preset,
    per_word: int,
    seed: int,
    engines: list[str],
    preset_name: str,
) -> Plan:
    """The plan of a build: a pure function of its arguments."""
    rng = np.random.default_rng(_clip_seed(seed, "plan"))
    pool: list[Voice] = []
    for split, fraction in SPLIT_FRACTIONS.items():  # each split's own draw: a voice added to training
        speaker_rng = np.random.default_rng(_clip_seed(seed, f"speakers/{split}"))  # leaves held-out alone
        pool += draw_speakers(speaker_rng, max(2, round(preset.speakers * fraction)), split, engines)
    speakers = {v.speaker_id: v for v in pool}
    ids = list(speakers)
    counters: Counter = Counter()

    def add(folder: str, label: str, text: str) -> Clip:
        sid = ids[int(rng.integers(len(ids)))]
        n = counters[folder, sid]
        counters[folder, sid] += 1
        return Clip(f"{folder}/{sid}_nohash_{n}.wav", label, text, sid)

    clips = [add(w, w, w) for w in words for _ in range(per_word)]
    vocab = unknown_words(words)
    clips += [add(UNKNOWN, UNKNOWN, vocab[int(rng.integers(len(vocab)))]) for _ in range(preset.unknown)]
    for _ in range(preset.phrases):
        k = int(rng.integers(2, 5))
        seq: list[str] = []
        while len(seq) < k:
            w = words[int(rng.integers(len(words)))]
            if not seq or w != seq[-1] or len(words) == 1:
                seq.append(w)
        clips.append(add(PHRASES_DIR, PHRASE_LABEL, " ".join(seq)))
    clips += [add(SENTENCES_DIR, SENTENCE_LABEL, s) for s in sentences(words, preset.sentences, rng)]
    settings = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "preset": preset_name,
        "words": list(words),
        "per_word": per_word,
        "unknown": preset.unknown,
        "phrases": preset.phrases,
        "sentences": preset.sentences,
        "speakers": len(speakers),
        "noise_seconds": preset.noise_seconds,
        "engines": list(engines),
    }
    noises = (*noise_gen.PLAIN_NOISES, "babble")
    return Plan(settings, speakers, tuple(clips), noises)


# -------------------------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=512)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


def _speed(audio: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """Resample `audio` at `rate` so that, read at 16 kHz, it plays `speed` times faster.

    Pitch and formants shift with it (a shorter or longer vocal tract). The target rate is rounded to
    50 Hz to keep the resampling kernels small.
    """
    new = int(round(SAMPLE_RATE / speed / 50.0)) * 50
    if new == rate:
        return audio
    with torch.no_grad():
        return _resampler(rate, new)(torch.from_numpy(audio)).numpy()


def _frame_energy(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean square of 10 ms frames every 5 ms: `(frame start samples, energies)`."""
    hop, win = SAMPLE_RATE // 200, SAMPLE_RATE // 100
    if len(audio) < win:
        return np.zeros(0, dtype=int), np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - win + 1, hop)
    return starts, (c[starts + win] - c[starts]) / win


def speech_span(
    audio: np.ndarray, rel_db: float = -45.0, floor_db: float = -80.0, reference: float | None = None
) -> tuple[int, int]:
    """Where the speech is: first and last sample of the 10 ms frames (5 ms hop) above the energy threshold.

    The threshold is `rel_db` below the loudest frame (or below the frame energy `reference`, to measure
    a part of a longer clip as in the whole), and never below `floor_db` dBFS.
    Returns `(start, end)` sample indices (end exclusive); `(0, 0)` for silence.
    """
    win = SAMPLE_RATE // 100
    starts, energy = _frame_energy(audio)
    if energy.size == 0:
        return 0, 0
    peak = float(energy.max()) if reference is None else reference
    threshold = max(peak * 10 ** (rel_db / 10), 10 ** (floor_db / 10))
    loud = np.nonzero(energy > threshold)[0]
    if loud.size == 0:
        return 0, 0
    return int(starts[loud[0]]), int(starts[loud[-1]] + win)


def _fit(audio: np.ndarray, max_samples: int) -> np.ndarray:
    """Time-compress (pitch kept) audio longer than `max_samples`, then trim again."""
    if len(audio) <= max_samples:
        return audio
    import librosa

    out = _trim(librosa.effects.time_stretch(audio, rate=len(audio) / (max_samples * 0.95)), "")
    return out[:max_samples]


def _trim(x: np.ndarray, text: str) -> np.ndarray:
    """Cut silence to a 15 ms margin around the speech and fade in and out inside the margins, so that
    the measured speech span is untouched.

    Some voices (flite's awb and slt) hiss 45-50 dB under their peak before and after the word; the
    threshold then rises to 10 dB over that floor (never above 35 dB under the peak) so the hiss goes.
    """
    _, energy = _frame_energy(x)
    if energy.size == 0:
        raise SpeechRNNError(f"synthesiser produced no audible speech for {text!r}")
    peak_db = 10 * np.log10(float(energy.max()) + 1e-30)
    floor_db = 10 * np.log10(float(np.percentile(energy, 10)) + 1e-30)
    s, e = speech_span(x, rel_db=max(-45.0, min(floor_db + 10.0 - peak_db, -35.0)))
    if e - s < SAMPLE_RATE // 50:
        raise SpeechRNNError(f"synthesiser produced no audible speech for {text!r}")
    margin = int(0.015 * SAMPLE_RATE)
    x = x[max(0, s - margin) : e + margin].astype(np.float64)
    fade = min(margin, len(x) // 4)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    return x


def _trimmed(audio: np.ndarray, rate: int, speed: float, text: str) -> np.ndarray:
    """Synthesiser output -> 16 kHz at `speed` (float64), trimmed by `_trim`."""
    return _trim(_speed(audio, rate, speed), text)


def _as_pcm16(audio: np.ndarray) -> np.ndarray:
    """Exactly what the clip reads back as from a PCM_16 file (libsndfile scales by 32768), so that word
    times are measured on the file itself."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767) / 32768.0


def _word_times(word: str, clip: np.ndarray, lo: int, hi: int) -> dict:
    """Start and end (seconds) of the speech in `clip[lo:hi]`, by energy against the whole clip's peak."""
    _, energy = _frame_energy(clip)
    lo, hi = max(0, lo), min(len(clip), hi)
    s, e = speech_span(clip[lo:hi], reference=float(energy.max()))
    if e <= s:  # a word quieter than the threshold: fall back to where it was placed
        s, e = 0, hi - lo
    return {"word": word, "start": round((lo + s) / SAMPLE_RATE, 3), "end": round((lo + e) / SAMPLE_RATE, 3)}


def _level(x: np.ndarray, peak_db: float) -> np.ndarray:
    return x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-12))


def _noise_floor(n: int, rng: np.random.Generator, peak_db: float) -> np.ndarray:
    """A faint white floor, 62-78 dB below the speech peak (a real microphone is never silent).

    It stays well under `speech_span`'s threshold so the measured word times do not move.
    """
    return rng.standard_normal(n) * 10 ** ((peak_db - rng.uniform(62.0, 78.0)) / 20)


def render(clip: Clip, voice: Voice, audio: list[tuple[np.ndarray, int]], rng: np.random.Generator):
    """Turn synthesiser output into the final clip.

    Args:
        clip: the planned clip.
        voice: its speaker.
        audio: the synthesiser output: one utterance, or one per word for a phrase.
        rng: the clip's own generator.

    Returns:
        `(samples, words)`: float64 audio at 16 kHz and `[{"word", "start", "end"}]` (seconds; empty for
        sentences, whose word boundaries are not measured).
    """
    speed = voice.warp * rng.uniform(0.96, 1.04)
    peak_db = rng.uniform(-30.0, -6.0)
    if clip.label == PHRASE_LABEL:
        parts = [
            _level(_trimmed(a, r, speed * rng.uniform(0.97, 1.03), w), peak_db + rng.uniform(-3.0, 1.0))
            for (a, r), w in zip(audio, clip.text.split(), strict=True)
        ]
        gaps = [int(rng.uniform(0.08, 0.3) * SAMPLE_RATE) for _ in parts[1:]]
        lead, trail = (int(rng.uniform(0.1, 0.4) * SAMPLE_RATE) for _ in range(2))
        room = int(4.0 * SAMPLE_RATE) - lead - trail - sum(gaps)
        speech = sum(len(p) for p in parts)
        if speech > room:
            parts = [_fit(p, int(len(p) * room / speech)) for p in parts]
        body = sum(len(p) for p in parts) + sum(gaps)
        extra = max(0, int(1.5 * SAMPLE_RATE) - body - lead - trail)
        lead += extra // 2
        trail += extra - extra // 2
        out = np.zeros(lead + body + trail)
        places, pos = [], lead
        for i, p in enumerate(parts):
            out[pos : pos + len(p)] += p
            places.append((pos, pos + len(p)))
            pos += len(p) + (gaps[i] if i < len(gaps) else 0)
        out = _as_pcm16(out + _noise_floor(len(out), rng, peak_db))
        # Each word is measured between the middles of the gaps around it.
        bounds = [0] + [(places[i][1] + places[i + 1][0]) // 2 for i in range(len(places) - 1)] + [len(out)]
        words = [_word_times(w, out, bounds[i], bounds[i + 1]) for i, w in enumerate(clip.text.split())]
        return out, words
    ((a, r),) = audio
    x = _level(_trimmed(a, r, speed, clip.text), peak_db)
    if clip.label == SENTENCE_LABEL:
        lead, trail = (int(rng.uniform(0.1, 0.4) * SAMPLE_RATE) for _ in range(2))
        x = _level(_fit(x, 5 * SAMPLE_RATE - lead - trail), peak_db)
        extra = max(0, 2 * SAMPLE_RATE - len(x) - lead - trail)
        out = np.zeros(len(x) + lead + trail + extra)
        start = lead + extra // 2
        out[start : start + len(x)] = x
        return out + _noise_floor(len(out), rng, peak_db), []
    x = _level(_fit(x, int(MAX_WORD_S * SAMPLE_RATE)), peak_db)
    room = CLIP_SAMPLES - len(x)
    if rng.random() < 0.6:  # most Speech Commands words sit near the middle
        offset = int(np.clip(room / 2 + rng.normal(0.0, 0.2) * room / 2, 0, room))
    else:
        offset = int(rng.integers(0, room + 1))
    out = np.zeros(CLIP_SAMPLES)
    out[offset : offset + len(x)] = x
    out = _as_pcm16(out + _noise_floor(CLIP_SAMPLES, rng, peak_db))
    return out, [_word_times(clip.text, out, 0, CLIP_SAMPLES)]


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """Write 16-bit PCM WAV atomically (temp name, then rename) so a killed build leaves no torn files."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    sf.write(
        str(tmp), np.clip(audio, -1.0, 1.0).astype(np.float32), SAMPLE_RATE, subtype="PCM_16", format="WAV"
    )
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------- work


@dataclass(frozen=True)
class _Task:
    out: str  # corpus directory
    seed: int  # build seed
    voice: Voice  # the speaker of every clip here (None-like for noise tasks: unused)
    clips: tuple[Clip, ...]  # clips to make
    part: str  # metadata part-file name
    noise: str = ""  # background noise name, for noise tasks
    noise_seconds: float = 0.0  # its length
    babble_voices: tuple[Voice, ...] = ()  # voices whose sentences make the babble


_SYNTH: Synthesizer | None = None


def _init_worker() -> None:
    global _SYNTH
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    torch.set_num_threads(1)
    _SYNTH = Synthesizer()


def _synth() -> Synthesizer:
    global _SYNTH
    if _SYNTH is None:
        _SYNTH = Synthesizer()
    return _SYNTH


def _run_noise(task: _Task) -> int:
    n = int(task.noise_seconds * SAMPLE_RATE)
    rng = np.random.default_rng(_clip_seed(task.seed, f"{BACKGROUND_DIR}/{task.noise}"))
    if task.noise == "babble":
        speech = []
        texts = sentences(("",), max(3, int(task.noise_seconds / 2.5)), rng)
        for i, text in enumerate(texts):
            voice = task.babble_voices[i % len(task.babble_voices)]
            ((a, r),) = _synth().synthesize(voice, [text], [_clip_seed(task.seed, f"babble/{i}")])
            speech.append(_trimmed(a, r, voice.warp, text))
        audio = noise_gen.babble(n, rng, speech)
    else:
        audio = noise_gen.PLAIN_NOISES[task.noise](n, rng)
    _write_wav(Path(task.out) / BACKGROUND_DIR / f"{task.noise}.wav", audio)
    return 1


def _run_task(task: _Task) -> tuple[int, bool]:
    """Synthesise and write the clips of one task; returns (clips made, whether it was a noise task)."""
    if task.noise:
        return _run_noise(task), True
    out = Path(task.out)
    rngs = [np.random.default_rng(_clip_seed(task.seed, c.path)) for c in task.clips]
    texts, seeds, spans = [], [], []
    for clip, rng in zip(task.clips, rngs, strict=True):
        parts = clip.text.split() if clip.label == PHRASE_LABEL else [clip.text]
        spans.append((len(texts), len(texts) + len(parts)))
        texts += parts
        seeds += [int(s) for s in rng.integers(0, 2**62, size=len(parts))]
    audio = _synth().synthesize(task.voice, texts, seeds)
    part = out / META_DIR / "parts" / task.part
    with open(part, "a", encoding="utf-8") as meta:
        for clip, rng, (lo, hi) in zip(task.clips, rngs, spans, strict=True):
            record = {"path": clip.path, "label": clip.label, "text": clip.text, "speaker": clip.speaker,
                      "voice": task.voice.describe()}  # fmt: skip
            if any(a is None for a in audio[lo:hi]):
                record[UNSAYABLE] = True  # remembered, so that a resumed build does not try it again
            else:
                samples, record["words"] = render(clip, task.voice, audio[lo:hi], rng)
                _write_wav(out / clip.path, samples)
            meta.write(json.dumps(record) + "\n")
            meta.flush()
    return len(task.clips), False


def _load_records(out: Path) -> dict[str, dict]:
    """Metadata of clips already made or found unsayable (a finished build's clips.jsonl and unsayable.jsonl,
    and any part files)."""
    records: dict[str, dict] = {}
    meta = out / META_DIR
    files = [meta / "clips.jsonl", meta / UNSAYABLE_FILE, *sorted((meta / "parts").glob("*.jsonl"))]
    for f in files:
        if not f.exists():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; that clip is simply made again
            if isinstance(r, dict) and "path" in r:
                records[r["path"]] = r
    return records


def _unsayable(record: dict) -> bool:
    return bool(record.get(UNSAYABLE, False))


def _done(root: Path, clip: Clip, records: dict[str, dict]) -> bool:
    """The clip was made (its record and WAV exist) or found unsayable by its voice."""
    record = records.get(clip.path)
    return record is not None and (_unsayable(record) or (root / clip.path).exists())


def _check_words(words: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    clean = tuple(w.strip().lower() for w in words)
    bad = [w for w in clean if not re.fullmatch(r"[a-z][a-z']*", w)]
    if not clean or bad:
        raise SpeechRNNError(f"expected command words of letters a-z, got {list(words)!r}")
    if len(set(clean)) != len(clean):
        raise SpeechRNNError(f"command words repeat: {list(words)!r}")
    return clean


def build_corpus(
    out: str | os.PathLike,
    *,
    words: list[str] | tuple[str, ...] | None = None,
    per_word: int | None = None,
    seed: int = 0,
    preset: str = "default",
    jobs: int | None = None,
    progress: bool = True,
) -> CorpusSummary:
    """Build (or finish building) a Speech Commands style corpus from local speech synthesisers.

    Args:
        out: corpus directory (created; an interrupted build there is resumed).
        words: command words; default the preset's (all 35 of Speech Commands v0.02 except in `tiny`).
        per_word: clips per command word; default the preset's.
        seed: everything random follows from it; the same seed gives byte-identical WAVs.
        preset: `tiny`, `small` or `default` (sizes in `PRESETS`).
        jobs: worker processes; default the CPU count. 1 runs in this process.
        progress: show a tqdm progress bar.

    Returns:
        A `CorpusSummary`.

    Raises:
        SpeechRNNError: bad settings, no synthesiser available, a synthesiser failing, or `out` holding a
            build with other settings.
    """
    start = time.monotonic()
    if preset not in PRESETS:
        raise SpeechRNNError(f"unknown preset {preset!r}, expected one of {sorted(PRESETS)}")
    chosen = PRESETS[preset]
    words_t = _check_words(words if words is not None else chosen.words)
    per_word = chosen.per_word if per_word is None else int(per_word)
    if per_word < 1:
        raise SpeechRNNError(f"expected --per-word of at least 1, got {per_word}")
    jobs = max(1, int(jobs or usable_cores()))
    engines = available_engines()
    plan = make_plan(words=words_t, preset=chosen, per_word=per_word, seed=seed, engines=engines,
                     preset_name=preset)  # fmt: skip

    root = Path(out)
    meta_dir = root / META_DIR
    (meta_dir / "parts").mkdir(parents=True, exist_ok=True)
    plan_file = meta_dir / "plan.json"
    # The digest catches a plan changed by new code under the same settings (other texts, other voices).
    digest = hashlib.blake2b(json.dumps([list(c.__dict__.values()) for c in plan.clips]).encode()).hexdigest()
    if plan_file.exists():
        previous = json.loads(plan_file.read_text())
        old_digest = previous.pop("plan_digest", digest)
        if previous != plan.settings or old_digest != digest:
            raise SpeechRNNError(
                f"{root} holds a build with other settings or another plan ({previous}); expected "
                f"{plan.settings}. Use a new --out directory or delete this one."
            )
    else:
        _write_text(plan_file, json.dumps({**plan.settings, "plan_digest": digest}, indent=1))
    for folder in {c.path.split("/")[0] for c in plan.clips} | {BACKGROUND_DIR}:
        (root / folder).mkdir(exist_ok=True)
        for stale in (root / folder).glob(".*.part"):
            stale.unlink()

    records = _load_records(root)
    todo = [c for c in plan.clips if not _done(root, c, records)]
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for c in todo:
        by_speaker[c.speaker].append(c)
    tasks = []
    # Babble is six training-voice speakers of its own draw, so a voice added to training leaves it alone.
    babble_engines = [e for e in engines if e in ("piper", "espeak")] or engines
    babble_rng = np.random.default_rng(_clip_seed(seed, "speakers/babble"))
    babble_voices = tuple(draw_speakers(babble_rng, 6, "train", babble_engines))
    for name in plan.noises:
        if not (root / BACKGROUND_DIR / f"{name}.wav").exists():
            tasks.append(
                _Task(str(root), seed, babble_voices[0], (), "", name, chosen.noise_seconds, babble_voices)
            )
    for sid, clips in by_speaker.items():
        for i in range(0, len(clips), TASK_CLIPS):
            chunk = tuple(clips[i : i + TASK_CLIPS])
            tasks.append(
                _Task(
                    str(root),
                    seed,
                    plan.speakers[sid],
                    chunk,
                    f"{sid}-{chunk[0].path.replace('/', '-')}.jsonl",
                )
            )
    # Big tasks first for load balance; festival ones early since each pays a start-up.
    tasks.sort(key=lambda t: (not t.noise, t.voice.engine != "festival", -len(t.clips)))

    _execute(tasks, jobs, progress, total=len(todo))
    records = _load_records(root)
    missing = [c.path for c in plan.clips if not _done(root, c, records)]
    if missing:
        raise SpeechRNNError(f"{len(missing)} clip(s) were not made, e.g. {missing[:3]}")
    made = sum(not _unsayable(records[c.path]) for c in todo)
    summary = _write_index(root, plan, records, made, time.monotonic() - start)
    for f in (meta_dir / "parts").glob("*.jsonl"):
        f.unlink()
    return summary


def _execute(tasks: list[_Task], jobs: int, progress: bool, total: int) -> None:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="clip", desc="synth", disable=not progress, smoothing=0.05)
    try:
        if jobs == 1 or len(tasks) <= 1:
            torch_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for t in tasks:
                    n, is_noise = _run_task(t)
                    bar.update(0 if is_noise else n)
            finally:
                torch.set_num_threads(torch_threads)
        else:
            # Not plain fork: a parent that has touched torch's OpenMP pool hangs its forked children.
            # The fork server imports this module once, fresh, and forks the workers from there.
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload([__name__])
            else:
                ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(jobs, len(tasks)), initializer=_init_worker) as pool:
                for n, is_noise in pool.imap_unordered(_run_task, tasks, chunksize=1):
                    bar.update(0 if is_noise else n)
    finally:
        bar.close()


def _write_index(
    root: Path, plan: Plan, records: dict[str, dict], made: int, seconds: float
) -> CorpusSummary:
    """Write clips.jsonl, the split lists, voices.json and build.json from the full plan.

    Clips their voice could not say (`UNSAYABLE`) are left out of all of them and listed in
    `_meta_/unsayable.jsonl`; build.json counts them by base voice.
    """
    meta = root / META_DIR
    kept, unsayable = [], []
    for c in plan.clips:
        (unsayable if _unsayable(records[c.path]) else kept).append(c)
    _write_text(meta / "clips.jsonl", "".join(json.dumps(records[c.path]) + "\n" for c in kept))
    _write_text(meta / UNSAYABLE_FILE, "".join(json.dumps(records[c.path]) + "\n" for c in unsayable))
    split_of = {sid: v.split for sid, v in plan.speakers.items()}
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        listed = [c.path for c in kept if split_of[c.speaker] == split]
        _write_text(root / name, "\n".join(listed) + ("\n" if listed else ""))
    used = {c.speaker for c in kept}
    voices = {sid: {"voice": v.describe(), "base": v.base, "engine": v.engine, "split": v.split}
              for sid, v in sorted(plan.speakers.items()) if sid in used}  # fmt: skip
    _write_text(meta / "voices.json", json.dumps(voices, indent=1))
    held = held_out_bases()
    engines = plan.settings["engines"]
    held = {s: [b for b in bases if b.split(":")[0] in engines] for s, bases in held.items()}
    clips = dict(sorted(Counter(c.label for c in kept).items()))
    speakers = dict(Counter(voices[s]["split"] for s in voices))
    split_clips = dict(Counter(split_of[c.speaker] for c in kept))
    noises = sorted(f"{BACKGROUND_DIR}/{n}.wav" for n in plan.noises)
    left_out = dict(sorted(Counter(plan.speakers[c.speaker].base for c in unsayable).items()))
    build = {**plan.settings, "clips": clips, "speakers_by_split": speakers, "clips_by_split": split_clips,
             "unsayable_by_voice": left_out, "held_out": held, "noises": noises,
             "seconds_last_run": round(seconds, 1)}  # fmt: skip
    _write_text(meta / "build.json", json.dumps(build, indent=1))
    return CorpusSummary(
        str(root), clips, speakers, split_clips, held, list(engines), made, seconds, noises, left_out
    )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def summary_text(summary: CorpusSummary) -> str:
    """A few human-readable lines about a build."""
    total = sum(summary.clips.values())
    lines = [
        f"built {summary.out}: {total} clips ({summary.synthesized} made now) in {summary.seconds:.0f} s",
        "clips by split: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.split_clips.items())),
        "speakers by split: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.speakers.items())),
        "engines: " + ", ".join(summary.engines),
    ]
    if summary.unsayable:
        counts = ", ".join(f"{base} {n}" for base, n in summary.unsayable.items())
        lines.append(f"left out, as their voice lacks a diphone of the text: {counts}")
    return "\n".join(lines)


def main_synth(*, out: str, words: list[str] | None, per_word: int | None, seed: int, preset: str,
               jobs: int | None, progress: bool = True) -> int:  # fmt: skip
    """The `speechrnn synth` command: build, print a summary, return the exit code."""
    summary = build_corpus(out, words=words, per_word=per_word, seed=seed, preset=preset, jobs=jobs,
                           progress=progress)  # fmt: skip
    print(summary_text(summary))
    return 0
