"""Connected speech for the corpus: utterances said in one breath, and where their words are.

People do not pause around command words: they say digit strings in one go, "go forward three", "please
turn left now", and sentences with no command word at all. Each utterance here is said by its engine in one
call, with the engine's own coarticulation and rhythm, at a slow, ordinary or fast rate.

Kinds (`KIND_SHARES`):
- `digits`: 2-7 digits ("three one four one five");
- `commands`: 2-4 command words, often in the pairs people use ("go forward", "turn left", "lights on");
- `carrier`: command words inside ordinary words ("please stop now", "i said left");
- `prose`: sentences with no command word and none of their homophones (templates and random common words);
- `homophones`: prose that uses the command words' homophones ("for", "to", "won", "ate", "know",
  "write", "too"): a "four" heard in "wait for me" is a false alarm.

Word times come from CTC forced alignment (`torchaudio.functional.forced_align`) of the transcript under a
trained model (`Aligner`, `word_bounds`). Not every engine tells where its words are; festival does
(`synthesizers.festival_words`), and `scripts/check_alignment.py` measures how well the two agree.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import SpeechRNNError
from .texts import sentences

KIND_SHARES = {"digits": 0.2, "commands": 0.2, "carrier": 0.2, "prose": 0.3, "homophones": 0.1}
RATES = (0.8, 1.0, 1.25)  # speaking rate of an utterance, relative to its speaker's own (`rate_of`)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The command words' homophones and near-homophones in running speech, and the command each sounds like.
HOMOPHONES = {
    "for": "four", "fore": "four", "to": "two", "too": "two", "won": "one", "ate": "eight",
    "know": "no", "write": "right", "wright": "right",
}  # fmt: skip
# Pairs people say as one command, where both words are in the lexicon.
_COMMAND_PAIRS = (
    "go forward", "go backward", "go left", "go right", "go up", "go down", "turn left", "turn right",
    "lights on", "lights off", "stop right now", "go go go", "yes go", "no stop", "left left right",
    "up up down down", "follow", "learn", "go house", "visual on", "visual off", "dog stop", "cat go",
)  # fmt: skip
_CARRIERS = (
    "please {} now", "i said {}", "{} please", "okay {} then", "can you say {}", "the next word is {}",
    "just {} and wait", "now {} again", "did you hear me say {}", "{} i said {}", "first {} then {}",
    "hey {} {}", "alright {} and {}", "please {} {} quickly", "{} is the word", "say {} after me",
    "we should {} here", "i think {} is right", "{} and then {} and then {}", "quick {}",
)  # fmt: skip
_HOMOPHONE_SENTENCES = (
    "wait for me at the corner", "i know what you mean", "please write it down on paper", "we ate lunch in "
    "the garden", "they won the game last night", "it is too late to call", "i want to know the answer",
    "she walked to the market for bread", "he won a prize for his painting", "we ate early and went "
    "to sleep", "you know where the keys are", "write your name at the top", "that is too much for me",
    "i came to see you", "they ate all the cake", "did you know about the party", "she wants to write a "
    "book", "we waited for an hour", "nobody won the lottery this week", "send it to my sister",
    "thanks for the lovely dinner", "i know a good place to eat", "try to write more clearly",
    "the team won again", "we ate at a small cafe", "it is time for a break", "i went to the library",
    "let me know when you are ready", "the water is too cold", "he drove to the city for work",
)  # fmt: skip
ALIGN_LAG_S = 0.04  # how far a CTC letter spike trails its sound (see `word_bounds`)
ALIGN_LEAD_S = 0.12  # how far an utterance's first word starts before its first letter's spike
ALIGN_METHOD = "ctc-mid1"  # names how `Aligner` places words; a record aligned otherwise is aligned again
_BALANCE_ROUNDS = 8  # `word_balance`'s fitting rounds: spreads of 2.7x come within a few per cent
_COMMON_WORDS = 5000  # random-word prose draws from this many of English's most frequent words


def rate_of(path: str) -> float:
    """The speaking rate of the utterance at `path`: slow, ordinary or fast, fixed by the path."""
    return RATES[int.from_bytes(hashlib.blake2b(path.encode(), digest_size=4).digest(), "big") % len(RATES)]


def _has_command(text: str, words: tuple[str, ...]) -> bool:
    """Any token a command word, or starting with a command word of three or more letters ("houses")."""
    tokens = re.findall(r"[a-z']+", text)
    return any(t in words or any(len(w) >= 3 and t.startswith(w) for w in words) for t in tokens)


def common_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """English's most frequent words (wordfreq) that are no command word, homophone or command prefix."""
    from wordfreq import top_n_list

    banned = set(HOMOPHONES)
    pool = [w for w in top_n_list("en", _COMMON_WORDS) if re.fullmatch(r"[a-z]+", w) and w not in banned]
    return tuple(w for w in pool if not _has_command(w, words))


