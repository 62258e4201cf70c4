"""The Speech Commands data layer: scanning, splits, tasks, deterministic items, batching, download."""

from __future__ import annotations

import io
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fakecorpus import COMMANDS, SENTENCE_WORDS, make_fake_corpus, speaker_id
from torch.utils.data import DataLoader

from speechrnn.audio import SAMPLE_RATE, save_audio
from speechrnn.augment import AugmentConfig
from speechrnn.corpus import PHRASE
from speechrnn.errors import SpeechRNNError
from speechrnn.speechcommands import (
    NO_LABEL,
    SPLITS,
    UTTERANCE,
    Batch,
    Example,
    class_counts,
    collate,
    download,
    scan_corpus,
    silence_clip,
    split_name,
    task_labels,
)
from speechrnn.speechcommands import SpeechCommandsDataset as Dataset
from speechrnn.vocab import decode
from speechrnn.words import KWS12_WORDS, SILENCE, UNKNOWN

TRAIN_SPEAKERS, CLIPS_PER_WORD = (
    4,
    2,
)  # the fake corpus: 6 speakers (4 train, 1 validation, 1 test), 2 takes each


@pytest.fixture(scope="module")
def corpus(fake_corpus):
    return scan_corpus(fake_corpus)


@pytest.fixture
def small_corpus(tmp_path):
    """A few clips of two words, quick to write and to break."""
    return make_fake_corpus(tmp_path / "small", words=("yes", "no"), speakers=3, per_speaker=1)


# ------------------------------------------------------------------------------------------------ scanning


def test_scan_finds_words_clips_splits_and_extras(corpus, fake_corpus):
    assert corpus.words == tuple(sorted(COMMANDS))
    assert corpus.root == Path(fake_corpus).resolve()
    words_per_split = {"train": TRAIN_SPEAKERS, "validation": 1, "test": 1}
    for split, speakers in words_per_split.items():
        clips = corpus.clips[split]
        word_clips = [c for c in clips if c.label != UNKNOWN]
        assert len(word_clips) == len(COMMANDS) * speakers * CLIPS_PER_WORD
        assert sum(c.label == UNKNOWN for c in clips) == speakers * CLIPS_PER_WORD
        assert len(corpus.phrases[split]) == speakers * CLIPS_PER_WORD
        assert len(corpus.sentences[split]) == speakers
    assert [Path(p).name for p in corpus.background] == ["brown_noise.wav", "white_noise.wav"]
    assert all(Path(c.path).is_file() and c.path.endswith(c.rel) for s in SPLITS for c in corpus.clips[s])


def test_splits_hold_out_whole_speakers(corpus):
    speakers = {
        s: {c.speaker for c in corpus.clips[s] + corpus.phrases[s] + corpus.sentences[s]} for s in SPLITS
    }
    assert speakers["validation"] == {speaker_id(4)} and speakers["test"] == {speaker_id(5)}
    assert len(speakers["train"]) == TRAIN_SPEAKERS
    assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"])


def test_transcripts_and_word_times(corpus):
    for clip in corpus.clips["train"]:
        if clip.label == UNKNOWN:
            n = int(Path(clip.rel).stem.rsplit("_", 1)[1])
            # Even-numbered unknown clips have a clips.jsonl record; odd ones have none: no transcript,
            # and the speaker comes from the file name.
            assert clip.has_text == (n % 2 == 0)
            assert clip.speaker == Path(clip.rel).name.split("_nohash_")[0]
        else:
            assert clip.text == clip.label and clip.has_text
            assert len(clip.words) == 1 and clip.words[0].word == clip.label
            assert 0 <= clip.words[0].start < clip.words[0].end <= 1.0
    for phrase in corpus.phrases["train"]:
        said = phrase.text.split()
        assert 2 <= len(said) <= 4 and set(said) <= set(COMMANDS) and phrase.label == PHRASE
        assert [w.word for w in phrase.words] == said
    assert all(set(s.text.split()) <= set(SENTENCE_WORDS) for s in corpus.sentences["test"])
    for utterance in corpus.utterances["train"]:  # said as one, each with its word times
        assert utterance.label == UTTERANCE and [w.word for w in utterance.words] == utterance.text.split()


