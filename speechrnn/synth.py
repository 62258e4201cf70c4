"""`speechrnn synth`: a Speech Commands corpus built offline from local speech synthesisers.

The build is a plan, then work. The plan (`synth_plan`, a pure function of the settings and the seed) names
every clip: its path, label, text and speaker. The work synthesises the missing clips in parallel, one task
per speaker (festival runs once per task), each clip from its own random generator seeded by the build seed
and the clip's path, so the same seed gives byte-identical WAVs whatever the worker order. Each finished clip
appends its metadata to a part file under `_meta_/parts/`; a killed build therefore resumes where it stopped,
and the lists and `clips.jsonl` are written at the end from the full plan.

The layout is the contract of `corpus` (word clips 1 s, 16 kHz mono PCM_16); the build adds
`_meta_/voices.json` and `_meta_/build.json`.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import noise as noise_gen
from .audio import SAMPLE_RATE
from .corpus import (
    BACKGROUND_DIR,
    META_DIR,
    META_FILE,
    PHRASE,
    TESTING_LIST,
    UTTERANCE,
    VALIDATION_LIST,
    Clip,
)
from .errors import SpeechRNNError
from .render import render, trimmed
from .synth_plan import GROWTH, PRESETS, Plan, _clip_seed, make_plan
from .synthesizers import Synthesizer, available_engines
from .system import usable_cores
from .texts import sentences
from .utterances import Aligner, kind_of, rate_of
from .voices import Voice, draw_speakers, held_out_bases

UNSAYABLE = "unsayable"  # record key of a clip its voice cannot say whole (see `Synthesizer.synthesize`)
UNSAYABLE_FILE = "unsayable.jsonl"  # in META_DIR: those clips, left out of the corpus
TASK_CLIPS = 48  # clips per work unit (one speaker each)


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
    words: tuple[str, ...] = ()  # the command words (to name an utterance's kind)


_SYNTH: Synthesizer | None = None
_ALIGNER: Aligner | None = None


def _init_worker() -> None:
    global _SYNTH
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    torch.set_num_threads(1)
    _SYNTH = Synthesizer()


def _aligner() -> Aligner:
    global _ALIGNER
    if _ALIGNER is None:
        _ALIGNER = Aligner()
    return _ALIGNER


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
            speech.append(trimmed(a, r, voice.warp, text))
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
    rngs = [np.random.default_rng(_clip_seed(task.seed, c.rel)) for c in task.clips]
    texts, seeds, spans, rates = [], [], [], []
    for clip, rng in zip(task.clips, rngs, strict=True):
        parts = clip.text.split() if clip.label == PHRASE else [clip.text]
        spans.append((len(texts), len(texts) + len(parts)))
        texts += parts
        seeds += [int(s) for s in rng.integers(0, 2**62, size=len(parts))]
        rates += [rate_of(clip.rel) if clip.label == UTTERANCE else 1.0] * len(parts)
    audio: list = [None] * len(texts)
    for rate in sorted(set(rates)):  # one engine call per speaking rate (festival starts once per call)
        at = [i for i, r in enumerate(rates) if r == rate]
        voice = task.voice if rate == 1.0 else replace(task.voice, rate=task.voice.rate * rate)
        said = _synth().synthesize(voice, [texts[i] for i in at], [seeds[i] for i in at])
        for i, one in zip(at, said, strict=True):
            audio[i] = one
    part = out / META_DIR / "parts" / task.part
    with open(part, "a", encoding="utf-8") as meta:
        for clip, rng, (lo, hi) in zip(task.clips, rngs, spans, strict=True):
            record = {"path": clip.rel, "label": clip.label, "text": clip.text, "speaker": clip.speaker,
                      "voice": task.voice.describe()}  # fmt: skip
            if any(a is None for a in audio[lo:hi]):
                record[UNSAYABLE] = True  # remembered, so that a resumed build does not try it again
            else:
                samples, record["words"] = render(clip, task.voice, audio[lo:hi], rng)
                if clip.label == UTTERANCE:  # the times of the file as written (it reads back as `samples`)
                    record = _align({**record, "kind": kind_of(clip.text, task.words)}, samples, _aligner())
                _write_wav(out / clip.rel, samples)
            meta.write(json.dumps(record) + "\n")
            meta.flush()
    return len(task.clips), False


def _load_records(out: Path) -> dict[str, dict]:
    """Metadata of clips already made or found unsayable (a finished build's clips.jsonl and unsayable.jsonl,
    and any part files)."""
    records: dict[str, dict] = {}
    meta = out / META_DIR
    files = [out / META_FILE, meta / UNSAYABLE_FILE, *sorted((meta / "parts").glob("*.jsonl"))]
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
    record = records.get(clip.rel)
    return record is not None and (_unsayable(record) or (root / clip.rel).exists())


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
    _prepare(root, plan)
    records = _load_records(root)
    todo = [c for c in plan.clips if not _done(root, c, records)]
    _execute(_tasks(root, plan, todo), jobs, progress, total=len(todo))
    if any(c.label == UTTERANCE for c in plan.clips):
        _realign(root, plan, _load_records(root), progress)
    records = _load_records(root)
    missing = [c.rel for c in plan.clips if not _done(root, c, records)]
    if missing:
        raise SpeechRNNError(f"{len(missing)} clip(s) were not made, e.g. {missing[:3]}")
    made = sum(not _unsayable(records[c.rel]) for c in todo)
    summary = _write_index(root, plan, records, made, time.monotonic() - start)
    for f in (root / META_DIR / "parts").glob("*.jsonl"):
        f.unlink()
    return summary


def _prepare(root: Path, plan: Plan) -> None:
    """Make the corpus folders and record the plan, or check that a build already there has this plan;
    remove the files a killed build left half written."""
    meta_dir = root / META_DIR
    (meta_dir / "parts").mkdir(parents=True, exist_ok=True)
    plan_file = meta_dir / "plan.json"
    # The digest catches a plan changed by new code under the same settings (other texts, other voices).
    planned = [[c.rel, c.label, c.text, c.speaker] for c in plan.clips]
    digest = hashlib.blake2b(json.dumps(planned).encode()).hexdigest()
    if plan_file.exists():
        previous = json.loads(plan_file.read_text())
        old_digest = previous.pop("plan_digest", digest)
        if not _same_or_grown(previous, old_digest, plan, planned):
            raise SpeechRNNError(
                f"{root} holds a build with other settings or another plan ({previous}); expected "
                f"{plan.settings}. Use a new --out directory or delete this one."
            )
    _write_text(plan_file, json.dumps({**plan.settings, "plan_digest": digest}, indent=1))
    for folder in {c.rel.split("/")[0] for c in plan.clips} | {BACKGROUND_DIR}:
        (root / folder).mkdir(exist_ok=True)
        for stale in (root / folder).glob(".*.part"):
            stale.unlink()


def _same_or_grown(previous: dict, old_digest: str, plan: Plan, planned: list) -> bool:
    """Whether the build recorded as `previous` is `plan`, or `plan` less the clips a `GROWTH` setting adds."""
    added = [k for k in plan.settings if k not in previous]
    if any(k not in GROWTH for k in added) or previous != {k: plan.settings[k] for k in previous}:
        return False
    kept = len(planned) - sum(plan.settings[k] for k in added)  # growth comes at the end of the plan
    return hashlib.blake2b(json.dumps(planned[:kept]).encode()).hexdigest() == old_digest


def _tasks(root: Path, plan: Plan, todo: list[Clip]) -> list[_Task]:
    """The work of making the missing noises and the clips `todo`: one task per speaker and TASK_CLIPS."""
    seed, engines, words = plan.settings["seed"], plan.settings["engines"], tuple(plan.settings["words"])
    tasks = []
    # Babble is six training-voice speakers of its own draw, so a voice added to training leaves it alone.
    babble_engines = [e for e in engines if e in ("piper", "espeak")] or engines
    babble_rng = np.random.default_rng(_clip_seed(seed, "speakers/babble"))
    babble_voices = tuple(draw_speakers(babble_rng, 6, "train", babble_engines))
    seconds = plan.settings["noise_seconds"]
    for name in plan.noises:
        if not (root / BACKGROUND_DIR / f"{name}.wav").exists():
            tasks.append(_Task(str(root), seed, babble_voices[0], (), "", name, seconds, babble_voices))
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for c in todo:
        by_speaker[c.speaker].append(c)
    for sid, clips in by_speaker.items():
        for i in range(0, len(clips), TASK_CLIPS):
            chunk = tuple(clips[i : i + TASK_CLIPS])
            part = f"{sid}-{chunk[0].rel.replace('/', '-')}.jsonl"
            tasks.append(_Task(str(root), seed, plan.speakers[sid], chunk, part, words=words))
    # Big tasks first for load balance; festival ones early since each pays a start-up.
    tasks.sort(key=lambda t: (not t.noise, t.voice.engine != "festival", -len(t.clips)))
    return tasks


def _align(record: dict, audio: np.ndarray, aligner: Aligner) -> dict:
    """The utterance's record with the word times `aligner` finds in its audio (or why it found none)."""
    record = {k: v for k, v in record.items() if k not in ("words", "align_error")}
    try:
        record["words"] = aligner(audio, record["text"])
    except SpeechRNNError as err:
        record["words"], record["align_error"] = [], str(err)
    record["aligned_by"] = aligner.name
    return record


