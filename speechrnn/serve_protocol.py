"""The `/live` WebSocket protocol of `speechrnn serve` and its limits: what a client may send, checked.

Each check refuses with a `Refusal` that says what was expected and what came, and carries the close code
(RFC 6455) the server closes the connection with. Pure functions of the message and `ServeConfig`; the
server (`serve.py`) owns the connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from .audio import SAMPLE_RATE
from .errors import SpeechRNNError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
AUDIO_FORMAT = "f32le"  # the one sample format the page sends: float32 little-endian
SAMPLE_BYTES = 4
MAX_SAMPLE = 1.0  # captured audio stays within full scale; far beyond it, the bytes are not audio

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


def close_reason(message: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    data = message.encode()
    return message if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."
