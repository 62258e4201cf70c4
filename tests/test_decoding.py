"""CTC decoding on hand-made log-probability matrices: known spikes give known words, times and scores."""

import math

import numpy as np
import pytest
import torch

from speechrnn.decoding import (
    SHORT_WORDS,
    UNK_WORD,
    DecodingOptions,
    LabelHead,
    _word_score,
    beam_search,
    char_error_rate,
    collapse,
    decode_stream,
    edit_distance,
    filler_words,
    greedy_decode,
    make_lexicon,
    silence_cut,
    step_energy,
    word_error_rate,
    word_spans,
)
from speechrnn.errors import SpeechRNNError
from speechrnn.utterances import ALIGN_LAG_S, word_bounds
from speechrnn.vocab import BLANK_ID, SPACE_ID, VOCAB

STEP = 0.02
KEEP_ALL = DecodingOptions(min_word_score=0.0)


def emissions(steps: int, spikes: dict[int, str | dict[str, float]], blank: float = 0.99) -> np.ndarray:
    """Log-probabilities: blank at `blank` everywhere except at spike steps.

    A spike is one character (probability 0.9) or `{char: probability}`; the rest of each step's mass is
    spread evenly over the other symbols.
    """
    probs = np.full((steps, len(VOCAB)), (1 - blank) / (len(VOCAB) - 1))
    probs[:, BLANK_ID] = blank
    for t, spec in spikes.items():
        spec = {spec: 0.9} if isinstance(spec, str) else spec
        rest = (1 - sum(spec.values())) / (len(VOCAB) - len(spec))
        probs[t] = rest
        for c, p in spec.items():
            probs[t, VOCAB.index(c)] = p
    return np.log(probs).astype(np.float32)


def spell(text: str, start: int, gap: int = 2) -> dict[int, str]:
    """Spikes spelling `text` from step `start`, one character every `gap` steps."""
    return {start + i * gap: c for i, c in enumerate(text)}


# --------------------------------------------------------------------------------------------- greedy


def test_collapse_merges_repeats_then_drops_blanks():
    a, b = VOCAB.index("a"), VOCAB.index("b")
    assert collapse([a, a, BLANK_ID, a, b, b, BLANK_ID, BLANK_ID]) == [a, a, b]
    assert collapse([BLANK_ID, BLANK_ID]) == []


def test_greedy_decode_collapse_rules_and_lengths():
    lp = emissions(20, {1: "n", 2: "o", 3: "o", 5: "o", 7: " ", 8: " ", 10: "g", 11: "o"})
    lp_end = emissions(20, {0: " ", 2: "u", 3: "p", 18: " "})
    batch = torch.from_numpy(np.stack([lp, lp_end]))
    # "oo" in adjacent steps is one o; a blank between two o's keeps both; spaces squeezed and stripped.
    assert greedy_decode(batch, torch.tensor([20, 20])) == ["noo go", "up"]
    assert greedy_decode(batch, [4, 3]) == ["no", "u"]
    assert greedy_decode(lp) == ["noo go"]  # one sequence without a batch dimension


# ---------------------------------------------------------------------------------------- error rates


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert edit_distance(["go", "left"], ["go", "left"]) == 0


def test_word_and_char_error_rates():
    refs = ["go left stop", "yes"]
    hyps = ["go right stop", ""]
    assert word_error_rate(refs, hyps) == pytest.approx(2 / 4)  # one substitution, one deletion
    # "left" -> "right" is 4 character edits, "yes" -> "" 3 deletions, out of 12 + 3 characters
    assert char_error_rate(refs, hyps) == pytest.approx(7 / 15)
    assert char_error_rate(["ab  c"], ["ab c"]) == 0.0  # whitespace runs do not count
    assert word_error_rate(["a"], ["a b c"]) == pytest.approx(2.0)  # insertions can exceed 100 %...
    assert word_error_rate([""], [""]) == 0.0  # ...and nothing to find, nothing found, is perfect
    with pytest.raises(ValueError, match="as many"):
        word_error_rate(["a"], [])


# -------------------------------------------------------------------------------------------- lexicon


