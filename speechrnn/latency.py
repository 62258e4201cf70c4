"""Latency control of the streaming encoder: the presets every command uses, and their conversion to steps.

A chunk of `chunk_ms` is finalised once `lookahead_ms` more audio has arrived (see `model.py`), so a live
listener waits up to `chunk_ms + lookahead_ms` for a step's output. Training draws chunks of 4 to 25 encoder
steps and look-aheads of 2 to 8 (`TrainConfig.chunk_steps`, `lookahead_steps`: up to 500 and 160 ms at 20 ms
a step); the presets stay inside what it trained. The measurements behind them are in docs/BENCHMARKS.md.
Torch-free: the ONNX live path reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import SpeechRNNError

MS_TOLERANCE = 1e-6  # chunk and look-ahead lengths must be whole steps to within this many milliseconds


@dataclass(frozen=True)
class Latency:
    """A chunk and look-ahead length in milliseconds (multiples of the model's step, 20 ms by default)."""

    chunk_ms: float | None  # None: one chunk for the whole input (offline, or a unidirectional model)
    lookahead_ms: float  # audio past each chunk the backward direction reads


# Live spotting (`listen`, `spot`, `serve`, `export`): short chunks, and a look-ahead long enough for the
# backward direction to hear the end of a word before its chunk is decided.
LIVE = Latency(chunk_ms=120.0, lookahead_ms=160.0)
# Transcribing a long file in blocks (`transcribe`): latency does not matter, so the longest chunk trained,
# which costs the least compute per second.
FILE = Latency(chunk_ms=500.0, lookahead_ms=120.0)


def to_steps(step_ms: float, chunk_ms: float | None, lookahead_ms: float) -> tuple[int | None, int]:
    """Convert chunk and look-ahead lengths from milliseconds to encoder steps of `step_ms`, checking them.

    Args:
        step_ms: milliseconds of audio per encoder step.
        chunk_ms: chunk length, a positive multiple of the step length; None = one chunk for the whole input.
        lookahead_ms: look-ahead of the backward direction, a multiple of the step length (0 allowed).

    Returns:
        `(chunk, lookahead)` in encoder steps.

    Raises:
        SpeechRNNError: a length that is not a whole number of steps, or out of range.
    """
    examples = ", ".join(f"{k * step_ms:g}" for k in range(1, 5))

    def convert(value: float, what: str, minimum: int) -> int:
        steps = round(value / step_ms) if math.isfinite(value) else -1
        if abs(steps * step_ms - value) > MS_TOLERANCE or steps < minimum:
            least, zero = ("positive ", "") if minimum else ("", "0, ")
            raise SpeechRNNError(
                f"{what} must be a {least}multiple of the model's {step_ms:g} ms step ({zero}{examples}, "
                f"... ms), got {value:g} ms"
            )
        return steps

    chunk = None if chunk_ms is None else convert(float(chunk_ms), "chunk length", 1)
    return chunk, convert(float(lookahead_ms), "look-ahead", 0)
