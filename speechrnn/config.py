"""Settings: the model, training, decoding and spotting configurations, and the command line's defaults.

This module imports neither torch nor numpy, so that `speechrnn --help` and the command line's checks of its
options are fast; the modules that do the work import their configuration from here. Every config checks
its values when it is made, and says what it expected and what it got.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import SpeechRNNError
from .vocab import VOCAB

CELL_NAMES = ("gru", "lstm", "rnn")  # recurrent cells `model.CELLS` builds
TASKS = ("all", "12")  # label sets: every corpus word, or the 12-class benchmark
PRESET_NAMES = ("tiny", "small", "default")  # corpus sizes of `speechrnn synth` (see `synth_plan.PRESETS`)
SYNTH_PRESET = "default"  # the corpus `speechrnn synth` builds unless told
SEED = 0  # where everything random starts unless told

RESET_AFTER_SILENCE_MS = 300.0  # listen forgets the recurrent state after a pause this long
END_SILENCE_S = 0.5  # silence listen feeds after a replayed file, as a room would go on
DECISIONS = (
    "label",
    "ctc",
    "both",
    "either",
    "search",
)  # how listen decides a trained command word (`live.py`)
DECIDE = "label"  # the default, chosen on the validation streams (docs/connected-speech.md)
MAX_CHUNK_MS = 10_000.0  # longest chunk or look-ahead a command accepts: an ONNX step is sized by it

INFERENCE_DEVICE = "cpu"  # where eval and transcribe run the model unless told
EVAL_BATCH_SIZE = 64  # clips per batch when scoring a split
TRANSCRIBE_BATCH_SIZE = 16  # short files run through the model together
# A window of audio longer than one names a command only this sure: over hours of noise some window always
# leans a little to some word (transcribe's label).
COMMAND_FLOOR = 0.5
FILLER_WORDS = 10000  # English's most frequent words competing with the lexicon in transcribe's search

# Bounds past which a setting is a typo, not a choice: beyond them memory or processes run out.
MAX_HIDDEN = 4096
MAX_LAYERS = 32
MAX_WORKERS = 256
MAX_SEED = 2**63 - 1  # seeds are mixed into 63-bit integers


def describe_range(lo: float, hi: float = math.inf, *, integer: bool = False, above: bool = False) -> str:
    """'a whole number at least 1', 'a finite number in [0, 1]', 'a finite number above 0', ..."""
    kind = "a whole number" if integer else "a finite number"
    if hi == math.inf:
        return f"{kind} {'above' if above else 'at least'} {_plain(lo)}"
    return f"{kind} in {'(' if above else '['}{_plain(lo)}, {_plain(hi)}]"


def _plain(x: float) -> str:
    """1000000 rather than 1e+06 where a bound is a whole number."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def out_of_range(value: object, lo: float, hi: float = math.inf, *, integer: bool = False,
                 above: bool = False) -> str | None:  # fmt: skip
    """None when `value` is a finite number in [lo, hi] (above `lo` if `above`; whole if `integer`), else
    what was expected and what was received."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, float):  # an int is whole and finite, however long (float() would overflow)
        ok = math.isfinite(value) and (value.is_integer() or not integer)
    if ok and lo <= value <= hi and not (above and value == lo):
        return None
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"expected {describe_range(lo, hi, integer=integer, above=above)}, got {shown}"


def check_range(what: str, value: object, lo: float, hi: float = math.inf, *, integer: bool = False,
                above: bool = False) -> None:  # fmt: skip
    """Raise a SpeechRNNError naming `what` unless `out_of_range` finds nothing wrong."""
    problem = out_of_range(value, lo, hi, integer=integer, above=above)
    if problem:
        raise SpeechRNNError(f"{what}: {problem}")


def check_device_name(name: str, *, allow_auto: bool = False) -> None:
    """Raise a SpeechRNNError unless `name` reads cpu, cuda or cuda:N (or auto)."""
    base, colon, index = name.partition(":") if isinstance(name, str) else ("", "", "")
    known = ("auto", "cpu", "cuda") if allow_auto else ("cpu", "cuda")
    if base not in known or (colon and (base != "cuda" or not index.isdigit())):
        raise SpeechRNNError(f"--device: expected {', '.join(known)} or cuda:N, got {name!r}")


def check_device(name: str, *, allow_auto: bool = False) -> None:
    """`check_device_name`, and for CUDA that the GPU exists (torch is imported only then)."""
    check_device_name(name, allow_auto=allow_auto)
    base, _, index = name.partition(":")
    if base == "cuda":
        import torch  # only when a GPU is asked for

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SpeechRNNError(f"--device {name}: no CUDA GPU is available (use --device cpu)")
        if index and int(index) >= count:
            raise SpeechRNNError(f"--device {name}: expected a GPU index below {count}, got {index}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. Stored in every checkpoint."""

    n_labels: int  # classification classes (the task's labels)
    n_input: int = 40  # MFCC coefficients per frame
    stride: int = 2  # MFCC frames stacked into one encoder step (low frame rate: 20 ms steps)
    cell: str = "gru"  # recurrent cell: gru, lstm or rnn (tanh)
    hidden: int = 160  # hidden units per direction
    layers: int = 3  # stacked recurrent layers
    bidirectional: bool = True  # latency-controlled backward direction; False = exact streaming
    dropout: float = 0.15  # between recurrent layers and before the heads
    attn_dim: int = 64  # attention-pooling projection size
    window: int = 50  # encoder steps the label head pools over when streaming (1 s at stride 2)
    n_vocab: int = len(VOCAB)  # CTC output symbols (blank first)

    def __post_init__(self) -> None:
        if self.cell not in CELL_NAMES:
            raise SpeechRNNError(f"cell: expected one of {', '.join(CELL_NAMES)}, got {self.cell!r}")
        check_range("n_labels", self.n_labels, 0, integer=True)  # 0 until the task sets it
        for name, hi in (("n_input", 1024), ("stride", 64), ("hidden", MAX_HIDDEN), ("layers", MAX_LAYERS),
                         ("attn_dim", MAX_HIDDEN), ("window", 100_000), ("n_vocab", 1024)):  # fmt: skip
            check_range(name, getattr(self, name), 1, hi, integer=True)
        check_range("dropout", self.dropout, 0.0, 0.99)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def out_dim(self) -> int:
        return self.hidden * (2 if self.bidirectional else 1)

    @property
    def state_dim(self) -> int:
        return self.hidden * (2 if self.cell == "lstm" else 1)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Stored in every checkpoint (its `train.config`)."""

    data: str  # corpus root in Speech Commands layout
    task: str = "all"  # label set: "all" (every corpus word) or "12" (the 12-class benchmark)
    epochs: int = 30  # passes over the training split
    batch_size: int = 64  # clips per optimiser step (per process under DDP)
    lr: float = 2e-3  # peak learning rate (AdamW)
    min_lr: float = 5e-5  # floor of the cosine decay
    warmup_steps: int = 300  # linear warm-up
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    clip_grad: float = 5.0  # max global gradient norm (guards RNNs against exploding gradients)
    ctc_weight: float = 0.5  # loss = cross-entropy + ctc_weight * CTC
    full_context_prob: float = 0.5  # share of batches trained without latency control
    chunk_steps: tuple[int, ...] = (4, 6, 8, 12, 25)  # chunk sizes (encoder steps) for the other batches
    lookahead_steps: tuple[int, ...] = (2, 4, 6, 8)  # look-ahead sizes (encoder steps) drawn with them
    augment: bool = True  # waveform augmentation (noise, reverb, channel, speed, pitch, shift)
    spec_augment: bool = True  # time and frequency masks on the features
    # Chance that a clip's formants are warped (`augment.random_vocal_tract_warp`): the speed and pitch
    # shifts move formants and pitch together, while people differ in each on its own.
    vtlp_prob: float = 0.5
    vtlp_range: tuple[float, float] = (0.9, 1.1)  # the warp factor: above 1 moves formants up
    phrases: bool = True  # also train on the multi-word phrase clips (CTC only)
    # First, this many steps of CTC alone, full context, at the constant `spell_lr`, on the training split's
    # phrases and utterances: the joint loss starves the CTC head, which learns to spell in minutes when it
    # trains alone (docs/connected-speech.md). 0: none.
    spell_steps: int = 0
    spell_lr: float = 1e-3
    # Draw the phrases and utterances so that every command word is heard about as often
    # (`utterances.word_balance`): in the spelling phase, the epochs' long items and the streams.
    balance_words: bool = False
    streams: int = 2000  # training streams per epoch: clips end to end, label head trained as it streams
    stream_weight: float = 1.0  # weight of the streams' step-wise label loss
    val_streams: int = 300  # validation-voice streams scored every epoch (at most `streams`; none without)
    norm_clips: int = 2000  # training clips used to estimate the feature mean and variance
    seed: int = SEED  # everything random derives from it
    workers: int = 2  # DataLoader worker processes
    threads: int = 0  # CPU threads for torch; 0: every core of this process's share (see `cpu_threads`)
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    save_minutes: float = 5.0  # also checkpoint mid-epoch this often
    max_minutes: float | None = None  # time budget: the schedule follows wall time and training ends with it
    keep_epochs: bool = False  # also write each finished epoch's weights to OUT.epochN.pt, to average later
    limit_batches: int | None = None  # cap batches per epoch (smoke tests)

    def __post_init__(self) -> None:
        lo, hi = self.vtlp_range
        if not 0.0 <= self.vtlp_prob <= 1.0 or not 0.5 <= lo <= hi <= 2.0:
            raise SpeechRNNError(
                f"formant warp: expected a probability in [0, 1] and factors within [0.5, 2], got "
                f"{self.vtlp_prob:g} and {self.vtlp_range}"
            )
        if self.task not in TASKS:
            raise SpeechRNNError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}")
        for name, lo_, hi_ in (("epochs", 1, 1e6), ("batch_size", 1, 1e6), ("warmup_steps", 0, 1e9),
                               ("streams", 0, 1e7), ("val_streams", 0, 1e7), ("spell_steps", 0, 1e7),
                               ("norm_clips", 1, 1e9), ("seed", 0, MAX_SEED), ("workers", 0, MAX_WORKERS), ("threads", 0, 4096)):  # fmt: skip
            check_range(name, getattr(self, name), lo_, hi_, integer=True)
        for name, lo_, hi_ in (("min_lr", 0.0, 10.0), ("weight_decay", 0.0, 10.0), ("ctc_weight", 0.0, 1e3),
                               ("full_context_prob", 0.0, 1.0), ("stream_weight", 0.0, 1e3)):  # fmt: skip
            check_range(name, getattr(self, name), lo_, hi_)
        for name, hi_ in (("lr", 10.0), ("spell_lr", 10.0), ("clip_grad", 1e12), ("save_minutes", 1e9)):
            check_range(name, getattr(self, name), 0.0, hi_, above=True)
        if not self.chunk_steps or not all(isinstance(c, int) and c >= 1 for c in self.chunk_steps):
            raise SpeechRNNError(f"chunk_steps: expected positive whole numbers, got {self.chunk_steps}")
        if not self.lookahead_steps or not all(isinstance(c, int) and c >= 0 for c in self.lookahead_steps):
            raise SpeechRNNError(f"lookahead_steps: expected whole numbers >= 0, got {self.lookahead_steps}")
        if self.spell_steps and not self.phrases:
            raise SpeechRNNError("spell_steps: the spelling phase trains on the phrases and utterances, which "
                                 "--no-phrases leaves out")  # fmt: skip
        if self.max_minutes is not None:
            check_range("max_minutes", self.max_minutes, 0.0, 1e9, above=True)
        if self.limit_batches is not None:
            check_range("limit_batches", self.limit_batches, 1, integer=True)
        check_device_name(self.device, allow_auto=True)  # whether the GPU exists is asked where it is used

    def to_dict(self) -> dict:
        d = asdict(self)
        d["chunk_steps"], d["lookahead_steps"] = list(self.chunk_steps), list(self.lookahead_steps)
        d["vtlp_range"] = list(self.vtlp_range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["chunk_steps"], d["lookahead_steps"] = tuple(d["chunk_steps"]), tuple(d["lookahead_steps"])
        if "vtlp_range" in d:
            d["vtlp_range"] = tuple(d["vtlp_range"])
        else:  # a checkpoint from before the warp trained without it
            d["vtlp_prob"] = 0.0
        return cls(**d)


@dataclass(frozen=True)
class DecodingOptions:
    """Beam search settings."""

    beam: int = 32  # hypotheses kept after each step
    beam_threshold: float = 25.0  # drop hypotheses scoring this far (in log-probability) below the best
    word_score: float = 0.0  # log-probability bonus per word (positive: more, shorter words)
    sil_score: float = 0.0  # log-probability bonus per word separator step
    # Words scoring below become `decoding.UNK_WORD`; 0 keeps every lexicon word (chosen on validation's
    # connected speech and prose, between naming command words and false alarms: docs/connected-speech.md).
    # A command word's score takes in the label head's posterior (`decoding.LabelHead`), which is low on prose.
    min_word_score: float = 0.05
    # With step energies: a word edge with no neighbour near lies this far out from its letters, then moves in
    # to where the speech is loud (6 best against festival's own times and validation phrases: docs/connected-speech.md).
    snap_steps: int = 6
    snap_floor_db: float = 6.0  # ... speech: steps this much above the noise floor (10th percentile)
    snap_peak_db: float = 35.0  # ... and no more than this below the word's loudest step

    def __post_init__(self) -> None:
        check_range("beam", self.beam, 1, 100_000, integer=True)
        check_range("min_word_score", self.min_word_score, 0.0, 1.0)


@dataclass(frozen=True)
class SearchConfig:
    """When the search decides a keyword. Times are milliseconds of audio."""

    threshold: float = 0.5  # a word's score (as `transcribe` gives it) must reach this
    span_ms: float = 760.0  # each search reads this much of the stream, ending where it runs (as good as
    # 1.5 s on validation at half the compute: docs/LIVE.md)
    every_ms: float = 100.0  # a search runs each time this much more of the stream has come
    settle_ms: float = 100.0  # a word is decided this long after its last letter, once its end is sure
    beam: int = 16
    fillers: int = FILLER_WORDS  # common English words competing with the keywords


@dataclass(frozen=True)
class SpotterConfig:
    """When a keyword fires. Times are milliseconds of audio."""

    threshold: float = 0.6  # smoothed probability to reach: higher gives fewer false alarms, more misses
    # (chosen on validation's connected speech and prose: docs/connected-speech.md; a model's per-keyword
    # table, where it has one, takes its place)
    smooth_ms: float = 100.0  # moving average of the label probabilities (the head already pools over 1 s)
    min_ms: float = 40.0  # the keyword must stay top and above threshold for this long (supporting steps)
    refractory_ms: float = 300.0  # after an event, no other event for this long: connected command words
    # follow each other 0.3-0.5 s apart (500 ms lost 2.5 points of them on validation, docs/LIVE.md); a run
    # of steps never fires twice anyway
    onset_ms: float | None = 500.0  # a keyword fires only if it reaches the threshold this soon after it
    # became the top label (None: any time); later, it is a word sliding out of the window, not a new one
    keywords: tuple[str, ...] | None = None  # labels allowed to fire; None = every label but silence/unknown
