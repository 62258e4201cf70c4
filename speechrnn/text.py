"""The character vocabulary of the CTC head and conversions between text and label ids."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BLANK = "<blank>"
CHARS = tuple("abcdefghijklmnopqrstuvwxyz' ")  # a–z, apostrophe, space
VOCAB = (BLANK, *CHARS)  # index 0 is the CTC blank
BLANK_ID = 0
SPACE_ID = VOCAB.index(" ")
_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def normalize_text(text: str) -> str:
    """Lower-case, map `_` and `-` to spaces, drop characters outside the vocabulary, squeeze spaces."""
    text = text.lower().replace("_", " ").replace("-", " ")
    text = "".join(c for c in text if c in _CHAR_TO_ID and c != BLANK)
    return re.sub(r" +", " ", text).strip()


def encode(text: str) -> torch.Tensor:
    """Text -> `(length,)` int64 ids (after `normalize_text`)."""
    import torch  # here, so that the vocabulary (and `speechrnn --help`) import without torch

    return torch.tensor([_CHAR_TO_ID[c] for c in normalize_text(text)], dtype=torch.long)


def decode(ids) -> str:
    """Ids (blanks ignored, no collapsing) -> text."""
    return "".join(VOCAB[int(i)] for i in ids if int(i) != BLANK_ID)


def spellable(word: str) -> bool:
    """True when `word` is written with the vocabulary's characters only."""
    return bool(word) and all(c in _CHAR_TO_ID and c not in (BLANK, " ") for c in word)
