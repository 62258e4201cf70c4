"""`speechrnn listen`: spot keywords live, from a microphone or from a file replayed as a live stream.

Display and argument handling over `live.KeywordListener` (the loop behind `speechrnn.spot`). The source
queues blocks of audio (the microphone's callback, or a thread that replays a file at real time or as fast as
possible); a worker thread takes them off the queue with a timeout and runs the listener over them, printing
each detection as it happens. The main thread only waits, draws the status line on a terminal, and turns
Ctrl-C into a clean stop with a summary.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import numpy as np

from .audio import SAMPLE_RATE, audio_duration, read_blocks
from .errors import SpeechRNNError
from .latency import LIVE
from .live import DECIDE, END_SILENCE_S, RESET_AFTER_SILENCE_MS, SILENT_DBFS, KeywordListener, open_step
from .microphone import Block, Microphone, list_devices
from .spotter import Detection

BLOCK_MS = 100.0  # audio per block from either source
READ_TIMEOUT_S = 0.25  # the worker never waits longer than this for audio before checking for a stop
STATUS_INTERVAL_S = 0.1  # status line refresh period
OVERRUN_WARNING_S = 5.0  # without a terminal, report new overruns at most this often
__all__ = ["END_SILENCE_S", "RESET_AFTER_SILENCE_MS", "FileSource", "ListenSummary", "listen"]


class Source(Protocol):
    """Where blocks come from: `Microphone` or `FileSource`."""

    done: bool  # no more audio will come (a file's end); a live device is never done
    description: str

    @property
    def overruns(self) -> int: ...

    def open(self) -> None: ...

    def read(self, timeout: float) -> Block | None: ...

    def close(self) -> None: ...


class FileSource:
    """Replays an audio file as a live source: blocks queued by a thread, at real time or as fast as possible.

    Args:
        path: any audio file `load_audio` reads (resampled to 16 kHz mono, block by block).
        realtime: deliver each block when its last sample would have been recorded; False = at once.
        block_ms: audio per block.
    """

    def __init__(self, path: str | os.PathLike, realtime: bool = True, block_ms: float = BLOCK_MS):
        self.path, self.realtime, self.block_ms = path, realtime, block_ms
        self.duration = audio_duration(path)  # raises SpeechRNNError for a missing or unreadable file
        pace = "real time" if realtime else "as fast as possible"
        self.description = f"file {os.fspath(path)} ({self.duration:.1f} s, {pace})"
        self._queue: queue.Queue = queue.Queue(maxsize=20)
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.overruns = 0  # a file never overruns: its reader waits for the consumer

    @property
    def done(self) -> bool:
        return self._ended.is_set() and self._queue.empty()

    def open(self) -> None:
        self._thread = threading.Thread(target=self._produce, name="speechrnn-file-source", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            start, sent = time.monotonic(), 0
            for block in read_blocks(self.path, block_seconds=self.block_ms / 1000):
                sent += block.size
                if self.realtime and self._stop.wait(max(0.0, start + sent / SAMPLE_RATE - time.monotonic())):
                    return
                while not self._stop.is_set():
                    try:
                        self._queue.put((block, time.monotonic()), timeout=READ_TIMEOUT_S)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except SpeechRNNError as err:
            self._error = err
        finally:
            self._ended.set()

    def read(self, timeout: float) -> Block | None:
        try:
            audio, arrived = self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._error is not None:
                raise self._error from None
            return None
        return Block(audio, arrived)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


@dataclass
class ListenStats:
    """What the worker has done so far (read by the status line and the summary)."""

    samples: int = 0  # audio consumed
    level_db: float = SILENT_DBFS  # RMS level of the last block, dBFS
    lag_s: float = 0.0  # time from a block's arrival to the end of its processing
    compute_s: float = 0.0  # total compute
    detections: list[Detection] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


@dataclass(frozen=True)
class ListenSummary:
    """The result of a `listen` session."""

    seconds: float  # audio heard
    detections: tuple[Detection, ...]
    overruns: int
    interrupted: bool  # stopped by Ctrl-C
    compute_s: float  # processing time spent

    def line(self) -> str:
        counts = Counter(d.keyword for d in self.detections)
        words = ", ".join(f"{k} x{n}" for k, n in counts.most_common())
        how = "stopped" if self.interrupted else "done"
        rtf = self.compute_s / self.seconds if self.seconds else 0.0
        return (
            f"{how}: {self.seconds:.1f} s of audio, {len(self.detections)} detections"
            + (f" ({words})" if words else "")
            + f", {self.overruns} overruns, real-time factor {rtf:.3f}"
        )


class _Printer:
    """Writes detections to `out` and the status line to `err`, never interleaving them."""

    def __init__(self, out: TextIO, err: TextIO, as_json: bool, live_status: bool):
        self.out, self.err, self.as_json, self.live_status = out, err, as_json, live_status
        self._lock = threading.Lock()
        self._status = ""

    def detection(self, d: Detection) -> None:
        with self._lock:
            self._clear()
            if self.as_json:
                self.out.write(json.dumps(d.to_dict()) + "\n")
            else:
                self.out.write(f"{d.time:9.2f} s  {d.keyword:<12} {d.score:.2f}\n")
            self.out.flush()
            self._draw()

    def message(self, text: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(f"listen: {text}\n")
            self.err.flush()
            self._draw()

    def status(self, text: str) -> None:
        if not self.live_status:
            return
        with self._lock:
            self._status = text
            self._draw()

    def end_status(self) -> None:
        with self._lock:
            self._clear()
            self._status = ""

    def _clear(self) -> None:
        if self.live_status and self._status:
            self.err.write("\r\x1b[K")

    def _draw(self) -> None:
        if self.live_status and self._status:
            self.err.write("\r" + self._status + "\x1b[K")
            self.err.flush()


def _status_text(stats: ListenStats, overruns: int, delay_s: float) -> str:
    bars = int(np.clip((stats.level_db + 60) / 6, 0, 10))
    meter = "#" * bars + "." * (10 - bars)
    return (
        f"listening {stats.seconds:7.1f} s | level {stats.level_db:6.1f} dBFS [{meter}] | "
        f"latency {1000 * (delay_s + stats.lag_s):5.0f} ms | overruns {overruns}"
    )


def _blocks(source: Source, stats: ListenStats, stop: threading.Event) -> Iterator[np.ndarray]:
    """The source's blocks until its end or a stop, timing the work done on each."""
    while not stop.is_set():
        block = source.read(timeout=READ_TIMEOUT_S)
        if block is None:
            if source.done:
                return
            continue
        stats.samples += block.audio.size
        t0 = time.perf_counter()
        yield block.audio
        stats.compute_s += time.perf_counter() - t0
        stats.lag_s = time.monotonic() - block.arrived


