"""ONNX export of the streaming step, its onnxruntime runner, int8 quantisation, and the benchmark report.

The central check: the runner fed a whole file in chunks gives the PyTorch `StreamingRecognizer`'s outputs
step for step (1e-4), for every cell, both graph forms (recurrent operators, and the unrolled form that
int8 quantises), several latency settings, odd block sizes, and the end-of-stream flush.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from signals import chirp_audio  # tests/ is on sys.path

from speechrnn import cli, recognizer
from speechrnn.checkpoint import load_model, save_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.export import export_onnx, quantize_torch, read_metadata
from speechrnn.features import FeatureConfig
from speechrnn.latency import LIVE
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.onnx_graph import build_graph, step_shape
from speechrnn.recognizer import StreamingRecognizer, StreamOutput
from speechrnn.spotter import KeywordSpotter, SpotterConfig
from speechrnn.streaming import TorchStep
from speechrnn.vocab import BLANK_ID

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from speechrnn.onnx_runner import META_KEY, OnnxStep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FEATURES = FeatureConfig(n_mels=20, n_mfcc=12)
LABELS = ("_silence_", "_unknown_", "yes", "no")
TOL = 1e-4
FIELDS = ("ctc_log_probs", "label_logits", "attn_logits", "step_logits")


def _torch(model: Recognizer, chunk_ms: float, lookahead_ms: float, reset_after_silence_ms=None):
    return StreamingRecognizer(TorchStep(model, chunk_ms, lookahead_ms), reset_after_silence_ms)


def _onnx(path: Path, reset_after_silence_ms=None) -> StreamingRecognizer:
    return StreamingRecognizer(OnnxStep(path), reset_after_silence_ms)


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    return chirp_audio(seconds, seed, noise=0.02)


def _model(
    cell: str = "gru", bidirectional: bool = True, default_size: bool = False, seed: int = 0
) -> Recognizer:
    """A random model whose outputs vary: the heads are scaled up (random heads give near-uniform scores)."""
    torch.manual_seed(0)
    if default_size:
        features, config = FeatureConfig(), ModelConfig(n_labels=len(LABELS), cell=cell)
    else:
        features = FEATURES
        config = ModelConfig(n_labels=len(LABELS), n_input=12, cell=cell, hidden=8, layers=2,
                             bidirectional=bidirectional, attn_dim=6, window=7)  # fmt: skip
    model = Recognizer(config, LABELS, features).eval()
    with torch.no_grad():
        for head in (model.ctc_head, model.label_head, model.attn[0], model.attn[2]):
            head.weight.mul_(8)
        feats = model.mfcc(torch.from_numpy(_audio(2.0, seed=9)))
        model.set_normalization(feats.mean(0), feats.std(0))
    return model


def _feed(rec, audio: np.ndarray, sizes) -> StreamOutput:
    outs, pos = [], 0
    for size in sizes:
        outs.append(rec.accept(audio[pos : pos + size]))
        pos += size
    outs.append(rec.accept(audio[pos:]))
    outs.append(rec.flush())
    return StreamOutput.concat(outs)


def _blocks(n: int, size: int) -> list[int]:
    return [size] * (n // size)


def _assert_same(got: StreamOutput, ref: StreamOutput, tol: float = TOL) -> None:
    assert got.start == ref.start and got.steps == ref.steps
    for name in FIELDS:
        diff = float(np.abs(getattr(got, name) - getattr(ref, name)).max()) if ref.steps else 0.0
        assert diff <= tol, f"{name} differs by {diff:.2e}"
    np.testing.assert_array_equal(got.ready_seconds, ref.ready_seconds)


def _export(model: Recognizer, path: Path, chunk_ms=100.0, lookahead_ms=80.0, unrolled=False) -> Path:
    import onnx

    onnx.save(build_graph(model, chunk_ms, lookahead_ms, unrolled=unrolled), str(path))
    return path


@pytest.mark.parametrize("unrolled", [False, True], ids=["operators", "unrolled"])
@pytest.mark.parametrize(
    "cell,bidirectional", [("gru", True), ("lstm", True), ("rnn", True), ("gru", False), ("lstm", False)]
)
def test_runner_matches_pytorch_streaming(tmp_path, cell, bidirectional, unrolled):
    model = _model(cell, bidirectional)
    path = _export(model, tmp_path / "m.onnx", unrolled=unrolled)
    audio = _audio(2.45)
    ref = _feed(_torch(model, 100, 80), audio, _blocks(audio.size, 1600))
    rng = np.random.default_rng(1)
    odd = rng.integers(0, 2500, size=40).tolist()  # zeros, single samples, sub-frame and multi-chunk pieces
    for sizes in (_blocks(audio.size, 1600), odd, [audio.size]):
        _assert_same(_feed(_onnx(path), audio, sizes), ref)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_step_is_the_same_function_in_both_backends(tmp_path, cell):
    """`step(audio, state) -> (outputs, state)`: the exported graph and the PyTorch step agree on one chunk,
    on several at once, and on a stream's tail, from any carried state."""
    model = _model(cell)
    onnx_step, torch_step = OnnxStep(_export(model, tmp_path / "m.onnx")), TorchStep(model, 100, 80)
    shape = onnx_step.shape
    assert torch_step.shape == shape and onnx_step.init_state().shape == torch_step.init_state().shape
    audio = _audio(2.0)
    state = np.random.default_rng(0).standard_normal(onnx_step.init_state().shape).astype(np.float32) * 0.5
    tail = shape.samples - shape.advance // 2  # the last chunk whole, its look-ahead cut short
    for size in (shape.samples, shape.window_samples(3), tail, 700):
        (a, sa), (b, sb) = (step(audio[:size], state) for step in (onnx_step, torch_step))
        for name in ("ctc_log_probs", "attn_logits", "label_logits", "c0"):
            got, want = getattr(a, name), getattr(b, name)
            assert got.shape == want.shape and np.abs(got - want).max() <= TOL * 10, (size, name)
        if size >= shape.samples:  # the state carried on (after a tail it is never used)
            assert np.abs(sa - sb).max() <= TOL and not np.allclose(sa, state)