def test_make_lexicon_validates_and_normalises():
    assert make_lexicon(["Yes", "no", "yes", "don't"]) == ("don't", "no", "yes")
    with pytest.raises(SpeechRNNError, match="'n0'"):
        make_lexicon(["yes", "n0"])
    with pytest.raises(SpeechRNNError, match="'clip.wav'"):
        make_lexicon(["clip.wav"])
    with pytest.raises(SpeechRNNError, match="at least one"):
        make_lexicon([])


# -------------------------------------------------------------------------------------- beam search

LEXICON = make_lexicon(["yes", "no", "go", "left", "three", "tree", "bird"])


def test_beam_search_words_times_and_scores():
    spikes = {
        3: "y",
        4: "e",
        5: "e",
        7: "s",
        12: " ",
        15: "n",
        17: "o",
        18: "o",
        30: "l",
        31: "e",
        32: "f",
        34: "t",
    }
    words = beam_search(emissions(40, spikes), LEXICON)
    assert [w.word for w in words] == ["yes", "no", "left"]
    # start: first step of the first character; end: one step after the last step of the last character.
    times = [t for w in words for t in (w.start, w.end)]
    assert times == pytest.approx([3 * STEP, 8 * STEP, 15 * STEP, 19 * STEP, 30 * STEP, 35 * STEP])
    assert [w.score for w in words] == pytest.approx([0.9] * 3, abs=1e-3)
    shifted = beam_search(emissions(40, spikes), LEXICON, step_seconds=0.04, offset=100)
    assert shifted[0].start == pytest.approx(103 * 0.04) and shifted[0].end == pytest.approx(108 * 0.04)


def test_word_separator_is_optional():
    with_space = beam_search(emissions(30, {**spell("yes", 2), 9: " ", **spell("no", 12)}), LEXICON)
    without = beam_search(emissions(30, {**spell("yes", 2), **spell("no", 12)}), LEXICON)
    assert [w.word for w in with_space] == [w.word for w in without] == ["yes", "no"]


def test_lexicon_snaps_a_misspelling_to_the_lexicon_word():
    # The model heard "yex" (x 0.6, s 0.35): greedy spells it out, the lexicon search says "yes".
    lp = emissions(20, {**spell("ye", 3), 7: {"x": 0.6, "s": 0.35}})
    assert greedy_decode(lp) == ["yex"]
    (word,) = beam_search(lp, LEXICON)
    assert word.word == "yes"
    assert word.score == pytest.approx((0.9 * 0.9 * 0.35) ** (1 / 3), rel=1e-3)  # the unsure "s" lowers it
    assert (word.start, word.end) == pytest.approx((3 * STEP, 8 * STEP))


def test_repeated_letters_need_a_blank_between_them():
    three = emissions(30, {3: "t", 5: "h", 7: "r", 9: "e", 11: "e"})  # e, blank, e: two e's
    tree = emissions(30, {3: "t", 7: "r", 9: "e", 11: "e"})
    tre = emissions(30, {3: "t", 7: "r", 9: "e", 10: "e"})  # e, e: one e
    assert [w.word for w in beam_search(three, LEXICON)] == ["three"]
    assert [w.word for w in beam_search(tree, LEXICON)] == ["tree"]
    assert greedy_decode(tre) == ["tre"]
    (forced,) = beam_search(tre, LEXICON, KEEP_ALL)  # "tree" needs a second e that was never heard
    assert forced.word == "tree" and forced.score < 0.3


def test_a_final_doubled_letter_merged_into_one_run_scores_its_second_peak():
    # the search may run the last "e" of "tree" over the model's e, blank, e: the second e is heard
    lp = emissions(30, {3: "t", 7: "r", 9: "e", 11: {"e": 0.8}})
    tree = [(VOCAB.index("t"), 3, 4), (VOCAB.index("r"), 7, 8), (VOCAB.index("e"), 9, 12)]
    assert _word_score(lp, "tree", tree, tail=30) == pytest.approx((0.9**3 * 0.8) ** (1 / 4), rel=1e-3)
    # e, e with no blank between is one e: the second is not heard
    once = emissions(30, {3: "t", 7: "r", 9: "e", 10: "e"})
    assert _word_score(once, "tree", [*tree[:2], (VOCAB.index("e"), 9, 11)], tail=30) < 0.3


