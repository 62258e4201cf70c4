"""The command line's option types and path checks: what `cli` uses to refuse bad input before any work.

An option is checked where argparse parses it (`_number`: a finite number in range, of the right kind); a
path is checked by the command's `check` (`_input_file`, `_input_folder`, `_output_file`). Each failure is
one line (`_one_line`). Like `cli`, this module imports no torch, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from .config import MAX_CHUNK_MS, describe_range, out_of_range
from .errors import SpeechRNNError


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are the one line that every other error of the command line is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _number(lo: float, hi: float = math.inf, *, integer: bool = False, above: bool = False):
    """An argparse type: a finite number in the range (see `config.out_of_range`)."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or out_of_range(value, lo, hi, integer=integer, above=above):
            kind = describe_range(lo, hi, integer=integer, above=above)
            shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
            raise argparse.ArgumentTypeError(f"expected {kind}, got {shown}")
        return value

    parse.__name__ = "whole number" if integer else "number"  # argparse names the type in some messages
    return parse


_PROBABILITY = _number(0.0, 1.0)
_COUNT = _number(1, 1_000_000, integer=True)
_CHUNK_MS = _number(0.0, MAX_CHUNK_MS, above=True)
_LOOKAHEAD_MS = _number(0.0, MAX_CHUNK_MS)


def _input_file(path: str | None, option: str, kind: str = "file") -> None:
    """A file the command will read: it must exist and be a file (its content is checked when read)."""
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise SpeechRNNError(f"{option} {path}: no such {kind}")
    if p.is_dir():
        raise SpeechRNNError(f"{option} {path}: is a folder, expected a file")


def _input_folder(path: str, option: str) -> None:
    p = Path(path)
    if not p.exists():
        raise SpeechRNNError(f"{option} {path}: no such folder")
    if not p.is_dir():
        raise SpeechRNNError(f"{option} {path}: is a file, expected a folder")


def _output_file(path: str, option: str) -> None:
    """A file the command will write: not a folder, and creatable (its folder is made when written)."""
    from .checkpoint import check_writable

    try:
        check_writable(path)
    except SpeechRNNError as err:
        raise SpeechRNNError(f"{option} {err}") from None


def _one_line(message: object) -> str:
    """`message` on one line: a character that is not printable (a newline in a path) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))
