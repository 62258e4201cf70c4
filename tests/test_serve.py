"""`speechrnn serve`: the live adapter against `listen`, the server as a subprocess under load and faults,
its limits in-process, and (marker `browser`) the page in a real headless Chromium with a fake microphone.

The server is the real one (`python -m speechrnn serve --port 0`) on 127.0.0.1; clients are the real
`websockets` client and Debian's chromium driven by Playwright. Nothing here reaches beyond this machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn.audio import SAMPLE_RATE, load_audio, save_audio
from speechrnn.errors import SpeechRNNError
from speechrnn.listen import listen
from speechrnn.serve import LiveSpotter, bind, make_app, make_server
from speechrnn.serve_client import ServerProcess, soak, stream_audio
from speechrnn.serve_protocol import (
    CLOSE_BUSY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    ServeConfig,
    origin_allowed,
)

pytest.importorskip("websockets", reason="the server's libraries: pip install -e '.[serve]'")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
ARTEFACTS = ROOT / "build" / "test-artefacts"
CHROMIUM = os.environ.get("SPEECHRNN_CHROMIUM", "/usr/lib/chromium/chromium")
WORDS = ("yes_02bd1fc2", "left_018ecc94", "seven_0dcc9012")  # what the stream says, in order


def pause(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    """Three command words with pauses between them (5.3 s)."""
    parts = [pause(0.5)]
    for word in WORDS:
        parts += [load_audio(SAMPLES / f"{word}.flac"), pause(0.6)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def engine():
    return LiveSpotter.load()


# --- the adapter: the same engine as `listen` ------------------------------------------------------------


def test_live_spotter_hears_what_listen_hears_for_any_block_size(engine, stream, tmp_path):
    path = tmp_path / "stream.wav"
    save_audio(path, stream)
    out = io.StringIO()
    listen(input=path, fast=True, as_json=True, out=out, err=io.StringIO())
    expected = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["keyword"] for d in expected] == ["yes", "left", "seven"]
    for block in (128, 1600, 7000):
        spotter = LiveSpotter(engine)
        got = []
        for i in range(0, stream.size, block):
            got += spotter.feed(stream[i : i + block]).detections
        got += spotter.finish().detections
        assert [d.to_dict() for d in got] == expected, f"block of {block} samples"


def test_live_spotter_reports_level_scores_and_takes_new_settings_mid_stream(engine, stream):
    spotter = LiveSpotter(engine)
    quiet = spotter.feed(pause(0.3))
    assert quiet.level_db == -120.0 and quiet.detections == ()
    loud = spotter.feed(np.full(1600, 0.1, np.float32))
    assert loud.level_db == pytest.approx(-20.0, abs=0.01)
    assert loud.scores is not None and len(loud.scores) == len(spotter.labels)
    assert sum(loud.scores) > 0.99  # each label's highest over the steps: at least one step's sum
    plain = LiveSpotter(engine)
    default = plain.feed(stream).detections + plain.finish().detections
    assert [d.keyword for d in default] == ["yes", "left", "seven"]
    spotter = LiveSpotter(engine, keywords=[])  # none may fire ...
    cut = round(3.6 * SAMPLE_RATE)  # "yes" and "left" are decided before, "seven" after
    assert default[1].time < cut / SAMPLE_RATE < default[2].time
    assert spotter.feed(stream[:cut]).detections == ()
    spotter.configure(keywords=["seven", "yes"])  # ... until the page says otherwise
    rest = spotter.feed(stream[cut:]).detections + spotter.finish().detections
    assert [d.to_dict() for d in rest] == [default[2].to_dict()]
    assert rest[0].step == default[2].step  # the new spotter keeps the stream's step numbers
    strict = LiveSpotter(engine, threshold=0.99)  # the same words, decided no sooner, once surer
    heard = strict.feed(stream).detections + strict.finish().detections
    assert [d.keyword for d in heard] == [d.keyword for d in default]
    assert all(d.time >= e.time for d, e in zip(heard, default, strict=True))
    assert any(d.time > e.time for d, e in zip(heard, default, strict=True))
    assert min(d.score for d in heard) >= 0.99
    with pytest.raises(SpeechRNNError, match="not one of the model's labels"):
        spotter.configure(keywords=["banana"])
    with pytest.raises(SpeechRNNError, match="threshold must be a probability"):
        LiveSpotter(engine, threshold=1.5)


@pytest.mark.slow
def test_live_spotter_runs_an_exported_onnx_step_alike(engine, stream, tmp_path):
    pytest.importorskip("onnxruntime")
    from speechrnn.export import export_onnx

    path = export_onnx(engine.model, tmp_path / "step.onnx")
    runs = []
    for backend in (engine, LiveSpotter.load(onnx=path)):
        spotter = LiveSpotter(backend)
        runs.append([d.to_dict() for d in spotter.feed(stream).detections + spotter.finish().detections])
    assert runs[1] == runs[0] and [d["keyword"] for d in runs[0]] == ["yes", "left", "seven"]
    with pytest.raises(SpeechRNNError, match="no such ONNX file"):
        LiveSpotter.load(onnx=tmp_path / "missing.onnx")


def test_origin_must_be_the_servers_own():
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", "127.0.0.1")
    assert origin_allowed("http://localhost:8000", "localhost:8000", "127.0.0.1")
    assert not origin_allowed("http://evil.example", "127.0.0.1:8000", "127.0.0.1")
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8000", "127.0.0.1")  # another local page
    assert not origin_allowed("null", "127.0.0.1:8000", "127.0.0.1")  # a file:// page or a sandbox
    # DNS rebinding: the hostile name resolves to this machine, so Host and Origin agree; the name gives it away
    assert not origin_allowed("http://evil.example:8000", "evil.example:8000", "127.0.0.1")
    assert origin_allowed("http://box.lan:8000", "box.lan:8000", "0.0.0.0")  # told to serve everyone


def test_serve_says_why_it_cannot_start(tmp_path, capsys):
    import socket

    from speechrnn.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"expected to listen on 127.0.0.1:{port}, got Address already in use" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such checkpoint file" in capsys.readouterr().err


# --- the server as users run it --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--max-connections", "12") as s:
        yield s
        assert s.stop() == 0, "".join(s.log)  # Ctrl-C ends it cleanly


@pytest.mark.slow
def test_eight_clients_at_real_time_all_get_their_detections(server, engine, stream):
    alone = LiveSpotter(engine)  # what the engine hears in the stream, in this process
    expected = [d.to_dict() for d in alone.feed(stream).detections + alone.finish().detections]
    assert [d["keyword"] for d in expected] == ["yes", "left", "seven"]
    before = server.stats()
    results: dict[int, object] = {}

    def client(i: int) -> None:
        results[i] = stream_audio(server.ws, stream, timeout=60)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
        time.sleep(0.05)
    peak = before["rss_mb"]
    while any(t.is_alive() for t in threads):
        peak = max(peak, server.stats()["rss_mb"])
        time.sleep(0.5)
    for t in threads:
        t.join(timeout=120)
    wall = time.monotonic() - t0
    after = server.wait_idle()
    for i in range(8):
        assert results[i].detections == expected, f"client {i}: {results[i]}"
        assert results[i].close_code == CLOSE_NORMAL and not results[i].errors
    audio_s = after["audio_s"] - before["audio_s"]
    engine_s = after["compute_s"] - before["compute_s"]  # wall time in the engine's calls
    cpu_s = after["cpu_s"] - before["cpu_s"]  # the server's CPU time, every thread
    assert audio_s == pytest.approx(8 * stream.size / SAMPLE_RATE)
    print(
        f"\n8 clients x {stream.size / SAMPLE_RATE:.1f} s at real time in {wall:.1f} s: the server used "
        f"{cpu_s:.2f} s of CPU for {audio_s:.1f} s of audio (real-time factor {cpu_s / audio_s:.3f} per "
        f"stream, {cpu_s / wall:.2f} cores for all eight; {engine_s / audio_s:.3f} in engine wall time, "
        f"waits for a core included), memory {before['rss_mb']:.0f} MB before, {peak:.0f} MB while "
        f"streaming, {after['rss_mb']:.0f} MB after"
    )
    assert after["streams"] == 0 and after["connections"] == 0


def refused(ws_url: str, *messages, origin: str | None = None) -> tuple[list[dict], int | None, str]:
    """Send `messages` (str: text, bytes: binary) and return what came back and how it was closed."""
    got = []
    with connect(ws_url, origin=origin, max_size=2**22, close_timeout=2) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close before all is sent
            for message in messages:
                ws.send(message)
        with contextlib.suppress(ConnectionClosed):
            while True:
                got.append(json.loads(ws.recv(timeout=20)))
    return got, ws.close_code, ws.close_reason


START = json.dumps({"type": "start", "sample_rate": SAMPLE_RATE, "format": "f32le"})
STOP = json.dumps({"type": "stop"})


@pytest.mark.parametrize(
    "messages, code, said",
    [
        ((START, np.random.default_rng(0).bytes(6400)), CLOSE_UNSUPPORTED, "outside it (not audio)"),
        ((START, b"\x00\x00\x80"), CLOSE_UNSUPPORTED, "whole f32le samples (4 bytes each), got 3 bytes"),
        ((START, np.zeros(40000, np.float32).tobytes()), CLOSE_TOO_BIG, "at most 16000 samples"),
        ((START.replace("16000", "44100"),), CLOSE_UNSUPPORTED, "expected audio at 16000 Hz, got sample_rate 44100"),
        ((START.replace("f32le", "s16le"),), CLOSE_UNSUPPORTED, "expected format 'f32le', got 's16le'"),
        ((np.zeros(1600, np.float32).tobytes(),), CLOSE_UNSUPPORTED, "text message first, got binary"),
        (("hello",), CLOSE_UNSUPPORTED, "expected a JSON object, got 'hello'"),
        ((START, json.dumps({"type": "dance"})), CLOSE_POLICY, 'expected a "config" or "stop" message'),
        ((START.replace("}", ', "keywords": ["banana"]}'),), CLOSE_UNSUPPORTED, "keyword 'banana' is not one"),
        ((START, np.zeros(1600, np.float32).tobytes(), STOP), None, None),
    ],
    ids=["random-bytes", "part-sample", "oversized", "rate", "format", "binary-first", "not-json", "unknown-type",
         "unknown-keyword", "healthy"],
)  # fmt: skip
def test_a_faulty_client_gets_a_clear_error_and_is_dropped(server, messages, code, said):
    got, close_code, reason = refused(server.ws, *messages)
    if code is None:  # the control: a client that breaks no rule is not cut off
        assert got[0]["type"] == "ready" and got[1]["type"] == "update"
        return
    assert close_code == code
    assert got[-1]["type"] == "error" and said in got[-1]["message"], got
    assert said[:60] in reason or reason.endswith("...")


@pytest.mark.slow
def test_faulty_clients_do_not_disturb_the_others(server, stream):
    """Faults of every kind, and a client leaving mid-word, while one client streams: it hears every word."""
    results = {}
    healthy = threading.Thread(target=lambda: results.update(ok=stream_audio(server.ws, stream, timeout=60)))
    healthy.start()
    yes = load_audio(SAMPLES / f"{WORDS[0]}.flac")
    while healthy.is_alive():
        refused(server.ws, START, np.random.default_rng(1).bytes(4000))
        refused(server.ws, START, b"\x00" * 6)
        refused(server.ws, START, np.zeros(3 * SAMPLE_RATE, np.float32).tobytes())
        _, code, _ = refused(server.ws, START, b"\x00" * 2**21)  # far beyond: the WebSocket layer refuses,
        assert code in (CLOSE_TOO_BIG, 1006)  # and drops the connection while the rest is still being sent
        gone = stream_audio(server.ws, yes[: yes.size // 2], realtime=False, stop=False)  # leaves mid-word
        assert not gone.errors
    healthy.join()
    assert results["ok"].keywords == ["yes", "left", "seven"] and not results["ok"].errors
    stats = server.wait_idle()
    assert (stats["connections"], stats["streams"]) == (0, 0), stats  # no stream left behind
    assert stats["refused"] >= 4


def test_a_page_from_another_origin_is_refused(server):
    with pytest.raises(InvalidStatus) as caught:
        refused(server.ws, START, origin="http://evil.example")
    assert caught.value.response.status_code == 403
    assert b"got a connection from Origin http://evil.example" in caught.value.response.body
    got, _, _ = refused(server.ws, START, STOP, origin=server.url)
    assert got[0]["type"] == "ready"  # the server's own page is welcome
    request = urllib.request.Request(server.url + "/info", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as caught:  # DNS rebinding of plain requests: the Host check
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400


def test_transcribe_upload_and_its_errors(server):
    phrase = (SAMPLES / "phrase_03e8039f.flac").read_bytes()
    result = post(server.url + "/transcribe?name=..%2F..%2Fphrase.flac", phrase)  # a name, not a path
    said = ("yes", "wow", "happy", "tree")  # a phrase's one label is one of its words, whichever is clearest
    assert result["text"] == " ".join(said) and result["label"] in said
    assert [w["word"] for w in result["words"]] == ["yes", "wow", "happy", "tree"]
    assert result["duration"] == pytest.approx(3.292, abs=0.01) and result["path"] == "phrase.flac"
    with pytest.raises(urllib.error.HTTPError) as caught:
        post(server.url + "/transcribe?name=notes.txt", b"these are not audio samples")
    assert caught.value.code == 400
    message = json.loads(caught.value.read())["error"]
    assert "notes.txt" in message and "/tmp" not in message  # the server's temporary path is not shown


def post(url: str, data: bytes) -> dict:
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_memory_stays_flat_under_a_short_soak(server, stream):
    """About 20 s of clients coming and going, faulty or not: memory and streams return to where they were.
    `scripts/bench_serve.py` runs the same for ten minutes."""
    figures = soak(server.ws, server.stats, stream, seconds=20, clients=4)
    print(f"\nshort soak: {json.dumps(figures)}")
    assert figures["sessions"] >= 8 and figures["errors_unexpected"] == 0
    assert figures["growth_mb"] < 10, figures
    stats = server.wait_idle()
    assert (stats["connections"], stats["streams"]) == (0, 0), stats


# --- the limits that take too long to reach with the defaults: an in-process server -----------------------


@pytest.fixture(scope="module")
def tight(engine):
    """A server with tiny limits, run in a thread of this process."""
    config = ServeConfig(port=0, max_connections=2, max_session_s=2.0, idle_s=0.8, max_upload_mb=0.01)
    sock = bind("127.0.0.1", 0)
    server = make_server(make_app(engine, engine.model, config), config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
def test_limits_connections_idle_time_session_length_and_upload_size(tight):
    url = f"ws://{tight}/live"
    with connect(url) as a, connect(url) as b:
        got, code, reason = refused(url)
        assert code == CLOSE_BUSY and "server busy: expected at most 2 live streams, got one more" in reason
        assert got == [{"type": "error", "message": reason}]
        a.close(), b.close()
    t0 = time.monotonic()
    got, code, _ = refused(url, START)
    assert code == CLOSE_POLICY and "expected audio at least every 0.8 s, got nothing" in got[-1]["message"]
    assert 0.7 < time.monotonic() - t0 < 5
    t0 = time.monotonic()
    result = stream_audio(url, pause(10.0))  # at real time, past the session's end
    assert result.close_code == CLOSE_NORMAL
    assert "session limit: a live stream may last 2 s" in result.close_reason
    assert result.errors == [result.close_reason] and time.monotonic() - t0 < 5
    got, code, _ = refused(url, START, *[np.zeros(SAMPLE_RATE, np.float32).tobytes()] * 20)  # 20 s at once
    said = got[-1]["message"]
    pace = re.fullmatch(r"expected audio at real time, got ([\d.]+) s of it in ([\d.]+) s", said)
    assert code == CLOSE_POLICY and pace, said
    ahead = float(pace[1]) - float(pace[2])  # refused once 5 s ahead of the clock, however slow the machine
    assert ahead > 4.9
    with pytest.raises(urllib.error.HTTPError) as caught:
        post(f"http://{tight}/transcribe", bytes(20000))
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["error"] == "expected a file of at most 0.01 MB, got 0.02 MB"


# --- the page in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory, stream) -> Path:
    """What Chromium's fake microphone plays (on a loop): 48 kHz, as sound cards give it, so the page resamples."""
    import torch
    import torchaudio.functional as AF

    audio = AF.resample(torch.from_numpy(stream), SAMPLE_RATE, 48000).numpy()
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, audio, 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(mic_wav):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"chromium cannot start: Playwright is not installed ({err})")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium cannot start: no {CHROMIUM} (apt install chromium)")
    args = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",  # grants the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
        except Exception as err:  # Playwright's own error type; any failure to launch is the reason to skip
            pytest.skip(f"chromium cannot start: {err}")
        yield chromium
        chromium.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_shows_the_chosen_keywords_as_said_and_a_dropped_files_transcript(browser, server):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#keywords .chip").count() == 35
    page.click("#none")  # the keyword list: only left and seven may fire ...
    page.click("#keywords .chip[data-keyword=left]")
    page.click("#keywords .chip[data-keyword=seven]")
    page.click("#start")
    for word in ("left", "seven"):
        page.wait_for_selector(f"#detections li[data-keyword={word}]", timeout=30000)
    assert page.inner_text("#status").startswith("listening")
    assert page.locator("#detections li[data-keyword=yes]").count() == 0  # said before left, not spotted
    page.click("#keywords .chip[data-keyword=yes]")  # ... until yes is chosen too, mid-stream
    page.wait_for_selector("#detections li[data-keyword=yes]", timeout=30000)  # the fake microphone loops
    page.set_input_files("#file", str(SAMPLES / "phrase_03e8039f.flac"))
    page.wait_for_selector("#result[data-state=done]", timeout=60000)
    assert page.inner_text("#result-text") == "yes wow happy tree"
    assert page.inner_text("#result-label") in ("yes", "wow", "happy", "tree")  # one of the phrase's words
    words = page.locator("#timeline .word")
    said = [words.nth(i).get_attribute("data-word") for i in range(words.count())]
    assert said == ["yes", "wow", "happy", "tree"]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "serve.png", full_page=True)
    page.click("#start")  # stop: the server finishes the stream and closes it
    page.wait_for_selector("#status[data-state=idle]")
    assert not errors
    page.close()