def test_speech_outside_the_lexicon_is_unknown():
    # "bed" said: forced into the lexicon, it becomes a word with letters that were never heard.
    lp = emissions(30, spell("bed", 5, gap=4))
    (forced,) = beam_search(lp, LEXICON, KEEP_ALL)
    assert forced.word in LEXICON and forced.score < 0.1
    (unknown,) = beam_search(lp, LEXICON)
    assert unknown.word == UNK_WORD and unknown.score == forced.score
    assert (unknown.start, unknown.end) == (forced.start, forced.end)
    assert greedy_decode(lp) == ["bed"]


def test_filler_words_compete_and_are_reported_as_unknown():
    """Prose spelled among English's common words: "wait for me" is three other words, not "four"; a
    command said inside it is still named, where it is said; fillers in a row are one <unk>."""
    lexicon = make_lexicon(["four", "go", "left"])
    fillers = filler_words(exclude=lexicon)
    assert {"for", "wait", "me", "please", "now"} <= set(fillers) and not set(lexicon) & set(fillers)
    searched = tuple(sorted(set(lexicon) | set(fillers)))
    prose = emissions(60, spell("wait for me", 5))
    forced = beam_search(prose, lexicon, KEEP_ALL, STEP)
    assert "four" in [w.word for w in forced]  # without fillers, "for" is forced into the command
    words = beam_search(prose, searched, KEEP_ALL, STEP, report=frozenset(lexicon))
    assert [w.word for w in words] == [UNK_WORD]  # one <unk> for the three
    said = emissions(80, spell("please go left now", 5))
    words = beam_search(said, searched, KEEP_ALL, STEP, report=frozenset(lexicon))
    assert [w.word for w in words] == [UNK_WORD, "go", "left", UNK_WORD]
    assert (words[1].start, words[2].start) == (pytest.approx(19 * STEP), pytest.approx(25 * STEP))
    assert filler_words(0) == () and all(len(w) > 2 or w in SHORT_WORDS for w in fillers)


def test_beam_search_of_nothing():
    assert beam_search(emissions(0, {}), LEXICON) == ()
    assert beam_search(emissions(50, {}), LEXICON) == ()  # all blank
    with pytest.raises(ValueError, match="shape"):
        beam_search(np.zeros((5, 3), np.float32), LEXICON)


# ------------------------------------------------------------------------------------ edge snapping


def test_step_energy():
    energy = step_energy(np.concatenate([np.ones(640), np.full(60, 0.1)]), 320)
    assert energy == pytest.approx([0.0, 0.0, -20.0], abs=1e-6)  # a partial step: averaged over its samples
    assert step_energy(np.zeros(320), 320)[0] == pytest.approx(-100.0)
    assert step_energy(np.zeros(0), 320).shape == (0,)


def loudness(steps: int, loud: list[tuple[int, int]], level: float = -20.0) -> np.ndarray:
    energy = np.full(steps, -60.0)
    for a, b in loud:
        energy[a:b] = level
    return energy


def test_word_spans_move_in_to_the_speech():
    options = DecodingOptions()  # snap_steps 6: an edge with no neighbour near starts 6 steps out
    energy = loudness(60, [(10, 30)])
    assert word_spans([(14, 26)], energy, options, STEP) == [(10, 30)]
    assert word_spans([(14, 26)], energy, DecodingOptions(snap_steps=2), STEP) == [
        (12, 28)
    ]  # at most this far
    assert word_spans([(14, 26)], energy, DecodingOptions(snap_steps=0), STEP) == [(14, 26)]
    # neighbours meet between their letters (2 steps of ALIGN_LAG_S earlier), as forced alignment puts them
    assert word_spans([(5, 8), (12, 15)], loudness(60, [(3, 17)]), options, STEP) == [(3, 8), (8, 17)]
    # speech too quiet to tell from the noise floor: the CTC edges stay
    assert word_spans([(14, 26)], loudness(60, [(10, 30)], level=-57.0), options, STEP) == [(14, 26)]
    # a word much quieter than its own loudest step stops where it fades by more than snap_peak_db
    energy = loudness(60, [(10, 30)], level=-50.0)
    energy[14:26] = -5.0
    assert word_spans([(14, 26)], energy, options, STEP) == [(14, 26)]


