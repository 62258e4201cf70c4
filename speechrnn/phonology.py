"""How the synthetic speakers of other languages say English: phones, stand-ins, inserted vowels, spellings.

Many voices of the corpus speak no English. They are given the American phonemes espeak-ng writes for MBROLA's
us1 (`espeak-ng -v mb-us1 --pho`: one `phone ms [percent Hz]...` line per phone), each replaced by the first
of its stand-ins their language can say, as a speaker of that language would say it ("think" as "tink"
where there is no /T/). A cluster their diphones lack is broken by a short vowel, as learners of English do
("stop" as "istopi"). The same phonemes are written as X-SAMPA for Pico, and spelt in a language's own
alphabet for RHVoice, whose letter-to-sound rules then give the accent.

Everything here is a pure function of text and tables; `synthesizers` finds which phones a voice has and
runs the engines. docs/voices.md tells how each table was found.
"""

from __future__ import annotations

EPENTHESIS_MS = 45  # how long a breaking vowel lasts
# American SAMPA as espeak-ng writes it for us1 -> stand-ins, best first (a stand-in may be two phones).
MBROLA_STAND_INS = {
    "_": ("_",), "p": ("p",), "p_h": ("p",), "t": ("t",), "t_h": ("t",), "k": ("k",), "k_h": ("k",),
    "b": ("b", "B"), "d": ("d", "D"), "g": ("g", "G"), "f": ("f",), "v": ("v", "b", "B", "f"),
    "T": ("T", "t", "s", "f"), "D": ("D", "d", "z"), "s": ("s",), "z": ("z", "s"), "S": ("S", "s"),
    "Z": ("Z", "S", "z", "jj", "s"), "h": ("h", "h\\", "x", ""), "tS": ("tS", "t S", "S", "ts"),
    "dZ": ("dZ", "d Z", "jj", "j", "Z"), "m": ("m",), "n": ("n",), "N": ("N", "n g", "n"), "l": ("l",),
    "r": ("r", "R"), "4": ("r", "d", "t"), "w": ("w", "u"), "j": ("j", "jj", "i"),
    "i": ("i", "I"), "I": ("I", "i", "e"), "E": ("E", "e"), "{": ("{", "E", "e", "a"), "A": ("a", "A"),
    "V": ("6", "@", "a", "o"), "O": ("O", "o"), "U": ("U", "u"), "u": ("u", "U"), "@": ("@", "6", "e", "a"),
    "r=": ("@ r", "e r", "E r", "o r"), "EI": ("e j", "e i", "E j", "e"), "AI": ("a j", "a i", "a I"),
    "OI": ("o j", "o i", "O j", "O I"), "@U": ("o w", "o u", "o", "O U"), "aU": ("a w", "a u", "a U"),
}  # fmt: skip

_SAME = "a e i o u p t k b d g f s m n l r"
# What each notation of festival's voices of other languages calls the stand-in phones (MBROLA_STAND_INS's
# SAMPA) it has.
FESTIVAL_NOTATIONS = {
    "italian": {p: p for p in (_SAME + " E O j w S v z Z ts tS dz dZ J L").split()} | {"_": "#", "N": "ng"},
    "spanish": {p: p for p in (_SAME + " x").split()}
    | {"_": "#", "j": "j", "T": "th", "tS": "ch", "J": "ny", "jj": "ll", "R": "rr"},
    "czech": {p: p for p in (_SAME + " v z h j").split()}
    | {"_": "#", "S": "s~", "Z": "z~", "tS": "c~", "dZ": "dz~", "ts": "c", "x": "ch", "J": "n~"},
    "finnish": {p: p for p in (_SAME + " T S h v N j w").split()} | {"_": "#", "{": "@"},  # @ is ä
}

