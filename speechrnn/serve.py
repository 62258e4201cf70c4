"""`speechrnn serve`: a local page that spots keywords through the browser's microphone and transcribes files.

The page (`speechrnn/web/`, plain JavaScript modules, no build step) captures the microphone with an
AudioWorklet, resamples it to 16 kHz mono and sends it over a WebSocket. Each connection gets its own live
stream (`LiveSpotter`: the streaming recogniser and the spotter, as `listen` runs them), fed in a worker
thread so that the event loop, and every other client, goes on while it computes. After each block the
server sends back the input level, the keyword scores and any detections. A dropped file goes to
`transcribe`.

Protocol of `/live`: JSON text messages and binary audio.
  client `{"type": "start", "sample_rate": 16000, "format": "f32le", "keywords": [...] | null, "threshold": p}`
  client binary messages: float32 little-endian samples in [-1, 1], at most `max_frame_samples` each
  client `{"type": "config", "keywords": ..., "threshold": ...}`: any time; `{"type": "stop"}`: finish
  server `{"type": "ready", ...}`, then `{"type": "update", "time", "level", "scores", "detections"}` per block,
  `{"type": "error", "message"}` before it closes the connection for a fault or a limit.

Limits (`ServeConfig`), each refused with a message that says what was expected and what came: the page's
Origin, the number of live streams, the message size, the audio format, real-time pace, idle time and
session length. Nothing listens beyond 127.0.0.1 unless `--host` says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import numpy as np

from .audio import SAMPLE_RATE
from .errors import SpeechRNNError

WEB_DIR = Path(__file__).with_name("web")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
AUDIO_FORMAT = "f32le"  # the one sample format the page sends: float32 little-endian
SAMPLE_BYTES = 4
MAX_SAMPLE = 1.0  # captured audio stays within full scale; far beyond it, the bytes are not audio
SILENT_DB = -120.0  # the level reported for digital silence

# WebSocket close codes (RFC 6455 section 7.4.1; 4000-4999 are the application's own)
CLOSE_NORMAL, CLOSE_UNSUPPORTED, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_BUSY = 1000, 1003, 1008, 1009, 1013


@dataclass(frozen=True)
class ServeConfig:
    """Where the server listens and what one client may ask of it."""

    host: str = "127.0.0.1"  # loopback only unless told otherwise
    port: int = 8000  # 0: any free port (the URL printed says which)
    max_connections: int = 16  # live streams at once; one more is refused
    max_session_s: float = 3600.0  # a live stream is closed after this long
    idle_s: float = 30.0  # ... or after this long without a message
    max_frame_s: float = 1.0  # the longest audio message
    max_ahead_s: float = 5.0  # how far audio may run ahead of the wall clock (a burst after a stall)
    max_upload_mb: float = 50.0  # the largest file the drop zone transcribes

    @property
    def max_frame_samples(self) -> int:
        return round(self.max_frame_s * SAMPLE_RATE)


class Refusal(SpeechRNNError):
    """A client's fault or a limit reached: sent as an error message, then the connection is closed."""

    def __init__(self, message: str, code: int = CLOSE_POLICY):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LiveUpdate:
    """What one block of audio changed in a live stream."""

    time: float  # seconds of audio heard so far
    level_db: float  # RMS level of the block, dBFS
    score_time: float | None  # ready time (s) of the last step scored in this block; None: no step yet
    scores: tuple[float, ...] | None  # per label, the highest probability over this block's steps
    detections: tuple  # `Detection`s decided in this block

    def to_message(self) -> dict:
        return {
            "type": "update",
            "time": round(self.time, 3),
            "level": round(self.level_db, 1),
            "scores": None
            if self.scores is None
            else {"time": round(self.score_time, 3), "p": [round(p, 3) for p in self.scores]},
            "detections": [d.to_dict() for d in self.detections],
        }