def _command_words(words: tuple[str, ...], rng: np.random.Generator, k: int) -> list[str]:
    return [words[int(rng.integers(len(words)))] for _ in range(k)]


def _text(kind: str, words: tuple[str, ...], rng: np.random.Generator, common: tuple[str, ...]) -> str:
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731 - a one-line chooser
    if kind == "digits":
        digits = [d for d in DIGITS if d in words] or list(words)
        return " ".join(pick(digits) for _ in range(int(rng.integers(2, 8))))
    if kind == "commands":
        pairs = [
            p for p in _COMMAND_PAIRS if all(w in words for w in p.split() if w not in ("turn", "lights"))
        ]
        if pairs and rng.random() < 0.5:
            return pick(pairs)
        return " ".join(_command_words(words, rng, int(rng.integers(2, 5))))
    if kind == "carrier":
        template = pick(_CARRIERS)
        return template.format(*_command_words(words, rng, template.count("{}")))
    if kind == "homophones":
        return pick([s for s in _HOMOPHONE_SENTENCES if not _has_command(s, words)])
    # prose: templates, and more often random common words (the model must learn to spell ordinary words)
    if rng.random() < 0.4 or not common:
        return sentences(words, 1, rng)[0]
    return " ".join(pick(common) for _ in range(int(rng.integers(3, 11))))


def utterance_texts(words: tuple[str, ...], count: int, rng: np.random.Generator) -> list[str]:
    """`count` utterances of the kinds in `KIND_SHARES` (lower-case words)."""
    kinds = list(KIND_SHARES)
    p = np.array([KIND_SHARES[k] for k in kinds])
    common = common_words(words) if count else ()
    out = []
    for _ in range(count):
        kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
        out.append(_text(kind, words, rng, common))
    return out


def prose_texts(words: tuple[str, ...], count: int, rng: np.random.Generator) -> list[str]:
    """`count` runs of 3-12 random words among `transcribe`'s filler words, none a command word or homophone.

    Training material on top of `utterance_texts`' prose: the model learns to spell the words the beam
    search weighs against the commands, and that ordinary speech holds no command word.
    """
    from .decoding import filler_words

    pool = [w for w in filler_words() if w not in HOMOPHONES and not _has_command(w, words)] if count else []
    return [" ".join(pool[int(i)] for i in rng.integers(len(pool), size=int(rng.integers(3, 13))))
            for _ in range(count)]  # fmt: skip


# ------------------------------------------------------------------------------------------ alignment


