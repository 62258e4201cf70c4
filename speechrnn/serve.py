"""`speechrnn serve`: a local page that spots keywords through the browser's microphone and transcribes files.

The page (`speechrnn/web/`, plain JavaScript modules, no build step) captures the microphone with an
AudioWorklet, resamples it to 16 kHz mono and sends it over a WebSocket. Each connection gets its own live
stream (`LiveSpotter`: a `live.KeywordListener` over the step they share, as `listen` runs it), fed in a worker
thread so that the event loop, and every other client, goes on while it computes. After each block the
server sends back the input level, the keyword scores and any detections. A dropped file goes to
`transcribe`.

Protocol of `/live`: JSON text messages and binary audio.
  client `{"type": "start", "sample_rate": 16000, "format": "f32le", "keywords": [...] | null, "threshold": p}`
  client binary messages: float32 little-endian samples in [-1, 1], at most `max_frame_samples` each
  client `{"type": "config", "keywords": ..., "threshold": ...}`: any time; `{"type": "stop"}`: finish
  server `{"type": "ready", ...}`, then `{"type": "update", "time", "level", "scores", "detections"}` per block,
  `{"type": "error", "message"}` before it closes the connection for a fault or a limit.

Limits (`ServeConfig`; each message is checked in `serve_protocol`), each refused with a message that says
what was expected and what came: the page's Origin, the number of live streams, the message size, the audio
format, real-time pace, idle time and session length. Nothing listens beyond 127.0.0.1 unless `--host` says
so.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

import numpy as np

from .audio import SAMPLE_RATE
from .errors import SpeechRNNError
from .live import Heard, KeywordListener, open_step
from .recognizer import StreamOutput
from .serve_protocol import (
    AUDIO_FORMAT,
    CLOSE_BUSY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    LOOPBACK_NAMES,
    SAMPLE_BYTES,
    Refusal,
    ServeConfig,
    allowed_hosts,
    close_reason,
    decode_audio,
    origin_allowed,
    parse_message,
    parse_start,
    settings_of,
)
from .spotter import NON_KEYWORDS, Detection, KeywordSpotter, SpotterConfig

WEB_DIR = Path(__file__).with_name("web")


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
    """The server's one contact with the live engine: a `live.KeywordListener` for one stream.

    Args:
        step: what `load` returned, shared by every stream (a step holds no stream state).
        keywords: labels that may fire (None: every keyword; an empty list: none).
        threshold: every keyword's threshold (None: the model's per-keyword table, else `SpotterConfig`'s).

    Raises:
        SpeechRNNError: a keyword that is not one of the model's, or a threshold out of range.
    """

    _open: weakref.WeakSet = weakref.WeakSet()  # every live instance, for the leak check of `/stats`

    def __init__(self, step, keywords: list[str] | None = None, threshold: float | None = None):
        self._listener = KeywordListener(step)
        self._table = getattr(step, "thresholds", {}).get("label", {})  # the model's, calibrated per keyword
        self.labels = self._listener.recognizer.labels
        self.configure(keywords, threshold)
        LiveSpotter._open.add(self)

    @staticmethod
    def load(model=None, onnx: str | os.PathLike | None = None):
        """The step every stream shares (`live.open_step`): a checkpoint path or `Recognizer`, or an ONNX step."""
        return open_step(model, onnx)

    @property
    def keywords(self) -> tuple[str, ...]:
        """Every label that can fire."""
        return tuple(label for label in self.labels if label not in NON_KEYWORDS)

    @property
    def threshold(self) -> float:
        return self._listener.spotter.config.threshold

    def configure(self, keywords: list[str] | None = None, threshold: float | None = None) -> None:
        """Change the keywords that fire and the threshold, from the next block on."""
        # an empty tuple fires nothing (the page's "none"); the listener's own `keywords=[]` means every one
        config = SpotterConfig(keywords=None if keywords is None else tuple(keywords))
        if threshold is not None:
            config = dataclasses.replace(config, threshold=threshold)
        step_seconds = self._listener.recognizer.step_seconds
        table = self._table if threshold is None else {}
        self._listener.spotter = TakeoverSpotter(self.labels, step_seconds, config, table)

    def feed(self, audio: np.ndarray) -> LiveUpdate:
        """Run `(samples,)` float32 16 kHz audio through the stream."""
        return self._update(self._listener.accept(audio))

    @property
    def seconds(self) -> float:
        """Audio heard so far."""
        return self._listener.recognizer.samples / SAMPLE_RATE

    def finish(self) -> LiveUpdate:
        """End the stream as `listen` ends a file: a room's half second of silence, then the last steps."""
        return self._update(self._listener.finish())

    @staticmethod
    def _update(heard: Heard) -> LiveUpdate:
        out, seconds = heard.output, heard.samples / SAMPLE_RATE
        if not out.steps:
            return LiveUpdate(seconds, heard.level_db, None, None, heard.detections)
        probs = tuple(out.label_probs().max(axis=0).tolist())
        return LiveUpdate(seconds, heard.level_db, float(out.ready_seconds[-1]), probs, heard.detections)


class TakeoverSpotter(KeywordSpotter):
    """A `KeywordSpotter` that may take over a stream mid-way: it counts the stream as beginning at the first
    output it is given (smoothing and runs start afresh there); its detections keep the stream's step numbers.
    """

    def reset(self) -> None:
        super().reset()
        self.origin = None  # the stream step this spotter counts from; set by the first output

    def update(self, out: StreamOutput) -> list[Detection]:
        if self.origin is None:
            self.origin = out.start
        events = super().update(dataclasses.replace(out, start=out.start - self.origin))
        return [dataclasses.replace(e, step=e.step + self.origin) for e in events]


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

    Long: the routes are closures over the engine, the limits and the counters they share, kept in one view.

    Args:
        engine: `LiveSpotter.load`'s result: the step every live stream runs.
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
        transcriber = load_model(model)
        engine = LiveSpotter.load(model=transcriber if onnx is None else None, onnx=onnx)
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
