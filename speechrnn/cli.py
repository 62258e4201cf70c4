"""Command line: `speechrnn <command>`. A thin shell: each command parses, then calls one library function."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import SpeechRNNError


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
    p.add_argument("--out", required=True, help="corpus directory to create or resume")
    p.add_argument("--words", nargs="+", metavar="WORD", help="command words (default: the preset's)")
    p.add_argument("--per-word", type=int, help="clips per command word (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed; everything follows from it (default: 0)")
    p.add_argument(
        "--preset",
        choices=("tiny", "small", "default"),
        default="default",
        help="size (default: default): tiny (10 words x 8 clips, seconds; for tests), small (35 x 60), "
        "default (35 x 550, 5000 unknown, 3000 phrases, 300 sentences; ~27,400 clips, ~1 GB, ~7 min on 2 cores)",
    )
    p.add_argument("--jobs", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

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

    p.set_defaults(func=run)


def _add_train(sub: argparse._SubParsersAction) -> None:
    """`speechrnn train`."""
    from .model import CELLS

    p = sub.add_parser(
        "train",
        help="train a model on a Speech Commands folder",
        description="Train the streaming bidirectional RNN on a corpus in Speech Commands layout (real, or built by "
        "`speechrnn synth`). Writes the best checkpoint to --out, the latest state to OUT.last.pt, metrics to "
        "OUT.metrics.jsonl and curves to OUT.curves.png. Ctrl-C saves; --resume continues exactly. "
        "For several processes: torchrun --nproc_per_node N -m speechrnn train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="corpus root (Speech Commands layout)")
    p.add_argument("--out", required=True, help="path of the best checkpoint (.pt)")
    p.add_argument(
        "--task", choices=("all", "12"), default="all", help="all corpus words, or the 12-class benchmark"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="passes over the training clips (--max-minutes may stop sooner)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="clips per optimiser step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument(
        "--ctc-weight", type=float, default=0.5, help="weight of the CTC loss next to cross-entropy"
    )
    p.add_argument("--cell", choices=sorted(CELLS), default="gru", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=160, help="hidden units per direction")
    p.add_argument("--layers", type=int, default=3, help="stacked recurrent layers")
    p.add_argument("--dropout", type=float, default=0.15, help="dropout between layers")
    p.add_argument("--unidirectional", action="store_true", help="forward direction only (exact streaming)")
    p.add_argument("--clip-grad", type=float, default=5.0, help="max gradient norm")
    p.add_argument("--no-augment", action="store_true", help="no waveform augmentation")
    p.add_argument(
        "--vtlp", type=float, default=0.5, metavar="PROB",
        help="chance that a clip's formants are warped as another speaker's would be (0: never)",
    )  # fmt: skip
    p.add_argument(
        "--vtlp-range", type=float, nargs=2, default=(0.9, 1.1), metavar=("LO", "HI"),
        help="warp factors drawn for --vtlp (above 1 moves formants up)",
    )  # fmt: skip
    p.add_argument("--no-phrases", action="store_true", help="train on single words only")
    p.add_argument(
        "--streams",
        type=int,
        default=2000,
        help="training streams per epoch: clips joined end to end with the label head trained at every step "
        "as the live spotter reads it (0: isolated clips only)",
    )
    p.add_argument("--seed", type=int, default=0, help="initial weights, data order and augmentation")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for the model (0: every core, shared out among torchrun's processes; fewer on a "
        "machine busy with other work)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and save) after this much training time"
    )
    p.add_argument(
        "--keep-epochs",
        action="store_true",
        help="also write each finished epoch's weights to OUT.epochN.pt (no optimiser state), to average "
        "several with scripts/average_checkpoints.py",
    )
    p.add_argument("--limit-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help="continue from OUT.last.pt")
    p.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from this checkpoint (architecture, normalisation, weights; the label head is "
        "re-initialised if the corpus's labels differ)",
    )
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .model import ModelConfig
    from .train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, task=args.task, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        ctc_weight=args.ctc_weight, clip_grad=args.clip_grad, augment=not args.no_augment, vtlp_prob=args.vtlp,
        vtlp_range=tuple(args.vtlp_range),
        phrases=not args.no_phrases, streams=args.streams, seed=args.seed, workers=args.workers,
        threads=args.threads, device=args.device, max_minutes=args.max_minutes, limit_batches=args.limit_batches,
        keep_epochs=args.keep_epochs,
    )  # fmt: skip
    model = ModelConfig(n_labels=0, cell=args.cell, hidden=args.hidden, layers=args.layers, dropout=args.dropout,
                        bidirectional=not args.unidirectional)  # fmt: skip
    train(
        cfg,
        args.out,
        model_config=model,
        resume=args.resume,
        init=args.init,
        progress_bar=sys.stderr.isatty(),
    )
    return 0


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
        "--chunk-ms", type=float, default=None, help="latency-control chunk (default: full context)"
    )
    p.add_argument("--lookahead-ms", type=float, default=0.0, help="look-ahead with --chunk-ms")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the confusion matrix here")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    evaluate(model=args.model, data=args.data, split=args.split, chunk_ms=args.chunk_ms,
             lookahead_ms=args.lookahead_ms, device=args.device, batch_size=args.batch_size,
             as_json=args.json, plot=args.plot)  # fmt: skip
    return 0


def _add_transcribe(sub: argparse._SubParsersAction) -> None:
    """`speechrnn transcribe` (owned by speechrnn/transcribe.py)."""
    from .decoding import DecodingOptions

    defaults = DecodingOptions()
    p = sub.add_parser(
        "transcribe",
        help="label, text and word times of audio files, from one clip to hours of audio",
        description="Transcribe audio files (directories are walked for .wav, .flac, .ogg, ...): the\n"
        "classification head's label and score, the text from a lexicon-constrained CTC beam search, and\n"
        "each word with its start and end time in seconds and a score. Clips up to 30 s run whole, in\n"
        "batches; longer files stream in blocks, in memory that does not grow with their length. Words the\n"
        "model is unsure of, or that are not in the lexicon, come out as <unk>. A file that cannot be read\n"
        "is reported and the others still run; the exit status is then 1.",
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
        "--beam", type=int, default=defaults.beam, metavar="N", help=f"beam width (default: {defaults.beam})"
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
        type=float,
        default=defaults.min_word_score,
        metavar="P",
        help="words scoring below this (0-1) are reported as <unk>; 0 forces every word into the "
        f"lexicon (default: {defaults.min_word_score})",
    )
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="clips per batch (default: 16)")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:N (default: cpu)")

    def run(args: argparse.Namespace) -> int:
        from .transcribe import main_transcribe

        if not args.paths:
            hint = " (--words takes every name after it: put it after the files, or end it with --)"
            p.error("expected at least one FILE_OR_DIR" + (hint if args.words else ""))
        return main_transcribe(
            paths=args.paths,
            model=args.model,
            as_json=args.json,
            beam=args.beam,
            words=args.words,
            min_word_score=args.min_word_score,
            device=args.device,
            batch_size=args.batch_size,
        )

    p.set_defaults(func=run)


def _add_listen(sub: argparse._SubParsersAction) -> None:
    """`speechrnn listen` (owned by speechrnn/listen.py)."""
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
        "and look-ahead are fixed in the file",
    )
    p.add_argument(
        "--input", metavar="FILE",
        help="replay this audio file instead of a device (then half a second of silence, as a room would go on, "
        "so that a word at its very end is heard)",
    )  # fmt: skip
    p.add_argument("--fast", action="store_true", help="with --input: replay as fast as possible")
    p.add_argument("--json", action="store_true", help='a {"keyword", "time", "score"} JSON line each')
    p.add_argument("--device", metavar="DEV", help="input device: index or name (see --list-devices)")
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    p.add_argument("--keywords", nargs="+", metavar="WORD", help="only these words fire (default: all)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="smoothed probability (0-1) a keyword must reach: higher gives fewer false alarms and more "
        "misses (default: 0.5)",
    )
    p.add_argument(
        "--chunk-ms",
        type=float,
        default=120.0,
        metavar="MS",
        help="recogniser chunk, a multiple of the model's step (20 ms): larger costs less compute and adds "
        "latency (default: 120)",
    )
    p.add_argument(
        "--lookahead-ms",
        type=float,
        default=160.0,
        metavar="MS",
        help="audio past each chunk the backward GRU reads, a multiple of 20 ms: longer hears more of each "
        "word before deciding, and adds latency (default: 160)",
    )
    p.add_argument(
        "--reset-after-silence-ms",
        type=float,
        default=300.0,
        metavar="MS",
        help="forget the recurrent state after a pause this long; the model learnt from short clips, and "
        "over minutes of audio its carried state drifts (0 never resets; default: 300)",
    )

    def run(args: argparse.Namespace) -> int:
        from .listen import listen

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
            chunk_ms=args.chunk_ms,
            lookahead_ms=args.lookahead_ms,
            reset_after_silence_ms=args.reset_after_silence_ms or None,
        )
        return 0

    p.set_defaults(func=run)


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
        type=float,
        default=120.0,
        metavar="MS",
        help="chunk of one step, a multiple of the model's step (20 ms) (default: 120, as listen)",
    )
    p.add_argument(
        "--lookahead-ms",
        type=float,
        default=160.0,
        metavar="MS",
        help="look-ahead of the backward direction, a multiple of 20 ms (default: 160, as listen)",
    )

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

    p.set_defaults(func=run)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    """`speechrnn serve` (owned by speechrnn/serve.py)."""
    from .serve import ServeConfig

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
        "--port", type=int, default=defaults.port, help=f"port, 0 for any free one (default: {defaults.port})"
    )
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
        "--max-connections", type=int, default=defaults.max_connections, metavar="N",
        help=f"live streams at once; one more is refused (default: {defaults.max_connections})",
    )  # fmt: skip
    p.add_argument(
        "--max-session-s", type=float, default=defaults.max_session_s, metavar="S",
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

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechrnn",
        description="Speech command recogniser: build a corpus, train, evaluate, transcribe files, spot keywords live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_synth, _add_train, _add_eval, _add_transcribe, _add_listen, _add_export, _add_serve):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpeechRNNError as err:
        print(f"speechrnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"speechrnn {args.command}: interrupted", file=sys.stderr)
        return 130


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