# Where Pico's X-SAMPA differs from MBROLA_STAND_INS's SAMPA.
PICO_NOTATION = {"jj": "j\\"}
# German has no /r/: its r-coloured vowel is "@ R" or its own vocalic r.
PICO_STAND_INS = MBROLA_STAND_INS | {"r=": ("@ r", "e r", "E r", "o r", "@ R", "6")}

# RHVoice's spellings of the American phonemes: the base alphabets, then each language's own letters.
_CYRILLIC = {
    "p": "п", "t": "т", "k": "к", "b": "б", "d": "д", "g": "г", "f": "ф", "v": "в", "T": "с", "D": "з", "s": "с",
    "z": "з", "S": "ш", "Z": "ж", "h": "х", "tS": "ч", "dZ": "дж", "m": "м", "n": "н", "N": "нг", "l": "л",
    "r": "р", "4": "д", "w": "у", "j": "й", "i": "и", "I": "и", "E": "э", "{": "э", "A": "а", "V": "а", "O": "о",
    "U": "у", "u": "у", "@": "а", "r=": "эр", "EI": "эй", "AI": "ай", "OI": "ой", "@U": "оу", "aU": "ау",
}  # fmt: skip
_LATIN = {
    "p": "p", "t": "t", "k": "k", "b": "b", "d": "d", "g": "g", "f": "f", "v": "v", "T": "t", "D": "d", "s": "s",
    "z": "z", "h": "h", "m": "m", "n": "n", "N": "ng", "l": "l", "r": "r", "4": "d", "w": "u", "j": "j", "i": "i",
    "I": "i", "E": "e", "{": "e", "A": "a", "V": "a", "O": "o", "U": "u", "u": "u", "@": "e", "r=": "er",
    "EI": "ej", "AI": "aj", "OI": "oj", "@U": "ou", "aU": "au",
}  # fmt: skip
# American phonemes (us1's, as MBROLA_STAND_INS names them) -> letters. A spelling without a letter of a
# language's alphabet would make RHVoice read the word in another language (Ukrainian has no э).
RHVOICE_SPELLINGS = {
    "russian": _CYRILLIC,
    "tatar": _CYRILLIC | {"h": "һ", "{": "ә"},
    "ukrainian": _CYRILLIC
    | {"h": "г", "g": "ґ", "i": "і", "E": "е", "{": "е", "r=": "ер", "EI": "ей", "T": "т"},
    "macedonian": _CYRILLIC
    | {"E": "е", "{": "е", "j": "ј", "dZ": "џ", "r=": "ер", "EI": "еј", "AI": "ај", "OI": "ој"},
    "polish": _LATIN | {"v": "w", "w": "ł", "S": "sz", "Z": "ż", "tS": "cz", "dZ": "dż", "I": "y", "h": "ch"},
    "esperanto": _LATIN | {"w": "ŭ", "S": "ŝ", "Z": "ĵ", "tS": "ĉ", "dZ": "ĝ", "@U": "oŭ", "aU": "aŭ"},
    "albanian": _LATIN
    | {"T": "th", "D": "dh", "S": "sh", "Z": "zh", "tS": "ç", "dZ": "xh", "@": "ë", "r=": "ër"},
}


def phone_fields(line: str) -> list[str]:
    """The fields of an MBROLA phoneme line (`phone ms [percent Hz]...`); none for a comment or a blank."""
    return [] if line.startswith(";") else line.split()


def phone_names(pho: str) -> list[str]:
    """The phones of MBROLA phoneme lines, pauses left out."""
    return [fields[0] for fields in map(phone_fields, pho.splitlines()) if fields and fields[0] != "_"]


