"""The speakers of the synthetic corpus: which voices there are, who is held out where, and how one is drawn.

A `Voice` is one synthetic speaker: an engine, one of its voices, a variant, and the settings that make it
sound like a different person (speaking rate, pitch, vocal-tract warp, Piper's sampling noise). Its
`speaker_id` is a stable hash of all of that, so the same speaker gets the same id in every build.

The held-out voices (validation and test speakers never heard in training) are fixed here, not drawn per
build, so that every corpus built from this code measures the same unseen speakers. How the voices of other
languages speak English is `phonology`; running the engines is `synthesizers`. docs/voices.md tells why
each voice is here and where it is held out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .errors import SpeechRNNError

ENGINES = ("piper", "espeak", "mbrola", "pico", "flite", "festival", "rhvoice")
ENGINE_SHARES = {  # of clips, per split (relative: a split draws among the engines it has voices of)
    "piper": 0.28, "espeak": 0.22, "mbrola": 0.20, "pico": 0.06, "flite": 0.12, "festival": 0.12,
    "rhvoice": 0.10,
}  # fmt: skip

# MBROLA diphone databases, spoken through espeak-ng (its `mb-*` voices): four English speakers and sixteen
# more whose own language gives them an accent (espeak-ng's `-en` voices map English phonemes onto their
# diphones, so a German says "three" with no th, as a German would). Diphone speech is what the held-out
# Kal is (docs/voices.md). Database -> (espeak-ng voice, share within mbrola).
MBROLA_NATIVE = {"us1": 0.2, "us2": 0.2, "us3": 0.2, "en1": 0.15}
MBROLA_ACCENTED = ("af1", "de1", "de2", "de3", "de4", "de5", "de6", "fr1", "fr4", "gr2", "hu1", "nl2", "pl1",
                   "ro1", "sw1", "sw2")  # fmt: skip
# espeak-ng has an `-en` voice for one database of each of those languages only, but a language's databases
# share its phone set: these speak the phonemes a sibling's `-en` voice writes (`espeak-ng --pho`, then
# `mbrola`). Eight more people that no other engine gives; held out for validation. Database -> the sibling
# whose `-en` voice writes its phonemes.
MBROLA_BORROWED = {
    "fr2": "fr1", "fr3": "fr1", "fr5": "fr1", "fr6": "fr1", "fr7": "fr1", "de7": "de4", "nl3": "nl2", "gr1": "gr2",
}  # fmt: skip
# Other languages' databases have no English voice at all, but their phone sets are close enough for an
# accent: the phonemes espeak-ng writes for American English (MBROLA us1's set, a training voice) are each
# replaced by the first of their stand-ins below that the database can say, as a speaker of its language
# would say them ("think" as "tink" where there is no /T/; `phonology`). Twenty-three more people, all in
# training. Left out: it1, it2 and id1 write their vowels their own way; ee1, ic1 and la1 lack too many phones.
MBROLA_MAPPED = (
    "es1", "es2", "es3", "mx1", "mx2", "it3", "it4", "pt1", "ca1", "ca2", "cz1", "cz2", "tr1", "tr2", "lt1",
    "lt2", "cr1", "br1", "br2", "br3", "br4", "es4", "vz1",
)  # fmt: skip
MBROLA_MAPPED_SOURCE = "mb-us1"  # whose phonemes they speak: a woman's, so a man's pitch is lowered
# The women among them, as `mbrola -i` says (es3 and mx2 do not say: their pitch is a man's).
MBROLA_MAPPED_WOMEN = frozenset({"it4", "pt1", "cz1", "tr2", "br4"})
MBROLA_MAN_PITCH = 0.55  # about 120 Hz for us1's 215
# Where a database lacks the diphone of two consonants, or of a consonant and a pause, its speakers break
# the cluster with a short vowel, as learners of English do: Brazilians say "stop" as "istopi", Spaniards
# as "estop"; without it these databases could not say many of the words. Database -> its epenthetic vowel;
# the other databases replace the phones of a missing diphone.
MBROLA_EPENTHESIS = {"br1": "i", "br2": "i", "br3": "i", "br4": "i", "es4": "e", "vz1": "e"}
MBROLA_VOICES = (
    {db: (f"mb-{db}", share) for db, share in MBROLA_NATIVE.items()}
    | {db: (f"mb-{db}-en", 0.05) for db in MBROLA_ACCENTED}
    | {db: (f"mb-{src}-en", 0.05) for db, src in MBROLA_BORROWED.items()}
    | {db: (MBROLA_MAPPED_SOURCE, 0.04) for db in MBROLA_MAPPED}
)

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
# Ked is a male diphone voice, as the held-out Kal is; Rab and Don (a small diphone set) are British men, as
# the held-out MBROLA en1 is: without them training heard no such people (docs/voices.md).
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
# voice draws it without the weights, so adding the mapped voices left the test split's draws as they were).
PICO_MAPPED = ("de-DE", "es-ES", "fr-FR", "it-IT")
PICO_VOICES = {"en-US": 0.4, "en-GB": 0.4} | {language: 0.15 for language in PICO_MAPPED}

# RHVoice's English speakers (statistical parametric voices, nearer a person than diphones): Alan is a Scot,
# bdl an American man, clb and slt American women (slt is the woman flite and festival also speak as),
# Evgeniy a Russian speaking English, Lyubov an American woman. Speed and pitch are percentages.
RHVOICE_ENGLISH = ("alan", "bdl", "clb", "slt", "evgeniy-eng", "lyubov")
# RHVoice's people of other languages speak no English, but each reads the spelling of their own language
# well: they read us1's American phonemes (espeak-ng's `mb-us1 --pho`, word by word) spelt as a speaker of
# their language would write what they hear ("seven" as "сэван", "stop" as "stap"), and their letter-to-sound
# rules and stress give the accent. Twelve Russians, four Ukrainians, two Kyrgyz (spelt as Russian), a Tatar,
# two Macedonians, two Poles, an Esperantist and an Albanian: 25 more people, all in training.
# Left out: aleksandr-hq and evgeniy-rus (aleksandr and the training voice evgeniy-eng again), and the
# Brazilian Leticia (Portuguese spelling says a letter many ways). Voice -> its spelling (RHVOICE_SPELLINGS).
RHVOICE_MAPPED = {
    **dict.fromkeys(("aleksandr", "anna", "arina", "artemiy", "elena", "irina", "mikhail", "pavel", "tatiana",
                     "victoria", "vitaliy", "yuriy", "azamat", "nazgul"), "russian"),
    **dict.fromkeys(("anatol", "marianna", "natalia", "volodymyr"), "ukrainian"),
    "talgat": "tatar", "kiko": "macedonian", "suze": "macedonian", "magda": "polish", "natan": "polish",
    "spomenka": "esperanto", "hana": "albanian",
}  # fmt: skip
# Voice -> share within RHVoice: the people of other languages together weigh what the English ones do.
RHVOICE_VOICES = dict.fromkeys(RHVOICE_ENGLISH, 1.0) | dict.fromkeys(RHVOICE_MAPPED, 0.2)

# Piper has one neural voice; its pseudo-speakers are buckets of the vocal-tract warp.
PIPER_WARPS = (0.84, 0.87, 0.90, 0.93, 0.96, 0.99, 1.02, 1.05, 1.08, 1.11, 1.14, 1.17, 1.20)

# Held-out base voices ("engine:voice+variant"). The test split holds out whole people: Kal (from both flite
# and festival), flite's rms, MBROLA's British en1 and Pico's British woman; espeak accent+variant
# combinations are held out by a fixed hash. Validation holds out MBROLA's us3, so that choosing a model
# sees an unheard human diphone voice, not only Piper warps and espeak, and two of festival's LPC diphone
# voices, Czech ph (a man) and Finnish lj (a woman): Kal's kind of synthesis, which the test split's misses
# are most of. RHVoice's clb is a test woman.
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


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker."""

    engine: str  # one of ENGINES
    name: str  # the engine's voice: espeak accent, flite/festival voice name, "joe" for piper
    variant: str = ""  # espeak voice variant ("m3", "f2", ...); empty for the others
    rate: float = 1.0  # speaking rate: espeak/mbrola x175 wpm, flite/festival 1/stretch, pico/rhvoice x100 %
    pitch: float = 0.0  # espeak/mbrola 0..99; flite/festival F0 in Hz; pico/rhvoice %; 0 = engine default
    warp: float = 1.0  # resampled by this afterwards: >1 raises pitch and formants (a shorter vocal tract)
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


def mbrola_pitch_ratio(db: str) -> float:
    """What `db` multiplies the pitch of the phonemes it speaks by (a man speaking a woman's phonemes)."""
    mapped_man = db in MBROLA_MAPPED and db not in MBROLA_MAPPED_WOMEN
    return MBROLA_MAN_PITCH if mapped_man else 1.0


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
