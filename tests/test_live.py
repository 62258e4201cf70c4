"""The live iterator (`speechrnn.spot`, `KeywordListener`) over both step backends, and the ONNX live path
without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import speechrnn
from speechrnn.audio import SAMPLE_RATE, load_audio, save_audio
from speechrnn.checkpoint import load_model
from speechrnn.errors import SpeechRNNError
from speechrnn.live import KeywordListener, open_step, spot
from speechrnn.streaming import TorchStep

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Two committed sample commands with pauses around them: `yes`, then `left`."""
    samples = ROOT / "data" / "samples"
    yes, left = (load_audio(next(samples.glob(f"{word}_*.flac"))) for word in ("yes", "left"))
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([gap, yes, gap, left, gap])


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    from speechrnn.export import export_onnx

    return export_onnx(load_model(), tmp_path_factory.mktemp("onnx") / "model.onnx")


def _blocks(audio: np.ndarray, size: int):
    return (audio[i : i + size] for i in range(0, audio.size, size))


def test_spot_yields_the_commands_alike_from_both_backends_and_any_block_size(speech, onnx_file):
    """The public iterator: the shipped model hears both commands; the ONNX step gives the same events;
    the blocks' sizes change nothing (openWakeWord's test_predict_with_different_frame_sizes)."""
    reference = [(d.keyword, d.step, round(d.time, 6)) for d in spot(_blocks(speech, 1600))]
    assert [k for k, _, _ in reference] == ["yes", "left"]
    model = load_model()
    for size in (160, 517, 4000, speech.size):
        for backend in ({"model": model}, {"onnx": onnx_file}):
            got = [(d.keyword, d.step, round(d.time, 6)) for d in spot(_blocks(speech, size), **backend)]
            assert got == reference, (size, backend)


def test_spot_takes_keywords_threshold_and_a_step(speech):
    step = open_step()  # the shipped model; one step serves many streams
    assert [d.keyword for d in spot([speech], model=step, keywords=["left"])] == ["left"]
    assert list(spot([speech], model=step, threshold=1.0)) == []
    assert list(spot([speech], model=step, keywords=["maybe"])) == []  # spelled: the CTC path's, not said
    with pytest.raises(SpeechRNNError, match="spelled"):
        list(spot([speech], model=step, keywords=["r2d2"]))
    with pytest.raises(SpeechRNNError, match="decision rule"):
        KeywordListener(step, decide="vote")
    with pytest.raises(SpeechRNNError, match="not both"):
        open_step(model="x.pt", onnx="x.onnx")


def test_the_models_per_keyword_thresholds_decide_unless_one_threshold_is_given(speech, tmp_path):
    """A table calibrated for the weights travels with them (checkpoint and ONNX file); --threshold wins."""
    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.export import export_onnx

    model = load_model()
    assert [d.keyword for d in spot([speech], model=model)] == ["yes", "left"]
    model.thresholds = {"label": {"yes": 1.0}, "ctc": {"left": 1.0}}
    path = tmp_path / "calibrated.pt"
    save_checkpoint(path, model)
    onnx = export_onnx(load_model(path), tmp_path / "calibrated.onnx")
    for backend in ({"model": path}, {"onnx": onnx}):
        assert [d.keyword for d in spot([speech], **backend)] == ["left"], backend
        assert [d.keyword for d in spot([speech], **backend, threshold=0.5)] == ["yes", "left"], backend
        ctc = KeywordListener(open_step(**backend), decide="ctc").ctc
        assert dict(zip(ctc.keywords, ctc.thresholds, strict=True))["left"] == 1.0, backend
        for decide in ("ctc", "both", "either"):  # one threshold reaches the CTC path wherever it decides
            assert set(
                KeywordListener(open_step(**backend), decide=decide, threshold=0.4).ctc.thresholds
            ) == {0.4}


@pytest.mark.parametrize("decide", ["ctc", "both", "either", "search"])
def test_the_ctc_path_hears_the_commands_alike_from_both_backends_and_any_block_size(
    speech, onnx_file, decide
):
    """Trained command words decided by the CTC keyword path (alone, confirmed by the label head, or with
    it) or by the beam search over the CTC head: the same events however the audio is cut and whichever
    backend runs the step."""
    reference = [(d.keyword, d.step) for d in spot(_blocks(speech, 1600), decide=decide)]
    assert [k for k, _ in reference] == ["yes", "left"]
    for size in (517, speech.size):
        for backend in ({"model": load_model()}, {"onnx": onnx_file}):
            got = [(d.keyword, d.step) for d in spot(_blocks(speech, size), decide=decide, **backend)]
            assert got == reference, (size, backend)


def test_keyword_listener_reports_each_block(speech):
    """What a display reads per block: the steps finalised, each keyword's score, the input level."""
    model = load_model()
    listener = KeywordListener(TorchStep(model))
    heard = [listener.accept(block) for block in _blocks(speech, 1600)]
    assert heard[0].level_db == pytest.approx(-120.0) and heard[0].output.steps == 0  # silence, not yet ready
    assert max(h.level_db for h in heard) > -40.0
    assert set(heard[-1].scores) == set(listener.keywords) and "yes" in listener.keywords
    assert "_silence_" not in listener.keywords
    best_yes = max(h.scores["yes"] for h in heard)
    assert best_yes >= 0.5 and [d.keyword for h in heard for d in h.detections][:1] == ["yes"]
    steps = [h.output for h in heard if h.output.steps]
    assert all(a.end == b.start for a, b in zip(steps, steps[1:], strict=False))  # consecutive
    assert all(np.isfinite(o.c0).all() for o in steps)
    end = listener.finish()
    assert end.samples == speech.size + SAMPLE_RATE // 2  # the stream and the silence after it
    assert listener.recognizer.samples == 0  # ready for a new stream


def test_package_names_resolve_on_first_use():
    assert speechrnn.spot is spot
    assert callable(speechrnn.transcribe) and speechrnn.transcribe.__module__ == "speechrnn.transcribe"
    assert speechrnn.SAMPLE_RATE == 16000 and "spot" in dir(speechrnn)
    with pytest.raises(AttributeError):
        speechrnn.no_such_name  # noqa: B018


def _modules_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; returns its `result` and the torch modules it imported."""
    script = f"""
import io, json, sys
from contextlib import redirect_stdout, redirect_stderr
result = None
{code}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchaudio"))
print(json.dumps({{"result": result, "heavy": heavy[:5]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def speech_wav(speech, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    save_audio(path, speech)
    return path


def test_the_onnx_live_path_imports_no_torch(onnx_file, speech_wav):
    """`listen(onnx=...)` and `spot(..., onnx=...)` run with numpy and onnxruntime alone."""
    got = _modules_after(f"""
import speechrnn
from speechrnn.listen import listen
out = io.StringIO()
listen(onnx={str(onnx_file)!r}, input={str(speech_wav)!r}, fast=True, as_json=True, out=out, err=io.StringIO())
events = [d.keyword for d in speechrnn.spot([speechrnn.load_audio({str(speech_wav)!r})], onnx={str(onnx_file)!r})]
result = [[json.loads(line)["keyword"] for line in out.getvalue().splitlines()], events]
""")
    assert got["heavy"] == []
    assert got["result"] == [["yes", "left"], ["yes", "left"]]


def test_the_onnx_listen_command_imports_no_torch(onnx_file, speech_wav):
    got = _modules_after(f"""
from speechrnn.cli import main
with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
    result = main(["listen", "--onnx", {str(onnx_file)!r}, "--input", {str(speech_wav)!r}, "--fast"])
""")
    assert got["result"] == 0 and got["heavy"] == []
