"""A Python client for `speechrnn serve`'s `/live` WebSocket: streams audio as the page does and collects
what the server sends back, alone or as a crowd of clients coming and going (`soak`); and the server itself
in a subprocess (`ServerProcess`). For checking a server without a browser (tests, `scripts/bench_serve.py`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE
from .errors import SpeechRNNError

BLOCK_SAMPLES = SAMPLE_RATE // 10  # what the page sends: 100 ms


@dataclass
class LiveResult:
    """What one live stream got back."""

    detections: list[dict] = field(default_factory=list)  # `{"keyword", "time", "score"}`, in order
    updates: int = 0  # update messages received
    errors: list[str] = field(default_factory=list)  # the server's error messages
    close_code: int | None = None  # how the connection was closed
    close_reason: str = ""
    last_scores: list[float] | None = None  # the last per-label scores received

    def take(self, message: dict) -> None:
        if message["type"] == "update":
            self.updates += 1
            self.detections += message["detections"]
            if message["scores"] is not None:
                self.last_scores = message["scores"]["p"]
        elif message["type"] == "error":
            self.errors.append(message["message"])

    @property
    def keywords(self) -> list[str]:
        return [d["keyword"] for d in self.detections]


def stream_audio(
    url: str,
    audio: np.ndarray,
    *,
    realtime: bool = True,
    block_samples: int = BLOCK_SAMPLES,
    keywords: list[str] | None = None,
    threshold: float | None = None,
    stop: bool = True,
    timeout: float = 30.0,
) -> LiveResult:
    """Stream `(samples,)` float32 16 kHz audio to a server's `/live`, paced as a microphone would be.

    Args:
        url: the server's `ws://host:port/live`.
        audio: what the microphone would hear.
        realtime: send each block when its last sample would have been recorded; False = at once.
        block_samples: samples per message.
        keywords, threshold: the spotter's settings (None: the server's defaults).
        stop: end with a stop message and wait for the last detections; False = just disconnect.
        timeout: the longest wait for a message once the audio is sent.

    Returns:
        Everything the server sent, and how it closed the connection.
    """
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    result = LiveResult()
    with connect(url, max_size=2**22, open_timeout=timeout, close_timeout=2) as ws:
        start = {"type": "start", "sample_rate": SAMPLE_RATE, "format": "f32le"}
        ws.send(json.dumps({**start, "keywords": keywords, "threshold": threshold}))
        try:
            result.take(json.loads(ws.recv(timeout=timeout)))
            began = time.monotonic()
            for i in range(0, audio.size, block_samples):
                block = np.ascontiguousarray(audio[i : i + block_samples], dtype="<f4")
                if realtime:
                    time.sleep(max(0.0, began + (i + block.size) / SAMPLE_RATE - time.monotonic()))
                ws.send(block.tobytes())
                _drain(ws, result, wait=0.0)
            if stop:
                ws.send(json.dumps({"type": "stop"}))
                _drain(ws, result, wait=timeout)
        except ConnectionClosed:  # closed by the server while sending: what it said before is still queued
            with contextlib.suppress(ConnectionClosed):
                _drain(ws, result, wait=0.0)
    result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
    return result


def _drain(ws, result: LiveResult, wait: float) -> None:
    """Take every message already received; with `wait`, go on until the server closes (or `wait` passes)."""
    while True:
        try:
            message = ws.recv(timeout=wait)
        except TimeoutError:
            return
        result.take(json.loads(message))


def soak(
    url: str, stats, audio: np.ndarray, *, seconds: float, clients: int = 4, sample_every: float = 1.0
) -> dict:
    """Clients coming and going for `seconds`: each in turn streams `audio` at real time to its end, leaves
    halfway through it, and sends bytes that are not audio. Samples the server's memory all along.

    Args:
        url: the server's `ws://host:port/live`.
        stats: a callable returning the server's `/stats`.
        audio: what the streaming clients say (a few seconds).
        seconds: how long clients keep coming.
        clients: how many at once.
        sample_every: seconds between memory samples.

    Returns:
        `sessions`, `detections`, `faults` (refused as they should be), `errors_unexpected`, the memory
        samples `rss_mb` with their `times_s`, and `growth_mb`: the median of the last quarter's samples less
        that of the second quarter's (the first is warm-up).
    """
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    counts = {"sessions": 0, "detections": 0, "faults": 0, "errors_unexpected": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds
    noise = np.random.default_rng(0).bytes(6400)

    def client(i: int) -> None:
        turn = i
        while time.monotonic() < end:
            kind = turn % 3
            turn += 1
            if kind == 2:
                with connect(url, close_timeout=2) as ws:
                    ws.send(json.dumps({"type": "start", "sample_rate": SAMPLE_RATE, "format": "f32le"}))
                    ws.send(noise)
                    bad = LiveResult()
                    with contextlib.suppress(ConnectionClosed):
                        _drain(ws, bad, wait=10.0)
                ok = ws.close_code == 1003 and len(bad.errors) == 1
                with lock:
                    counts["sessions"] += 1
                    counts["faults" if ok else "errors_unexpected"] += 1
                continue
            part = audio if kind == 0 else audio[: audio.size // 2]
            result = stream_audio(url, part, stop=kind == 0, timeout=60)
            with lock:
                counts["sessions"] += 1
                counts["detections"] += len(result.detections)
                counts["errors_unexpected"] += len(result.errors)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.monotonic()
    times, rss = [], []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        times.append(round(time.monotonic() - t0, 1))
        rss.append(stats()["rss_mb"])
        time.sleep(sample_every)
    for t in threads:
        t.join()
    quarter = max(1, len(rss) // 4)
    growth = float(np.median(rss[-quarter:]) - np.median(rss[quarter : 2 * quarter] or rss[:quarter]))
    return {**counts, "growth_mb": round(growth, 1), "times_s": times, "rss_mb": rss}


class ServerProcess:
    """`python -m speechrnn serve --port 0 ARGS...` in a subprocess, as users run it; a context manager.

    `url` is its `http://127.0.0.1:PORT`, `ws` its `/live`, and `log` what it wrote after the address.
    """

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speechrnn", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stderr.readline()  # the first line says where it listens
        if not line.startswith("serve: http://"):
            self.proc.kill()
            raise SpeechRNNError(f"expected the server's address, got {line!r}{self.proc.stderr.read()}")
        self.url = line.split()[1].rstrip("/")
        self.ws = self.url.replace("http://", "ws://") + "/live"
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self.get("/stats")

    def wait_idle(self, timeout: float = 30.0) -> dict:
        """`/stats` once every live stream is closed and released (or `timeout` passed)."""
        end = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if (stats["connections"], stats["streams"]) == (0, 0) or time.monotonic() > end:
                return stats
            time.sleep(0.2)

    def stop(self) -> int:
        """Stop it as Ctrl-C would; returns its exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.stop()
