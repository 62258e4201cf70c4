"""Command line: `speechrnn <command>`. A thin shell: each command parses, then calls one library function."""

from __future__ import annotations

import argparse
import sys

from .errors import SpeechRNNError


def _add_synth(sub: argparse._SubParsersAction) -> None:
    """`speechrnn synth` (owned by speechrnn/synth.py)."""


def _add_train(sub: argparse._SubParsersAction) -> None:
    """`speechrnn train` (owned by speechrnn/train.py)."""


def _add_eval(sub: argparse._SubParsersAction) -> None:
    """`speechrnn eval` (owned by speechrnn/evaluate.py)."""


def _add_transcribe(sub: argparse._SubParsersAction) -> None:
    """`speechrnn transcribe` (owned by speechrnn/transcribe.py)."""


def _add_listen(sub: argparse._SubParsersAction) -> None:
    """`speechrnn listen` (owned by speechrnn/listen.py)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechrnn",
        description="Speech command recogniser: build a corpus, train, evaluate, transcribe files, spot keywords live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_synth, _add_train, _add_eval, _add_transcribe, _add_listen):
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