class LiveSpotter:
    """The server's one contact with the live engine: a recogniser and a spotter for one stream.

    Args:
        engine: what `load` returned: a `Recognizer` (shared by every stream; inference only) or the path of
            an exported ONNX step (each stream opens its own session).
        keywords: labels that may fire (None: every keyword; an empty list: none).
        threshold: the spotter's threshold (None: `SpotterConfig`'s default).

    Raises:
        SpeechRNNError: a keyword that is not one of the model's, or a threshold out of range.
    """

    _open: weakref.WeakSet = weakref.WeakSet()  # every live instance, for the leak check of `/stats`

    def __init__(self, engine, keywords: list[str] | None = None, threshold: float | None = None):
        from .listen import RESET_AFTER_SILENCE_MS
        from .streaming import LIVE_CHUNK_MS, LIVE_LOOKAHEAD_MS, StreamingRecognizer

        if isinstance(engine, Path):
            from .onnx_runner import OnnxStreamingRecognizer

            self._stream = OnnxStreamingRecognizer(engine, reset_after_silence_ms=RESET_AFTER_SILENCE_MS)
            self.labels = self._stream.labels
        else:
            self._stream = StreamingRecognizer(
                engine, LIVE_CHUNK_MS, LIVE_LOOKAHEAD_MS, reset_after_silence_ms=RESET_AFTER_SILENCE_MS
            )
            self.labels = engine.labels
        self._next_step = 0  # the stream's next encoder step
        self.configure(keywords, threshold)
        LiveSpotter._open.add(self)

    @staticmethod
    def load(model: str | os.PathLike | None = None, onnx: str | os.PathLike | None = None):
        """The engine every stream shares: a loaded checkpoint, or a checked ONNX step's path."""
        if onnx is not None:
            from .onnx_runner import load_session

            load_session(onnx)  # a missing or unusable file is reported now, not at the first client
            return Path(onnx)
        from .checkpoint import load_model

        return load_model(model)

    @property
    def keywords(self) -> tuple[str, ...]:
        """Every label that can fire."""
        from .spotter import NON_KEYWORDS

        return tuple(label for label in self.labels if label not in NON_KEYWORDS)

    @property
    def threshold(self) -> float:
        return self._spotter.config.threshold

    def configure(self, keywords: list[str] | None = None, threshold: float | None = None) -> None:
        """Change the keywords that fire and the threshold, from the next block on."""
        from .spotter import KeywordSpotter, SpotterConfig

        config = SpotterConfig(keywords=None if keywords is None else tuple(keywords))
        if threshold is not None:
            config = dataclasses.replace(config, threshold=threshold)
        self._spotter = KeywordSpotter(self.labels, self._stream.step_seconds, config)
        self._spotter_start = self._next_step  # a new spotter counts steps from 0

    def feed(self, audio: np.ndarray) -> LiveUpdate:
        """Run `(samples,)` float32 16 kHz audio through the stream."""
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
        level = 20 * math.log10(rms) if rms > 0 else SILENT_DB
        out = self._stream.accept(audio)
        return self._update(out, self.seconds, max(level, SILENT_DB))

    @property
    def seconds(self) -> float:
        """Audio heard so far."""
        return self._stream.samples / SAMPLE_RATE

    def finish(self) -> LiveUpdate:
        """End the stream as `listen` ends a file: a room's half second of silence, then the last steps."""
        from .listen import END_SILENCE_S
        from .streaming import StreamOutput

        end = self._stream.accept(np.zeros(round(END_SILENCE_S * SAMPLE_RATE), np.float32))
        heard = self.seconds
        outs = [o for o in (end, self._stream.flush()) if o.steps]
        return self._update(StreamOutput.concat(outs) if outs else end, heard, SILENT_DB)

    def _update(self, out, heard: float, level_db: float) -> LiveUpdate:
        if not out.steps:
            return LiveUpdate(heard, level_db, None, None, ())
        self._next_step = out.end
        events = self._spotter.update(dataclasses.replace(out, start=out.start - self._spotter_start))
        probs = out.label_logits.double().softmax(dim=-1).amax(dim=0)
        score_time = float(out.ready_seconds[-1])
        return LiveUpdate(heard, level_db, score_time, tuple(probs.tolist()), tuple(events))


