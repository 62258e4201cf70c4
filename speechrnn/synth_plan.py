"""The plan of a `speechrnn synth` build: every clip it will make, a pure function of the settings and the seed.

Each clip is named by its path, label, text and speaker; the speakers are drawn per split, so that
validation and test hold out whole voices. `_clip_seed` gives every clip and draw its own generator, so the
plan and the audio do not depend on the order the work is done in.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import noise as noise_gen
from .corpus import (
    PHRASE,
    PHRASES_DIR,
    SENTENCE,
    SENTENCES_DIR,
    UNKNOWN_DIR,
    UTTERANCE,
    UTTERANCES_DIR,
    Clip,
)
from .texts import sentences, unknown_words
from .utterances import prose_texts, utterance_texts
from .voices import Voice, draw_speakers
from .words import KWS12_WORDS, UNKNOWN, WORDS_V2

FORMAT_VERSION = 1
# Settings that add clips at the end of the plan: a build made without them is extended, not refused.
GROWTH = ("prose",)


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
    utterances: int = 0  # connected utterances said in one breath (`utterances.py`)
    prose: int = 0  # more utterances of random common words, said by training voices only


PRESETS = {
    "tiny": Preset(KWS12_WORDS, 8, 20, 10, 4, 30, 5.0, 12, 4),
    "small": Preset(WORDS_V2, 60, 400, 300, 40, 160, 30.0, 400, 200),
    "default": Preset(WORDS_V2, 550, 5000, 3000, 300, 900, 60.0, 6000, 4000),
}


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

    def add(folder: str, label: str, text: str, among: list[str] = ids) -> Clip:
        sid = among[int(rng.integers(len(among)))]
        n = counters[folder, sid]
        counters[folder, sid] += 1
        return Clip(f"{folder}/{sid}_nohash_{n}.wav", label, text, sid)

    clips = [add(w, w, w) for w in words for _ in range(per_word)]
    vocab = unknown_words(words)
    clips += [add(UNKNOWN_DIR, UNKNOWN, vocab[int(rng.integers(len(vocab)))]) for _ in range(preset.unknown)]
    for _ in range(preset.phrases):
        k = int(rng.integers(2, 5))
        seq: list[str] = []
        while len(seq) < k:
            w = words[int(rng.integers(len(words)))]
            if not seq or w != seq[-1] or len(words) == 1:
                seq.append(w)
        clips.append(add(PHRASES_DIR, PHRASE, " ".join(seq)))
    clips += [add(SENTENCES_DIR, SENTENCE, s) for s in sentences(words, preset.sentences, rng)]
    # Their own generator, after everything else: the clips above stay as they were without utterances.
    rng = np.random.default_rng(_clip_seed(seed, "utterances"))
    clips += [add(UTTERANCES_DIR, UTTERANCE, t) for t in utterance_texts(words, preset.utterances, rng)]
    # Training material only: validation and test keep the connected material they were scored on.
    rng = np.random.default_rng(_clip_seed(seed, "prose"))
    train_ids = [sid for sid in ids if speakers[sid].split == "train"]
    clips += [add(UTTERANCES_DIR, UTTERANCE, t, train_ids) for t in prose_texts(words, preset.prose, rng)]
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
    if preset.utterances:  # absent otherwise, so that builds from before utterances keep their settings
        settings["utterances"] = preset.utterances
    if preset.prose:
        settings["prose"] = preset.prose  # a key of `GROWTH`: a build from before it grows by these clips
    noises = (*noise_gen.PLAIN_NOISES, "babble")
    return Plan(settings, speakers, tuple(clips), noises)