def test_runner_resets_on_pauses_like_pytorch(tmp_path, monkeypatch):
    """The pause reset (`reset_after_silence_ms`) falls on the same chunks in both runners, the look-ahead
    and the CTC head's veto (`hears_speech`) included."""
    model = _model()
    with torch.no_grad():  # blanks on most chunks, characters on about a fifth of them (as probed)
        model.ctc_head.bias[BLANK_ID] += 6.0
    path = _export(model, tmp_path / "m.onnx")
    audio = _audio(6.0)  # the tone pauses for a third of a second, 1.5 times a second: some pauses reset
    torch_rec = _torch(model, 100, 80, reset_after_silence_ms=300)
    ref = _feed(torch_rec, audio, _blocks(audio.size, 1600)[:-1])
    plain = _feed(_torch(model, 100, 80), audio, _blocks(audio.size, 1600))
    assert not np.allclose(ref.ctc_log_probs, plain.ctc_log_probs)  # the resets did something
    with monkeypatch.context() as m:
        m.setattr(recognizer, "HEARING_CTC_PROB", 1.0)  # the model never hears speech: no veto
        deaf = _feed(_torch(model, 100, 80, reset_after_silence_ms=300), audio, [audio.size])
    assert not np.allclose(ref.ctc_log_probs, deaf.ctc_log_probs)  # the veto did something
    for sizes in (_blocks(audio.size, 1600)[:-1], np.random.default_rng(2).integers(0, 2500, 40).tolist()):
        onnx_rec = _onnx(path, reset_after_silence_ms=300)
        outs, pos = [], 0
        for size in sizes:
            outs.append(onnx_rec.accept(audio[pos : pos + size]))
            pos += size
        outs.append(onnx_rec.accept(audio[pos:]))
        assert onnx_rec.resets >= 2
        outs.append(onnx_rec.flush())
        _assert_same(StreamOutput.concat(outs), ref)


