"""Connected utterances: their texts, their word times (forced alignment against festival's own), and their
place in a built corpus."""

import json
import shutil

import numpy as np
import pytest

from speechrnn import synth, synth_plan
from speechrnn.audio import resample
from speechrnn.checkpoint import default_model_path
from speechrnn.corpus import UTTERANCE
from speechrnn.decoding import filler_words
from speechrnn.synthesizers import festival_words
from speechrnn.utterances import (
    ALIGN_LAG_S,
    ALIGN_LEAD_S,
    DIGITS,
    HOMOPHONES,
    KIND_SHARES,
    Aligner,
    command_tokens,
    kind_of,
    prose_texts,
    rate_of,
    utterance_texts,
    word_balance,
    word_bounds,
)
from speechrnn.words import WORDS_V2


def test_every_kind_is_drawn_and_prose_holds_no_command_word():
    texts = utterance_texts(WORDS_V2, 400, np.random.default_rng(3))
    assert texts == utterance_texts(WORDS_V2, 400, np.random.default_rng(3))  # a pure function of the seed
    kinds = {k: [t for t in texts if kind_of(t, WORDS_V2) == k] for k in KIND_SHARES}
    assert all(len(v) >= 20 for v in kinds.values()), {k: len(v) for k, v in kinds.items()}
    for text in kinds["prose"] + kinds["homophones"]:
        assert not command_tokens(text, WORDS_V2)
        assert not any(t.startswith(w) for t in text.split() for w in WORDS_V2 if len(w) >= 3), text
    assert all(any(t in HOMOPHONES for t in s.split()) for s in kinds["homophones"])
    assert all(not any(t in HOMOPHONES for t in s.split()) for s in kinds["prose"])
    assert all(2 <= len(t.split()) <= 7 and set(t.split()) <= set(DIGITS) for t in kinds["digits"])
    assert all(command_tokens(t, WORDS_V2) for t in kinds["carrier"] + kinds["commands"])
    assert len(set(kinds["prose"])) > 0.5 * len(kinds["prose"])  # ordinary words, not a few sentences


def test_training_prose_spells_filler_words_and_no_command_word():
    texts = prose_texts(WORDS_V2, 200, np.random.default_rng(5))
    assert texts == prose_texts(WORDS_V2, 200, np.random.default_rng(5))
    fillers = set(filler_words())
    for text in texts:
        assert 3 <= len(text.split()) <= 12 and set(text.split()) <= fillers, text
        assert kind_of(text, WORDS_V2) == "prose" and not command_tokens(text, WORDS_V2), text
    assert len({w for t in texts for w in t.split()}) > 1000  # the breadth of English, not a few words


def test_word_balance_draws_every_command_word_about_as_often_and_leaves_prose_alone():
    rng = np.random.default_rng(0)
    words = ("three", "tree", "go", "stop")
    texts = utterance_texts(words, 2000, rng)
    weights = word_balance(texts, words)
    counts = dict.fromkeys(words, 0.0)
    plain = dict.fromkeys(words, 0)
    for text, w in zip(texts, weights, strict=True):
        for word in command_tokens(text, words):
            counts[word] += w
            plain[word] += 1
    assert max(plain.values()) > 2 * min(plain.values())  # "three" rides on every digit string
    assert max(counts.values()) < 1.05 * min(counts.values())
    held = np.array([bool(command_tokens(t, words)) for t in texts])
    assert (weights[~held] == 1).all() and weights[held].sum() == pytest.approx(held.sum())
    assert (word_balance(["wait for me"], words) == 1).all()


def test_speaking_rates_are_fixed_by_the_path_and_all_used():
    rates = [rate_of(f"_utterances_/spk_nohash_{n}.wav") for n in range(60)]
    assert rates == [rate_of(f"_utterances_/spk_nohash_{n}.wav") for n in range(60)]
    assert set(rates) == {0.8, 1.0, 1.25}