def _consume(
    source: Source, listener: KeywordListener, printer: _Printer, stats: ListenStats, stop: threading.Event
) -> None:
    """The worker: the listener over the source's blocks, printing detections, until the end or a stop."""
    for heard in listener.run(_blocks(source, stats, stop)):
        stats.level_db = heard.level_db
        for event in heard.detections:
            stats.detections.append(event)
            printer.detection(event)


def _run_worker(
    source: Source,
    listener: KeywordListener,
    printer: _Printer,
    stats: ListenStats,
    failure: list[BaseException],
) -> bool:
    """Run `_consume` on a worker thread while this one draws the status line; True if Ctrl-C stopped it.
    An exception in the worker is appended to `failure` for the caller to raise; the source is closed."""
    stop = threading.Event()

    def work() -> None:
        try:
            _consume(source, listener, printer, stats, stop)
        except Exception as exc:  # handed to the main thread, which reports it
            failure.append(exc)

    worker = threading.Thread(target=work, name="speechrnn-listen", daemon=True)
    interrupted, warned, last_warning = False, 0, 0.0
    try:
        worker.start()
        while worker.is_alive():
            worker.join(STATUS_INTERVAL_S)
            overruns = source.overruns
            printer.status(_status_text(stats, overruns, listener.recognizer.latency_seconds))
            now = time.monotonic()
            if overruns > warned and not printer.live_status and now - last_warning > OVERRUN_WARNING_S:
                printer.message(f"{overruns} input overruns so far (audio was lost); still listening")
                warned, last_warning = overruns, now
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        worker.join(timeout=5.0)
    finally:
        stop.set()
        source.close()
        printer.end_status()
    return interrupted


