"""The corpus texts: unknown words and sentences hold no command word, and every near miss is kept."""

import numpy as np

from speechrnn import texts
from speechrnn.words import WORDS_V2


def test_texts_avoid_command_words():
    unknown = texts.unknown_words(WORDS_V2)
    assert len(unknown) >= 250 and not set(unknown) & set(WORDS_V2)
    for near in ("to", "too", "know", "for", "write", "of"):
        assert near not in unknown
    assert set(texts.CONFUSABLE_WORDS) <= set(unknown)  # none is silently dropped as a command's homophone
    said = texts.sentences(WORDS_V2, 100, np.random.default_rng(0))
    assert len(said) == 100
    for text in said:
        assert not set(text.split()) & (set(WORDS_V2) | {"to", "for", "of", "know", "write"}), text