@pytest.mark.parametrize("chunk_ms,lookahead_ms", [(20, 0), (40, 120), (120, 80), (200, 20)])
def test_latency_settings_and_stream_ends(tmp_path, chunk_ms, lookahead_ms):
    model = _model()
    path = _export(model, tmp_path / "m.onnx", chunk_ms, lookahead_ms)
    runner = _onnx(path)
    assert (runner.chunk_ms, runner.lookahead_ms) == (chunk_ms, lookahead_ms)
    # Streams that end inside the first frame, the first window, a chunk, and after several chunks.
    for seconds in (0.0, 0.02, 0.05, 0.21, 0.37, 1.013):
        audio = _audio(seconds, seed=3)
        ref = _feed(_torch(model, chunk_ms, lookahead_ms), audio, _blocks(audio.size, 700))
        _assert_same(_feed(runner, audio, _blocks(audio.size, 700)), ref)  # flush resets: reused stream


def test_default_size_gru_over_a_file(tmp_path):
    """Checkpoint -> `speechrnn export` -> runner, against the checkpoint's own streaming recogniser."""
    model = _model(default_size=True)
    save_checkpoint(tmp_path / "default.pt", model)
    path = tmp_path / "default.onnx"
    args = ["export", "--model", str(tmp_path / "default.pt"), "--out", str(path), "--chunk-ms", "100"]
    assert cli.main(args) == 0
    model = load_model(tmp_path / "default.pt")
    audio = _audio(3.3, seed=5)
    ref = _feed(_torch(model, 100, LIVE.lookahead_ms), audio, _blocks(audio.size, 1600))
    got = _feed(_onnx(path), audio, _blocks(audio.size, 1600))
    assert ref.label_logits.std() > 0.5  # the comparison is not between near-constant outputs
    _assert_same(got, ref)


def test_spotter_consumes_the_runner_alike(tmp_path):
    model = _model()
    path = _export(model, tmp_path / "m.onnx", 120, 80)
    audio = _audio(4.0, seed=2)
    events = []
    for rec in (_torch(model, 120, 80), _onnx(path)):
        spotter = KeywordSpotter(LABELS, rec.step_seconds, SpotterConfig(threshold=0.3, min_ms=20))
        out = _feed(rec, audio, _blocks(audio.size, 1600))
        events.append([(d.keyword, d.step, round(d.time, 6)) for d in spotter.update(out)])
    assert events[0] == events[1]
    assert events[0], "the comparison needs some detections"


def test_metadata_round_trip(tmp_path):
    model = _model("lstm")
    path = export_onnx(model, tmp_path / "m.onnx", chunk_ms=60, lookahead_ms=40, source="unit test")
    meta = read_metadata(path)
    shape = step_shape(model, 60, 40)
    assert meta["format"] == "speechrnn-onnx-step" and meta["quantized"] is False
    assert meta["labels"] == list(LABELS) and meta["source"] == "unit test"
    assert FeatureConfig(**meta["feature_config"]) == model.features
    assert ModelConfig(**meta["model_config"]) == model.config
    assert meta["step"]["samples"] == shape.samples and meta["step"]["chunk"] == 3
    assert (meta["chunk_ms"], meta["lookahead_ms"], meta["window"]) == (60, 40, model.config.window)
    assert np.allclose(meta["normalization"]["mean"], model.feat_mean.numpy())
    runner = _onnx(path)
    assert runner.labels == LABELS and runner.features == model.features
    assert runner.latency_seconds == pytest.approx(0.1)
    assert (runner.chunk_ms, runner.lookahead_ms) == pytest.approx((60, 40))


