"""The keyword spotter: threshold, smoothing, minimum support, refractory time, keyword filter, and the same
events whatever the chunking of the stream."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.audio import SAMPLE_RATE, save_audio
from speechrnn.checkpoint import save_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.features import FeatureConfig, mfcc
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.recognizer import StreamingRecognizer, StreamOutput
from speechrnn.spotter import Detection, KeywordSpotter, SpotterConfig
from speechrnn.streaming import TorchStep

LABELS = ("_silence_", "_unknown_", "yes", "no")
STEP = 0.02


def _output(probs: torch.Tensor, start: int = 0) -> StreamOutput:
    n = probs.shape[0]
    steps = np.arange(start, start + n)
    return StreamOutput(
        start=start,
        ctc_log_probs=np.zeros((n, 3), np.float32),
        label_logits=probs.clamp_min(1e-12).log().float().numpy(),
        attn_logits=np.zeros(n, np.float32),
        step_logits=np.zeros((n, len(LABELS)), np.float32),
        ready_seconds=(steps + 1).astype(np.float64) * STEP,
        c0=np.zeros(n, np.float32),
        step_seconds=STEP,
    )


def _scores(spans: list[tuple[str, int, float]]) -> torch.Tensor:
    """Consecutive spans (label, steps, probability of that label); the rest of the mass goes to silence."""
    rows = []
    for label, n, p in spans:
        row = torch.full((len(LABELS),), (1 - p) / (len(LABELS) - 1))
        row[LABELS.index(label)] = p
        rows.append(row.expand(n, -1))
    return torch.cat(rows)


def _spot(probs: torch.Tensor, splits: list[int] | None = None, **config) -> list[Detection]:
    spotter = KeywordSpotter(LABELS, STEP, SpotterConfig(**config))
    events, pos = [], 0
    for size in [*(splits or []), probs.shape[0]]:
        piece = probs[pos : pos + size] if size else probs[pos:pos]
        events += spotter.update(_output(piece, pos))
        pos += piece.shape[0]
    events += spotter.update(_output(probs[pos:], pos))
    return events


def test_fires_once_per_run_above_threshold():
    probs = _scores([("_silence_", 50, 0.9), ("yes", 20, 0.9), ("_silence_", 80, 0.9), ("no", 20, 0.95)])
    events = _spot(probs, smooth_ms=20, min_ms=20, threshold=0.5)
    assert [(e.keyword, e.step) for e in events] == [("yes", 50), ("no", 150)]
    assert events[0].time == pytest.approx(51 * STEP)
    assert events[0].score == pytest.approx(0.9)
    assert events[0].to_dict() == {"keyword": "yes", "time": 1.02, "score": 0.9}


def test_threshold_trades_misses_for_false_alarms():
    probs = _scores([("_silence_", 30, 0.5), ("yes", 20, 0.55), ("_silence_", 30, 0.5), ("no", 20, 0.8)])
    assert [e.keyword for e in _spot(probs, smooth_ms=20, min_ms=20, threshold=0.5)] == ["yes", "no"]
    assert [e.keyword for e in _spot(probs, smooth_ms=20, min_ms=20, threshold=0.7)] == ["no"]
    assert _spot(probs, smooth_ms=20, min_ms=20, threshold=0.9) == []


def test_a_keyword_may_have_its_own_threshold():
    probs = _scores([("_silence_", 30, 0.5), ("yes", 20, 0.55), ("_silence_", 30, 0.5), ("no", 20, 0.8)])
    config = SpotterConfig(smooth_ms=20, min_ms=20, threshold=0.5)
    spotter = KeywordSpotter(LABELS, STEP, config, thresholds={"yes": 0.6, "no": 0.75})
    assert [e.keyword for e in spotter.update(_output(probs))] == ["no"]
    with pytest.raises(SpeechRNNError, match="no's threshold must be a probability"):
        KeywordSpotter(LABELS, STEP, config, thresholds={"no": 1.5})


def test_minimum_supporting_time():
    probs = _scores([("_silence_", 20, 0.9), ("yes", 4, 0.9), ("_silence_", 20, 0.9), ("no", 6, 0.9)])
    assert [e.keyword for e in _spot(probs, smooth_ms=20, min_ms=100)] == ["no"]  # 5 steps needed
    events = _spot(probs, smooth_ms=20, min_ms=80, refractory_ms=0)
    assert [(e.keyword, e.step) for e in events] == [("yes", 23), ("no", 47)]  # fires at the 4th step


def test_refractory_time_suppresses_close_events():
    probs = _scores(
        [("yes", 10, 0.9), ("_silence_", 10, 0.9), ("no", 10, 0.9), ("_silence_", 40, 0.9), ("yes", 10, 0.9)]
    )
    fast = dict(smooth_ms=20, min_ms=20)
    assert [e.step for e in _spot(probs, refractory_ms=300, **fast)] == [0, 20, 70]
    assert [e.step for e in _spot(probs, refractory_ms=600, **fast)] == [0, 70]
    # A run that outlasts the refractory time still fires only once.
    assert len(_spot(_scores([("yes", 200, 0.9)]), min_ms=20, refractory_ms=100)) == 1


def test_by_default_two_words_said_in_one_breath_both_fire():
    # "yes no" connected: the second word tops the labels 0.3 s after the first, for 0.2 s (docs/LIVE.md,
    # refractory; 500 ms missed it).
    probs = _scores([("_silence_", 20, 0.9), ("yes", 15, 0.9), ("no", 10, 0.9), ("_silence_", 40, 0.9)])
    assert [e.keyword for e in _spot(probs)] == ["yes", "no"]


def test_a_keyword_that_creeps_over_the_threshold_late_does_not_fire():
    # "yes" is on top but under the threshold for 0.6 s, then rises: a word sliding out of the window, not a
    # new word.
    late = _scores([("_silence_", 10, 0.9), ("yes", 30, 0.4), ("yes", 10, 0.9)])
    assert _spot(late, smooth_ms=20, min_ms=20, onset_ms=500) == []
    assert [e.step for e in _spot(late, smooth_ms=20, min_ms=20, onset_ms=None)] == [40]
    prompt = _scores([("_silence_", 10, 0.9), ("yes", 20, 0.4), ("yes", 10, 0.9)])  # 0.4 s: in time
    assert [e.step for e in _spot(prompt, smooth_ms=20, min_ms=20, onset_ms=500)] == [30]
    # A keyword that is top and above the threshold for a long time still fires once, at its start.
    assert [e.step for e in _spot(_scores([("yes", 100, 0.9)]), smooth_ms=20, min_ms=20)] == [0]
    with pytest.raises(SpeechRNNError, match="onset_ms"):
        KeywordSpotter(LABELS, STEP, SpotterConfig(onset_ms=-1))


def test_smoothing_removes_a_short_spike():
    probs = _scores([("_silence_", 30, 0.9), ("yes", 2, 0.99), ("_silence_", 30, 0.9)])
    assert _spot(probs, smooth_ms=20, min_ms=20, threshold=0.6) != []
    assert _spot(probs, smooth_ms=200, min_ms=20, threshold=0.6) == []


def test_silence_and_unknown_never_fire_and_block_others():
    probs = _scores([("_unknown_", 50, 0.99), ("_silence_", 50, 0.99)])
    assert _spot(probs, threshold=0.0, smooth_ms=20, min_ms=20) == []


def test_keyword_filter():
    probs = _scores([("yes", 20, 0.9), ("_silence_", 60, 0.9), ("no", 20, 0.9)])
    assert [e.keyword for e in _spot(probs, keywords=("no",), refractory_ms=0)] == ["no"]
    with pytest.raises(
        SpeechRNNError, match="'maybe' is not one of the model's labels; the model spots: yes, no"
    ):
        KeywordSpotter(LABELS, STEP, SpotterConfig(keywords=("maybe",)))
    with pytest.raises(SpeechRNNError, match="never fires"):
        KeywordSpotter(LABELS, STEP, SpotterConfig(keywords=("_silence_",)))
    with pytest.raises(SpeechRNNError, match="threshold"):
        KeywordSpotter(LABELS, STEP, SpotterConfig(threshold=1.5))


def test_same_events_for_any_split_of_the_scores():
    rng = np.random.default_rng(0)
    spans = [
        (LABELS[rng.integers(4)], int(rng.integers(3, 40)), float(rng.uniform(0.3, 1))) for _ in range(40)
    ]
    probs = _scores(spans)
    config = dict(smooth_ms=100, min_ms=40, refractory_ms=200, threshold=0.5)
    whole = _spot(probs, **config)
    assert len(whole) > 5
    for seed in range(5):
        splits = np.random.default_rng(seed).integers(0, 30, size=50).tolist()
        assert _spot(probs, splits, **config) == whole
    spotter = KeywordSpotter(LABELS, STEP)
    with pytest.raises(SpeechRNNError, match="expected step 0 next"):
        spotter.update(_output(probs[:5], start=3))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_same_events_for_many_audio_chunk_sizes(backend, tmp_path):
    """openWakeWord's test_predict_with_different_frame_sizes: the whole live stack, chunked many ways, over
    either step backend."""
    torch.manual_seed(3)
    features = FeatureConfig(n_mels=20, n_mfcc=12)
    config = ModelConfig(n_labels=4, n_input=12, hidden=8, layers=2, dropout=0.0, attn_dim=6, window=5)
    model = Recognizer(config, LABELS, features).eval()
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(16000 * 3) * np.repeat(rng.uniform(0, 0.5, 30), 1600)).astype(np.float32)
    feats = mfcc(audio, features)
    model.set_normalization(feats.mean(0), feats.std(0))
    with torch.no_grad():
        model.label_head.weight.mul_(20)  # sharpen the random head so that the labels change often
    spot_config = SpotterConfig(threshold=0.4, smooth_ms=60, min_ms=40, refractory_ms=200)
    step = TorchStep(model, 60.0, 40.0)
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
        from speechrnn.export import export_onnx
        from speechrnn.onnx_runner import OnnxStep

        step = OnnxStep(export_onnx(model, tmp_path / "m.onnx", chunk_ms=60.0, lookahead_ms=40.0))

    def run(block: int) -> list[Detection]:
        rec, spotter = StreamingRecognizer(step), KeywordSpotter(LABELS, 0.02, spot_config)
        events = []
        for pos in range(0, audio.size, block):
            events += spotter.update(rec.accept(audio[pos : pos + block]))
        return events + spotter.update(rec.flush())

    reference = run(audio.size)
    assert reference, "the test needs some events"
    for block in (1280, 1600, 4000, 517):
        got = run(block)
        assert [(e.keyword, e.step, e.time) for e in got] == [(e.keyword, e.step, e.time) for e in reference]
        assert [e.score for e in got] == pytest.approx([e.score for e in reference], abs=1e-4)


# --- the streaming benchmark (scripts/bench_streaming.py), lightly ---------------------------------------


def _bench():
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_streaming.py"
    spec = importlib.util.spec_from_file_location("bench_streaming", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_scores_like_the_tensorflow_streaming_test():
    bench = _bench()
    words = [
        {"word": "yes", "start": 1.0, "end": 1.5},
        {"word": "no", "start": 3.0, "end": 3.4},
        {"word": "up", "start": 6.0, "end": 6.3},
        {"word": "apple", "start": 8.0, "end": 8.4},  # not a keyword: a detection there is a false positive
    ]
    for w, noise, voice in zip(
        words, ("babble", "white", "babble", "pink"), ("a", "b", "b", "a"), strict=True
    ):
        w["noise"], w["voice"] = noise, voice
    found = [Detection("yes", 1.7, 0.9, 0), Detection("up", 3.6, 0.8, 0), Detection("no", 8.2, 0.7, 0)]
    stats = bench.score(found, words, {"yes", "no", "up"}, tolerance_s=0.75)
    assert stats["words"] == 3
    assert (stats["correct_pct"], stats["wrong_pct"], stats["false_positive_pct"]) == (33.33, 33.33, 33.33)
    assert stats["matched_pct"] == 66.67
    assert stats["latency_median_ms"] == pytest.approx(200.0)
    assert stats["correct_by_noise"] == {"babble": [1, 2], "white": [0, 1]}
    assert stats["correct_by_voice"] == {"a": [1, 1], "b": [0, 2]}
    assert bench.voice_group({"voice": "espeak:en-us+f3 rate=1.00 pitch=40"}) == "espeak"
    assert bench.voice_group({"voice": "flite:rms rate=0.91 pitch=100"}) == "flite:rms"


def test_benchmark_interval_is_over_speakers():
    bench = _bench()
    words = [{"word": "yes", "speaker": f"s{k}"} for k in range(10) for _ in range(10)]
    lo, hi = bench.speaker_interval(words, [w["speaker"] != "s0" for w in words])  # one speaker hears nothing
    assert lo < 90.0 < hi and hi == 100.0  # other draws of people may hold no such speaker, or two
    spread = [i % 10 != 0 for i in range(100)]  # the same ten misses, one per speaker: every draw alike
    assert bench.speaker_interval(words, spread) == [90.0, 90.0]
    assert bench.speaker_interval([{"word": "yes"}], [True]) is None  # no speakers, no interval


def test_benchmark_babble_is_spoken_by_the_held_out_split(fake_corpus, tmp_path):
    bench = _bench()
    data = tmp_path / "corpus"
    shutil.copytree(fake_corpus, data)
    n = 2 * SAMPLE_RATE
    save_audio(data / "_background_noise_" / "babble.wav", 0.1 * np.random.default_rng(0).standard_normal(n))
    records = bench.split_records(data, "test")
    assert any(r["label"] == "_sentence_" for r in records)
    trained = bench.noise_bed(data, [])  # no sentences: the corpus's babble, the one training mixes in
    bed = bench.noise_bed(data, records)
    np.testing.assert_array_equal(bed.audio, bench.noise_bed(data, records).audio)  # one fixed draw
    assert bed.audio.size == trained.audio.size
    np.testing.assert_array_equal(bed.audio[n:], trained.audio[n:])  # babble.wav sorts first; the rest stay
    assert abs(np.corrcoef(bed.audio[:n], trained.audio[:n])[0, 1]) < 0.1  # babble made again, of sentences
    assert np.std(bed.audio[:n]) == pytest.approx(1.0, abs=1e-3)
    # Each sample knows its noise, round the loop too: the benchmark counts the words under each.
    assert bed.names[0] == "babble" and bed.name_at(0) == bed.name_at(n - 1) == "babble"
    assert bed.name_at(n) == bed.names[1] and bed.name_at(bed.audio.size + 5) == "babble"


def test_benchmark_quick_run_writes_its_report(fake_corpus, tmp_path):
    torch.manual_seed(0)
    labels = ("_silence_", "_unknown_", "yes", "no", "up", "down")
    config = ModelConfig(n_labels=len(labels), hidden=8, layers=1, attn_dim=4)
    model = tmp_path / "model.pt"
    save_checkpoint(model, Recognizer(config, labels))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nintro\n\n<!-- streaming:start -->\nSTALE NUMBERS\n<!-- streaming:end -->\n"
        "\n## Other\nkept\n"
    )
    args = [
        "--quick",
        "--model",
        str(model),
        "--data",
        str(fake_corpus),
        "--out-dir",
        str(docs),
        "--seconds",
        "4",
    ]
    assert _bench().main(args + ["--max-words", "6", "--max-phrases", "2", "--max-sentences", "2"]) == 0
    result = json.loads((docs / "bench_streaming.json").read_text())
    assert result["compute"]["rtf"] > 0 and result["accuracy"]["words"] > 0
    text = (docs / "BENCHMARKS.md").read_text()
    assert "STALE NUMBERS" not in text and text.count("<!-- streaming:start -->") == 1
    assert text.startswith("# Benchmarks\n\nintro\n") and text.endswith("## Other\nkept\n")
    assert "real-time factor" in text and "| threshold |" in text