def test_scan_agrees_with_torchaudio_on_files_labels_speakers_and_splits(fake_corpus, tmp_path):
    from torchaudio.datasets import SPEECHCOMMANDS

    root = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    shutil.copytree(fake_corpus, root)
    ours = scan_corpus(root)
    subsets = {"train": "training", "validation": "validation", "test": "testing"}
    for split, subset in subsets.items():
        theirs = SPEECHCOMMANDS(tmp_path, download=False, subset=subset)
        seen = set()
        for n in range(len(theirs)):
            rel, rate, label, speaker, _ = theirs.get_metadata(n)
            seen.add((Path(rel).relative_to("speech_commands_v0.02").as_posix(), label, speaker))
        mine = {
            (c.rel, c.rel.split("/")[0], c.speaker)
            for c in ours.clips[split] + ours.phrases[split] + ours.sentences[split] + ours.utterances[split]
        }
        assert mine == seen and rate == SAMPLE_RATE


def test_real_corpus_layout_without_synthetic_extras(tmp_path):
    root = make_fake_corpus(tmp_path, words=KWS12_WORDS, speakers=3, per_speaker=1, phrases=False,
                            unknown=False, sentences=False, utterances=False, meta=False)  # fmt: skip
    corpus = scan_corpus(root)
    assert all(not corpus.phrases[s] and not corpus.sentences[s] for s in SPLITS)
    assert all(c.label in KWS12_WORDS and c.text == c.label and c.words == () for c in corpus.clips["train"])
    ds = Dataset(corpus, "train", "all")
    counts = class_counts(ds)
    assert counts[UNKNOWN] == 0 and counts[SILENCE] == 1  # ceil(10 % of 10 clips)
    assert PHRASE not in counts


def test_missing_lists_make_everything_training(small_corpus):
    (small_corpus / "validation_list.txt").unlink()
    (small_corpus / "testing_list.txt").unlink()
    corpus = scan_corpus(small_corpus)
    assert not corpus.clips["validation"] and not corpus.clips["test"]
    assert len(corpus.clips["train"]) == 2 * 3 + 3


def test_errors_name_what_was_expected_and_what_was_found(tmp_path, small_corpus):
    with pytest.raises(SpeechRNNError, match="nowhere: no such folder, expected a Speech Commands corpus"):
        scan_corpus(tmp_path / "nowhere")
    (tmp_path / "empty" / "_background_noise_").mkdir(parents=True)
    with pytest.raises(SpeechRNNError, match="expected word folders holding clips .* found none"):
        scan_corpus(tmp_path / "empty")
    with open(small_corpus / "testing_list.txt", "a") as f:
        f.write("yes/deadbeef_nohash_7.wav\n")
    with pytest.raises(
        SpeechRNNError, match=r"testing_list.txt:\d+: names 'yes/deadbeef_nohash_7.wav', which does not"
    ):
        scan_corpus(small_corpus)