class Aligner:
    """Word times of a transcript in its audio, by CTC forced alignment under a trained model.

    Args:
        model: a `Recognizer` or a checkpoint path; None = the shipped model.
    """

    def __init__(self, model=None):
        from .checkpoint import default_model_path, load_model

        path = default_model_path() if model is None else model
        self.model = load_model(path) if isinstance(path, str | Path) else path
        self.model.eval()
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if isinstance(path, str | Path) else ""
        self.name = f"{ALIGN_METHOD}:{digest[:12]}"  # how and under which model the times were made

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, text: str) -> list[dict]:
        """`[{"word", "start", "end"}]` (seconds, 3 decimals) for each word of `text` in `audio`.

        Raises:
            SpeechRNNError: the audio is too short for the transcript (fewer steps than CTC needs).
        """
        from torchaudio.functional import forced_align, merge_tokens

        from .vocab import SPACE_ID, encode

        model = self.model
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        feats, frames = model.featurize(x, torch.tensor([x.shape[1]]))
        out, _ = model(feats, frames)
        n = int(out.lengths[0])
        lp = out.ctc_log_probs[:, :n].float()
        targets = encode(text)
        try:
            path, _ = forced_align(lp, targets[None], blank=0)
        except RuntimeError as err:
            raise SpeechRNNError(f"cannot align {text!r} in {n} steps: {err}") from None
        spans = merge_tokens(path[0], torch.zeros(n))
        letters = iter(s for s in spans if s.token != SPACE_ID)
        steps = []
        for word in text.split():
            chars = [next(letters) for _ in word]
            steps.append((chars[0].start, chars[-1].end))
        seconds = model.steps_to_seconds(1)
        return [
            {"word": w, "start": round(a * seconds, 3), "end": round(b * seconds, 3)}
            for w, (a, b) in zip(text.split(), word_bounds(steps, seconds), strict=True)
        ]


def word_bounds(letters: list[tuple[int, int]], step_seconds: float) -> list[tuple[float, float]]:
    """Word edges in steps from the steps of each word's first and last letter (`[start, end)` pairs).

    A CTC model marks letters with spikes a little after their sounds, and in connected speech nothing but
    those spikes tells where one word gives way to the next: two neighbours meet halfway between their
    letters, `ALIGN_LAG_S` earlier; the first word starts `ALIGN_LEAD_S` before its first letter. Against
    festival's own word times (`scripts/check_alignment.py`, docs/connected-speech.md) most words get both
    edges within 100 ms; the letters' own edges start words too late.
    """
    lag, lead = ALIGN_LAG_S / step_seconds, ALIGN_LEAD_S / step_seconds
    out = []
    for i, (s, e) in enumerate(letters):
        start = (letters[i - 1][1] + s) / 2 - lag if i else max(0.0, s - lead)
        end = (e + letters[i + 1][0]) / 2 - lag if i + 1 < len(letters) else float(e)
        out.append((start, max(end, start + 1)))
    return out


def command_tokens(text: str, words: tuple[str, ...] | list[str]) -> list[str]:
    """The command words a transcript holds, in order (what a recogniser should find)."""
    lexicon = set(words)
    return [t for t in text.split() if t in lexicon]


def word_balance(texts: Sequence[str], words: tuple[str, ...] | list[str]) -> np.ndarray:
    """Sampling weights for transcripts `texts` under which every command word is drawn about as often.

    The corpus's utterances say each digit about 650 times and "tree" or "bird" under 100 (digit strings
    are a fifth of them), and the model hears "tree" as "three". A transcript's weight is the mean, over its
    command words, of the median word count over that word's count; the weights of the transcripts holding a
    command word are then scaled to sum to their number, so their share against prose stays as it was.
    Transcripts without a command word weigh 1. A transcript holds several words, so this is repeated a few
    rounds on the weighted counts.
    """
    tokens = [command_tokens(t, words) for t in texts]
    weights = np.ones(len(texts))
    held = np.array([bool(t) for t in tokens], dtype=bool)
    if not held.any():
        return weights
    for _ in range(_BALANCE_ROUNDS):  # a transcript holds several words: fit the counts in rounds
        counts = Counter()
        for w, t in zip(weights, tokens, strict=True):
            for word in t:
                counts[word] += w
        median = float(np.median(list(counts.values())))
        weights[held] *= [np.mean([median / counts[w] for w in t]) for t in tokens if t]
        weights[held] *= held.sum() / weights[held].sum()
    return weights


def kind_of(text: str, words: tuple[str, ...] | list[str]) -> str:
    """The kind (a key of `KIND_SHARES`) of an utterance's transcript, as `utterance_texts` made it."""
    tokens = text.split()
    held = [t for t in tokens if t in words]
    if not held:
        return "homophones" if any(t in HOMOPHONES for t in tokens) else "prose"
    if all(t in DIGITS for t in tokens):
        return "digits"
    if all(t in words or t in ("turn", "lights") for t in tokens):
        return "commands"
    return "carrier"