def stand_in_phonemes(
    pho: str, phones: frozenset[str], stand_ins: dict[str, tuple[str, ...]] = MBROLA_STAND_INS
) -> str:
    """MBROLA phoneme lines (`phone ms [percent Hz]...`) with each phone replaced by its first stand-in
    (`stand_ins`) that `phones` holds; a stand-in of two phones shares the duration, and each pitch point
    goes to the part it falls in. A phone with no stand-in there is kept (mbrola then reports the missing
    diphone)."""
    out = []
    for line in pho.splitlines():
        fields = phone_fields(line)
        if not fields:
            out.append(line)
            continue
        options = stand_ins.get(fields[0], ())
        parts = next((o.split() for o in options if all(p in phones for p in o.split())), [fields[0]])
        ms, k = float(fields[1]), len(parts)
        points = [(float(pct), hz) for pct, hz in zip(fields[2::2], fields[3::2], strict=True)]
        for i, part in enumerate(parts):
            mine = [(pct * k - 100 * i, hz) for pct, hz in points if min(int(pct * k // 100), k - 1) == i]
            out.append(" ".join([part, f"{ms / k:g}", *(f"{pct:g} {hz}" for pct, hz in mine)]))
    return "\n".join(out) + "\n"


# The vowels among MBROLA_STAND_INS's phones: a missing diphone with one in it is not a cluster.
_VOWELS = frozenset({"a", "e", "i", "o", "u", "@", "6", "E", "O", "I", "U", "A", "V", "{", "r="})


def epenthesize(pho: str, breaks: set[tuple[str, str]], vowel: str | None) -> str:
    """MBROLA phoneme lines with `vowel` put between the two phones of each pair in `breaks` (a pause
    counts as a phone), or before the /s/ when the pair is /s/ and a consonant after a pause ("_ s t" ->
    "_ i s t", as "istop"); `pho` itself when there is nothing to break."""
    if not breaks:
        return pho
    lines = pho.splitlines()
    at = [i for i, line in enumerate(lines) if phone_fields(line)]
    names = [phone_fields(lines[i])[0] for i in at]
    before = set()  # the lines a vowel goes before
    for k in range(1, len(names)):
        if (names[k - 1], names[k]) in breaks:
            opens = names[k - 1] == "s" and k >= 2 and names[k - 2] == "_"
            before.add(at[k - 1] if opens else at[k])
    out = []
    for i, line in enumerate(lines):
        if i in before:
            out.append(f"{vowel} {EPENTHESIS_MS}")
        out.append(line)
    return "\n".join(out) + "\n"


def _breakable(pair: tuple[str, str]) -> bool:
    """Whether an epenthetic vowel can break a missing diphone: two consonants, or one and a pause."""
    return pair[0] not in _VOWELS and pair[1] not in _VOWELS and pair != ("_", "_")


def after_gaps(
    gaps: set[tuple[str, str]], breaks: set[tuple[str, str]], phones: frozenset[str], vowel: str | None
) -> tuple[set[tuple[str, str]], frozenset[str]]:
    """The next try's (breaks, phones) after a try that lacked diphones `gaps`: a cluster is broken by the
    vowel (if there is one), any other gap's phones give way to their next stand-ins."""
    broken = {pair for pair in gaps if vowel and _breakable(pair) and pair not in breaks}
    return breaks | broken, phones - {p for pair in gaps - broken for p in pair} | {"_"}


def pico_xsampa(pho: str, phones: frozenset[str]) -> str:
    """One word's MBROLA phoneme lines as Pico says them: X-SAMPA, each phone its first stand-in in
    `phones` (what the language has), pauses left out, the stress before the first vowel."""
    said = stand_in_phonemes(pho, phones, PICO_STAND_INS)
    names = phone_names(said)
    first_vowel = next((i for i, name in enumerate(names) if name in _VOWELS), None)
    if first_vowel is not None:
        names[first_vowel] = '"' + names[first_vowel]
    return "".join(PICO_NOTATION.get(name, name) for name in names)


def spelling(language: str, pho: str) -> str:
    """One word's MBROLA phoneme lines spelt as a reader of `language` (one of RHVOICE_SPELLINGS) would
    write what they hear."""
    letters = RHVOICE_SPELLINGS[language]
    return "".join(letters.get(name.removesuffix("_h"), "") for name in phone_names(pho))
