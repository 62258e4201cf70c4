"""The streaming recogniser equals the offline chunked pass step for step, whatever the audio chunk sizes."""

import math

import numpy as np
import pytest
import torch
from signals import chirp_audio  # tests/ is on sys.path

from speechrnn.errors import SpeechRNNError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.streaming import (
    SPEECH_MARGIN_DB,
    PauseTracker,
    StreamingRecognizer,
    StreamOutput,
    hears_speech,
    latency_steps,
    offline_outputs,
)
from speechrnn.vocab import BLANK_ID, VOCAB

FEATURES = FeatureConfig(n_mels=20, n_mfcc=12)


def _model(cell="gru", bidirectional=True, stride=2, window=7, seed=0) -> Recognizer:
    torch.manual_seed(seed)
    config = ModelConfig(
        n_labels=4,
        n_input=FEATURES.n_mfcc,
        stride=stride,
        cell=cell,
        hidden=8,
        layers=2,
        bidirectional=bidirectional,
        dropout=0.0,
        attn_dim=6,
        window=window,
    )
    model = Recognizer(config, ("_silence_", "_unknown_", "yes", "no"), FEATURES).eval()
    model.set_normalization(torch.randn(FEATURES.n_mfcc) * 3, torch.rand(FEATURES.n_mfcc) * 5 + 1)
    return model


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    return chirp_audio(seconds, seed, noise=0.05)


def _random_chunks(n: int, rng: np.random.Generator) -> list[int]:
    """Chunk sizes covering n samples: zeros, single samples, odd sizes and big blocks mixed."""
    sizes, total = [], 0
    while total < n:
        low, high = [(0, 1), (1, 2), (2, 400), (400, 3000), (3000, 9000)][rng.integers(5)]
        size = int(rng.integers(low, high))
        size = min(size, n - total)
        sizes.append(size)
        total += size
    return sizes


def _stream(rec: StreamingRecognizer, audio: np.ndarray, sizes: list[int]) -> StreamOutput:
    outs, pos = [], 0
    for size in sizes:
        out = rec.accept(audio[pos : pos + size])
        assert out.start == (outs[-1].end if outs else 0)
        outs.append(out)
        pos += size
    outs.append(rec.flush())
    return StreamOutput.concat(outs)


def _assert_same(got: StreamOutput, ref: StreamOutput) -> None:
    assert got.start == ref.start == 0
    assert got.steps == ref.steps
    for name in ("ctc_log_probs", "label_logits", "attn_logits", "step_logits"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), atol=1e-4, rtol=1e-4, msg=name)
    torch.testing.assert_close(got.ready_seconds, ref.ready_seconds)


CASES = [
    ("gru", True, 2, 120.0, 80.0),
    ("gru", True, 1, 30.0, 50.0),
    ("gru", False, 2, 100.0, 0.0),
    ("gru", False, 1, None, 0.0),
    ("lstm", True, 2, 40.0, 60.0),
    ("lstm", True, 1, 70.0, 0.0),
    ("lstm", False, 2, None, 0.0),
    ("rnn", True, 2, 200.0, 20.0),
    ("rnn", True, 1, 10.0, 10.0),
    ("rnn", False, 1, 50.0, 0.0),
]