@pytest.mark.browser
def test_the_pages_resampler_passes_speech_and_stops_aliases(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/static/index.html")
    measured = page.evaluate(
        """async () => {
        const { Resampler } = await import("/static/resample.js");
        const run = (inRate, freq, block) => {
            const r = new Resampler(inRate, 16000);
            const n = inRate;  // one second
            const input = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * freq * i / inRate));
            const out = [];
            for (let i = 0; i < n; i += block) out.push(...r.process(input.subarray(i, i + block)));
            return out;
        };
        const result = {};
        for (const inRate of [48000, 44100]) {
            for (const freq of [440, 3000, 6000, 9000, 12000]) {
                const out = run(inRate, freq, 128);
                const again = run(inRate, freq, 1000);
                let err = 0, rms = 0;
                for (let k = 4000; k < 12000; k++) {  // past the start-up transient
                    const ideal = 0.5 * Math.sin(2 * Math.PI * freq * k / 16000);
                    err = Math.max(err, Math.abs(out[k] - ideal));
                    rms += out[k] * out[k];
                }
                const same = out.length === again.length && out.every((v, i) => v === again[i]);
                result[`${inRate}/${freq}`] = { err, rms: Math.sqrt(rms / 8000), same, n: out.length };
            }
        }
        return result;
    }"""
    )
    for key, m in measured.items():
        rate, freq = map(int, key.split("/"))
        assert m["same"], f"{key}: the output depends on the block size"
        assert 16000 - 40 < m["n"] <= 16000, m  # a second out, less the kernel's half-width still to come
        if freq < 8000:
            assert m["err"] < 0.01, f"{key}: {m}"  # a tone in the speech band comes through as it was
        else:
            assert m["rms"] < 0.5 / np.sqrt(2) * 10 ** (-40 / 20), f"{key}: {m}"  # aliases 40 dB down or more
    page.close()