def origin_allowed(origin: str, host_header: str, bind_host: str) -> bool:
    """Whether a WebSocket from a page at `origin` may connect: the page must be this server's own.

    Bound to a named address, the Origin's host must be that address or a loopback name as well, so that a
    hostile page whose name was made to resolve to this machine (DNS rebinding) is still refused.
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.netloc != host_header:
        return False
    return bind_host in WILDCARD_HOSTS or parts.hostname in (*LOOPBACK_NAMES, bind_host)


def allowed_hosts(bind_host: str) -> list[str]:
    """Host headers the server answers (a DNS-rebinding guard); any host when bound to every address."""
    return ["*"] if bind_host in WILDCARD_HOSTS else [*LOOPBACK_NAMES, bind_host]


def decode_audio(data: bytes, config: ServeConfig) -> np.ndarray:
    """One binary message as `(samples,)` float32 audio.

    Raises:
        Refusal: a message of no whole samples, too long, or of bytes that are not audio.
    """
    if len(data) > config.max_frame_samples * SAMPLE_BYTES:
        raise Refusal(
            f"expected audio messages of at most {config.max_frame_samples} samples "
            f"({config.max_frame_samples * SAMPLE_BYTES} bytes), got {len(data)} bytes",
            CLOSE_TOO_BIG,
        )
    if not data or len(data) % SAMPLE_BYTES:
        raise Refusal(
            f"expected whole {AUDIO_FORMAT} samples ({SAMPLE_BYTES} bytes each), got {len(data)} bytes",
            CLOSE_UNSUPPORTED,
        )
    audio = np.frombuffer(data, dtype="<f4").astype(np.float32)
    finite = np.isfinite(audio)
    if not finite.all() or np.abs(audio).max() > MAX_SAMPLE:
        bad = int((~finite).sum()) + int((np.abs(audio[finite]) > MAX_SAMPLE).sum())
        raise Refusal(
            f"expected {AUDIO_FORMAT} audio samples within [-{MAX_SAMPLE:g}, {MAX_SAMPLE:g}], got {bad} of "
            f"{audio.size} outside it (not audio)",
            CLOSE_UNSUPPORTED,
        )
    return audio


def parse_start(text: str) -> dict:
    """The client's first message, checked: `{"type": "start", "sample_rate", "format", ...}`."""
    message = parse_message(text)
    if message.get("type") != "start":
        raise Refusal(f'expected a {{"type": "start"}} message first, got {text[:80]!r}', CLOSE_UNSUPPORTED)
    rate, fmt = message.get("sample_rate"), message.get("format", AUDIO_FORMAT)
    if rate != SAMPLE_RATE:
        raise Refusal(f"expected audio at {SAMPLE_RATE} Hz, got sample_rate {rate!r}", CLOSE_UNSUPPORTED)
    if fmt != AUDIO_FORMAT:
        raise Refusal(f"expected format {AUDIO_FORMAT!r}, got {fmt!r}", CLOSE_UNSUPPORTED)
    return message


def parse_message(text: str) -> dict:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise Refusal(f"expected a JSON object, got {text[:80]!r}", CLOSE_UNSUPPORTED)
    return message


def settings_of(message: dict) -> tuple[list[str] | None, float | None]:
    """The `keywords` and `threshold` of a start or config message."""
    keywords, threshold = message.get("keywords"), message.get("threshold")
    if keywords is not None and not (
        isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)
    ):
        raise Refusal(f"expected keywords as a list of words or null, got {keywords!r}", CLOSE_UNSUPPORTED)
    if threshold is not None and not isinstance(threshold, int | float):
        raise Refusal(f"expected threshold as a number, got {threshold!r}", CLOSE_UNSUPPORTED)
    return keywords, threshold


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class ServerStats:
    """Counters since the server started (`/stats`)."""

    connections: int = 0  # live streams open now
    sessions: int = 0  # live streams accepted in all
    refused: int = 0  # connections closed for a fault or a limit
    audio_s: float = 0.0  # audio heard, all streams
    compute_s: float = 0.0  # wall time of the engine's calls, all streams (waits for a core included)
    started: float = dataclasses.field(default_factory=time.monotonic)