@pytest.mark.parametrize("cell,bidirectional,stride,chunk_ms,lookahead_ms", CASES)
def test_streaming_equals_offline_for_random_chunk_sizes(cell, bidirectional, stride, chunk_ms, lookahead_ms):
    model = _model(cell, bidirectional, stride)
    audio = _audio(1.3, seed=1)
    ref = offline_outputs(model, audio, chunk_ms, lookahead_ms)
    assert ref.steps == -(-FEATURES.num_frames(audio.size) // stride)
    rec = StreamingRecognizer(model, chunk_ms, lookahead_ms)
    rng = np.random.default_rng(hash((cell, bidirectional, stride)) % 2**32)
    for _ in range(2):  # the recogniser is reusable after flush
        _assert_same(_stream(rec, audio, _random_chunks(audio.size, rng)), ref)


def test_frame_by_frame_and_single_samples_equal_offline():
    model = _model("gru", True, 2)
    audio = _audio(0.45, seed=2)
    ref = offline_outputs(model, audio, 40.0, 20.0)
    rec = StreamingRecognizer(model, 40.0, 20.0)
    _assert_same(_stream(rec, audio, [FEATURES.hop_length] * (audio.size // FEATURES.hop_length + 1)), ref)
    ones = _stream(rec, audio[:6000], [1] * 6000)
    _assert_same(ones, offline_outputs(model, audio[:6000], 40.0, 20.0))


def test_steps_are_released_chunk_by_chunk_after_the_lookahead():
    model = _model("gru", True, 2)
    rec = StreamingRecognizer(model, chunk_ms=60.0, lookahead_ms=40.0)  # 3-step chunks, 2 steps held back
    hop, span = FEATURES.hop_length, FEATURES.frame_span
    samples_for = lambda frames: (frames - 1) * hop + span  # noqa: E731
    audio = _audio(1.0)
    assert rec.accept(audio[: samples_for(9)]).steps == 0  # 4 steps: chunk 0 needs 3 + 2
    out = rec.accept(audio[samples_for(9) : samples_for(10)])  # the 10th frame completes step 4
    assert (out.start, out.steps) == (0, 3)
    assert out.ready_seconds.tolist() == [samples_for(10) / 16000] * 3
    big = rec.accept(audio[samples_for(10) : samples_for(40)])  # 20 steps: chunks up to step 18 are final
    assert (big.start, big.steps) == (3, 15)
    rest = rec.flush()
    assert (rest.start, rest.end) == (18, 20)
    assert rest.ready_seconds.max() == samples_for(40) / 16000


def test_short_and_empty_streams():
    model = _model()
    rec = StreamingRecognizer(model)
    assert rec.accept(np.zeros(0, np.float32)).steps == 0
    assert rec.flush().steps == 0
    tiny = _audio(0.02)  # shorter than one MFCC frame
    assert rec.accept(tiny).steps == 0 and rec.flush().steps == 0
    assert offline_outputs(model, tiny).steps == 0
    one = _audio(0.04)  # a single frame: one zero-padded step
    _assert_same(_stream(rec, one, [one.size]), offline_outputs(model, one))


def test_reset_starts_a_new_stream():
    model = _model()
    audio = _audio(0.8)
    rec = StreamingRecognizer(model)
    rec.accept(_audio(0.7, seed=5))
    rec.reset()
    _assert_same(_stream(rec, audio, [1000] * 13), offline_outputs(model, audio))


def test_state_stays_bounded_over_a_long_stream():
    model = _model(window=5)
    rec = StreamingRecognizer(model, 40.0, 20.0)
    block = _audio(0.1)
    for _ in range(60):
        rec.accept(block)
        assert rec._pending.shape[0] < (2 + 1 + 1) * 2 + 2  # under chunk + look-ahead + a step, in frames
        assert rec._attn_hist.shape == (4,) and rec._label_hist.shape == (4, 4)


def test_chunk_and_lookahead_must_be_whole_steps():
    model = _model()
    assert latency_steps(model, 120.0, 80.0) == (6, 4)
    assert latency_steps(model, None, 0) == (None, 0)
    with pytest.raises(SpeechRNNError, match="multiple of the model's 20 ms step .*got 50 ms"):
        StreamingRecognizer(model, chunk_ms=50.0)
    with pytest.raises(SpeechRNNError, match="look-ahead .* got 30 ms"):
        StreamingRecognizer(model, lookahead_ms=30.0)
    with pytest.raises(SpeechRNNError, match="positive multiple"):
        StreamingRecognizer(model, chunk_ms=0.0)
    with pytest.raises(SpeechRNNError, match="bidirectional model streams in chunks"):
        StreamingRecognizer(model, chunk_ms=None)
    assert StreamingRecognizer(_model(bidirectional=False), chunk_ms=None).chunk is None
    assert StreamingRecognizer(_model(stride=1), chunk_ms=10.0, lookahead_ms=30.0).lookahead == 3


def test_bad_audio_is_refused():
    rec = StreamingRecognizer(_model())
    with pytest.raises(SpeechRNNError, match="mono"):
        rec.accept(np.zeros((100, 2), np.float32))
    with pytest.raises(SpeechRNNError, match="NaN"):
        rec.accept(np.full(10, np.nan, np.float32))


def test_full_context_offline_pass_is_ready_at_the_end():
    model = _model()
    audio = _audio(0.5)
    out = offline_outputs(model, audio, chunk_ms=None)
    assert torch.all(out.ready_seconds == audio.size / 16000)
    assert out.times()[1] == pytest.approx(0.02)


def _steady(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like sound: 200 ms bursts with 100 ms gaps, too short to count as pauses. (Steady noise is
    silence to the tracker, and the `_audio` tone's third-of-a-second gaps are pauses.)"""
    n = int(seconds * 16000)
    envelope = np.where((np.arange(n) % 4800) < 3200, 0.1, 1e-4)  # over the same floor as the pause
    return (np.random.default_rng(seed).standard_normal(n) * envelope).astype(np.float32)


def _with_pause(seed: int = 0) -> np.ndarray:
    """Sound, a second of near-silence, sound: the pause should reset the carried state."""
    quiet = (1e-4 * np.random.default_rng(seed).standard_normal(16000)).astype(np.float32)
    return np.concatenate([_steady(1.5, seed), quiet, _steady(1.5, seed + 1)])


def _accept_all(rec: StreamingRecognizer, audio: np.ndarray, sizes: list[int]) -> tuple[StreamOutput, int]:
    outs, pos = [], 0
    for size in sizes:
        outs.append(rec.accept(audio[pos : pos + size]))
        pos += size
    resets = rec.resets
    outs.append(rec.flush())
    return StreamOutput.concat(outs), resets


def test_pause_tracker_forgets_only_when_the_lookahead_is_quiet_too():
    """A pause resets after `reset_after_ms` of quiet frames, but not on a chunk whose look-ahead already
    holds sound (a word's onset); each pause is counted once, however many chunks it resets."""
    features = FeatureConfig()  # 10 ms hops: a 300 ms pause is 30 frames
    tracker = PauseTracker(features, 300.0)
    per_db = features.n_mels**0.5 * np.log(10) / 10  # c0 units per dB on every band
    floor, loud, soft = 0.0, (SPEECH_MARGIN_DB + 5) * per_db, (SPEECH_MARGIN_DB - 5) * per_db
    quiet = [floor] * 10  # one 100 ms chunk of frames at the floor
    assert [tracker.update(quiet, quiet) for _ in range(3)] == [False, False, True]  # 300 ms of quiet
    assert not tracker.update([loud] * 10, quiet)  # sound
    assert [tracker.update(quiet, quiet) for _ in range(3)] == [False, False, True]  # a pause again
    assert tracker.update(quiet, [soft] * 8)  # still a pause: soft frames stay under the margin
    heard = np.full((5, len(VOCAB)), -30.0)
    heard[:, BLANK_ID] = 0.0
    heard[2, BLANK_ID], heard[2, 5] = math.log(0.4), math.log(0.6)  # a character at 60 % on one step
    assert not tracker.update(quiet, quiet, heard)  # but the model hears a word the energy misses
    assert tracker.update(quiet, quiet)  # the same pause goes on (counted once)
    assert not tracker.update(quiet, [floor] * 7 + [loud])  # a word starts in the look-ahead: keep it
    assert not tracker.update([floor] * 7 + [loud] * 3, quiet)  # the word itself
    assert tracker.pauses == 2
    for _ in range(3):
        tracker.update(quiet, quiet)
    assert tracker.pauses == 3  # a third pause, counted once however many chunks it reset
    assert not tracker.update([loud], ())  # sound again; a chunk without look-ahead (a causal model)
    assert [tracker.update([floor] * 30, ()), tracker.update([floor] * 5, ())] == [True, True]
    assert tracker.pauses == 4


def test_hears_speech_when_a_character_is_likely_at_some_step():
    vocab = len(VOCAB)
    blank = torch.full((5, vocab), -20.0)
    blank[:, BLANK_ID] = 0.0  # certain blanks
    assert not hears_speech(blank) and not hears_speech(blank.numpy()) and not hears_speech(blank[:0])
    unsure = blank.clone()
    unsure[2, BLANK_ID], unsure[2, 5] = math.log(0.55), math.log(0.45)  # a character at 45 %: not heard
    assert not hears_speech(unsure)
    heard = blank.clone()
    heard[3, BLANK_ID], heard[3, 5] = math.log(0.4), math.log(0.6)  # a character at 60 % on one step
    assert hears_speech(heard) and hears_speech(heard.numpy())


def _hearing_nothing(model: Recognizer) -> Recognizer:
    """A trained model's CTC head gives blanks in a pause; a random one spells characters everywhere, which
    would keep the pause reset from ever firing (`hears_speech`)."""
    with torch.no_grad():
        model.ctc_head.bias[BLANK_ID] += 20.0
    return model


def test_silence_reset_is_independent_of_block_sizes():
    model, audio = _hearing_nothing(_model()), _with_pause()
    rng = np.random.default_rng(3)
    ref, n_ref = _accept_all(
        StreamingRecognizer(model, 120, 80, reset_after_silence_ms=300), audio, [audio.size]
    )
    assert n_ref >= 1
    for _ in range(3):
        got, n = _accept_all(
            StreamingRecognizer(model, 120, 80, reset_after_silence_ms=300),
            audio,
            _random_chunks(audio.size, rng),
        )
        assert n == n_ref
        _assert_same(got, ref)


def test_silence_reset_empties_the_label_window():
    """After a reset the label head pools only the fresh state's steps: at the first step after it, that
    step alone, as at the start of a stream. Without a reset no later step is pooled alone."""
    model, audio = _hearing_nothing(_model()), _with_pause()
    window = model.config.window

    def alone(out: StreamOutput) -> list[int]:
        """Steps past the first window whose pooled label logits are their own step's."""
        same = torch.isclose(out.label_logits, out.step_logits, atol=1e-5).all(dim=1)
        return [int(i) for i in torch.nonzero(same[window:]).flatten() + window]

    reset, n = _accept_all(
        StreamingRecognizer(model, 120, 80, reset_after_silence_ms=300), audio, [audio.size]
    )
    plain, _ = _accept_all(StreamingRecognizer(model, 120, 80), audio, [audio.size])
    steps = alone(reset)
    assert n == 1 and steps and not alone(plain)
    pause = (1.5 / reset.step_seconds, 2.5 / reset.step_seconds)
    chunk_steps = 6  # 120 ms of 20 ms steps: resets fall on chunk boundaries, inside the pause
    assert all(pause[0] < s <= pause[1] and s % chunk_steps == 0 for s in steps)


def test_silence_reset_forgets_the_state_only_after_a_pause():
    model, audio = _hearing_nothing(_model()), _with_pause()
    with torch.no_grad():  # a long memory (update gates near 1), so that what the pause forgets still shows
        for rnn in model.encoder.fwd:
            rnn.bias_hh_l0[rnn.hidden_size : 2 * rnn.hidden_size] = 6.0
    plain, _ = _accept_all(StreamingRecognizer(model, 120, 80), audio, [audio.size])
    reset, n = _accept_all(
        StreamingRecognizer(model, 120, 80, reset_after_silence_ms=300), audio, [audio.size]
    )
    assert n == 1  # one reset, in the pause
    before = int(1.5 / plain.step_seconds) - 10  # steps well before the pause are untouched
    torch.testing.assert_close(reset.ctc_log_probs[:before], plain.ctc_log_probs[:before])
    after = slice(int(2.0 / plain.step_seconds), int(2.7 / plain.step_seconds))  # the pause's end and beyond
    assert not torch.allclose(reset.ctc_log_probs[after], plain.ctc_log_probs[after])
    loud = _steady(4.0)
    _, none = _accept_all(StreamingRecognizer(model, 120, 80, reset_after_silence_ms=300), loud, [loud.size])
    assert none == 0
    with pytest.raises(SpeechRNNError, match="positive"):
        StreamingRecognizer(model, 120, 80, reset_after_silence_ms=0)