def test_beam_search_snaps_word_edges_with_energy():
    lp = emissions(30, {**spell("yes", 5), **spell("no", 20)})
    plain = beam_search(lp, LEXICON)
    snapped = beam_search(lp, LEXICON, energy=loudness(30, [(2, 12), (18, 25)]))
    assert [w.word for w in snapped] == [w.word for w in plain] == ["yes", "no"]
    assert [(w.start, w.end) for w in plain] == [(5 * STEP, 10 * STEP), (20 * STEP, 23 * STEP)]
    assert [(w.start, w.end) for w in snapped] == [(2 * STEP, 12 * STEP), (18 * STEP, 25 * STEP)]
    assert [w.score for w in snapped] == [w.score for w in plain]


def test_the_label_head_confirms_the_command_words_it_knows():
    lp = emissions(60, {**spell("yes", 5), **spell("bird", 30)})
    head = LabelHead(("_silence_", "_unknown_", "yes"), window=20)
    probs = np.full((60, 3), 0.2, np.float32)
    probs[10:25, 2] = 0.64  # windows holding all of "yes" (letters at steps 5-10) end at steps 10-24
    probs[26:, 2] = 0.99  # later windows do not hold it whole
    yes, bird = beam_search(lp, LEXICON, KEEP_ALL, head=head, label_probs=probs)
    plain_yes, plain_bird = beam_search(lp, LEXICON, KEEP_ALL)
    assert yes.score == pytest.approx(math.sqrt(plain_yes.score * 0.64), rel=1e-4)
    assert bird.score == plain_bird.score  # no label of the head's: its letters alone
    # heard by its letters, not by the head: under min_word_score
    probs[:, 2] = 0.01
    (word, _) = beam_search(lp, LEXICON, DecodingOptions(min_word_score=0.2), head=head, label_probs=probs)
    assert word.word == UNK_WORD and plain_yes.score > 0.2


# ------------------------------------------------------------------------------------- long streams


def test_silence_cut_prefers_the_last_long_pause():
    lp = emissions(100, {**spell("go", 10), **spell("no", 40), **spell("yes", 80)})
    # quiet runs: [0, 10), [13, 40), [43, 80), [85, 100); the last run long enough is [85, 100)
    assert silence_cut(lp, 10) == 92
    assert silence_cut(lp, 20) == 61  # [43, 80) is the last run of 20 or more
    # no pause long enough: the most confident blank in the second half
    busy = np.log(np.full((40, len(VOCAB)), 0.03)).astype(np.float32)
    busy[:, VOCAB.index("a")] = np.log(0.1)  # speech all along: "a" beats blank everywhere...
    busy[30, BLANK_ID] = 0.0  # ...but at step 30
    assert silence_cut(busy, 5) == 30
    # the space character counts as quiet
    spaced = emissions(20, {**{t: " " for t in range(5, 15)}, 2: "a", 17: "b"})
    assert silence_cut(spaced, 8) == 10  # the run [3, 17)