def test_neighbouring_words_meet_halfway_between_their_letters():
    step = 0.02
    bounds = word_bounds([(20, 30), (40, 50), (52, 60)], step)
    lag, lead = ALIGN_LAG_S / step, ALIGN_LEAD_S / step
    assert bounds[0] == (pytest.approx(20 - lead), pytest.approx(35 - lag))
    assert bounds[1] == (pytest.approx(35 - lag), pytest.approx(51 - lag))
    assert bounds[2] == (pytest.approx(51 - lag), 60.0)
    assert word_bounds([(1, 3)], step)[0][0] == 0.0  # never before the audio


needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="festival is not installed")
trained = pytest.mark.skipif(not default_model_path().is_file(), reason="no trained model")


@pytest.mark.synth
@needs_festival
@trained
def test_forced_alignment_agrees_with_festivals_own_word_times():
    aligner = Aligner()
    texts = [
        "please go left three now",
        "one two three four five",
        "i said stop",
        "turn right and go forward",
    ]
    errors = []
    for text in texts:
        audio, rate, planned = festival_words(text, "rab_diphone")
        assert [w["word"] for w in planned] == text.split()
        assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(planned, planned[1:], strict=False))
        found = aligner(resample(audio, rate), text)
        assert [w["word"] for w in found] == text.split()
        errors += [
            max(abs(f["start"] - p["start"]), abs(f["end"] - p["end"]))
            for f, p in zip(found, planned, strict=True)
        ]
    within = np.mean(np.array(errors) <= 0.1)
    assert within >= 0.75, f"{within:.0%} of words within 100 ms: {np.round(errors, 2)}"


def test_festival_words_refuse_a_voice_it_does_not_have():
    if shutil.which("festival") is None:
        pytest.skip("festival is not installed")
    from speechrnn.errors import SpeechRNNError

    with pytest.raises(SpeechRNNError, match="could not say"):
        festival_words("go", "no_such_voice")


@pytest.mark.synth
@trained
def test_a_built_corpus_holds_utterances_with_their_kind_and_word_times(tmp_path):
    preset = synth_plan.PRESETS["tiny"]
    out = tmp_path / "tiny"
    synth.build_corpus(out, preset="tiny", seed=4, jobs=1, progress=False)
    records = [json.loads(line) for line in (out / "_meta_" / "clips.jsonl").read_text().splitlines()]
    utterances = [r for r in records if r["label"] == UTTERANCE]
    unsayable = (out / "_meta_" / "unsayable.jsonl").read_text().count(UTTERANCE)
    assert len(utterances) + unsayable == preset.utterances + preset.prose
    aligned = [r for r in utterances if r["words"]]
    assert len(aligned) >= len(utterances) - 1
    for r in aligned:
        import soundfile as sf

        seconds = sf.info(str(out / r["path"])).duration
        assert r["kind"] == kind_of(r["text"], preset.words) and r["aligned_by"].startswith("ctc-")
        assert [w["word"] for w in r["words"]] == r["text"].split()
        assert r["words"][0]["start"] >= 0 and r["words"][-1]["end"] <= seconds + 0.02
        assert all(
            a["end"] <= b["start"] + 1e-6 and a["start"] < a["end"]
            for a, b in zip(r["words"], r["words"][1:], strict=False)
        )
    # Aligned again when the method or the model changes: a record made otherwise is made again.
    stale = dict(aligned[0], aligned_by="other", words=[])
    parts = out / "_meta_" / "parts"
    parts.mkdir(exist_ok=True)
    (parts / "old.jsonl").write_text(json.dumps(stale) + "\n")
    synth.build_corpus(out, preset="tiny", seed=4, jobs=1, progress=False)
    again = {
        json.loads(x)["path"]: json.loads(x)
        for x in (out / "_meta_" / "clips.jsonl").read_text().splitlines()
    }
    assert again[stale["path"]]["words"] == aligned[0]["words"]
