"""The synthesisers: each engine speaks, each voice as itself, at the rate and pitch asked; what is missing
is said."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from speechrnn import synthesizers, voices
from speechrnn.errors import SpeechRNNError


@pytest.mark.synth
def test_mbrola_says_what_its_database_can():
    if "mbrola" not in synthesizers.available_engines():
        pytest.skip("mbrola is not installed")
    gap, whole = synthesizers.Synthesizer().synthesize(voices.Voice("mbrola", "us3"), ["on", "seven"], [1, 1])
    assert gap is None  # us3 has no diphones for the vowel of "on"; mbrola would say "_n"
    assert whole is not None and np.sqrt(np.mean(whole[0] ** 2)) > 1e-3
    # A database that speaks a sibling's phonemes: de7 has no diphthong /@U/ for "go" (de4 has).
    gap, whole = synthesizers.Synthesizer().synthesize(voices.Voice("mbrola", "de7"), ["go", "seven"], [1, 1])
    assert gap is None
    assert whole is not None and np.sqrt(np.mean(whole[0] ** 2)) > 1e-3


@pytest.mark.synth
def test_pico_finds_which_phones_each_language_has():
    if "pico" not in synthesizers.available_engines():
        pytest.skip("pico2wave is not installed")
    german, spanish = synthesizers.pico_phones("de-DE"), synthesizers.pico_phones("es-ES")
    assert {"R", "x", "Z", "v"} <= german and not {"T", "D", "w", "r"} & german
    assert {"T", "x", "r", "B"} <= spanish and not {"v", "z", "S", "h", "@"} & spanish


@pytest.mark.synth
@pytest.mark.parametrize(
    ("voice", "words"),
    [*((voices.Voice("pico", language), ("seven", "stop")) for language in voices.PICO_MAPPED)]
    + [(voices.Voice("rhvoice", name), ("yes", "stop")) for name in ("pavel", "natalia", "magda", "hana")],
    ids=lambda v: v.base if isinstance(v, voices.Voice) else "",
)
def test_voices_of_other_languages_say_english_words(voice, words):
    if voice.engine not in synthesizers.available_engines():
        pytest.skip(f"{voice.engine} or its voices of other languages are not installed")
    from speechrnn.transcribe import transcribe  # the shipped model hears the words they say

    for text in words:
        audio, rate = synthesizers.Synthesizer().synthesize(voice, [text], [1])[0]
        label = transcribe(audio, sample_rate=rate).label
        assert label == text, f"{voice.base} said {text!r}; the shipped model heard {label!r}"


@pytest.mark.synth
def test_brazilians_say_the_words_their_diphones_lack_with_a_vowel_between():
    if "mbrola" not in synthesizers.available_engines():
        pytest.skip("mbrola is not installed")
    # br1 has no diphone s-t, nor n or l before a pause: without the vowel none of these could be said
    brazilian = voices.Voice("mbrola", "br1")
    said = synthesizers.Synthesizer().synthesize(brazilian, ["stop", "nine", "learn"], [1] * 3)
    assert all(a is not None and np.sqrt(np.mean(a[0] ** 2)) > 1e-3 for a in said)


def test_a_festival_voice_of_another_language_says_the_phones_its_diphones_allow(monkeypatch):
    pho = "t_h 60 50 220\nu 120\nT 70\nr 50\ni 150 20 230 80 210\n_ 100\n"  # "two three"
    pairs = "# t, t u, u t, t r, r i, i #, # #, t #"
    index = frozenset(tuple(pair.split()) for pair in pairs.split(", "))
    monkeypatch.setattr(synthesizers, "festival_diphone_index", lambda voice: index)
    segments = synthesizers.festival_segments("lp_diphone", pho)  # Italian: no /T/, so "tree"
    assert [(name, round(s, 3)) for name, s, _ in segments] == [
        ("#", 0.05), ("t", 0.06), ("u", 0.12), ("t", 0.07), ("r", 0.05), ("i", 0.15), ("#", 0.1),
    ]  # a pause first, as a diphone voice starts; every diphone one the voice has  # fmt: skip
    # pitch points: percent of the phone -> seconds into it (kept inside it), the man's pitch lowered
    assert segments[1][2] == [(0.03, 220.0)]
    assert segments[5][2] == [pytest.approx((0.03, 230.0)), pytest.approx((0.12, 210.0))]
    man = synthesizers.festival_segments("pc_diphone", pho)
    assert man[5][2][0][1] == pytest.approx(230 * voices.MBROLA_MAN_PITCH)
    # without t-r, a vowel breaks the cluster ("te-ree") if the voice has its diphones; else nothing is said
    monkeypatch.setattr(synthesizers, "festival_diphone_index", lambda voice: index - {("t", "r")})
    assert synthesizers.festival_segments("lp_diphone", pho) is None
    monkeypatch.setattr(
        synthesizers, "festival_diphone_index", lambda voice: index - {("t", "r")} | {("t", "e"), ("e", "r")}
    )
    assert [name for name, _, _ in synthesizers.festival_segments("lp_diphone", pho)][3:6] == ["t", "e", "r"]


@pytest.mark.synth
def test_festival_reads_which_diphones_a_voice_has():
    if "festival" not in synthesizers.available_engines():
        pytest.skip("festival and its voices of other languages are not installed")
    italian = synthesizers.festival_diphone_index("lp_diphone")
    assert len(italian) > 1000 and ("t", "r") in italian
    assert ("#", "ng") not in italian  # festival falls back to silence there: the index holds what it has
    assert synthesizers.festival_diphone_index("no_such_diphone") == frozenset()
    # the men and the boy among them speak us1's phonemes at their own pitch
    synth = synthesizers.Synthesizer()
    ((man, rate),) = synth.synthesize(
        voices.Voice("festival", "czech_machac", pitch=50), ["go forward nine"], [1]
    )
    ((woman, _),) = synth.synthesize(
        voices.Voice("festival", "czech_dita", pitch=50), ["go forward nine"], [1]
    )
    assert _median_f0(man, rate) < 150 < _median_f0(woman, rate)


@pytest.mark.synth
def test_databases_of_other_languages_speak_english_in_their_accent():
    if "mbrola" not in synthesizers.available_engines():
        pytest.skip("mbrola is not installed")
    turkish = synthesizers.mbrola_phones("tr1")
    assert "T" not in turkish and "S" in turkish  # Turkish: no /T/
    # Spanish /r/ never follows a pause, but is there between vowels
    assert "r" in synthesizers.mbrola_phones("mx1")
    synth = synthesizers.Synthesizer()
    said = synth.synthesize(voices.Voice("mbrola", "tr1"), ["three", "happy", "forward"], [1, 1, 1])
    assert all(a is not None and np.sqrt(np.mean(a[0] ** 2)) > 1e-3 for a in said)
    # us1's phonemes are a woman's: the men among these databases speak them an octave-ish lower
    ((man, rate),) = synth.synthesize(voices.Voice("mbrola", "es1", pitch=50), ["go forward nine"], [1])
    ((woman, _),) = synth.synthesize(voices.Voice("mbrola", "it4", pitch=50), ["go forward nine"], [1])
    assert _median_f0(man, rate) < 150 < _median_f0(woman, rate)


@pytest.mark.synth
@pytest.mark.parametrize(
    "voice",
    [
        voices.Voice("piper", "joe"),
        voices.Voice("espeak", "en-gb-scotland", "m3", pitch=50),
        voices.Voice("mbrola", "us2", pitch=40),
        voices.Voice("mbrola", "de4", rate=0.9, pitch=60),  # a German speaking English
        voices.Voice("pico", "en-US", pitch=90),
        voices.Voice("flite", "slt", pitch=180),
        voices.Voice("festival", "kal_diphone", pitch=110),
        voices.Voice("festival", "ked_diphone", pitch=100),
        voices.Voice("festival", "cmu_us_slt_arctic_hts"),
        voices.Voice("rhvoice", "alan", pitch=110),
    ],
    ids=lambda v: v.base,
)
def test_each_engine_speaks(voice):
    if voice.engine not in synthesizers.available_engines():
        pytest.skip(f"{voice.engine} is not installed")
    (audio, rate), (again, _) = synthesizers.Synthesizer().synthesize(voice, ["seven", "seven"], [1, 1])
    assert rate >= 16000 and audio.dtype == np.float32
    assert np.sqrt(np.mean(audio**2)) > 1e-3
    np.testing.assert_array_equal(audio, again)  # reproducible, Piper's sampling noise included


def _say_seven_each_their_own(engine: str, names) -> None:
    """Each named voice of `engine` says "seven" audibly, and no two say it alike (not one voice under
    several names, nor a fallback to the engine's default)."""
    if engine not in synthesizers.available_engines():
        pytest.skip(f"{engine} is not installed")
    synth = synthesizers.Synthesizer()
    heard = {}
    for name in names:
        ((audio, _),) = synth.synthesize(voices.Voice(engine, name), ["seven"], [1])
        assert np.sqrt(np.mean(audio**2)) > 1e-3, name
        heard[name] = audio
    for a, b in itertools.combinations(heard, 2):
        same = heard[a].size == heard[b].size and np.allclose(heard[a], heard[b], atol=1e-3)
        assert not same, (a, b)


@pytest.mark.synth
def test_every_mbrola_person_speaks_in_their_own_voice():
    _say_seven_each_their_own("mbrola", voices.MBROLA_VOICES)  # espeak-ng finds each voice and its database


@pytest.mark.synth
def test_every_festival_voice_is_its_own():
    # A build runs one festival batch per voice; a voice festival does not have ends that batch with an
    # error, which fails the test.
    _say_seven_each_their_own("festival", voices.FESTIVAL_VOICES)


@pytest.mark.synth
def test_every_rhvoice_speaker_is_their_own():
    _say_seven_each_their_own("rhvoice", voices.RHVOICE_VOICES)  # not RHVoice's fallback for a missing one


def test_rhvoice_refuses_a_voice_it_would_replace():
    with pytest.raises(SpeechRNNError, match="no voice 'nosuch'"):
        synthesizers.Synthesizer().synthesize(voices.Voice("rhvoice", "nosuch"), ["seven"], [1])


@pytest.mark.synth
@pytest.mark.parametrize("name", sorted(voices.FESTIVAL_DIPHONE))
def test_diphone_voices_take_the_target_pitch(name):
    if "festival" not in synthesizers.available_engines():
        pytest.skip("festival is not installed")
    import librosa

    for target in (95.0, 140.0):
        voice = voices.Voice("festival", name, rate=0.9, pitch=target)
        ((audio, rate),) = synthesizers.Synthesizer().synthesize(voice, ["go forward nine"], [1])
        f0, _, _ = librosa.pyin(audio.astype(np.float64), fmin=60, fmax=300, sr=rate)
        assert abs(np.nanmedian(f0) / target - 1) < 0.12, (target, np.nanmedian(f0))


def _median_f0(audio: np.ndarray, rate: int) -> float:
    import librosa

    f0, _, _ = librosa.pyin(audio.astype(np.float64), fmin=60, fmax=400, sr=rate)
    return float(np.nanmedian(f0))


@pytest.mark.synth
@pytest.mark.parametrize(
    "voice",
    [
        voices.Voice("mbrola", "us1"),
        voices.Voice("mbrola", "fr3"),  # phonemes from espeak-ng's fr1-en, spoken by mbrola itself
        voices.Voice("pico", "en-US"),
        voices.Voice("pico", "fr-FR"),  # us1's phonemes in Pico's markup
        voices.Voice("rhvoice", "bdl"),
    ],
    ids=lambda v: v.base,
)
def test_rate_and_pitch_reach_mbrola_pico_and_rhvoice(voice):
    if voice.engine not in synthesizers.available_engines():
        pytest.skip(f"{voice.engine} is not installed")
    low, high = {"mbrola": (25.0, 75.0), "pico": (80.0, 125.0), "rhvoice": (80.0, 125.0)}[voice.engine]

    def say(rate: float, pitch: float) -> tuple[np.ndarray, int]:
        v = voices.Voice(voice.engine, voice.name, rate=rate, pitch=pitch)
        return synthesizers.Synthesizer().synthesize(v, ["go forward nine"], [1])[0]

    (slow, rate), (fast, _) = say(0.8, low), say(1.2, low)
    assert 1.2 < slow.size / fast.size < 1.8  # 1.5 asked; pauses and edges do not scale exactly
    assert _median_f0(say(1.0, high)[0], rate) > 1.2 * _median_f0(say(1.0, low)[0], rate)


def test_missing_engines_degrade(monkeypatch):
    real = synthesizers.shutil.which
    monkeypatch.setattr(synthesizers.shutil, "which", lambda b: None if b == "festival" else real(b))
    with pytest.warns(UserWarning, match="festvox"):
        found = synthesizers.available_engines()
    assert "festival" not in found
    monkeypatch.setattr(synthesizers.shutil, "which", real)
    monkeypatch.setattr(synthesizers, "MBROLA_DIR", Path("/nonexistent"))
    with pytest.warns(UserWarning, match="mbrola-us1"):
        assert "mbrola" not in synthesizers.available_engines()
    monkeypatch.undo()
    monkeypatch.setattr(synthesizers, "RHVOICE_DIR", Path("/nonexistent"))
    with pytest.warns(UserWarning, match="rhvoice-english rhvoice-russian"):
        assert "rhvoice" not in synthesizers.available_engines()
    monkeypatch.setattr(synthesizers.shutil, "which", lambda b: None)
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(SpeechRNNError, match="espeak-ng"), pytest.warns(UserWarning):
        synthesizers.available_engines()


def test_setup_installs_every_voice_package():
    setup = Path(__file__).parents[1].joinpath("scripts", "setup.sh").read_text()
    apt = " ".join(synthesizers.APT_PACKAGES[e] for e in voices.ENGINES if e != "piper")
    wanted = set(re.sub(r"\(.*?\)", "", apt).split())  # without the remarks in brackets
    missing = {p for p in wanted if not re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", setup)}
    assert not missing, f"scripts/setup.sh does not install {sorted(missing)}"
