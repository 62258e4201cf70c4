"""Training streams: step targets follow the words as the spotter reads them; streams are reproducible and
their word times point at the sound; the training loss learns from them."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from speechrnn.errors import SpeechRNNError
from speechrnn.evaluate import evaluate_model
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.speechcommands import NO_LABEL, collate, scan_corpus, task_labels
from speechrnn.train import TrainConfig, compute_loss
from speechrnn.train_streams import (
    IGNORE,
    SETTLE_S,
    SLACK_S,
    TAIL_S,
    LabelSpan,
    StreamConfig,
    TrainingStreams,
    step_targets,
)

SIL, UNK, GO, STOP = 0, 1, 2, 3
STEP = 0.02
ENDS = torch.arange(250) * STEP  # 5 s of steps, step k has heard k * 20 ms


def targets(*spans: LabelSpan) -> torch.Tensor:
    return step_targets(spans, ENDS, 1.0, SIL, UNK)


def at(t: torch.Tensor, seconds: float) -> int:
    return int(t[round(seconds / STEP)])


def test_no_words_is_silence_throughout():
    assert (targets() == SIL).all()


def test_a_word_is_unknown_while_spoken_ignored_as_it_ends_then_itself_until_it_slides_out():
    t = targets(LabelSpan(1.0, 1.5, GO))
    assert at(t, 0.9) == SIL
    assert at(t, 1.1) == UNK  # only its beginning heard: "for-" could become "forward"
    assert at(t, 1.5 - SETTLE_S / 2) == IGNORE  # the decision is being made
    assert at(t, 1.52) == GO
    assert at(t, 2.0 + SLACK_S - 0.02) == GO  # the whole word still in the window (with slack)
    assert at(t, 2.3) == IGNORE  # sliding out of the window
    assert at(t, 2.5 + 1 - TAIL_S + 0.04) == SIL  # only its tail left
    assert at(t, 4.0) == SIL


def test_the_latest_finished_word_wins_and_holds_while_the_next_is_spoken():
    t = targets(LabelSpan(1.0, 1.4, GO), LabelSpan(1.6, 2.0, STOP))
    assert at(t, 1.45) == GO
    assert at(t, 1.7) == GO  # "stop" under way: still "go"
    assert at(t, 1.9) == IGNORE
    assert at(t, 2.05) == STOP
    t = targets(LabelSpan(1.0, 1.4, GO), LabelSpan(1.6, 2.0, UNK))
    assert at(t, 2.05) == UNK  # an unknown word after a command moves the answer on


def test_a_fresh_word_after_a_word_left_the_window_is_unknown_until_it_ends():
    t = targets(LabelSpan(0.2, 0.6, GO), LabelSpan(3.0, 3.5, STOP))
    assert at(t, 3.1) == UNK
    assert at(t, 3.55) == STOP


@pytest.fixture(scope="module")
def corpus(fake_corpus):
    return scan_corpus(fake_corpus)


def test_streams_are_reproducible_and_change_with_the_epoch(corpus):
    labels = task_labels(corpus, "12")
    a, b = TrainingStreams(corpus, labels, seed=3), TrainingStreams(corpus, labels, seed=3)
    x, y = a[5], b[5]
    assert torch.equal(x.audio, y.audio) and x.spans == y.spans and x.text == y.text
    b.set_epoch(1)
    assert not (b[5].audio.shape == x.audio.shape and torch.equal(b[5].audio, x.audio))


def test_stream_items_are_unlabelled_and_their_words_are_where_the_sound_is(corpus):
    labels = task_labels(corpus, "12")
    streams = TrainingStreams(corpus, labels, StreamConfig(per_epoch=40, fragment_prob=0.0), seed=1)
    inside = outside = 0.0
    n_in = n_out = 0
    for i in range(len(streams)):
        ex = streams[i]
        assert ex.label == NO_LABEL and ex.spans
        audio = ex.audio.numpy()
        seconds = audio.size / 16000
        assert seconds <= streams.config.max_seconds + 6  # the last clip may start just before the limit
        mask = np.zeros(audio.size, dtype=bool)
        for sp in ex.spans:
            assert 0 <= sp.start < sp.end <= seconds + 1e-6
            assert 0 <= sp.label < len(labels)
            mask[int(sp.start * 16000) : int(sp.end * 16000)] = True
        assert ex.has_text and len(ex.text.split()) == len(ex.spans)  # one transcript word per span
        named = ex.text.split()
        assert [labels[sp.label] for sp in ex.spans] == [w if w in labels else "_unknown_" for w in named]
        inside += float(np.sum(audio[mask] ** 2))
        outside += float(np.sum(audio[~mask] ** 2))
        n_in, n_out = n_in + mask.sum(), n_out + (~mask).sum()
    assert inside / n_in > 100 * outside / max(n_out, 1)  # no augmentation: the pauses are silent


def test_fragments_are_unknown_and_leave_the_transcript_out(corpus):
    labels = task_labels(corpus, "12")
    cfg = StreamConfig(per_epoch=30, fragment_prob=1.0, kinds=(1.0, 0.0, 0.0, 0.0, 0.0))
    for ex in (TrainingStreams(corpus, labels, cfg, seed=0)[i] for i in range(30)):
        assert all(labels[sp.label] == "_unknown_" for sp in ex.spans)
        assert not ex.has_text and ex.text == ""


def test_streams_need_silence_and_unknown_labels(corpus):
    with pytest.raises(SpeechRNNError, match="_unknown_"):
        TrainingStreams(corpus, ("yes", "no", "_silence_"))
    with pytest.raises(SpeechRNNError, match="clips"):
        StreamConfig(clips=(3, 2))


def test_the_stream_loss_joins_training_and_reaches_the_label_head(corpus, fake_corpus):
    labels = task_labels(corpus, "12")
    streams = TrainingStreams(corpus, labels, StreamConfig(per_epoch=4), seed=0)
    batch = collate([streams[i] for i in range(4)])
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=len(labels), hidden=16, layers=1, dropout=0.0), labels)
    cfg = TrainConfig(data=str(fake_corpus), task="12", full_context_prob=1.0)
    loss, parts = compute_loss(model, batch, cfg, 0, torch.device("cpu"))
    assert "stream" in parts and np.isfinite(parts["stream"]) and "ce" not in parts
    loss.backward()
    assert model.label_head.weight.grad.abs().sum() > 0
    assert model.attn[0].weight.grad.abs().sum() > 0
    # Without streams in the batch, the same step runs at full context: the stream loss is absent.
    _, plain = compute_loss(model, replace(batch, spans=((),) * 4), cfg, 0, torch.device("cpu"))
    assert "stream" not in plain


def test_evaluation_scores_streams_step_by_step(corpus):
    labels = task_labels(corpus, "12")
    streams = TrainingStreams(corpus, labels, StreamConfig(per_epoch=6), seed=0)
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=len(labels), hidden=16, layers=1, dropout=0.0), labels)
    result = evaluate_model(model, streams, batch_size=4, chunk=5, lookahead=4, progress_bar=False)
    assert result["n"] == 0 and result["stream_steps"] > 0  # streams have no clip label, only step targets
    assert 0.0 <= result["stream_accuracy"] <= 1.0 and result["stream_loss"] > 0


def test_a_corpus_without_word_times_uses_where_the_sound_is(fake_corpus, tmp_path):
    """The real Speech Commands has no clips.jsonl: a clip's word is its loud part."""
    import shutil

    root = tmp_path / "plain"
    shutil.copytree(fake_corpus, root, ignore=shutil.ignore_patterns("_meta_"))
    corpus = scan_corpus(root)
    labels = task_labels(corpus, "12")
    streams = TrainingStreams(corpus, labels, StreamConfig(per_epoch=10, fragment_prob=0.0), seed=0)
    for ex in (streams[i] for i in range(10)):
        audio = ex.audio.numpy()
        assert ex.spans and ex.has_text
        for sp in ex.spans:
            inside = audio[int(sp.start * 16000) : int(sp.end * 16000)]
            assert np.sqrt(np.mean(inside**2)) > 0.05  # the span holds the word's sound


def test_training_noise_adds_babble_of_the_splits_own_sentences(corpus):
    from speechrnn.augment import AugmentConfig, load_noises, speech_babble
    from speechrnn.speechcommands import SpeechCommandsDataset

    files = load_noises(corpus.background)
    count = AugmentConfig().babble_recordings
    babble = speech_babble([c.path for c in corpus.sentences["train"]], count)
    assert len(babble) == count > 0 and corpus.sentences["train"]
    clips = SpeechCommandsDataset(corpus, "train", augment=AugmentConfig())
    streams = TrainingStreams(corpus, task_labels(corpus, "12"), augment=AugmentConfig())
    for noises in (clips._noises(), streams._noises()):
        assert len(noises) == len(files) + count
        assert all(a is b for a, b in zip(noises, files + babble, strict=True))
    assert SpeechCommandsDataset(corpus, "validation")._noises() == files  # no augmenting, no babble
