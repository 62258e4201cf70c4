"""`speechrnn listen`: the file path end to end, microphone faults with a stand-in PortAudio, and (marker
`soundserver`) the real thing: a PulseAudio daemon with a null sink, played into with paplay."""

from __future__ import annotations

import _thread
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from speechrnn.audio import SAMPLE_RATE, load_audio, save_audio
from speechrnn.checkpoint import default_model_path, save_checkpoint
from speechrnn.cli import main
from speechrnn.errors import SpeechRNNError
from speechrnn.listen import END_SILENCE_S, FileSource, listen
from speechrnn.microphone import Microphone, StreamResampler, list_devices
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.words import KWS12_WORDS, SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
LABELS = (SILENCE, UNKNOWN, *KWS12_WORDS)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=len(LABELS), hidden=16, layers=2, attn_dim=8), LABELS)
    path = tmp_path_factory.mktemp("model") / "random.pt"
    save_checkpoint(path, model)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 1.0) * (t < 1.5) + 0.01 * rng.standard_normal(t.size)
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    save_audio(path, audio.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Two committed sample commands with pauses around them: `yes` ends near 1.5 s, `left` near 3.3 s."""
    samples = ROOT / "data" / "samples"
    yes, left = (load_audio(next(samples.glob(f"{word}_*.flac"))) for word in ("yes", "left"))
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    save_audio(path, np.concatenate([gap, yes, gap, left, gap]))
    return path


# --- the file path -------------------------------------------------------------------------------------


def test_listen_input_fast_json_prints_json_lines(speech, capsys):
    """The shipped model hears both commands of the file, one JSON line each."""
    assert main(["listen", "--input", str(speech), "--fast", "--json"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["keyword"] for e in events] == ["yes", "left"], events
    assert all(set(e) == {"keyword", "time", "score"} and 0.5 <= e["score"] <= 1 for e in events)
    duration = load_audio(speech).size / SAMPLE_RATE
    assert 0.5 < events[0]["time"] < events[1]["time"] < duration + END_SILENCE_S
    assert f"done: {duration:.1f} s of audio, 2 detections" in captured.err


def test_detections_are_printed_as_json(model_path, clip, capsys):
    """Threshold 0 makes the random model fire: every printed line is a well-formed event."""
    summary = listen(model=model_path, input=clip, fast=True, as_json=True, threshold=0.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(summary.detections) > 0
    events = [json.loads(line) for line in lines]
    end = 2.5 + END_SILENCE_S  # the file, then the silence that follows its end
    assert all(e["keyword"] in KWS12_WORDS and 0 <= e["time"] <= end and 0 <= e["score"] <= 1 for e in events)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert not summary.interrupted and summary.overruns == 0


def test_readable_output_and_keyword_filter(speech, capsys):
    summary = listen(input=speech, fast=True, keywords=["left"])
    out = capsys.readouterr().out
    assert [d.keyword for d in summary.detections] == ["left"]  # `yes` is heard, but not wanted
    assert out.count(" s  left") == 1 and out.count("\n") == 1


def test_a_worker_failure_ends_listen_with_a_clear_error(model_path, clip):
    """An unexpected exception in the worker (here from the source) stops the session, closes the source
    and reaches the caller as a SpeechRNNError naming it, instead of a hang or a silent end."""

    class Failing(FileSource):
        reads = 0

        def read(self, timeout):
            self.reads += 1
            if self.reads == 5:
                raise RuntimeError("the sound card caught fire")
            return super().read(timeout)

    source = Failing(clip, realtime=False)
    with pytest.raises(SpeechRNNError, match="listening failed: RuntimeError: the sound card caught fire"):
        listen(model=model_path, source=source, err=io.StringIO())
    assert source._stop.is_set()  # closed


def test_a_read_error_in_the_middle_of_a_file_is_reported(model_path, clip, monkeypatch):
    """A file that fails after its first blocks (a truncated download, a disk error): the blocks read are
    heard, then the error reaches the caller with the file's name."""
    from speechrnn import listen as listen_module

    def broken(path, block_seconds):
        yield np.zeros(round(block_seconds * SAMPLE_RATE), np.float32)
        yield np.zeros(round(block_seconds * SAMPLE_RATE), np.float32)
        raise SpeechRNNError(f"{path}: read error after 0.2 s (the file is truncated)")

    monkeypatch.setattr(listen_module, "read_blocks", broken)
    err = io.StringIO()
    with pytest.raises(SpeechRNNError, match=r"clip\.wav: read error after 0\.2 s"):
        listen(model=model_path, input=clip, fast=True, err=err)
    assert "file " in err.getvalue()  # the session had started


def test_a_missing_portaudio_gives_a_clear_error(model_path, tmp_path, monkeypatch, capsys):
    """sounddevice raises OSError at import when libportaudio is missing: a message that says what to
    install, from the microphone, from listen without --input, and from --list-devices; a file still plays."""
    fake = tmp_path / "fake_sounddevice"
    fake.mkdir()
    (fake / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    with pytest.raises(SpeechRNNError, match="PortAudio library is missing .*install libportaudio2"):
        Microphone().open()
    with pytest.raises(SpeechRNNError, match="PortAudio library is missing"):
        listen(model=model_path, err=io.StringIO())
    assert main(["listen", "--list-devices"]) == 2
    assert "install libportaudio2" in capsys.readouterr().err


def test_clear_errors(model_path, clip, tmp_path, capsys):
    assert main(["listen", "--model", str(model_path), "--input", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err
    assert main(["listen", "--model", str(model_path), "--input", str(clip), "--keywords", "r2-d2"]) == 2
    assert "cannot spot 'r2-d2'" in capsys.readouterr().err
    assert main(["listen", "--model", str(model_path), "--input", str(clip), "--chunk-ms", "50"]) == 2
    assert "multiple of the model's 20 ms step" in capsys.readouterr().err
    assert main(["listen", "--model", str(model_path), "--fast"]) == 2
    assert "--fast replays a file" in capsys.readouterr().err
    assert main(["listen", "--model", str(tmp_path / "none.pt"), "--input", str(clip)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_list_devices(capsys):
    assert main(["listen", "--list-devices"]) == 0
    assert capsys.readouterr().out.strip()  # the devices, or a sentence saying there are none
    fake = FakeBackend()
    assert "fake mic" in list_devices(fake)
    assert "no audio devices" in list_devices(FakeBackend(devices=[]))


def test_file_source_replays_at_real_time(clip):
    source = FileSource(clip, realtime=True, block_ms=100)
    source.open()
    start, got = time.monotonic(), 0
    try:
        while got < SAMPLE_RATE // 2:
            block = source.read(timeout=1.0)
            assert block is not None
            got += block.audio.size
    finally:
        source.close()
    assert time.monotonic() - start >= 0.4  # half a second of audio takes about half a second


# --- the microphone, with a stand-in PortAudio ---------------------------------------------------------


class FakePortAudioError(Exception):
    pass


class FakeStream:
    """Calls the callback from its own thread like PortAudio, following the backend's script."""

    def __init__(self, backend: FakeBackend, **kwargs):
        if backend.open_error:
            raise FakePortAudioError(backend.open_error)
        self.backend, self.kwargs = backend, kwargs
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def start(self) -> None:
        self.active = True
        self._thread.start()

    def _feed(self) -> None:
        rate, block = self.kwargs["samplerate"], self.kwargs["blocksize"]
        t = np.arange(block) / rate
        for i in range(self.backend.blocks):
            if self._stop.wait(self.backend.interval):
                return
            data = (0.1 * np.sin(2 * np.pi * 300 * (t + i * block / rate)))[:, None].astype(np.float32)
            flags = SimpleNamespace(input_overflow=i in self.backend.overflow_at)
            self.kwargs["callback"](data, block, None, flags)
        if self.backend.vanish:  # the device is unplugged: PortAudio ends the stream
            self.active = False
            self.kwargs["finished_callback"]()
        # otherwise the device just goes quiet (a stalled driver)

    def stop(self) -> None:
        self._stop.set()
        self.active = False

    def close(self) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)


class FakeBackend:
    """The few sounddevice functions `Microphone` uses."""

    PortAudioError = FakePortAudioError

    def __init__(
        self,
        devices=None,
        rates=(SAMPLE_RATE,),
        default_rate=48000,
        open_error=None,
        blocks=30,
        interval=0.005,
        overflow_at=(),
        vanish=True,
    ):
        self.devices = [{"name": "fake mic", "max_input_channels": 1}] if devices is None else devices
        self.rates, self.default_rate, self.open_error = rates, default_rate, open_error
        self.blocks, self.interval, self.overflow_at, self.vanish = blocks, interval, set(overflow_at), vanish
        self.streams: list[FakeStream] = []

    def query_devices(self, device=None, kind=None):
        if device is None and kind is None:
            return "\n".join(f"> {i} {d['name']}" for i, d in enumerate(self.devices))
        if not self.devices:
            raise FakePortAudioError("Error querying device -1")
        if device not in (None, 0, "fake"):
            raise ValueError(f"No input device matching {device!r}")
        return {**self.devices[0], "default_samplerate": float(self.default_rate)}

    def check_input_settings(self, device=None, channels=None, samplerate=None, dtype=None):
        if samplerate not in self.rates:
            raise FakePortAudioError("Invalid sample rate [PaErrorCode -9997]")

    def InputStream(self, **kwargs):  # noqa: N802 - sounddevice's name
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream


def test_microphone_device_faults_give_clear_errors():
    with pytest.raises(SpeechRNNError, match="no audio input device found .*--list-devices"):
        Microphone(backend=FakeBackend(devices=[])).open()
    with pytest.raises(SpeechRNNError, match="no input device 'usb' .*No input device matching"):
        Microphone("usb", backend=FakeBackend()).open()
    with pytest.raises(
        SpeechRNNError, match="could not start recording from the default input device .*busy"
    ):
        Microphone(backend=FakeBackend(open_error="Device unavailable: busy")).open()
    with pytest.raises(SpeechRNNError, match="refuses mono audio at 16000 Hz .* and at its default 48000 Hz"):
        Microphone(backend=FakeBackend(rates=())).open()


def test_microphone_resamples_a_rate_it_cannot_get():
    backend = FakeBackend(rates=(48000,), blocks=20)
    mic = Microphone(backend=backend)
    with mic:
        assert backend.streams[0].kwargs["samplerate"] == 48000 and mic.rate == 48000
        assert "resampled to 16000 Hz" in mic.description
        got = []
        while sum(b.size for b in got) < 16000 * 2 - 400:
            block = mic.read(timeout=1.0)
            assert block is not None
            got.append(block.audio)
    audio = np.concatenate(got)
    t = np.arange(audio.size) / SAMPLE_RATE
    expected = 0.1 * np.sin(2 * np.pi * 300 * t)
    np.testing.assert_allclose(audio[100:], expected[100:], atol=2e-3)


def test_overruns_are_counted_and_the_stream_goes_on(model_path, capsys):
    backend = FakeBackend(blocks=40, overflow_at=(3, 4, 20), vanish=False)
    mic = Microphone(backend=backend, stall_seconds=0.3)
    with pytest.raises(SpeechRNNError, match="no audio from .* for"):  # after 40 blocks the fake goes quiet
        listen(model=model_path, source=mic)
    assert mic.overflows == 3
    assert "microphone" in capsys.readouterr().err


def test_a_vanishing_device_ends_with_a_clear_error_not_a_hang(model_path):
    mic = Microphone(backend=FakeBackend(blocks=10, vanish=True))
    start = time.monotonic()
    with pytest.raises(SpeechRNNError, match="input stream from .* stopped .*disconnected"):
        listen(model=model_path, source=mic)
    assert time.monotonic() - start < 5.0
    assert mic._stream is None  # closed


def test_queue_overflow_drops_blocks_and_counts_them():
    mic = Microphone(backend=FakeBackend(blocks=12), block_ms=100, max_queued_s=0.5)  # 5 blocks fit
    mic.open()
    try:
        time.sleep(0.3)  # nobody reads: the queue fills
        assert mic.dropped >= 1 and mic.overruns == mic.dropped
    finally:
        mic.close()


def test_ctrl_c_stops_cleanly_with_a_summary(model_path, capsys, request):
    # A job that a shell starts in the background inherits SIGINT ignored, and interrupt_main then does
    # nothing: give Python's own handler back for the test. And 30 s of blocks, not 10**6: a lost interrupt
    # then fails the test (the fake goes quiet) instead of hanging it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    backend = FakeBackend(blocks=3000, interval=0.01, vanish=False)
    timer = threading.Timer(0.8, _thread.interrupt_main)
    timer.start()
    summary = listen(model=model_path, source=Microphone(backend=backend))
    timer.join()
    assert summary.interrupted and summary.seconds > 0
    assert "stopped:" in capsys.readouterr().err
    assert not backend.streams[0].active


@pytest.mark.parametrize("rate", [44100, 48000, 8000])
def test_stream_resampler_matches_whole_signal_resampling(rate):
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate).astype(np.float32)
    whole = AF.resample(torch.from_numpy(x), rate, SAMPLE_RATE).numpy()
    resampler, parts, pos = StreamResampler(rate), [], 0
    for size in rng.integers(0, rate // 5, size=40):
        parts.append(resampler(x[pos : pos + size]))
        pos += size
    parts.append(resampler(x[pos:]))
    got = np.concatenate(parts)
    assert whole.size - got.size <= resampler.context * SAMPLE_RATE // rate + 2  # only the held-back tail
    np.testing.assert_allclose(got, whole[: got.size], atol=1e-4)


# --- a real sound server ---------------------------------------------------------------------------------

SOUNDSERVER = ROOT / "scripts" / "soundserver.sh"


@pytest.fixture(scope="module")
def soundserver(tmp_path_factory):
    """A private PulseAudio daemon with the null sink `vmic` as default source; yields the client env."""
    state = tmp_path_factory.mktemp("pulse")
    try:
        proc = subprocess.run(
            ["bash", str(SOUNDSERVER), "start", str(state)], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"sound server could not start: {err}")
    if proc.returncode != 0:
        pytest.skip(f"sound server could not start: {proc.stderr.strip()}")
    env = dict(os.environ)
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            env[key] = value
    try:
        yield env
    finally:
        subprocess.run(["bash", str(SOUNDSERVER), "stop", str(state)], capture_output=True, timeout=30)


def _paplay(env: dict, path: Path) -> None:
    subprocess.run(["paplay", "--device=vmic", str(path)], env=env, check=True, timeout=60)


def _align(reference: np.ndarray, captured: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Where `reference` sits in `captured` (FFT cross-correlation; the lag may be negative when the capture
    missed the start), and the overlapping parts of both."""
    padded = np.concatenate([np.zeros(reference.size), captured])
    n = 1 << int(np.ceil(np.log2(padded.size + reference.size)))
    corr = np.fft.irfft(np.fft.rfft(padded, n) * np.conj(np.fft.rfft(reference, n)), n)[: padded.size]
    lag = int(np.argmax(corr)) - reference.size
    lo, hi = max(0, -lag), min(reference.size, captured.size - lag)
    return lag, reference[lo:hi], captured[lo + lag : hi + lag]


CAPTURE = """
import sys, time, numpy as np
from speechrnn.microphone import Microphone
seconds, out = float(sys.argv[1]), sys.argv[2]
blocks = []
with Microphone() as mic:
    while not blocks:  # a sound server may take a while to deliver the first block
        block = mic.read(timeout=0.5)
        if block is not None:
            blocks.append(block.audio)
    print("ready", mic.description, flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        block = mic.read(timeout=0.5)
        if block is not None:
            blocks.append(block.audio)
np.save(out, np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
print("overruns", mic.overruns, flush=True)
"""


def _wait_for(stream, word: str, timeout: float) -> str:
    """Read lines from a pipe until one contains `word` (in a thread, so that it times out)."""
    found: list[str] = []

    def scan() -> None:
        for line in stream:
            if word in line:
                found.append(line)
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        raise AssertionError(f"no line with {word!r} within {timeout} s")
    return found[0]


@pytest.mark.soundserver
def test_microphone_hears_what_is_played_into_the_sink(soundserver, tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.05 * rng.standard_normal(t.size)
    played = tmp_path / "played.wav"
    save_audio(played, chirp.astype(np.float32))
    out = tmp_path / "captured.npy"
    proc = subprocess.Popen(
        [sys.executable, "-c", CAPTURE, "4.0", str(out)], env=soundserver, stdout=subprocess.PIPE, text=True
    )
    try:
        _wait_for(proc.stdout, "ready", timeout=60)
        time.sleep(0.6)  # the first moments of a stream may be lost
        _paplay(soundserver, played)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    captured = np.load(out)
    reference = load_audio(played)
    assert captured.size > 2 * SAMPLE_RATE
    lag, ref, got = _align(reference, captured)
    assert ref.size > 0.9 * reference.size, (
        f"only {ref.size} of {reference.size} samples were captured (lag {lag})"
    )
    ref, got = ref[SAMPLE_RATE // 4 :], got[SAMPLE_RATE // 4 :]  # PulseAudio ramps up a new playback stream
    corr = float(np.dot(ref, got) / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert corr > 0.98, f"captured audio does not match what was played (correlation {corr:.3f} at lag {lag})"
    assert 0.8 < np.std(got) / np.std(ref) < 1.25


def _command_clip(keyword_labels: tuple[str, ...], tmp_path: Path) -> tuple[Path, str]:
    """A committed sample clip of a command if there is one, else `yes` (or another keyword) by espeak-ng."""
    samples = ROOT / "data" / "samples"
    for path in sorted(samples.glob("*.wav")) if samples.is_dir() else []:
        word = path.stem.split("_")[0].split("-")[0]
        if word in keyword_labels:
            return path, word
    word = "yes" if "yes" in keyword_labels else keyword_labels[0]
    if shutil.which("espeak-ng") is None:
        pytest.skip("no sample clip under data/samples and no espeak-ng to synthesise one")
    raw = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), word], check=True, timeout=30)
    path = tmp_path / f"{word}.wav"
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    save_audio(path, np.concatenate([silence, load_audio(raw), silence, silence]))
    return path, word


@pytest.mark.soundserver
def test_listen_hears_a_command_played_into_the_sink(soundserver, tmp_path):
    model = default_model_path()
    if not model.is_file():
        pytest.skip("no trained model yet")
    from speechrnn.checkpoint import load_model

    labels = tuple(label for label in load_model(model).labels if label not in (SILENCE, UNKNOWN))
    path, word = _command_clip(labels, tmp_path)
    cmd = [sys.executable, "-m", "speechrnn", "listen", "--model", str(model), "--json"]
    proc = subprocess.Popen(
        cmd, env=soundserver, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, as in a background job
    )  # fmt: skip
    try:
        _wait_for(proc.stderr, "Ctrl-C stops", timeout=60)
        time.sleep(2.0)  # the stream is open; its first moments may be lost while the sound server starts it
        _paplay(soundserver, path)
        time.sleep(1.0)  # the last chunk and its look-ahead
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert word in [e["keyword"] for e in events], f"played {path.name}, heard {events}; stderr: {err}"


# A real person: alsa-utils' channel test, a woman saying "Front Left", "Rear Right", "Side Left", ... (48 kHz).
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")


def test_a_real_person_is_heard():
    """The only human speech on the machine. The shipped model must label each left/right right (full
    context), and `listen` must hear each of the six live and fire on nothing else, "center" and the noise
    included. "Left" ends 0.25 s before the end of Rear_Left.wav: heard only because the file's end is
    followed by silence, as a room would go on."""
    model = default_model_path()
    if not model.is_file():
        pytest.skip("no trained model yet")
    if not (ALSA_SOUNDS / "Front_Left.wav").is_file():
        pytest.skip(f"no {ALSA_SOUNDS} (apt package alsa-utils; scripts/setup.sh installs it)")
    from speechrnn.transcribe import transcribe_files

    commands = {
        f"{place}_{side}.wav": side.lower()
        for place in ("Front", "Rear", "Side")
        for side in ("Left", "Right")
    }
    others = ("Front_Center.wav", "Rear_Center.wav", "Noise.wav")
    labels = {
        Path(t.path).name: t.label for t in transcribe_files([ALSA_SOUNDS / n for n in commands], model)
    }
    assert labels == commands
    heard = {}
    for name in (*commands, *others):
        summary = listen(
            model=model, input=ALSA_SOUNDS / name, fast=True, out=io.StringIO(), err=io.StringIO()
        )
        heard[name] = [d.keyword for d in summary.detections]
    assert all(heard[name] == [word] for name, word in commands.items()), heard
    assert not any(heard[name] for name in others), heard