def _realign(root: Path, plan: Plan, records: dict[str, dict], progress: bool) -> None:
    """Align again the utterances whose times another model or method made (the shipped model changed)."""
    aligner = _aligner()
    stale = [
        records[c.rel]
        for c in plan.clips
        if c.label == UTTERANCE and not _unsayable(records[c.rel])
        and records[c.rel].get("aligned_by") != aligner.name
    ]  # fmt: skip
    if not stale:
        return
    from tqdm import tqdm

    with open(root / META_DIR / "parts" / "realigned.jsonl", "a", encoding="utf-8") as meta:
        for record in tqdm(stale, unit="clip", desc="align", disable=not progress):
            audio, _ = sf.read(str(root / record["path"]), dtype="float32")
            meta.write(json.dumps(_align(record, audio, aligner)) + "\n")
            meta.flush()


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
        (unsayable if _unsayable(records[c.rel]) else kept).append(c)
    _write_text(root / META_FILE, "".join(json.dumps(records[c.rel]) + "\n" for c in kept))
    _write_text(meta / UNSAYABLE_FILE, "".join(json.dumps(records[c.rel]) + "\n" for c in unsayable))
    split_of = {sid: v.split for sid, v in plan.speakers.items()}
    for split, name in (("validation", VALIDATION_LIST), ("testing", TESTING_LIST)):
        listed = [c.rel for c in kept if split_of[c.speaker] == split]
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