def test_c0_output_is_the_frame_energy_of_the_chunk_and_its_lookahead(tmp_path):
    """The graph's c0 output (the pause tracker's input) is MFCC c0 of the chunk's own frames, then of its
    look-ahead frames (a pause must not end in sound that the look-ahead already hears)."""
    model = _model()
    path = _export(model, tmp_path / "m.onnx")
    step = OnnxStep(path)
    shape, audio = step.shape, _audio(1.0)
    want = model.mfcc(torch.from_numpy(audio))[:, 0].numpy()
    out, _ = step(audio[: shape.samples], step.init_state())
    assert shape.frames > shape.chunk * shape.stride  # the model has a look-ahead
    assert out.c0.shape == (shape.frames,)
    assert np.allclose(out.c0, want[: shape.frames], atol=1e-3)
    torch_out, _ = TorchStep(model, 100, 80)(audio[: shape.samples], step.init_state())
    assert np.allclose(torch_out.c0, out.c0, atol=1e-3)  # the same step output from both backends


def test_files_of_an_older_version_are_refused_with_a_way_out(tmp_path):
    import onnx

    proto = build_graph(_model(), 100, 80)
    entry = next(p for p in proto.metadata_props if p.key == META_KEY)
    entry.value = json.dumps({**json.loads(entry.value), "version": 1})
    onnx.save(proto, str(tmp_path / "old.onnx"))
    with pytest.raises(SpeechRNNError, match="export it again"):
        _onnx(tmp_path / "old.onnx")


def test_int8_is_smaller_and_close(tmp_path):
    model = _model(default_size=True)
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", chunk_ms=100, lookahead_ms=80)
    int8 = export_onnx(model, tmp_path / "int8.onnx", chunk_ms=100, lookahead_ms=80, quantize=True)
    assert read_metadata(int8)["quantized"] is True
    assert fp32.stat().st_size / int8.stat().st_size >= 2.0
    audio = _audio(2.0, seed=4)
    ref = _feed(_onnx(fp32), audio, _blocks(audio.size, 1600))
    got = _feed(_onnx(int8), audio, _blocks(audio.size, 1600))
    assert got.steps == ref.steps
    assert float(np.abs(got.label_logits - ref.label_logits).mean()) < 0.1
    eager = quantize_torch(model)
    assert isinstance(eager.encoder.fwd[0], torch.ao.nn.quantized.dynamic.GRU)
    q = _feed(_torch(eager, 100, 80), audio, _blocks(audio.size, 1600))
    assert float(np.abs(q.label_logits - ref.label_logits).mean()) < 0.1