def listen(
    *,
    model: str | os.PathLike | None = None,
    onnx: str | os.PathLike | None = None,
    input: str | os.PathLike | None = None,
    fast: bool = False,
    as_json: bool = False,
    device: int | str | None = None,
    show_devices: bool = False,
    keywords: list[str] | None = None,
    threshold: float | None = None,
    decide: str = DECIDE,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
    out: TextIO | None = None,
    err: TextIO | None = None,
    source: Source | None = None,
) -> ListenSummary | None:
    """Spot keywords in a live stream and print each detection as it happens.

    Args:
        model: checkpoint path; None = the model shipped with the package.
        onnx: an exported streaming step (`speechrnn export`) to run with onnxruntime instead of a
            checkpoint; its chunk and look-ahead are those it was exported with (`chunk_ms` and
            `lookahead_ms` are then ignored).
        input: audio file to replay instead of the microphone.
        fast: replay `input` as fast as possible instead of at real time.
        as_json: print one JSON object per detection (`{"keyword", "time", "score"}`).
        device: input device index or name substring (None: the default input).
        show_devices: print the audio devices and return.
        keywords: the keywords to spot: trained command words, or any word or short phrase spelled a-z
            (found by the CTC path). None: every command word the model was trained on.
        threshold: the score a keyword must reach (None: the decision's default).
        decide: how a trained command word is decided (`config.DECISIONS`, see `live.py`).
        chunk_ms, lookahead_ms: latency control of the recogniser (multiples of its step, 20 ms by default).
        reset_after_silence_ms: forget the recurrent state after this long a pause (see
            `StreamingRecognizer`); None never resets.
        out: where detections go (default stdout); err: messages, the status line and the summary (stderr).
        source: an already built source (tests); overrides `input` and `device`.

    Returns:
        The session summary (None for `show_devices`).

    Raises:
        SpeechRNNError: a bad model, file, device, keyword or setting; a device fault during the session.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if show_devices:
        out.write(list_devices() + "\n")
        return None
    if fast and input is None and source is None:
        raise SpeechRNNError("--fast replays a file: give it with --input FILE")
    if source is None:  # a missing input file is reported before the model is loaded
        source = FileSource(input, realtime=not fast) if input is not None else Microphone(device, BLOCK_MS)
    step = open_step(model, onnx, chunk_ms, lookahead_ms)
    listener = KeywordListener(
        step,
        keywords=keywords,
        threshold=threshold,
        reset_after_silence_ms=reset_after_silence_ms,
        decide=decide,
    )
    printer = _Printer(out, err, as_json, live_status=err.isatty())
    stats, failure = ListenStats(), []
    source.open()
    stream = listener.recognizer
    printer.message(
        f"{source.description}; chunk {stream.chunk_ms:g} ms + look-ahead {stream.lookahead_ms:g} ms; "
        "Ctrl-C stops"
    )
    interrupted = _run_worker(source, listener, printer, stats, failure)
    if failure:
        exc = failure[0]
        if isinstance(exc, SpeechRNNError):
            raise exc
        raise SpeechRNNError(f"listening failed: {type(exc).__name__}: {exc}") from exc
    summary = ListenSummary(
        stats.seconds, tuple(stats.detections), source.overruns, interrupted, stats.compute_s
    )
    printer.message(summary.line())
    return summary