def test_list_overlap_bad_meta_task_and_split_errors(small_corpus):
    corpus = scan_corpus(small_corpus)
    with pytest.raises(SpeechRNNError, match="task '12' expects folders for .*missing up, down"):
        task_labels(corpus, "12")
    with pytest.raises(SpeechRNNError, match="unknown task 'ten': expected one of 'all', '12'"):
        task_labels(corpus, "ten")
    with pytest.raises(SpeechRNNError, match="unknown split 'dev2'"):
        split_name("dev2")
    assert [split_name(s) for s in ("training", "val", "testing")] == ["train", "validation", "test"]
    first = (small_corpus / "testing_list.txt").read_text().splitlines()[0]
    with open(small_corpus / "validation_list.txt", "a") as f:
        f.write(first + "\n")
    with pytest.raises(SpeechRNNError, match="expected disjoint validation_list.txt and testing_list.txt"):
        scan_corpus(small_corpus)
    (small_corpus / "validation_list.txt").write_text("")
    with open(small_corpus / "_meta_" / "clips.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(SpeechRNNError, match=r"clips.jsonl:\d+: expected one JSON object per line"):
        scan_corpus(small_corpus)


# ------------------------------------------------------------------------------------------- tasks, counts


def test_task_labels(corpus):
    assert task_labels(corpus, "all") == (SILENCE, UNKNOWN, *sorted(COMMANDS))
    assert task_labels(corpus, "12") == (SILENCE, UNKNOWN, *KWS12_WORDS)


def test_task_12_proportions_follow_tensorflow(corpus):
    ds = Dataset(corpus, "train", "12", phrases=False)
    known = len(KWS12_WORDS) * TRAIN_SPEAKERS * CLIPS_PER_WORD  # 80
    counts = class_counts(ds)
    assert counts[SILENCE] == math.ceil(known * 0.1) and counts[UNKNOWN] == math.ceil(known * 0.1)
    assert all(counts[w] == TRAIN_SPEAKERS * CLIPS_PER_WORD for w in KWS12_WORDS)
    assert len(ds) == known + 16
    labels = ds.item_labels()
    unknown_paths = {ds[i].path for i in np.flatnonzero(labels == ds.labels.index(UNKNOWN))}
    # Unknown examples come from the non-task words (cat, dog) and from _unknown_/.
    assert {Path(p).parent.name for p in unknown_paths} <= {"cat", "dog", "_unknown_"}
    assert all(ds[i].label == labels[i] for i in range(0, len(ds), 5))
    ds_all = Dataset(corpus, "train", "all", phrases=False)
    counts = class_counts(ds_all)
    assert counts[UNKNOWN] == TRAIN_SPEAKERS * CLIPS_PER_WORD  # all of _unknown_/: fewer than 10 % of 96
    assert counts[SILENCE] == math.ceil(len(COMMANDS) * TRAIN_SPEAKERS * CLIPS_PER_WORD * 0.1)


def test_unknown_draw_changes_per_training_epoch_only(corpus):
    def unknown_paths(ds):
        return [ds.entry(i)[0].rel for i in np.flatnonzero(ds.item_labels() == 1)]

    train = Dataset(corpus, "train", "12", phrases=False)
    first = unknown_paths(train)
    train.set_epoch(1)
    assert unknown_paths(train) != first
    train.set_epoch(0)
    assert unknown_paths(train) == first
    assert unknown_paths(Dataset(corpus, "train", "12", phrases=False, seed=1)) != first
    val = Dataset(corpus, "validation", "12", phrases=False, unknown_percentage=20)
    fixed = unknown_paths(val)
    val.set_epoch(3)
    assert unknown_paths(val) == fixed and len(fixed) == 4


# ------------------------------------------------------------------------------------------------- items


def test_items_are_one_second_word_clips_with_their_transcripts(corpus):
    ds = Dataset(corpus, "validation", "12", phrases=False)
    for i in range(len(ds)):
        e = ds[i]
        assert isinstance(e, Example) and e.audio.dtype == torch.float32 and e.audio.shape == (SAMPLE_RATE,)
        name = ds.labels[e.label]
        if name == SILENCE:
            assert e.text == "" and e.has_text and e.path.startswith("<_silence_")
        elif name != UNKNOWN:
            assert e.text == name and Path(e.path).parent.name == name
    assert ds[-1].path == ds[len(ds) - 1].path
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_phrases_have_no_label_and_sentences_are_unknown(corpus):
    ds = Dataset(corpus, "train", "12", phrases=True)
    unlabelled = np.flatnonzero(ds.item_labels() == NO_LABEL)
    phrases = [ds[i] for i in unlabelled if "_phrases_" in ds.entry(i)[0].rel]
    assert len(phrases) == TRAIN_SPEAKERS * CLIPS_PER_WORD
    assert all(
        e.has_text and len(e.text.split()) >= 2 and e.audio.numel() >= 1.5 * SAMPLE_RATE for e in phrases
    )
    sentences = [
        ds.entry(i) for i in range(len(ds)) if ds.entry(i)[0] and "_sentences_" in ds.entry(i)[0].rel
    ]
    assert len(sentences) == TRAIN_SPEAKERS and all(label == 1 for _, label in sentences)
    # Utterances are for CTC (and the training streams): no class, whatever they hold.
    utterances = [
        ds.entry(i) for i in range(len(ds)) if ds.entry(i)[0] and "_utterances_" in ds.entry(i)[0].rel
    ]
    assert len(utterances) == 2 * TRAIN_SPEAKERS
    assert {label for _, label in utterances} == {NO_LABEL}
    # A sentence holding one of the label words has no single class.
    word = corpus.sentences["train"][0].text.split()[0]
    custom = Dataset(corpus, "train", labels=(SILENCE, UNKNOWN, "yes", word))
    labels = {c.rel: label for c, label in (custom.entry(i) for i in range(len(custom))) if c is not None}
    assert labels[corpus.sentences["train"][0].rel] == NO_LABEL


def test_unknown_clips_without_a_transcript_have_no_text(corpus):
    ds = Dataset(corpus, "train", "all", phrases=False)
    unknown = [ds[i] for i in np.flatnonzero(ds.item_labels() == 1)]
    assert {e.has_text for e in unknown} == {True, False}
    assert all(e.text == "" for e in unknown if not e.has_text)


def test_short_clips_are_padded_to_one_second(small_corpus):
    path = small_corpus / "yes" / f"{speaker_id(0)}_nohash_0.wav"  # a training clip
    save_audio(path, np.full(4000, 0.25, np.float32))
    ds = Dataset(small_corpus, "train", "all", phrases=False)
    e = next(ds[i] for i in range(len(ds)) if ds[i].path == str(path.resolve()))
    assert e.audio.shape == (SAMPLE_RATE,) and float(e.audio[3999]) == pytest.approx(0.25, abs=1e-4)
    assert float(e.audio[4000:].abs().max()) == 0.0


def test_silence_is_quiet_noise_or_nothing():
    noises = (np.random.default_rng(0).standard_normal(SAMPLE_RATE * 2).astype(np.float32),)
    clips = [silence_clip(np.random.default_rng([7, i]), noises) for i in range(300)]
    assert all(c.shape == (SAMPLE_RATE,) and c.dtype == np.float32 for c in clips)
    rms_db = np.array([10 * np.log10(np.mean(np.square(c.astype(np.float64))) + 1e-30) for c in clips])
    zeros = np.sum(rms_db < -200)
    assert 15 <= zeros <= 50  # about 10 % digital silence
    assert np.all(rms_db[rms_db > -200] <= -20 + 1e-3) and np.all(rms_db[rms_db > -200] >= -75 - 1e-3)
    np.testing.assert_array_equal(
        silence_clip(np.random.default_rng(3), ()), silence_clip(np.random.default_rng(3), ())
    )


def test_items_are_deterministic_per_seed_epoch_and_index(corpus):
    aug = AugmentConfig()
    a = Dataset(corpus, "train", "12", augment=aug, seed=3)
    b = Dataset(corpus, "train", "12", augment=aug, seed=3)
    picks = [0, 7, len(a) - 1, len(a) - 20]  # a word clip, another, a phrase, a silence item
    for i in picks:
        assert torch.equal(a[i].audio, b[i].audio)
    a.set_epoch(1)
    assert sum(not torch.equal(a[i].audio, b[i].audio) for i in picks[:2]) == 2
    b.set_epoch(1)
    assert all(torch.equal(a[i].audio, b[i].audio) for i in picks)
    other = Dataset(corpus, "train", "12", augment=aug, seed=4)
    other.set_epoch(1)
    assert not torch.equal(other[0].audio, a[0].audio)
    plain = Dataset(corpus, "train", "12")
    assert not torch.equal(plain[0].audio, a[0].audio)
    assert torch.equal(plain[0].audio, Dataset(corpus, "train", "12")[0].audio)


def test_dataloader_workers_give_the_same_items_as_in_process(corpus):
    ds = Dataset(corpus, "train", "12", augment=AugmentConfig(), seed=5)
    ds.set_epoch(2)
    subset = torch.utils.data.Subset(ds, list(range(0, len(ds), 3)))
    loader = DataLoader(subset, batch_size=8, num_workers=2, collate_fn=collate)
    batches = list(loader)
    expected = [
        collate([subset[j] for j in range(k, min(k + 8, len(subset)))]) for k in range(0, len(subset), 8)
    ]
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected, strict=True):
        assert torch.equal(got.audio, want.audio) and got.paths == want.paths
        assert torch.equal(got.labels, want.labels) and torch.equal(got.targets, want.targets)


