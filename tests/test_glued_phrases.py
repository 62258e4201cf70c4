"""scripts/glued_phrases.py: phrases glued from a split's isolated clips, with each word where it was put."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glued_phrases import glue  # noqa: E402

from speechrnn.audio import SAMPLE_RATE, load_audio  # noqa: E402
from speechrnn.render import PHRASE_GAP_S, speech_span  # noqa: E402


def test_glued_phrases_hold_command_words_at_their_times(fake_corpus, tmp_path):
    records = glue(fake_corpus, "validation", 12, tmp_path, seed=1)
    validation = set((fake_corpus / "validation_list.txt").read_text().split())
    labels = {p.split("/")[0] for p in validation if not p.startswith("_")}
    assert len(records) == 12
    for r in records:
        assert 2 <= len(r["words"]) <= 4
        assert r["text"].split() == [w["word"] for w in r["words"]]
        assert set(r["text"].split()) <= labels  # command words only: no utterances or unknown words
        audio = load_audio(Path(r["path"]))
        starts = [w["start"] for w in r["words"]]
        assert starts == sorted(starts) and r["words"][-1]["end"] * SAMPLE_RATE < audio.size
        for w, nxt in zip(r["words"], r["words"][1:], strict=False):
            assert nxt["start"] - w["end"] >= PHRASE_GAP_S[0]  # the gap, as the corpus builder leaves
        for w in r["words"]:  # the word's speech is where its times say, silence around the phrase
            lo, hi = int(w["start"] * SAMPLE_RATE), int(w["end"] * SAMPLE_RATE)
            s, e = speech_span(audio[lo:hi])
            assert e - s > 0.8 * (hi - lo)
        assert np.abs(audio[: int(0.09 * SAMPLE_RATE)]).max() < 1e-3