def test_decode_stream_equals_one_search_whatever_the_pieces():
    rng = np.random.default_rng(0)
    spikes, t, expected = {}, 3, []
    while t < 1900:
        word = LEXICON[rng.integers(len(LEXICON))]
        spikes.update(spell(word, t, gap=int(rng.integers(2, 4))))
        expected.append(word)
        t += len(word) * 3 + int(rng.integers(4, 40))
    lp = emissions(2000, spikes)
    whole = beam_search(lp, LEXICON, KEEP_ALL)
    assert [w.word for w in whole] == expected
    for sizes in ([2000], [1], [7, 93], [50], [333, 1, 0, 250]):
        pieces, pos, i = [], 0, 0
        while pos < 2000:
            n = sizes[i % len(sizes)]
            pieces.append(lp[pos : pos + n])
            pos, i = pos + n, i + 1
        # segments of 120 steps: the stream is cut dozens of times, pieces end inside words everywhere
        streamed = list(decode_stream(pieces, LEXICON, KEEP_ALL, STEP, segment_steps=120, min_gap=4))
        assert [w.word for w in streamed] == expected, sizes
        assert [t for w in streamed for t in (w.start, w.end)] == pytest.approx(
            [t for w in whole for t in (w.start, w.end)]
        )
        assert [w.score for w in streamed] == pytest.approx([w.score for w in whole])


def test_decode_stream_with_energies_equals_one_search():
    lp = emissions(400, {**spell("yes", 50), **spell("left", 150), **spell("no", 300)})
    energy = loudness(400, [(45, 60), (140, 170), (270, 310)])
    whole = beam_search(lp, LEXICON, energy=energy)
    # edges lie snap_steps (6) out from the letters, then move in to the speech: "left" and "no" are loud
    # longer than that before their letters, so they start 6 steps early, not where the loudness starts
    assert [(w.word, round(w.start / STEP), round(w.end / STEP)) for w in whole] == [
        ("yes", 45, 60),
        ("left", 144, 163),
        ("no", 294, 309),
    ]
    for size in (1, 37, 150):
        pieces = [(lp[i : i + size], energy[i : i + size]) for i in range(0, 400, size)]
        streamed = list(decode_stream(pieces, LEXICON, segment_steps=120, min_gap=10))
        assert [(w.word, w.start, w.end) for w in streamed] == [(w.word, w.start, w.end) for w in whole]
    # with the label head: a segment waits for the windows after its last word
    head = LabelHead(("yes", "left", "no"), window=30)
    probs = np.random.default_rng(0).random((400, 3)).astype(np.float32)
    whole = beam_search(lp, LEXICON, energy=energy, head=head, label_probs=probs)
    assert [w.word for w in whole] == ["yes", "left", "no"]
    for size in (1, 37, 150):
        pieces = [(lp[i : i + size], energy[i : i + size], probs[i : i + size]) for i in range(0, 400, size)]
        streamed = list(decode_stream(pieces, LEXICON, segment_steps=120, min_gap=10, head=head))
        assert streamed == list(whole)


def test_words_said_in_one_breath_meet_where_alignment_puts_them():
    lp = emissions(60, {**spell("yes", 10), **spell("no", 20)})
    energy = loudness(60, [(5, 28)])  # no pause anywhere: the energy cannot tell the words apart
    words = beam_search(lp, LEXICON, energy=energy)
    meet = word_bounds([(10, 15), (20, 23)], STEP)[0][1]  # between "s" (step 14) and "n" (step 20)
    assert meet == pytest.approx(17.5 - ALIGN_LAG_S / STEP)
    assert [(w.word, w.start / STEP, w.end / STEP) for w in words] == [
        ("yes", pytest.approx(5), pytest.approx(meet)),  # starts where its speech does
        ("no", pytest.approx(meet), pytest.approx(28)),  # and the last ends where it stops
    ]


def test_decode_stream_word_across_a_piece_boundary_is_found_once():
    lp = emissions(300, {**spell("left", 96), **spell("no", 200)})
    for cut in (96, 97, 99, 100, 103):  # inside "left", which spans steps 96-102
        words = list(
            decode_stream([lp[:cut], lp[cut:]], LEXICON, step_seconds=STEP, segment_steps=100, min_gap=10)
        )
        assert [w.word for w in words] == ["left", "no"]
        assert (words[0].start, words[0].end) == pytest.approx((96 * STEP, 103 * STEP))


def test_emissions_helper_is_normalised():
    lp = emissions(5, {1: "a", 2: {"b": 0.5, "c": 0.3}})
    assert np.exp(lp).sum(axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    assert math.isclose(float(np.exp(lp[0, SPACE_ID])), 0.01 / 28, rel_tol=1e-4)
