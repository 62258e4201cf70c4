"""CTC decoding: greedy, lexicon-constrained beam search with word times and scores, and error rates.

Pure functions over per-step log-probabilities `(steps, n_vocab)` in `VOCAB` order (blank first, space last).

The beam search is flashlight's lexicon decoder (`torchaudio.models.decoder.ctc_decoder`) with no language
model: every word it emits is spelled by a path through a trie of the lexicon, the space character is the
word separator ("silence" to flashlight, optional between words), and blank is the CTC blank.

Word times come from the best hypothesis's own step-by-step path (flashlight keeps it; torchaudio's wrapper
keeps only where each character starts): a word starts at the first step of its first character and ends one
step after the last step of its last character. A CTC model marks letters with spikes inside their sounds,
so these edges sit inside the word; given the audio's energy per step, `word_spans` puts neighbours' shared
edge where forced alignment would and moves every edge to where the word's speech is loud.

Word score: the geometric mean, over the word's letters, of each letter's best posterior among its steps.
A lexicon word forced onto audio that spells something else has letters the model did not hear, so its score
is low; words scoring under `min_word_score` are reported as `UNK_WORD`, which lets speech outside the lexicon
through instead of forcing every sound into a command. Given the label head's posteriors (`LabelHead`), a word
the head knows scores the geometric mean of that and the head's posterior of it.

Filler words (`filler_words`: English's most frequent words) compete with the lexicon in the search, so that
"wait for me" is spelled as the three words it is rather than forced into "four"; they are searched but
reported as `UNK_WORD` (`beam_search(report=...)`), a run of them as one. Flashlight lets a word's
final doubled letter ("off", "three") ride on the single letter before it, where CTC needs a blank between
the two; such a letter scores the second of two peaks with a blank between them where the model said it
twice (often just after the step the search ended the word), else its best posterior elsewhere in the word,
usually near zero.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import FILLER_WORDS, DecodingOptions
from .errors import SpeechRNNError
from .vocab import BLANK_ID, CHARS, SPACE_ID, VOCAB, spellable

UNK_WORD = "<unk>"  # a stretch of speech that is no word of the lexicon (or too unsure to name)
# The filler list's words of one or two letters that are words (its others are abbreviations and letters,
# which would let the search cut any word into pieces).
SHORT_WORDS = frozenset(
    "a i am an as at be by do go he if in is it me my no of oh ok on or so to up us we".split()  # noqa: SIM905
)
_FLASHLIGHT_TOKENS = ("-", *CHARS[:-1], "|")  # VOCAB order; flashlight's spelling of blank and silence


@dataclass(frozen=True)
class Word:
    """A recognised word and where it is."""

    word: str  # a lexicon word, or UNK_WORD
    start: float  # seconds from the start of the audio
    end: float  # seconds; one step after the word's last character
    score: float  # confidence in [0, 1]: geometric mean of the character posteriors (see `LabelHead`)

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class LabelHead:
    """The classification head, to confirm the command words a search finds.

    A found word that is one of `labels` scores the geometric mean of its letters' score and the head's
    posterior of it: the highest among the windows that hold the whole word, those ending from the word's
    end to `window` steps after its start. Prose that spells like a command rarely sounds like one to the
    head, a command said inside speech usually does (docs/connected-speech.md).
    """

    labels: tuple[str, ...]
    window: int  # steps of audio each of the head's posteriors pools

    def posterior(self, probs: np.ndarray, word: str, start: int, end: int) -> float | None:
        """The head's posterior of `word` with letters in steps `[start, end)`; None for a word it lacks.

        Args:
            probs: `(steps, n_labels)` posteriors of the window ending at each step.
        """
        if word not in self.labels or not len(probs):
            return None
        lo = min(end, len(probs) - 1)
        hi = max(lo + 1, min(start + self.window, len(probs)))
        return float(probs[lo:hi, self.labels.index(word)].max())


# --------------------------------------------------------------------------------------------- greedy


def collapse(ids: Iterable[int]) -> list[int]:
    """CTC collapse: merge repeated symbols, then drop blanks (`a a - a` -> `a a`)."""
    out, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev and i != BLANK_ID:
            out.append(i)
        prev = i
    return out


def ids_to_text(ids: Iterable[int]) -> str:
    """Collapsed ids -> text with single spaces and no leading or trailing space."""
    return " ".join("".join(VOCAB[i] for i in ids).split())


def greedy_decode(
    log_probs: torch.Tensor | np.ndarray, lengths: torch.Tensor | Sequence[int] | None = None
) -> list[str]:
    """Best symbol per step, collapsed: the text of each sequence in a batch.

    Args:
        log_probs: `(batch, steps, n_vocab)` (or `(steps, n_vocab)` for one sequence) scores in `VOCAB` order.
        lengths: `(batch,)` valid steps; None = all steps.

    Returns:
        One string per sequence (a list of one for 2-d input).
    """
    lp = torch.as_tensor(log_probs)
    if lp.dim() == 2:
        lp = lp[None]
    best = lp.argmax(dim=-1).cpu()
    lengths = [best.shape[1]] * best.shape[0] if lengths is None else [int(n) for n in lengths]
    return [ids_to_text(collapse(best[b, :n].tolist())) for b, n in enumerate(lengths)]


# ---------------------------------------------------------------------------------------- error rates


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance: substitutions, insertions and deletions turning `ref` into `hyp`."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def _error_rate(pairs: Iterable[tuple[Sequence, Sequence]]) -> float:
    errors = total = 0
    for ref, hyp in pairs:
        errors += edit_distance(ref, hyp)
        total += len(ref)
    return errors / max(total, 1)


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"expected as many hypotheses as references, got {len(hyps)} and {len(refs)}")


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus WER: word edits summed over all pairs / reference words (words split on whitespace).

    With no reference words at all, the number of inserted words (0.0 when both sides are empty).
    """
    _check_pairs(refs, hyps)
    return _error_rate((r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus CER: character edits (spaces count, runs of whitespace squeezed) / reference characters."""
    _check_pairs(refs, hyps)
    return _error_rate((" ".join(r.split()), " ".join(h.split())) for r, h in zip(refs, hyps, strict=True))


# -------------------------------------------------------------------------------------------- lexicon


def make_lexicon(words: Iterable[str]) -> tuple[str, ...]:
    """Validate words for the beam search: lower-cased, deduplicated, sorted.

    Raises:
        SpeechRNNError: a word uses characters outside the vocabulary (a-z and apostrophe), or none is given.
    """
    out = set()
    for w in words:
        word = w.strip().lower()
        if not spellable(word):
            raise SpeechRNNError(f"cannot use {w!r} as a word: expected letters a-z and apostrophes only")
        out.add(word)
    if not out:
        raise SpeechRNNError("expected at least one word for the lexicon, got none")
    return tuple(sorted(out))


@functools.lru_cache(maxsize=4)
def filler_words(count: int = FILLER_WORDS, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """English's `count` most frequent spellable words (wordfreq's list), less `exclude`, sorted.

    They are the competitors of the lexicon's words in the beam search: speech that is some other word is
    spelled as that word instead of being forced into the nearest command.
    """
    if count <= 0:
        return ()
    from wordfreq import top_n_list

    banned = set(exclude)
    listed = top_n_list("en", count)
    return tuple(
        sorted({w for w in listed if spellable(w) and w not in banned and (len(w) > 2 or w in SHORT_WORDS)})
    )


def with_fillers(lexicon: Sequence[str], fillers: int = FILLER_WORDS) -> tuple[str, ...]:
    """What a search spells: the `lexicon`'s words among English's `fillers` most frequent (`filler_words`)."""
    return tuple(sorted(set(lexicon) | set(filler_words(fillers, tuple(lexicon)))))


@functools.lru_cache(maxsize=8)
def _flashlight_decoder(
    lexicon: tuple[str, ...], beam: int, beam_threshold: float, word_score: float, sil_score: float
):
    from torchaudio.models.decoder import ctc_decoder

    fd, path = tempfile.mkstemp(prefix="speechrnn-lexicon-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as f:
            # No trailing separator in the spellings: the model emits a space only *between* words.
            f.writelines(f"{w}\t{' '.join(w)}\n" for w in lexicon)
        return ctc_decoder(
            lexicon=path,
            tokens=list(_FLASHLIGHT_TOKENS),
            lm=None,
            nbest=1,
            beam_size=beam,
            beam_threshold=beam_threshold,
            word_score=word_score,
            sil_score=sil_score,
            blank_token="-",
            sil_token="|",
        )
    finally:
        os.unlink(path)


# -------------------------------------------------------------------------------------- beam search


def _runs(path: Sequence[int]) -> list[tuple[int, int, int]]:
    """`(token, start, end)` of each run of equal tokens in a step-by-step path."""
    runs, start = [], 0
    for t in range(1, len(path) + 1):
        if t == len(path) or path[t] != path[start]:
            runs.append((path[start], start, t))
            start = t
    return runs


def _word_score(log_probs: np.ndarray, word: str, letters: list[tuple[int, int, int]], tail: int) -> float:
    """Geometric mean of the best posterior of each letter of `word` over the steps of its run.

    A final doubled letter merged into one run (see the module doc) scores the second of two peaks of its
    letter with a blank between them, in its run or the pause after it (up to `tail`, where the path's next
    letter starts), or else its best posterior elsewhere in the word: the search often runs the "f" of "off"
    over the model's "f", blank, "f".
    """
    scores = [float(log_probs[s:e, tok].max()) for tok, s, e in letters]
    start = letters[0][1]
    for _ in range(len(word) - len(letters)):
        tok, s, e = letters[-1]
        before = log_probs[start:s, tok]
        scores.append(
            max(float(before.max()) if before.size else -math.inf, _second_peak(log_probs[s:tail], tok))
        )
    return math.exp(sum(scores) / len(word))


def _second_peak(log_probs: np.ndarray, tok: int) -> float:
    """Best `min(a, b)` of `tok`'s log-posteriors at two steps with a step between them where blank wins."""
    letter, blank = log_probs[:, tok], log_probs[:, BLANK_ID]
    if letter.size < 3:
        return -math.inf
    before = np.maximum.accumulate(letter)
    after = np.maximum.accumulate(letter[::-1])[::-1]
    gaps = [k for k in range(1, letter.size - 1) if blank[k] > letter[k]]
    return max((min(before[k - 1], after[k + 1]) for k in gaps), default=-math.inf)


def _extend(log_probs: np.ndarray, path: Sequence[int], tok: int, end: int) -> int:
    """Extend a word's last letter over the following steps where the model still hears it.

    Flashlight cannot repeat a word's last letter (after it, the path is back at the trie root, where only
    blank, separator or a new word may follow), so the path cuts that letter short where the model holds it.
    """
    while end < len(path) and path[end] in (BLANK_ID, SPACE_ID) and log_probs[end].argmax() == tok:
        end += 1
    return end


def beam_search(
    log_probs: torch.Tensor | np.ndarray,
    lexicon: Sequence[str],
    options: DecodingOptions = DecodingOptions(),
    step_seconds: float = 0.02,
    offset: int = 0,
    energy: np.ndarray | None = None,
    report: frozenset[str] | None = None,
    head: LabelHead | None = None,
    label_probs: np.ndarray | None = None,
) -> tuple[Word, ...]:
    """Lexicon-constrained CTC beam search of one sequence.

    Args:
        log_probs: `(steps, n_vocab)` log-probabilities in `VOCAB` order.
        lexicon: the words that may be recognised (see `make_lexicon`).
        options: beam settings, the unknown-word threshold and word edges (`word_spans`).
        step_seconds: duration of one step.
        offset: absolute step index of the first row (for segments of a longer stream).
        energy: `(steps,)` audio energy of each step in dB (`step_energy`), to set word edges where the
            speech starts and stops (see `word_spans`); None keeps the CTC path's edges.
        report: the lexicon words to name; the others (fillers) are searched but reported as `UNK_WORD`,
            consecutive ones as one. None names every word.
        head, label_probs: the classification head and its `(steps + extra, n_labels)` posteriors from this
            sequence's first step on (rows past its end let a word near the end be judged whole), to confirm
            the words it knows; None scores words by their letters alone.

    Returns:
        The words in order, with times in seconds from step 0 of the stream.
    """
    lp = torch.as_tensor(log_probs, dtype=torch.float32).cpu().contiguous()
    if lp.dim() != 2 or lp.shape[1] != len(VOCAB):
        raise ValueError(f"expected log-probabilities of shape (steps, {len(VOCAB)}), got {tuple(lp.shape)}")
    steps = lp.shape[0]
    if steps == 0:
        return ()
    o = options
    decoder = _flashlight_decoder(tuple(lexicon), o.beam, o.beam_threshold, o.word_score, o.sil_score)
    # The raw result keeps the whole path: a token per step and, at the step a word ends, the word's index.
    # Both have a sentinel step before the first and after the last.
    results = decoder.decoder.decode(lp.data_ptr(), steps, lp.shape[1])
    if not results:
        return ()
    path = list(results[0].tokens)[1 : steps + 1]
    ends = [(t - 1, w) for t, w in enumerate(results[0].words) if w >= 0 and 1 <= t <= steps]
    lp_np = lp.numpy()
    found, letters, k = [], [], 0  # (word, start step, end step, score)
    for tok, s, e in _runs(path):
        if tok in (BLANK_ID, SPACE_ID):
            continue
        letters.append((tok, s, e))
        while k < len(ends) and ends[k][0] < s:  # never seen: a word ends on a letter
            k += 1
        while k < len(ends) and ends[k][0] < e:  # a word ends at this run
            word = decoder.word_dict.get_entry(ends[k][1])
            k += 1
            letters = letters[-len(word) :] or [(tok, s, e)]
            e = _extend(lp_np, path, tok, e)
            letters[-1] = (tok, letters[-1][1], e)
            tail = e
            while tail < len(path) and path[tail] in (BLANK_ID, SPACE_ID):
                tail += 1
            score = _word_score(lp_np, word, letters, tail)
            heard = (
                None
                if head is None or label_probs is None
                else head.posterior(label_probs, word, letters[0][1], e)
            )
            if heard is not None:
                score = math.sqrt(score * heard)
            found.append((word, letters[0][1], e, score))
            letters = []
    spans = [(start, end) for _, start, end, _ in found]
    if energy is not None and found:
        spans = word_spans(spans, np.asarray(energy, dtype=np.float64)[:steps], options, step_seconds)
    words: list[Word] = []
    for (word, _, _, score), (a, b) in zip(found, spans, strict=True):
        named = score >= options.min_word_score and (report is None or word in report)
        start, end = (offset + a) * step_seconds, (offset + b) * step_seconds
        if not named and report is not None and words and words[-1].word == UNK_WORD:
            words[-1] = Word(UNK_WORD, words[-1].start, end, min(words[-1].score, score))
        else:
            words.append(Word(word if named else UNK_WORD, start, end, score))
    return tuple(words)


def step_energy(audio: np.ndarray, step_samples: int) -> np.ndarray:
    """Energy in dB (mean square; 0 dB is full scale) of every `step_samples` samples, the last maybe partial.

    Args:
        audio: `(samples,)` float audio.
        step_samples: samples per model step (stride x hop: 320 for 20 ms steps at 16 kHz).

    Returns:
        `(ceil(samples / step_samples),)` float64.
    """
    x = np.asarray(audio, dtype=np.float64)
    steps = -(-x.size // step_samples)
    padded = np.zeros(steps * step_samples)
    padded[: x.size] = x
    power = (padded.reshape(steps, step_samples) ** 2).sum(axis=1)
    counts = np.full(steps, float(step_samples))
    if steps and x.size % step_samples:
        counts[-1] = x.size % step_samples
    return 10 * np.log10(power / counts + 1e-10)


def _loud(energy: np.ndarray, start: int, end: int, floor: float, options: DecodingOptions) -> float:
    """The energy above which a step belongs to the speech of the word whose letters span `[start, end)`:
    `snap_floor_db` above the noise floor and no more than `snap_peak_db` below the word's loudest step."""
    peak = float(energy[start:end].max()) if end > start else -math.inf
    return max(floor + options.snap_floor_db, peak - options.snap_peak_db)


def word_spans(
    letters: Sequence[tuple[int, int]], energy: np.ndarray, options: DecodingOptions, step_seconds: float
) -> list[tuple[float, float]]:
    """Word edges (steps) from the `[start, end)` steps of each found word's letters and the step energies.

    Two words in one breath meet where forced alignment puts their boundary (`utterances.word_bounds`), since
    nothing in the energy tells them apart; an edge with no neighbour that near lies `snap_steps` out from
    the word's letters. Either edge then moves in over quiet steps to where the word's speech is loud (the
    level `_loud` sets), so a word next to a pause starts and stops with its sound.
    """
    from .utterances import word_bounds

    if not len(energy):
        return word_bounds(list(letters), step_seconds)
    floor = float(np.percentile(energy, 10))
    reach = options.snap_steps
    meet = word_bounds(list(letters), step_seconds)
    out = []
    for i, (first, final) in enumerate(letters):
        start = max(meet[i][0], first - reach) if i else max(0, first - reach)
        end = min(meet[i][1], final + reach) if i + 1 < len(letters) else min(len(energy), final + reach)
        loud = _loud(energy, first, final, floor, options)
        while start < first and energy[int(start)] <= loud:
            start = int(start) + 1.0
        while end > final and energy[math.ceil(end) - 1] <= loud:
            end = math.ceil(end) - 1.0
        out.append((start, end))
    return out


def words_to_text(words: Iterable[Word]) -> str:
    return " ".join(w.word for w in words)


# ------------------------------------------------------------------------------------- segmentation


def silence_cut(log_probs: torch.Tensor | np.ndarray, min_gap: int) -> int:
    """Where to cut a stream of CTC outputs so that no word is split: a step index in `(0, steps)`.

    The middle of the last run of at least `min_gap` steps whose best symbol is blank or space. Without
    such a run (speech with no pause), the step in the second half most confidently blank.
    """
    lp = torch.as_tensor(log_probs)
    steps = lp.shape[0]
    if steps < 2:
        raise ValueError(f"expected at least 2 steps to cut, got {steps}")
    best = lp.argmax(dim=-1).numpy()
    quiet = np.concatenate([[False], (best == BLANK_ID) | (best == SPACE_ID), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))  # alternating run starts and ends
    runs = [(s, e) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s >= min_gap]
    if runs:
        s, e = runs[-1]
        return int(min(max((s + e) // 2, 1), steps - 1))
    half = steps // 2
    return half + int(lp[half:, BLANK_ID].argmax())


def decode_stream(
    pieces: Iterable[torch.Tensor | np.ndarray | tuple],
    lexicon: Sequence[str],
    options: DecodingOptions = DecodingOptions(),
    step_seconds: float = 0.02,
    segment_steps: int = 1500,
    min_gap: int = 15,
    report: frozenset[str] | None = None,
    head: LabelHead | None = None,
) -> Iterator[Word]:
    """Beam search over a stream of any length in bounded memory: words as soon as their segment is done.

    The stream is cut at pauses (`silence_cut` within each `segment_steps` steps still undecoded) and every
    segment decoded alone, so memory holds at most one segment, the head's window after it and one piece.
    Cuts depend only on the concatenated stream, never on how it was split into pieces: the words are the
    same for any piece sizes.

    Args:
        pieces: consecutive `(steps, n_vocab)` log-probabilities of one stream (any sizes, empty ones too),
            or `(log_probs, energy)` pairs with the `(steps,)` step energies to set word edges with, or
            `(log_probs, energy, label_probs)` with the head's `(steps, n_labels)` posteriors too.
        lexicon, options: as `beam_search`.
        step_seconds: duration of one step.
        segment_steps: most steps decoded at once (at least 2).
        min_gap: steps of blank or space that make a pause where the stream may be cut.
        report, head: as `beam_search`.

    Yields:
        The words in order, times in seconds from the start of the stream.
    """
    if segment_steps < 2:
        raise ValueError(f"segment_steps must be at least 2, got {segment_steps}")
    after = head.window if head is not None else 0  # a segment waits for the head's windows past its end
    held: list[list] = [[], [], []]  # log-probs, energies, label posteriors
    steps = offset = 0

    def joined(k: int) -> np.ndarray | None:
        return np.concatenate(held[k]) if held[k] else None

    for piece in pieces:
        parts = piece if isinstance(piece, tuple) else (piece,)
        lp = torch.as_tensor(parts[0], dtype=torch.float32)
        if lp.shape[0] == 0:
            continue
        held[0].append(lp)
        for k, part in enumerate(parts[1:], 1):
            if part is not None:
                held[k].append(np.asarray(part, dtype=np.float64 if k == 1 else np.float32))
        steps += lp.shape[0]
        while steps >= segment_steps + after:
            lp, energy, probs = torch.cat(held[0]), joined(1), joined(2)
            cut = silence_cut(lp[:segment_steps], min_gap)
            yield from beam_search(
                lp[:cut],
                lexicon,
                options,
                step_seconds,
                offset,
                None if energy is None else energy[:cut],
                report,
                head,
                None if probs is None else probs[: cut + after],
            )
            held = [
                [lp[cut:]],
                [] if energy is None else [energy[cut:]],
                [] if probs is None else [probs[cut:]],
            ]
            steps, offset = steps - cut, offset + cut
    if steps:
        lp, energy, probs = torch.cat(held[0]), joined(1), joined(2)
        yield from beam_search(lp, lexicon, options, step_seconds, offset, energy, report, head, probs)
