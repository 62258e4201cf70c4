"""The layout of a Speech Commands corpus (a contract) and the record of one clip in it.

Google's v0.01 and v0.02, and the corpora `speechrnn synth` builds:

    <root>/<word>/<speaker>_nohash_<n>.wav         1 s clips; word folders are those not starting with `_`
    <root>/validation_list.txt, testing_list.txt   relative paths; everything else is training
    <root>/_background_noise_/*.wav                long noise recordings
    <root>/_unknown_/*.wav                         synthetic only: other words, for the `_unknown_` class
    <root>/_phrases_/*.wav                         synthetic only: 2-4 command words in a row (for CTC)
    <root>/_sentences_/*.wav                       synthetic only: speech without command words
    <root>/_utterances_/*.wav                      synthetic only: connected speech said in one breath
    <root>/_meta_/clips.jsonl                      synthetic only: transcript, speaker and word times per clip

`synth` writes it and `speechcommands` reads it; both name its parts from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .audio import SAMPLE_RATE
from .words import UNKNOWN

BACKGROUND_DIR = "_background_noise_"
UNKNOWN_DIR = UNKNOWN  # synthetic corpora: clips of other words
PHRASES_DIR = "_phrases_"  # synthetic corpora: several command words in a row
SENTENCES_DIR = "_sentences_"  # synthetic corpora: speech without command words
UTTERANCES_DIR = "_utterances_"  # synthetic corpora: connected speech said in one breath, with word times
META_DIR = "_meta_"  # synthetic corpora: what the build knows about its clips
META_FILE = f"{META_DIR}/clips.jsonl"  # one JSON object per clip
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
PHRASE = "_phrase_"  # label of a phrase clip (and the class-count key of items without a class)
SENTENCE = "_sentence_"  # label of a sentence clip
UTTERANCE = "_utterance_"  # label of an utterance clip
# Clips of several words: seconds long, never padded to a word's 1 s, batched apart from words.
LONG_LABELS = (PHRASE, SENTENCE, UTTERANCE)
CLIP_SAMPLES = SAMPLE_RATE  # word clips last 1 s; shorter ones are zero-padded to it, as TensorFlow does


@dataclass(frozen=True)
class WordSpan:
    """Where one word of a clip's transcript is spoken."""

    word: str  # the word as written in the transcript
    start: float  # seconds from the start of the clip
    end: float  # seconds from the start of the clip


@dataclass(frozen=True)
class Clip:
    """One clip of a corpus: planned by `synth_plan.make_plan`, or found on disk by `speechcommands.scan_corpus`."""

    rel: str  # path relative to the corpus root, as the split lists write it: `go/1a2b3c4d_nohash_0.wav`
    label: str  # its word folder, or UNKNOWN, PHRASE, SENTENCE, UTTERANCE
    text: str  # transcript, lower case; '' when not known
    speaker: str  # speaker id ('' when neither clips.jsonl nor the file name gives one)
    words: tuple[WordSpan, ...] = ()  # word timings where clips.jsonl gives them
    root: str = ""  # the corpus folder of a clip found on disk; '' for a planned one

    @property
    def path(self) -> str:
        """The WAV file: `root/rel` (just `rel` for a planned clip)."""
        return os.path.join(self.root, self.rel) if self.root else self.rel

    @property
    def has_text(self) -> bool:
        """True when the transcript is known."""
        return bool(self.text)