# ---------------------------------------------------------------------------------------------- batching


def test_collate_pads_audio_and_targets():
    examples = [
        Example(torch.ones(5), 3, "yes", True, "a.wav"),
        Example(torch.full((9,), 2.0), -1, "go left", True, "b.wav"),
        Example(torch.ones(2), 1, "", False, "c.wav"),
        Example(torch.zeros(7), 0, "", True, "<_silence_ 0>"),
    ]
    batch = collate(examples)
    assert isinstance(batch, Batch) and len(batch) == 4
    assert batch.audio.shape == (4, 9) and batch.audio_lengths.tolist() == [5, 9, 2, 7]
    assert float(batch.audio[0, 5:].abs().sum()) == 0 and float(batch.audio[1].sum()) == 18
    assert batch.labels.tolist() == [3, -1, 1, 0]
    assert batch.targets.shape == (4, 7) and batch.target_lengths.tolist() == [3, 7, 0, 0]
    assert decode(batch.targets[1, :7]) == "go left" and decode(batch.targets[0, :3]) == "yes"
    assert batch.targets[0, 3:].eq(0).all()
    assert batch.has_text.tolist() == [True, True, False, True] and batch.has_text.dtype == torch.bool
    assert batch.paths == ("a.wav", "b.wav", "c.wav", "<_silence_ 0>")
    assert batch.texts == ("yes", "go left", "", "")
    moved = batch.to("cpu")
    assert (
        isinstance(moved, Batch) and torch.equal(moved.targets, batch.targets) and moved.paths == batch.paths
    )
    with pytest.raises(SpeechRNNError, match="expected at least one example"):
        collate([])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batch_moves_to_gpu_and_pins_memory():
    examples = [Example(torch.ones(5 + i), i, "yes", True, f"{i}.wav") for i in range(4)]
    loader = DataLoader(examples, batch_size=2, collate_fn=collate, pin_memory=True)
    batches = list(loader)
    assert all(isinstance(b, Batch) and b.audio.is_pinned() and b.targets.is_pinned() for b in batches)
    on_gpu = batches[1].to("cuda", non_blocking=True)
    assert on_gpu.audio.is_cuda and on_gpu.has_text.is_cuda and on_gpu.paths == ("2.wav", "3.wav")
    assert on_gpu.labels.tolist() == [2, 3]