def make_app(engine, transcriber, config: ServeConfig = ServeConfig(), model_name: str = ""):
    """The Starlette application: the page, `/info`, `/stats`, `/transcribe` and the `/live` WebSocket.

    Args:
        engine: `LiveSpotter.load`'s result, for the live streams.
        transcriber: the `Recognizer` that uploads are transcribed with.
        config: limits and the bind address (for the Origin and Host checks).
        model_name: what the page says it is running.
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocketDisconnect

    probe = LiveSpotter(engine)
    stats = ServerStats()
    workers = anyio.CapacityLimiter(config.max_connections)  # a thread for every stream that may be open
    uploads = anyio.CapacityLimiter(1)  # one transcription at a time leaves the cores to the live streams
    info = {
        "model": model_name,
        "labels": list(probe.labels),
        "keywords": list(probe.keywords),
        "threshold": probe.threshold,
        "sample_rate": SAMPLE_RATE,
        "format": AUDIO_FORMAT,
        "max_frame_samples": config.max_frame_samples,
        "max_session_s": config.max_session_s,
        "max_upload_mb": config.max_upload_mb,
    }
    del probe

    async def page(request):
        return FileResponse(WEB_DIR / "index.html")

    async def get_info(request):
        return JSONResponse(info)

    async def get_stats(request):
        import gc

        gc.collect()  # so that `streams` counts only what is really still held
        return JSONResponse(
            {
                **{k: v for k, v in dataclasses.asdict(stats).items() if k != "started"},
                "uptime_s": time.monotonic() - stats.started,
                "streams": len(LiveSpotter._open),
                "threads": threading.active_count(),
                "rss_mb": round(rss_mb(), 1),
                "cpu_s": round(time.process_time(), 2),  # the whole server's, every thread
                "real_time_factor": stats.compute_s / stats.audio_s if stats.audio_s else 0.0,
            }
        )

    async def post_transcribe(request):
        limit = int(config.max_upload_mb * 2**20)
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            return too_large(declared)
        name = Path(request.query_params.get("name", "")).name or "upload.wav"
        safe = re.sub(r"[^\w.-]", "_", name).lstrip(".") or "upload.wav"  # kept for its suffix, nothing else
        with tempfile.TemporaryDirectory(prefix="speechrnn-serve-") as tmp:
            path = Path(tmp) / safe
            size = 0
            with open(path, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return too_large(size)
                    f.write(chunk)
            if size == 0:
                return JSONResponse({"error": "expected an audio file, got an empty upload"}, 400)
            try:
                async with uploads:
                    result = await anyio.to_thread.run_sync(transcribe_file, path)
            except SpeechRNNError as err:
                return JSONResponse({"error": str(err).replace(str(path), name)}, 400)
        return JSONResponse({**result.to_dict(), "path": name, "duration": round(result.duration, 3)})

    def too_large(size: int):
        return JSONResponse(
            {"error": f"expected a file of at most {config.max_upload_mb:g} MB, got {size / 2**20:.2f} MB"},
            413,
        )

    def transcribe_file(path: Path):
        from .transcribe import transcribe

        return transcribe(path, model=transcriber)

    async def live(websocket):
        origin = websocket.headers.get("origin")
        if origin is not None and not origin_allowed(origin, websocket.headers.get("host", ""), config.host):
            stats.refused += 1
            message = f"expected a page served by this server, got a connection from Origin {origin}"
            await websocket.send_denial_response(PlainTextResponse(message, status_code=403))
            return
        await websocket.accept()
        if stats.connections >= config.max_connections:
            stats.refused += 1
            busy = f"server busy: expected at most {config.max_connections} live streams, got one more"
            await refuse(websocket, Refusal(busy, CLOSE_BUSY))
            return
        stats.connections += 1
        stats.sessions += 1
        try:
            await run_session(websocket)
        except WebSocketDisconnect:
            pass  # the client went away, mid-word or not: its stream is dropped with it
        except Refusal as err:
            stats.refused += 1
            await refuse(websocket, err)
        finally:
            stats.connections -= 1

    async def refuse(websocket, err: Refusal) -> None:
        try:
            await websocket.send_json({"type": "error", "message": str(err)})
            await websocket.close(err.code, close_reason(str(err)))
        except WebSocketDisconnect:
            pass  # gone already

    async def receive(websocket, deadline: float) -> dict:
        """The next message, within the idle time and the session's end."""
        wait = min(config.idle_s, deadline - time.monotonic())
        with anyio.move_on_after(max(wait, 0.0)):
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            return message
        if time.monotonic() >= deadline:
            raise Refusal(
                f"session limit: a live stream may last {config.max_session_s:g} s; reconnect to go on",
                CLOSE_NORMAL,
            )
        raise Refusal(f"expected audio at least every {config.idle_s:g} s, got nothing for that long")

    async def run_session(websocket) -> None:
        deadline = time.monotonic() + config.max_session_s
        first = await receive(websocket, deadline)
        if first.get("text") is None:
            raise Refusal(
                'expected a {"type": "start"} text message first, got binary data', CLOSE_UNSUPPORTED
            )
        keywords, threshold = settings_of(parse_start(first["text"]))
        try:
            spotter = await anyio.to_thread.run_sync(
                LiveSpotter, engine, keywords, threshold, limiter=workers
            )
        except SpeechRNNError as err:
            raise Refusal(str(err), CLOSE_UNSUPPORTED) from None
        await websocket.send_json({"type": "ready", **info, "threshold": spotter.threshold})
        started = None  # wall-clock time of the first audio
        while True:
            message = await receive(websocket, deadline)
            if message.get("text") is not None:
                request = parse_message(message["text"])
                if request.get("type") == "stop":
                    update = await anyio.to_thread.run_sync(spotter.finish, limiter=workers)
                    await websocket.send_json(update.to_message())
                    await websocket.close(CLOSE_NORMAL, "stopped")
                    return
                if request.get("type") != "config":
                    raise Refusal(f'expected a "config" or "stop" message, got {message["text"][:80]!r}')
                keywords, threshold = settings_of(request)
                try:
                    spotter.configure(keywords, threshold)
                except SpeechRNNError as err:  # an unknown keyword, a threshold out of range: say so, go on
                    await websocket.send_json({"type": "warning", "message": str(err)})
                continue
            audio = decode_audio(message.get("bytes") or b"", config)
            now = time.monotonic()
            started = started or now
            heard = spotter.seconds + audio.size / SAMPLE_RATE
            if heard - (now - started) > config.max_ahead_s:
                raise Refusal(
                    f"expected audio at real time, got {heard:.1f} s of it in {now - started:.1f} s",
                    CLOSE_POLICY,
                )
            t0 = time.perf_counter()
            update = await anyio.to_thread.run_sync(spotter.feed, audio, limiter=workers)
            stats.compute_s += time.perf_counter() - t0
            stats.audio_s += audio.size / SAMPLE_RATE
            await websocket.send_json(update.to_message())

    return Starlette(
        routes=[
            Route("/", page),
            Route("/info", get_info),
            Route("/stats", get_stats),
            Route("/transcribe", post_transcribe, methods=["POST"]),
            WebSocketRoute("/live", live),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(config.host))],
    )


