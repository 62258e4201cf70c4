"""Tests of `speechrnn synth`: the corpus layout contract, splits, metadata, determinism and resume."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn import render, synth, synth_plan, synthesizers, voices
from speechrnn.errors import SpeechRNNError
from speechrnn.words import KWS12_WORDS, WORDS_V2

MICRO = synth_plan.Preset(("yes", "no"), 2, 2, 2, 1, 12, 1.0)  # a plan of a dozen clips


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, synth.CorpusSummary]:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    summary = synth.build_corpus(out, preset="tiny", seed=0, jobs=2, progress=False)
    return out, summary


@pytest.fixture
def micro(monkeypatch):
    monkeypatch.setitem(synth_plan.PRESETS, "micro", MICRO)
    return "micro"


def _clips(root: Path) -> dict[str, Path]:
    """Every clip of a corpus (background noise excluded), by relative path."""
    return {
        p.relative_to(root).as_posix(): p
        for p in root.glob("*/*.wav")
        if p.parent.name != "_background_noise_"
    }


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def _records(root: Path, name: str = "clips.jsonl") -> list[dict]:
    return [json.loads(line) for line in _lines(root / "_meta_" / name)]


def _bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


# ------------------------------------------------------------------------------------ the tiny corpus


@pytest.mark.synth
def test_layout(tiny):
    root, summary = tiny
    unsayable = Counter(r["label"] for r in _records(root, "unsayable.jsonl"))
    for word in KWS12_WORDS:  # 8 planned, less any the voice drawn could not say (MBROLA us3's "on")
        assert len(list((root / word).glob("*_nohash_*.wav"))) + unsayable[word] == 8
    for folder in ("_unknown_", "_phrases_", "_sentences_"):
        assert list((root / folder).glob("*_nohash_*.wav")), folder
    noises = sorted(p.stem for p in (root / "_background_noise_").glob("*.wav"))
    assert {"white_noise", "pink_noise", "brown_noise", "babble"} <= set(noises)
    for name in ("validation_list.txt", "testing_list.txt"):
        assert _lines(root / name)
    for name in ("clips.jsonl", "voices.json", "build.json"):
        assert (root / "_meta_" / name).is_file()
    build = json.loads((root / "_meta_" / "build.json").read_text())
    assert build["seed"] == 0 and build["preset"] == "tiny" and build["words"] == list(KWS12_WORDS)
    assert build["held_out"]["testing"] and build["held_out"]["validation"]
    assert summary.clips["yes"] + unsayable["yes"] == 8 and sum(summary.clips.values()) == len(_clips(root))
    assert not list(root.rglob("*.part"))


@pytest.mark.synth
def test_clip_formats(tiny):
    root, _ = tiny
    for rel, path in _clips(root).items():
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), rel
        folder = rel.split("/")[0]
        seconds = info.frames / info.samplerate
        if folder == "_phrases_":
            assert 1.5 <= seconds <= 4.0 + 1e-6, rel
        elif folder == "_sentences_":
            assert 2.0 <= seconds <= 5.0 + 1e-6, rel
        elif folder == "_utterances_":  # said as one, at its own length, with 0.15-0.5 s before and after
            assert 0.5 <= seconds <= 12.0, rel
        else:
            assert info.frames == 16000, rel
        assert re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", path.name), rel
    for path in (root / "_background_noise_").glob("*.wav"):
        audio, rate = sf.read(str(path))
        assert rate == 16000 and audio.ndim == 1 and np.abs(audio).max() > 0.01, path.name


@pytest.mark.synth
def test_held_out_speakers_never_train(tiny):
    root, _ = tiny
    clips = _clips(root)
    listed = {}
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        listed[split] = set(_lines(root / name))
        assert listed[split] <= set(clips), f"{name} names missing files"
    assert not listed["validation"] & listed["testing"]
    train = set(clips) - listed["validation"] - listed["testing"]
    speaker = lambda rel: rel.split("/")[1].split("_nohash_")[0]  # noqa: E731
    train_speakers = {speaker(r) for r in train}
    for split in ("validation", "testing"):
        assert not {speaker(r) for r in listed[split]} & train_speakers, split
    table = json.loads((root / "_meta_" / "voices.json").read_text())
    train_bases = {table[s]["base"] for s in train_speakers}
    test_bases = {table[speaker(r)]["base"] for r in listed["testing"]}
    assert not test_bases & train_bases
    assert {table[speaker(r)]["split"] for r in listed["testing"]} == {"testing"}


@pytest.mark.synth
def test_metadata_covers_every_clip(tiny):
    root, _ = tiny
    clips = _clips(root)
    records = _records(root)
    assert sorted(r["path"] for r in records) == sorted(clips)
    for r in records:
        duration = sf.info(str(clips[r["path"]])).duration
        folder = r["path"].split("/")[0]
        assert r["speaker"] == Path(r["path"]).name.split("_nohash_")[0]
        assert r["voice"].split(":")[0] in voices.ENGINES
        times = [(w["start"], w["end"]) for w in r["words"]]
        assert all(0.0 <= s < e <= duration + 1e-3 for s, e in times), r
        assert all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1)), r
        if folder == "_phrases_":
            assert r["label"] == "_phrase_"
            assert [w["word"] for w in r["words"]] == r["text"].split()
            assert 2 <= len(r["words"]) <= 4 and set(r["text"].split()) <= set(KWS12_WORDS)
        elif folder == "_sentences_":
            assert r["label"] == "_sentence_" and not set(r["text"].split()) & set(WORDS_V2)
        elif folder == "_unknown_":
            assert r["label"] == "_unknown_" and r["text"] not in WORDS_V2
            assert [w["word"] for w in r["words"]] == [r["text"]]
        elif folder == "_utterances_":  # their times: tests/test_utterances.py
            assert r["label"] == "_utterance_" and [w["word"] for w in r["words"]] == r["text"].split()
        else:
            assert r["label"] == r["text"] == folder
            assert [w["word"] for w in r["words"]] == [folder]


@pytest.mark.synth
def test_word_times_match_energy(tiny):
    root, _ = tiny
    for r in _records(root):
        if not r["words"] or r["label"] == "_utterance_":  # aligned, not measured by energy
            continue
        audio, rate = sf.read(str(root / r["path"]))
        start, end = render.speech_span(audio)
        assert abs(start / rate - r["words"][0]["start"]) <= 0.03, r
        assert abs(end / rate - r["words"][-1]["end"]) <= 0.03, r
        before = audio[: max(0, int((r["words"][0]["start"] - 0.02) * rate))]
        if before.size:
            assert np.abs(before).max() < 0.1 * np.abs(audio).max(), r


# ------------------------------------------------------------------------- determinism and resuming


@pytest.mark.synth
def test_same_seed_same_bytes_and_resume(tmp_path, micro):
    a = synth.build_corpus(tmp_path / "a", preset=micro, seed=3, jobs=1, progress=False)
    b = synth.build_corpus(tmp_path / "b", preset=micro, seed=3, jobs=2, progress=False)
    assert a.synthesized == b.synthesized == sum(a.clips.values())
    first = _bytes(tmp_path / "a")
    assert first == _bytes(tmp_path / "b")
    assert (tmp_path / "a/_meta_/clips.jsonl").read_text() == (tmp_path / "b/_meta_/clips.jsonl").read_text()

    other = synth.build_corpus(tmp_path / "c", preset=micro, seed=4, jobs=1, progress=False)
    assert other.clips == a.clips
    assert _bytes(tmp_path / "c") != first

    # Resume: remove some clips and a noise file as if killed; only those are made again, identically.
    gone = sorted(_clips(tmp_path / "a"))[:3]
    for rel in gone:
        (tmp_path / "a" / rel).unlink()
    (tmp_path / "a/_background_noise_/pink_noise.wav").unlink()
    (tmp_path / "a/yes/.stale.wav.123.part").write_bytes(b"torn")
    again = synth.build_corpus(tmp_path / "a", preset=micro, seed=3, jobs=1, progress=False)
    assert again.synthesized == len(gone)
    assert _bytes(tmp_path / "a") == first
    assert not list((tmp_path / "a").rglob("*.part"))
    nothing = synth.build_corpus(tmp_path / "a", preset=micro, seed=3, jobs=1, progress=False)
    assert nothing.synthesized == 0

    with pytest.raises(SpeechRNNError, match="other settings"):
        synth.build_corpus(tmp_path / "a", preset=micro, seed=5, jobs=1, progress=False)


@pytest.mark.synth
def test_a_build_grows_by_training_prose_and_keeps_what_it_had(tmp_path, micro, monkeypatch):
    root = tmp_path / "g"
    synth.build_corpus(root, preset=micro, seed=3, jobs=1, progress=False)
    before = _bytes(root)
    monkeypatch.setitem(synth_plan.PRESETS, micro, dataclasses.replace(MICRO, prose=2))
    grown = synth.build_corpus(root, preset=micro, seed=3, jobs=1, progress=False)
    assert grown.synthesized == 2 and {k: v for k, v in _bytes(root).items() if k in before} == before
    speakers = json.loads((root / "_meta_" / "voices.json").read_text())
    prose = [r for r in _records(root) if r["label"] == "_utterance_"]
    assert len(prose) == 2 and all(speakers[r["speaker"]]["split"] == "train" and r["words"] for r in prose)
    assert grown.clips == synth.build_corpus(tmp_path / "fresh", preset=micro, seed=3, jobs=1,
                                             progress=False).clips  # fmt: skip
    monkeypatch.setitem(synth_plan.PRESETS, micro, dataclasses.replace(MICRO, prose=3))
    with pytest.raises(SpeechRNNError, match="other settings"):  # a grown build changes no further
        synth.build_corpus(root, preset=micro, seed=3, jobs=1, progress=False)


@pytest.mark.synth
def test_clips_a_voice_cannot_say_are_left_out(tmp_path, micro, monkeypatch):
    real = synthesizers.Synthesizer.synthesize
    asked = []

    def gappy(self, voice, texts, seeds):  # as if no training voice had the diphones of "no"
        asked.extend(texts)
        said = real(self, voice, texts, seeds)
        return [None if t == "no" and voice.split == "train" else a for t, a in zip(texts, said, strict=True)]

    monkeypatch.setattr(synthesizers.Synthesizer, "synthesize", gappy)
    root = tmp_path / "gaps"
    summary = synth.build_corpus(root, preset=micro, seed=3, jobs=1, progress=False)
    gone = [json.loads(line) for line in _lines(root / "_meta_" / "unsayable.jsonl")]
    assert gone and all("no" in r["text"].split() and r["unsayable"] for r in gone)
    speakers = json.loads((root / "_meta_" / "voices.json").read_text())
    kept = _records(root)
    assert not any("no" in r["text"].split() and speakers[r["speaker"]]["split"] == "train" for r in kept)
    assert any(r["label"] == "no" for r in kept)  # held-out voices still say it
    listed = set(_lines(root / "validation_list.txt")) | set(_lines(root / "testing_list.txt"))
    assert set(_clips(root)) == {r["path"] for r in kept} and not listed & {r["path"] for r in gone}
    assert sum(summary.clips.values()) == summary.synthesized == len(kept)
    assert sum(summary.unsayable.values()) == len(gone)
    build = json.loads((root / "_meta_" / "build.json").read_text())
    assert build["unsayable_by_voice"] == summary.unsayable
    assert "left out" in synth.summary_text(summary)

    asked.clear()  # a resumed build does not try them again
    again = synth.build_corpus(root, preset=micro, seed=3, jobs=1, progress=False)
    assert again.synthesized == 0 and not asked and again.clips == summary.clips


@pytest.mark.synth
def test_custom_words(tmp_path, micro):
    summary = synth.build_corpus(
        tmp_path / "w", words=["Marvin", "visual"], per_word=3, preset=micro, seed=0, jobs=1, progress=False
    )
    unsayable = Counter(
        r["label"] for r in _records(tmp_path / "w", "unsayable.jsonl")
    )  # a voice lacks a diphone
    assert summary.clips["marvin"] + unsayable["marvin"] == summary.clips["visual"] + unsayable["visual"] == 3
    assert not (tmp_path / "w" / "yes").exists()
    for r in _records(tmp_path / "w"):
        if r["label"] == "_phrase_":
            assert set(r["text"].split()) <= {"marvin", "visual"}
    with pytest.raises(SpeechRNNError, match="letters"):
        synth.build_corpus(tmp_path / "x", words=["go!"], preset=micro, progress=False)
    with pytest.raises(SpeechRNNError, match="preset"):
        synth.build_corpus(tmp_path / "x", preset="huge", progress=False)


def test_cli_help():
    done = subprocess.run(
        [sys.executable, "-m", "speechrnn", "synth", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--out", "--words", "--per-word", "--seed", "--preset", "--jobs"):
        assert flag in done.stdout