# ---------------------------------------------------------------------------------------------- download


def _no_network(*args, **kwargs):
    raise AssertionError("the test must not touch the network")


def test_download_returns_an_existing_extraction_without_network(fake_corpus, tmp_path, monkeypatch):
    import torchaudio.datasets.speechcommands as tsc

    monkeypatch.setattr(tsc, "download_url_to_file", _no_network)
    placed = tmp_path / "SpeechCommands" / "speech_commands_v0.01"
    shutil.copytree(fake_corpus, placed)
    path = download(tmp_path, "v0.01")
    assert path == placed
    assert scan_corpus(path).words == tuple(sorted(COMMANDS))


def test_download_extracts_the_fetched_archive(small_corpus, tmp_path, monkeypatch):
    import torchaudio.datasets.speechcommands as tsc

    fetched = []

    def fake_fetch(url, dst, hash_prefix=None, **kwargs):
        fetched.append(url)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for item in sorted(small_corpus.iterdir()):
                tar.add(item, arcname=item.name)  # the real archive has no top-level folder
        Path(dst).write_bytes(buf.getvalue())

    monkeypatch.setattr(tsc, "download_url_to_file", fake_fetch)
    path = download(tmp_path / "dl")
    assert fetched == ["http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"]
    assert path == tmp_path / "dl" / "SpeechCommands" / "speech_commands_v0.02"
    assert scan_corpus(path).words == ("no", "yes")


def test_download_failures_are_speechrnn_errors(tmp_path, monkeypatch):
    import torchaudio.datasets.speechcommands as tsc

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(tsc, "download_url_to_file", offline)
    with pytest.raises(SpeechRNNError, match="could not download Speech Commands v0.02 .*name resolution"):
        download(tmp_path)
    with pytest.raises(SpeechRNNError, match="unknown Speech Commands version 'v3'"):
        download(tmp_path, "v3")
