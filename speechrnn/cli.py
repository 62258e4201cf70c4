"""Command line: `speechrnn <command>`. A thin shell: each command parses, checks, then calls one library function.

Every option is checked where it is parsed (a number that is NaN, infinite, out of range or of the wrong
kind), and each command's `check` looks at its options together and at every path before any work: a
missing input, an output that is a folder or cannot be created, an option that the others make
meaningless. Each failure is one line, `speechrnn COMMAND: error: ...`, and exit status 2; the work never
starts on options that would fail after it. Defaults come from `config`; the option types and path checks
live in `cli_checks`; this module, `cli_checks` and `config` import no torch, so `--help` is fast.
Over 500 lines because it is every command's options and help text, one `_add_<command>` each, read together.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import config
from .cli_checks import (
    _CHUNK_MS,
    _COUNT,
    _LOOKAHEAD_MS,
    _PROBABILITY,
    _input_file,
    _input_folder,
    _number,
    _one_line,
    _output_file,
    _Parser,
)
from .config import (
    COMMAND_FLOOR,
    DECIDE,
    DECISIONS,
    EVAL_BATCH_SIZE,
    FILLER_WORDS,
    INFERENCE_DEVICE,
    MAX_CHUNK_MS,
    MAX_SEED,
    MAX_WORKERS,
    RESET_AFTER_SILENCE_MS,
    TRANSCRIBE_BATCH_SIZE,
    DecodingOptions,
    ModelConfig,
    SpotterConfig,
    TrainConfig,
)
from .errors import SpeechRNNError
from .latency import LIVE

PLOT_SUFFIXES = (".png", ".pdf", ".svg")  # what --plot may write (matplotlib picks the format by suffix)


# ----------------------------------------------------------------------------------------------- synth


def _add_synth(sub: argparse._SubParsersAction) -> None:
    """`speechrnn synth` (owned by speechrnn/synth.py)."""
    p = sub.add_parser(
        "synth",
        help="build a Speech Commands style corpus offline from local speech synthesisers",
        description=(
            "Build a corpus in the Google Speech Commands layout (<out>/<word>/<speaker>_nohash_<n>.wav, "
            "validation_list.txt, testing_list.txt, _background_noise_/) from local synthesisers: Piper "
            "(neural), espeak-ng accents and variants, flite and festival voices, with per-speaker rate, "
            "pitch and vocal-tract variation. Also writes _unknown_/ words, _phrases_/ (2-4 command words "
            "in a row) and _sentences_/ (no command word), and _meta_/clips.jsonl with transcripts and word "
            "times. Validation and test hold out whole voices. Same --seed gives identical files; an "
            "interrupted build resumes when run again with the same settings."
        ),
    )
    p.add_argument("--out", required=True, help="corpus folder to create or resume")
    p.add_argument("--words", nargs="+", metavar="WORD", help="command words (default: the preset's)")
    p.add_argument("--per-word", type=_COUNT, help="clips per command word (default: the preset's)")
    p.add_argument(
        "--seed",
        type=_number(0, MAX_SEED, integer=True),
        default=config.SEED,
        help=f"random seed; everything follows from it (default: {config.SEED})",
    )
    p.add_argument(
        "--preset",
        choices=config.PRESET_NAMES,
        default=config.SYNTH_PRESET,
        help=f"size (default: {config.SYNTH_PRESET}): tiny (10 words x 8 clips, seconds; for tests), small "
        "(35 x 60), default (35 x 550, 5000 unknown, 3000 phrases, 300 sentences; ~27,400 clips, ~1 GB, "
        "~7 min on 2 cores)",
    )
    p.add_argument(
        "--jobs", type=_number(1, MAX_WORKERS, integer=True), help="worker processes (default: CPU count)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def check(args: argparse.Namespace) -> None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise SpeechRNNError(f"--out {out}: is a file, expected a corpus folder to create or resume")
        _output_file(str(out / "validation_list.txt"), "--out")

    def run(args: argparse.Namespace) -> int:
        from .synth import main_synth

        return main_synth(
            out=args.out,
            words=args.words,
            per_word=args.per_word,
            seed=args.seed,
            preset=args.preset,
            jobs=args.jobs,
            progress=not args.quiet,
        )

    p.set_defaults(func=run, check=check)


# ----------------------------------------------------------------------------------------------- train

# Options that go into TrainConfig unchanged: (option, field, type, help).
_TRAIN_OPTIONS = (
    ("--epochs", "epochs", _number(1, 1e6, integer=True), "passes over the training clips (--max-minutes may stop sooner)"),
    ("--batch-size", "batch_size", _number(1, 1e6, integer=True), "clips per optimiser step"),
    ("--lr", "lr", _number(0.0, 10.0, above=True), "peak learning rate"),
    ("--ctc-weight", "ctc_weight", _number(0.0, 1e3), "weight of the CTC loss next to cross-entropy"),
    ("--clip-grad", "clip_grad", _number(0.0, 1e12, above=True), "max gradient norm"),
    ("--vtlp", "vtlp_prob", _PROBABILITY, "chance that a clip's formants are warped as another speaker's would be (0: never)"),
    ("--streams", "streams", _number(0, 1e7, integer=True), "training streams per epoch: clips joined end to end with "
     "the label head trained at every step as the live spotter reads it (0: isolated clips only)"),
    ("--spell-steps", "spell_steps", _number(0, 1e7, integer=True), "first, this many steps of CTC alone on the "
     "phrases and utterances, full context, at --spell-lr: the encoder learns to spell before the label head "
     "joins (not counted in --epochs or --max-minutes; 0: none)"),
    ("--spell-lr", "spell_lr", _number(0.0, 10.0, above=True), "constant learning rate of the --spell-steps"),
    ("--seed", "seed", _number(0, MAX_SEED, integer=True), "initial weights, data order and augmentation"),
    ("--workers", "workers", _number(0, MAX_WORKERS, integer=True), "data loading processes"),
    ("--threads", "threads", _number(0, 4096, integer=True), "CPU threads for the model (0: every core, shared out "
     "among torchrun's processes; fewer on a machine busy with other work)"),
)  # fmt: skip
# Options that go into ModelConfig unchanged.
_MODEL_OPTIONS = (
    ("--hidden", "hidden", _number(1, config.MAX_HIDDEN, integer=True), "hidden units per direction"),
    ("--layers", "layers", _number(1, config.MAX_LAYERS, integer=True), "stacked recurrent layers"),
    ("--dropout", "dropout", _number(0.0, 0.99), "dropout between layers"),
)  # fmt: skip
# What --init takes from its checkpoint, whatever the command line says (--dropout it takes from the line).
_INIT_TAKES_ARCHITECTURE = {"hidden", "layers", "cell", "unidirectional"}
# What --resume takes from this invocation (`train_run._resume`); every other setting is the run's own.
_RESUME_TAKES = {"data", "out", "device", "workers", "threads", "max_minutes", "resume", "help"}


def _add_train(sub: argparse._SubParsersAction) -> None:
    """`speechrnn train`."""
    p = sub.add_parser(
        "train",
        help="train a model on a Speech Commands folder",
        description="Train the streaming bidirectional RNN on a corpus in Speech Commands layout (real, or built by "
        "`speechrnn synth`). Writes the best checkpoint to --out, the latest state to OUT.last.pt, metrics to "
        "OUT.metrics.jsonl (one line per epoch) and curves to OUT.curves.png. A run already at --out is "
        "refused unless --resume continues it or --overwrite replaces it. Ctrl-C saves; --resume continues "
        "exactly, and a run killed mid-write leaves a loadable checkpoint (its temp files .OUT.* are removed "
        "when the next run starts). For several processes: torchrun --nproc_per_node N -m speechrnn train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="corpus root (Speech Commands layout)")
    p.add_argument("--out", required=True, help="path of the best checkpoint (.pt)")
    p.add_argument(
        "--task",
        choices=config.TASKS,
        default=TrainConfig.task,
        help="all corpus words, or the 12-class benchmark",
    )
    p.add_argument("--cell", choices=config.CELL_NAMES, default=ModelConfig.cell, help="recurrent cell")
    for option, name, kind, text in _TRAIN_OPTIONS:
        p.add_argument(option, type=kind, default=getattr(TrainConfig, name), dest=name, help=text)
    for option, name, kind, text in _MODEL_OPTIONS:
        p.add_argument(option, type=kind, default=getattr(ModelConfig, name), dest=name, help=text)
    p.add_argument("--unidirectional", action="store_true", help="forward direction only (exact streaming)")
    p.add_argument("--no-augment", action="store_true", help="no waveform augmentation")
    p.add_argument(
        "--vtlp-range", type=_number(0.5, 2.0), nargs=2, default=TrainConfig.vtlp_range, metavar=("LO", "HI"),
        help="warp factors drawn for --vtlp (above 1 moves formants up)",
    )  # fmt: skip
    p.add_argument("--no-phrases", action="store_true", help="train on single words only")
    p.add_argument(
        "--balance-words",
        action="store_true",
        help="draw the phrases and utterances so that every command word is heard about as often (the "
        "corpus's utterances say each digit about 650 times, 'tree' under 100): in --spell-steps, the epochs "
        "and the streams",
    )
    p.add_argument("--device", default=TrainConfig.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--max-minutes",
        type=_number(0.0, 1e9, above=True),
        default=TrainConfig.max_minutes,
        help="stop (and save) after this much training time",
    )
    p.add_argument(
        "--keep-epochs",
        action="store_true",
        help="also write each finished epoch's weights to OUT.epochN.pt (no optimiser state), to average "
        "several with scripts/average_checkpoints.py",
    )
    p.add_argument("--limit-batches", type=_COUNT, default=None, help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help="continue the run at --out from OUT.last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run where one is already, deleting its files (OUT, OUT.last.pt, metrics, curves, "
        "epochs) when the new run starts",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from this checkpoint (architecture, normalisation, weights; the label head is "
        "re-initialised if the corpus's labels differ); a --dropout given with it replaces the checkpoint's",
    )
    p.set_defaults(func=_run_train, check=_check_train)


def _train_configs(args: argparse.Namespace) -> tuple[TrainConfig, ModelConfig]:
    cfg = TrainConfig(
        data=args.data, task=args.task, augment=not args.no_augment, vtlp_range=tuple(args.vtlp_range),
        phrases=not args.no_phrases, device=args.device, max_minutes=args.max_minutes,
        limit_batches=args.limit_batches, keep_epochs=args.keep_epochs, balance_words=args.balance_words,
        **{name: getattr(args, name) for _, name, _, _ in _TRAIN_OPTIONS},
    )  # fmt: skip
    model = ModelConfig(n_labels=0, cell=args.cell, bidirectional=not args.unidirectional,
                        **{name: getattr(args, name) for _, name, _, _ in _MODEL_OPTIONS})  # fmt: skip
    return cfg, model


def _check_train(args: argparse.Namespace) -> None:
    from .train_run import check_run_out

    _train_configs(args)
    config.check_device(args.device, allow_auto=True)
    _input_folder(args.data, "--data")
    _input_file(args.init, "--init", "checkpoint file")
    if args.init is not None and args.resume:
        raise SpeechRNNError("--init starts a new run from a checkpoint, --resume continues one: give one")
    check_run_out(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        ignored = _given(args, lambda dest: dest not in _RESUME_TAKES)
        if ignored:
            print(f"speechrnn train: warning: --resume continues with the run's own settings; "
                  f"{', '.join(ignored)} ignored", file=sys.stderr)  # fmt: skip
    elif args.init is not None:
        ignored = _given(args, lambda dest: dest in _INIT_TAKES_ARCHITECTURE)
        if ignored:
            print(f"speechrnn train: warning: --init keeps the checkpoint's architecture; "
                  f"{', '.join(ignored)} ignored", file=sys.stderr)  # fmt: skip


def _given(args: argparse.Namespace, which: Callable[[str], bool]) -> list[str]:
    """The options among `which` (by destination) given on the command line with other than their default."""
    return [a.option_strings[0] for a in args.parser._actions
            if a.option_strings and which(a.dest) and getattr(args, a.dest) != a.default]  # fmt: skip


def _run_train(args: argparse.Namespace) -> int:
    from .train import train

    cfg, model = _train_configs(args)
    dropout = args.dropout if args.init is not None and _given(args, lambda dest: dest == "dropout") else None
    train(cfg, args.out, model_config=model, resume=args.resume, init=args.init, overwrite=args.overwrite,
          progress_bar=sys.stderr.isatty(), init_dropout=dropout)  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------------ eval


def _add_eval(sub: argparse._SubParsersAction) -> None:
    """`speechrnn eval`."""
    p = sub.add_parser(
        "eval",
        help="accuracy, per-class scores, confusion matrix and phrase WER on a corpus split",
        description="Evaluate a checkpoint on a split of a Speech Commands folder. With --chunk-ms the model runs "
        "under latency control (as when streaming), so the cost of streaming is measured.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default=None, help="checkpoint (default: the model shipped with speechrnn)")
    p.add_argument("--data", required=True, help="corpus root (Speech Commands layout)")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument(
        "--chunk-ms", type=_CHUNK_MS, default=None, help="latency-control chunk (default: full context)"
    )
    p.add_argument(
        "--lookahead-ms", type=_LOOKAHEAD_MS, default=None, help="look-ahead with --chunk-ms (default: 0)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot", default=None, metavar="PNG", help="write the confusion matrix here (.png, .pdf or .svg)"
    )
    p.add_argument("--batch-size", type=_number(1, 100_000, integer=True), default=EVAL_BATCH_SIZE)
    p.add_argument("--device", default=INFERENCE_DEVICE, help="cpu, cuda or cuda:N")

    def check(args: argparse.Namespace) -> None:
        if args.lookahead_ms is not None and args.chunk_ms is None:
            raise SpeechRNNError(
                "--lookahead-ms applies to a chunk: give --chunk-ms too (full context needs none)"
            )
        config.check_device(args.device)
        _input_file(args.model, "--model", "checkpoint file")
        _input_folder(args.data, "--data")
        if args.plot is not None:
            if Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
                raise SpeechRNNError(f"--plot: expected a {', '.join(PLOT_SUFFIXES)} file, got {args.plot!r}")
            _output_file(args.plot, "--plot")

    p.set_defaults(func=_run_eval, check=check)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    evaluate(model=args.model, data=args.data, split=args.split, chunk_ms=args.chunk_ms,
             lookahead_ms=args.lookahead_ms or 0.0, device=args.device, batch_size=args.batch_size,
             as_json=args.json, plot=args.plot)  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------ transcribe


def _add_transcribe(sub: argparse._SubParsersAction) -> None:
    """`speechrnn transcribe` (owned by speechrnn/transcribe.py). Long: one flat list of options, then check and run."""
    defaults = DecodingOptions()
    p = sub.add_parser(
        "transcribe",
        help="label, text and word times of audio files, from one clip to hours of audio",
        description="Transcribe audio files (directories are walked for .wav, .flac, .ogg, ...): the\n"
        "classification head's label and score, the text from a lexicon-constrained CTC beam search, and\n"
        "each word with its start and end time in seconds and a score. Clips up to 30 s run whole, in\n"
        "batches; longer files stream in blocks, in memory that does not grow with their length. Words the\n"
        "model is unsure of, or that are not in the lexicon, come out as <unk>. A file that cannot be read\n"
        "(missing, not audio, truncated) is reported and the others still run; the exit status is then 1.\n"
        "\n"
        "The label of audio longer than one second is the best one-second window's; a command word counts\n"
        f"only where a window is at least {COMMAND_FLOOR:g} sure of it,\n"
        "else the label is _unknown_ or _silence_: over hours of noise some window always leans a little\n"
        "to some word.",
        epilog="examples:\n"
        "  speechrnn transcribe clip.wav\n"
        "  speechrnn transcribe recordings/ --json > out.jsonl\n"
        "  speechrnn transcribe call.wav --words yes no maybe --beam 64",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", metavar="FILE_OR_DIR", help="audio files and directories")
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the model shipped with speechrnn)")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per file: {"path", "label", "score", "text", "words": [{"word", "start", '
        '"end", "score"}]}, or {"path", "error"}',
    )
    p.add_argument(
        "--beam",
        type=_number(1, 100_000, integer=True),
        default=defaults.beam,
        metavar="N",
        help=f"beam width (default: {defaults.beam})",
    )
    p.add_argument(
        "--words",
        nargs="+",
        metavar="WORD",
        help="the words that may be recognised, spelled with a-z and apostrophes (default: the model's "
        "command words); put it after the files, or end the list with --",
    )
    p.add_argument(
        "--min-word-score",
        type=_PROBABILITY,
        default=defaults.min_word_score,
        metavar="P",
        help="words scoring below this (0-1) are reported as <unk>; a word's score is how surely its letters "
        "were heard, for the model's own command words taken together with its classification head's "
        f"posterior; 0 forces every word into the lexicon (default: {defaults.min_word_score})",
    )
    p.add_argument(
        "--fillers",
        type=_number(0, 100_000, integer=True),
        default=FILLER_WORDS,
        metavar="N",
        help="how many of English's most frequent words compete with --words in the search, reported as "
        "<unk>: other speech is spelled as what it is instead of being forced into a command word (0: "
        f"none; default: {FILLER_WORDS})",
    )
    p.add_argument(
        "--batch-size",
        type=_number(1, 4096, integer=True),
        default=TRANSCRIBE_BATCH_SIZE,
        metavar="N",
        help=f"clips per batch (default: {TRANSCRIBE_BATCH_SIZE})",
    )
    p.add_argument(
        "--device",
        default=INFERENCE_DEVICE,
        help=f"where the model runs: cpu, cuda, cuda:N (default: {INFERENCE_DEVICE})",
    )

    def check(args: argparse.Namespace) -> None:
        if not args.paths:
            hint = " (--words takes every name after it: put it after the files, or end it with --)"
            p.error("expected at least one FILE_OR_DIR" + (hint if args.words else ""))
        config.check_device(args.device)
        _input_file(args.model, "--model", "checkpoint file")

    def run(args: argparse.Namespace) -> int:
        from .transcribe import main_transcribe

        return main_transcribe(
            paths=args.paths,
            model=args.model,
            as_json=args.json,
            beam=args.beam,
            words=args.words,
            min_word_score=args.min_word_score,
            fillers=args.fillers,
            device=args.device,
            batch_size=args.batch_size,
        )

    p.set_defaults(func=run, check=check)


# ---------------------------------------------------------------------------------------------- listen


def _add_listen(sub: argparse._SubParsersAction) -> None:
    """`speechrnn listen` (owned by speechrnn/listen.py). Long: one flat list of options, then check and run."""
    p = sub.add_parser(
        "listen",
        help="spot keywords live from the microphone (or a file replayed as a live stream)",
        description="Spot command words in a live stream and print each detection as it happens: from "
        "the default input device (or --device), captured at 16 kHz mono or resampled from the rate the "
        "device offers, or from a file replayed through the same path (--input, at real time or --fast). "
        "The recogniser streams its GRU state from chunk to chunk; each detection is decided once its "
        "chunk and look-ahead are heard. On a terminal a status line (input level, latency, overruns) is "
        "kept on stderr. Ctrl-C stops and prints a summary.",
        epilog="examples:\n"
        "  speechrnn listen\n"
        "  speechrnn listen --keywords yes no --threshold 0.9 --json\n"
        "  speechrnn listen --input data/samples/yes.wav --fast\n"
        "  speechrnn listen --list-devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the model shipped with speechrnn)")
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="run an exported step (speechrnn export) with onnxruntime instead of a checkpoint; its chunk "
        "and look-ahead are fixed in the file (so --chunk-ms and --lookahead-ms are refused with it)",
    )
    p.add_argument(
        "--input", metavar="FILE",
        help=f"replay this audio file instead of a device (then {config.END_SILENCE_S:g} s of silence, as a room "
        "would go on, so that a word at its very end is heard)",
    )  # fmt: skip
    p.add_argument("--fast", action="store_true", help="with --input: replay as fast as possible")
    p.add_argument("--json", action="store_true", help='a {"keyword", "time", "score"} JSON line each')
    p.add_argument(
        "--device", metavar="DEV", help="input device: index or name (see --list-devices); not with --input"
    )
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    p.add_argument(
        "--keywords",
        nargs="+",
        metavar="WORD",
        help="the words to spot: the trained command words (default: all of them), or any word or short "
        'phrase spelled a-z, quoted (--keywords "lights on" computer), which the CTC head spells',
    )
    p.add_argument(
        "--decide",
        choices=DECISIONS,
        default=DECIDE,
        help="how a trained command word is decided: by the label head, by the CTC keyword path, by the CTC "
        "path confirmed by the label head, by either, or by the beam search transcribe runs (common words "
        f"competing, the label head confirming; needs torch) (default: {DECIDE})",
    )
    p.add_argument(
        "--threshold",
        type=_PROBABILITY,
        default=None,
        metavar="P",
        help="smoothed probability (0-1) every keyword must reach: higher gives fewer false alarms and more "
        "misses (default: the model's per-keyword thresholds, calibrated on validation, where it has them; "
        f"else {SpotterConfig.threshold:g})",
    )
    p.add_argument(
        "--chunk-ms",
        type=_CHUNK_MS,
        default=None,
        metavar="MS",
        help="recogniser chunk, a multiple of the model's step (20 ms): larger costs less compute and adds "
        f"latency (default: {LIVE.chunk_ms:g})",
    )
    p.add_argument(
        "--lookahead-ms",
        type=_LOOKAHEAD_MS,
        default=None,
        metavar="MS",
        help="audio past each chunk the backward GRU reads, a multiple of 20 ms: longer hears more of each "
        f"word before deciding, and adds latency (default: {LIVE.lookahead_ms:g})",
    )
    p.add_argument(
        "--reset-after-silence-ms",
        type=_number(0.0, 1e9),
        default=RESET_AFTER_SILENCE_MS,
        metavar="MS",
        help="forget the recurrent state after a pause this long; the model learnt from short clips, and "
        f"over minutes of audio its carried state drifts (0 never resets; default: {RESET_AFTER_SILENCE_MS:g})",
    )

    def check(args: argparse.Namespace) -> None:
        if args.list_devices:
            return
        if args.onnx is not None and args.model is not None:
            raise SpeechRNNError("give a checkpoint (--model) or an exported ONNX step (--onnx), not both")
        if args.onnx is not None:
            given = [
                o
                for o, v in (("--chunk-ms", args.chunk_ms), ("--lookahead-ms", args.lookahead_ms))
                if v is not None
            ]
            if given:
                raise SpeechRNNError(
                    f"{' and '.join(given)}: the ONNX file fixes its chunk and look-ahead; export it again "
                    "with other values (speechrnn export --chunk-ms ...) instead"
                )
        if args.input is not None and args.device is not None:
            raise SpeechRNNError("--device chooses a microphone, --input replays a file instead: give one")
        if args.fast and args.input is None:
            raise SpeechRNNError("--fast replays a file: give it with --input FILE")
        _input_file(args.model, "--model", "checkpoint file")
        _input_file(args.onnx, "--onnx", "ONNX file")
        _input_file(args.input, "--input")

    def run(args: argparse.Namespace) -> int:
        from .listen import listen

        latency = {}
        if args.chunk_ms is not None:
            latency["chunk_ms"] = args.chunk_ms
        if args.lookahead_ms is not None:
            latency["lookahead_ms"] = args.lookahead_ms
        listen(
            model=args.model,
            onnx=args.onnx,
            input=args.input,
            fast=args.fast,
            as_json=args.json,
            device=args.device,
            show_devices=args.list_devices,
            keywords=args.keywords,
            threshold=args.threshold,
            decide=args.decide,
            reset_after_silence_ms=args.reset_after_silence_ms or None,
            **latency,
        )
        return 0

    p.set_defaults(func=run, check=check)


# ---------------------------------------------------------------------------------------------- export


def _add_export(sub: argparse._SubParsersAction) -> None:
    """`speechrnn export` (owned by speechrnn/export.py)."""
    p = sub.add_parser(
        "export",
        help="write a model's streaming step as an ONNX file (optionally int8) for deployment",
        description="Export one latency-controlled streaming step of a checkpoint to ONNX: raw audio in (the "
        "MFCC front end is inside the graph), the forward state of every layer in and out, per-step CTC, "
        "attention and label scores out. Feature settings, labels, vocabulary, chunk and look-ahead, "
        "stride, pooling window and normalisation go into the file's metadata, so onnxruntime and the file "
        "are all a deployment needs (`speechrnn listen --onnx FILE` runs it). The chunk and look-ahead are "
        "fixed at export.",
        epilog="examples:\n"
        "  speechrnn export --model runs/default/model.pt --format onnx --out model.onnx\n"
        "  speechrnn export --format onnx --out model.int8.onnx --quantize --chunk-ms 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the model shipped with speechrnn)")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="output format (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="dynamic int8 weights for the recurrent and linear layers (about 2.4x smaller; the front "
        "end stays float)",
    )
    p.add_argument(
        "--chunk-ms",
        type=_CHUNK_MS,
        default=LIVE.chunk_ms,
        metavar="MS",
        help=f"chunk of one step, a multiple of the model's step (20 ms) up to {MAX_CHUNK_MS:g} "
        f"(default: {LIVE.chunk_ms:g}, as listen)",
    )
    p.add_argument(
        "--lookahead-ms",
        type=_LOOKAHEAD_MS,
        default=LIVE.lookahead_ms,
        metavar="MS",
        help=f"look-ahead of the backward direction, a multiple of 20 ms (default: {LIVE.lookahead_ms:g}, as listen)",
    )

    def check(args: argparse.Namespace) -> None:
        if not args.out.endswith(".onnx"):
            raise SpeechRNNError(f"--out should name a .onnx file, got {args.out!r}")
        _input_file(args.model, "--model", "checkpoint file")
        _output_file(args.out, "--out")

    def run(args: argparse.Namespace) -> int:
        from .export import main_export

        return main_export(
            model=args.model,
            format=args.format,
            out=args.out,
            quantize=args.quantize,
            chunk_ms=args.chunk_ms,
            lookahead_ms=args.lookahead_ms,
        )

    p.set_defaults(func=run, check=check)


# ------------------------------------------------------------------------------------------------ main


def _add_serve(sub: argparse._SubParsersAction) -> None:
    """`speechrnn serve` (owned by speechrnn/serve.py)."""
    from .serve_protocol import ServeConfig

    defaults = ServeConfig()
    p = sub.add_parser(
        "serve",
        help="a local web page that spots keywords through the browser's microphone and transcribes files",
        description="Serve a page that captures the browser's microphone, streams it to this process over a "
        "WebSocket and shows the keywords spotted as they are said (the same live engine as `listen`), the "
        "scores of the last seconds, a threshold and keyword choice, and a drop zone that transcribes a file. "
        "It listens on 127.0.0.1 only unless --host says otherwise; a browser allows the microphone on "
        "http://127.0.0.1 and http://localhost (elsewhere only over https).",
        epilog="examples:\n"
        "  speechrnn serve                      # then open http://127.0.0.1:8000/\n"
        "  speechrnn serve --port 0             # any free port; the URL printed says which\n"
        "  speechrnn serve --onnx model.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=defaults.host, help=f"address to listen on (default: {defaults.host})")
    p.add_argument(
        "--port", type=_number(0, 65535, integer=True), default=defaults.port,
        help=f"port, 0 for any free one (default: {defaults.port})",
    )  # fmt: skip
    engine = p.add_mutually_exclusive_group()
    engine.add_argument(
        "--model", metavar="CKPT", help="checkpoint (default: the model shipped with speechrnn)"
    )
    engine.add_argument(
        "--onnx", metavar="FILE",
        help="run the live streams with an exported step (speechrnn export) and onnxruntime; uploads are "
        "transcribed with the shipped model",
    )  # fmt: skip
    p.add_argument(
        "--max-connections", type=_number(1, 10_000, integer=True), default=defaults.max_connections,
        metavar="N",
        help=f"live streams at once; one more is refused (default: {defaults.max_connections})",
    )  # fmt: skip
    p.add_argument(
        "--max-session-s", type=_number(0, 1e9, above=True), default=defaults.max_session_s, metavar="S",
        help=f"a live stream is closed after this many seconds (default: {defaults.max_session_s:g})",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        import dataclasses

        from .serve import serve

        config = dataclasses.replace(
            defaults, host=args.host, port=args.port, max_connections=args.max_connections,
            max_session_s=args.max_session_s,
        )  # fmt: skip
        serve(model=args.model, onnx=args.onnx, config=config)
        return 0

    def check(args: argparse.Namespace) -> None:
        _input_file(args.model, "--model", "checkpoint file")
        _input_file(args.onnx, "--onnx", "ONNX file")

    p.set_defaults(func=run, check=check)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="speechrnn",
        description="Speech command recogniser: build a corpus, train, evaluate, transcribe files, spot keywords live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_synth, _add_train, _add_eval, _add_transcribe, _add_listen, _add_export, _add_serve):
        add(sub)
    for command, subparser in sub.choices.items():
        subparser.set_defaults(parser=subparser, command=command)
    return parser


def main(argv: list[str] | None = None, *, check_only: bool = False) -> int:
    """Run one command; returns the exit status (0, 1 where a file of several failed, 2 for an error).

    Args:
        argv: the arguments (default: sys.argv[1:]).
        check_only: stop after the options and paths are checked, before any work (tests).
    """
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # said by the command's parser, so that the line names the command
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        args.check(args)
        if check_only:
            return 0
        return int(args.func(args) or 0)
    except SpeechRNNError as err:
        print(f"speechrnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"speechrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (`| head`) left: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:  # the system refused: disk full, permission denied, a device gone
        where = f"{err.filename}: " if err.filename else ""
        print(f"speechrnn {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


def entry() -> None:
    """Console-script and `python -m speechrnn` entry point.

    After a session that used PortAudio (a microphone, `--list-devices`), the process leaves with `os._exit`
    once its output is flushed: PortAudio's teardown at interpreter exit (`Pa_Terminate`, registered by
    sounddevice) intermittently aborts with "terminate called without an active exception" from a backend
    thread of Debian's libportaudio2, turning a clean Ctrl-C into a crash. Nothing is left to clean up then:
    the stream is closed and every result printed.
    """
    code = main()
    if "sounddevice" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
