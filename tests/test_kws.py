"""CTC keyword spotting on letter posteriors written by hand: whole words only, decided at their end, the
same whatever the chunking."""

import numpy as np
import pytest

from speechrnn.errors import SpeechRNNError
from speechrnn.kws import CTCKeywordSpotter, KeywordConfig, keyword_tokens
from speechrnn.vocab import VOCAB

STEP = 0.02


def frames(spelling: str, sure: float = 0.9) -> np.ndarray:
    """Log-probabilities of one step per character: `_` a blank, `|` a space, else that letter, at `sure`."""
    out = np.full((len(spelling), len(VOCAB)), np.log((1 - sure) / (len(VOCAB) - 1)))
    for t, c in enumerate(spelling):
        out[t, 0 if c == "_" else VOCAB.index(" " if c == "|" else c)] = np.log(sure)
    return out


def hits(keywords, spelling, chunk=None, **config):
    spotter = CTCKeywordSpotter(keywords, STEP, KeywordConfig(**config))
    lp = frames(spelling)
    chunk = chunk or len(lp)
    found = []
    for i in range(0, len(lp), chunk):
        found += spotter.update(lp[i : i + chunk])
    return [(h.keyword, h.step) for h in found]


def test_a_spelled_keyword_fires_once_when_its_word_has_ended():
    spelling = "____g__o__" + "_" * 12 + "l_e_f_t" + "_" * 12
    found = hits(["go", "left", "stop"], spelling)
    assert [k for k, _ in found] == ["go", "left"]
    # "go" ends at step 7 and is decided once end_ms (120 ms = 6 steps) passes without a letter
    assert found[0][1] == 7 + 6


def test_a_space_decides_at_once():
    found = hits(["go"], "__g_o_|__l_e_f_t" + "_" * 12)
    assert found == [("go", 6)]


def test_letters_inside_longer_words_do_not_fire():
    assert hits(["no"], "__s_n_o_w" + "_" * 12) == []  # no boundary before "no"
    assert hits(["four"], "__f_o_u_r_t_e_e_n" + "_" * 12) == []  # the word goes on after "four"
    assert hits(["go"], "__g_o_l_d" + "_" * 12) == []


def test_a_keyword_after_a_pause_or_a_space_fires():
    assert hits(["no"], "__s_n_o_w" + "_" * 12 + "n_o" + "_" * 12) == [("no", 29)]
    assert hits(["no"], "__y_e_s|n_o" + "_" * 12) == [("no", 16)]


def test_a_phrase_is_spelled_with_its_space():
    assert [k for k, _ in hits(["lights on", "on"], "__l_i_g_h_t_s|_o_n" + "_" * 12)] == ["lights on"]


def test_a_misspelled_word_scores_low():
    assert hits(["three"], "__t_r_e_e" + "_" * 12) == []  # "tree" is not "three"
    assert hits(["three"], "__t_r_e_e" + "_" * 12, threshold=0.05) == [("three", 14)]  # one letter missed


def test_one_word_gives_one_event_the_best_spelled():
    assert hits(["tree", "three"], "__t_h_r_e_e" + "_" * 12, threshold=0.05) == [("three", 16)]
    assert hits(["tree", "three"], "__t_r_e_e" + "_" * 12, threshold=0.05) == [("tree", 14)]


def test_events_do_not_depend_on_the_chunking():
    spelling = ("__y_e_s" + "_" * 14 + "n_o|s_t_o_p" + "_" * 10 + "g_o_l_d" + "_" * 11) * 3
    words = ["yes", "no", "stop", "go"]
    whole = hits(words, spelling)
    assert len(whole) == 9
    for chunk in (1, 3, 7, 50):
        assert hits(words, spelling, chunk=chunk) == whole


def test_keywords_must_be_spelled_with_letters():
    assert keyword_tokens("Lights  On") == [VOCAB.index(c) for c in "lights on"]
    for bad in ("", "r2d2", "café", "   "):
        with pytest.raises(SpeechRNNError, match="spelled"):
            keyword_tokens(bad)
    with pytest.raises(SpeechRNNError, match="thresholds"):
        CTCKeywordSpotter(["go"], STEP, thresholds={"go": 1.5})