def close_reason(message: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    data = message.encode()
    return message if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free one).

    Raises:
        SpeechRNNError: the address cannot be bound (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SpeechRNNError(f"expected to listen on {host}:{port}, got {err.strerror or err}") from None
    sock.listen(128)
    return sock


def serve(
    *,
    model: str | os.PathLike | None = None,
    onnx: str | os.PathLike | None = None,
    config: ServeConfig = ServeConfig(),
    err: TextIO | None = None,
) -> None:
    """Serve the page until Ctrl-C.

    Args:
        model: checkpoint for the live streams and uploads; None = the model shipped with the package.
        onnx: an exported streaming step (`speechrnn export`) to run the live streams with onnxruntime;
            uploads are then transcribed with `model`.
        config: address, port and limits.
        err: where the address and messages go (default stderr).

    Raises:
        SpeechRNNError: a bad model or ONNX file, both given, the server libraries missing, or an address
            that cannot be bound.
    """
    err = err or sys.stderr
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise SpeechRNNError("serve needs its web server: pip install 'speechrnn[serve]'") from None
    import torch

    from .checkpoint import load_model

    if onnx is not None and model is not None:
        raise SpeechRNNError("give a checkpoint (--model) or an exported ONNX step (--onnx), not both")
    torch.set_num_threads(1)  # many small streams at once: threads of their own beat a shared pool
    sock = bind(config.host, config.port)  # a port in use is said before the model loads
    port = sock.getsockname()[1]
    try:
        engine = LiveSpotter.load(model=model, onnx=onnx)
        transcriber = engine if onnx is None else load_model(model)
    except BaseException:
        sock.close()
        raise
    name = os.fspath(onnx if onnx is not None else model or "the shipped model")
    app = make_app(engine, transcriber, config, model_name=Path(name).name)
    where = f"[{config.host}]" if ":" in config.host else config.host
    print(f"serve: http://{where}:{port}/ ({name}); Ctrl-C stops", file=err, flush=True)
    if config.host not in LOOPBACK_NAMES:
        print(f"serve: listening on {config.host}: anyone who can reach this machine can use it", file=err)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down cleanly, then passes the Ctrl-C on
        make_server(app, config).run(sockets=[sock])
    print("serve: stopped", file=err, flush=True)


def make_server(app, config: ServeConfig):
    """The uvicorn server for `app`; `.run(sockets=[bind(...)])` serves until `.should_exit` is set."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws_max_size=4 * config.max_frame_samples * SAMPLE_BYTES,  # beyond the app's own clear refusal
            ws_per_message_deflate=False,  # audio does not compress, and inflating is a way to exhaust memory
        )
    )