def test_export_command(tmp_path, capsys):
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, _model())
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--model", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_metadata(out)["chunk_ms"] == 120
    q = tmp_path / "model.int8.onnx"
    args = ["export", "--model", str(ckpt), "--out", str(q), "--quantize", "--chunk-ms", "100"]
    assert cli.main(args) == 0
    assert read_metadata(q)["quantized"] is True and read_metadata(q)["chunk_ms"] == 100


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "{tmp}/missing.pt", "--out", "{tmp}/x.onnx"], "no such checkpoint"),
        (["--model", "{ckpt}", "--out", "{tmp}/x.txt"], ".onnx"),
        (["--model", "{ckpt}", "--out", "{tmp}/x.onnx", "--chunk-ms", "30"], "multiple of"),
        (["--model", "{ckpt}", "--out", "{tmp}/x.onnx", "--lookahead-ms", "25"], "multiple of"),
        (["--model", "{ckpt}", "--out", "{tmp}/no/such/dir/x.onnx"], "cannot write"),
    ],
)
def test_export_command_errors(tmp_path, capsys, args, message):
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, _model())
    argv = ["export"] + [a.format(tmp=tmp_path, ckpt=ckpt) for a in args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("speechrnn export: error:") and message in err


def test_runner_copies_what_it_keeps(tmp_path):
    model = _model()
    runner = _onnx(_export(model, tmp_path / "m.onnx"))
    audio = _audio(1.0)
    ref = _feed(_torch(model, 100, 80), audio, _blocks(audio.size, 500))
    block, outs = np.empty(500, np.float32), []
    for pos in range(0, audio.size, 500):  # one buffer reused for every block, as a sound card driver may
        block[:] = audio[pos : pos + 500]
        outs.append(runner.accept(block))
    _assert_same(StreamOutput.concat([*outs, runner.flush()]), ref)


def test_runner_rejects_bad_inputs(tmp_path, monkeypatch):
    with pytest.raises(SpeechRNNError, match="no such ONNX file"):
        _onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(SpeechRNNError, match="cannot load"):
        _onnx(junk)
    with pytest.raises(SpeechRNNError, match="not an ONNX file"):
        read_metadata(junk)
    import onnx

    foreign = tmp_path / "foreign.onnx"
    proto = build_graph(_model(), 100, 80)
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    with pytest.raises(SpeechRNNError, match="not a speechrnn"):
        _onnx(foreign)
    path = _export(_model(), tmp_path / "m.onnx")
    runner = _onnx(path)
    with pytest.raises(SpeechRNNError, match="mono"):
        runner.accept(np.zeros((2, 100), np.float32))
    with pytest.raises(SpeechRNNError, match="NaN"):
        runner.accept(np.full(100, np.nan, np.float32))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(SpeechRNNError, match="needs onnxruntime"):
        _onnx(path)


def test_step_needs_a_chunk():
    with pytest.raises(SpeechRNNError, match="chunk length"):
        step_shape(_model(), None, 80)


def test_listen_with_onnx(tmp_path):
    """`speechrnn listen --onnx FILE` spots the same events as the checkpoint it came from."""
    from speechrnn.audio import save_audio
    from speechrnn.listen import listen

    ckpt = tmp_path / "model.pt"
    model = _model()
    save_checkpoint(ckpt, model)
    path = export_onnx(model, tmp_path / "m.onnx")  # the live defaults, as listen uses for the checkpoint
    wav = tmp_path / "stream.wav"
    save_audio(wav, _audio(3.0, seed=2))
    lines = []
    for kwargs in ({"model": str(ckpt)}, {"onnx": str(path)}):  # both with listen's pause reset
        out = io.StringIO()
        listen(input=str(wav), fast=True, as_json=True, threshold=0.3, out=out, err=io.StringIO(), **kwargs)
        lines.append([json.loads(line) for line in out.getvalue().splitlines()])
    assert lines[0] == lines[1]
    with pytest.raises(SpeechRNNError, match="not both"):
        listen(model=str(ckpt), onnx=str(path), input=str(wav), out=io.StringIO(), err=io.StringIO())


@pytest.mark.slow
def test_bench_quick(tmp_path, fake_corpus):
    """`scripts/bench.py --quick` runs every section on a fake corpus and writes the report."""
    from speechrnn.speechcommands import SpeechCommandsDataset

    labels = SpeechCommandsDataset(fake_corpus, "train").labels
    torch.manual_seed(0)
    config = ModelConfig(n_labels=len(labels), n_input=12, hidden=12, layers=2, attn_dim=6)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, Recognizer(config, labels, FEATURES))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "BENCHMARKS.md").write_text("# Benchmarks\n\n<!-- mfcc:start -->\nkept\n<!-- mfcc:end -->\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--model", str(ckpt),
           "--data", str(fake_corpus), "--out-dir", str(docs)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((docs / "bench.json").read_text())
    for key in ("size", "compute", "mfcc", "training", "accuracy", "spotting", "targets"):
        assert report[key], key
    assert set(report["compute"]["backends"]) == {
        "PyTorch eager fp32",
        "PyTorch eager int8",
        "onnxruntime fp32",
        "onnxruntime int8",
    }
    models = report["accuracy"]["models"]  # the live runner agrees with the chunked pass
    assert models["onnxruntime fp32"]["accuracy_streaming"] == pytest.approx(
        models["PyTorch fp32"]["accuracy_streaming"]
    )
    text = (docs / "BENCHMARKS.md").read_text()
    assert text.index("<!-- report:start -->") < text.index("<!-- mfcc:start -->")
    assert "kept" in text and "## Summary" in text
