"""Transcription of files: output shape, batching, directories, bad files, long files in bounded memory, and
block-size invariance. An untrained model (random weights, saved as a real checkpoint) drives everything that
does not need real words; the tests that do need them use the shipped model."""

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import speechrnn
from speechrnn.audio import load_audio, save_audio
from speechrnn.checkpoint import save_checkpoint
from speechrnn.cli import main
from speechrnn.clip_label import _clip_label, _LabelPicker
from speechrnn.decoding import greedy_decode, step_energy
from speechrnn.errors import SpeechRNNError
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.streaming import offline_outputs
from speechrnn.transcribe import (
    FailedFile,
    Transcription,
    _StepEnergies,
    default_lexicon,
    expand_paths,
    transcribe,
    transcribe_files,
)

LABELS = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right")
RATE = 16_000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the machine is shared, and a small GRU is fastest that way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> Recognizer:
    torch.manual_seed(0)
    return Recognizer(ModelConfig(n_labels=len(LABELS), hidden=16, layers=2, attn_dim=8), LABELS).eval()


@pytest.fixture(scope="module")
def ckpt(model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, model)
    return str(path)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with a slowly changing level and colour, so that the random model's outputs vary."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    level = np.repeat(rng.uniform(0.005, 0.3, size=n // 1600 + 1), 1600)[:n]
    return (np.cumsum(rng.standard_normal(n)) * 0.02 % 1.0 - 0.5 + rng.standard_normal(n)) * level * 0.5


def wav(path: Path, seconds: float, seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_audio(path, noise(seconds, seed))
    return str(path)


def spelled_words(model: Recognizer, audio: np.ndarray, n: int = 4) -> list[str]:
    """The letter pairs the random model spells most often on `audio`: a lexicon it will find words of."""
    out = offline_outputs(model, audio.astype(np.float32), None, 0.0)
    text = greedy_decode(out.ctc_log_probs[None])[0].replace("'", "")
    pairs = Counter(w[i : i + 2] for w in text.split() for i in range(len(w) - 1))
    return [p for p, _ in pairs.most_common(n)]


def run_cli(capsys, *args: str) -> tuple[int, list[str], str]:
    rc = main(["transcribe", *args])
    captured = capsys.readouterr()
    return rc, captured.out.splitlines(), captured.err


# ------------------------------------------------------------------------------------ shape and API


def test_json_lines_have_the_contract_shape(ckpt, tmp_path, capsys):
    files = [wav(tmp_path / "a.wav", 1.0), wav(tmp_path / "b.wav", 2.5, seed=1)]
    rc, lines, _ = run_cli(capsys, "--model", ckpt, *files, "--json", "--min-word-score", "0")
    assert rc == 0
    records = [json.loads(line) for line in lines]
    assert [r["path"] for r in records] == files
    for r in records:
        assert set(r) == {"path", "label", "score", "text", "words"}
        assert r["label"] in LABELS and 0.0 <= r["score"] <= 1.0
        assert isinstance(r["text"], str) and isinstance(r["words"], list)
        assert r["text"] == " ".join(w["word"] for w in r["words"])
        for w in r["words"]:
            assert set(w) == {"word", "start", "end", "score"}
            assert 0.0 <= w["start"] < w["end"] and 0.0 <= w["score"] <= 1.0


def test_readable_lines_by_default(ckpt, tmp_path, capsys):
    f = wav(tmp_path / "a.wav", 1.0)
    rc, lines, _ = run_cli(capsys, "--model", ckpt, f)
    assert rc == 0 and len(lines) == 1
    assert lines[0].startswith(f"{f}: ") and '"' in lines[0]


def test_single_clip_file_and_array_agree(model, ckpt, tmp_path):
    audio = noise(1.0)
    path = tmp_path / "clip.wav"
    save_audio(path, audio)
    lexicon = spelled_words(model, audio)
    from_file = speechrnn.transcribe(path, ckpt, words=lexicon, min_word_score=0.0, fillers=0)
    assert isinstance(from_file, Transcription) and from_file.path == str(path)
    assert from_file.duration == pytest.approx(1.0)
    assert from_file.words, "the random model should spell some of its own favourite letter pairs"
    assert from_file.text == " ".join(w.word for w in from_file.words)
    assert all(w.word in lexicon for w in from_file.words)
    times = [t for w in from_file.words for t in (w.start, w.end)]
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= 1.0 + 1e-9
    from_array = transcribe(
        sf.read(path, dtype="float32")[0], model, words=lexicon, min_word_score=0.0, fillers=0
    )
    assert from_array.path is None
    assert (from_array.label, from_array.text) == (from_file.label, from_file.text)
    assert [(w.word, w.start, w.end) for w in from_array.words] == [
        (w.word, w.start, w.end) for w in from_file.words
    ]


def test_array_at_another_rate_is_resampled(model):
    audio = noise(1.0).astype(np.float32)
    at_8k = audio[::2]
    result = transcribe(at_8k, model, sample_rate=8000)
    assert result.duration == pytest.approx(1.0, abs=1e-3)


def test_audio_too_short_for_one_frame_is_silence(model):
    result = transcribe(np.full(100, 0.1, np.float32), model)
    assert (result.label, result.score, result.text, result.words) == ("_silence_", 0.0, "", ())
    with pytest.raises(SpeechRNNError, match="empty array"):
        transcribe(np.zeros(0, np.float32), model)
    with pytest.raises(SpeechRNNError, match="shape"):
        transcribe(np.zeros((2, 100), np.float32), model)


def test_default_lexicon_is_the_command_words(model):
    assert default_lexicon(model) == ("down", "left", "no", "right", "up", "yes")
    numbered = Recognizer(ModelConfig(n_labels=2, hidden=4, layers=1), ("label0", "_silence_"))
    with pytest.raises(SpeechRNNError, match="no spellable word"):
        default_lexicon(numbered)


def test_unspellable_words_are_refused(model, ckpt, tmp_path, capsys):
    f = wav(tmp_path / "a.wav", 1.0)
    with pytest.raises(SpeechRNNError, match="'n0'"):
        transcribe(f, model, words=["yes", "n0"])
    rc, lines, err = run_cli(capsys, "--model", ckpt, f, "--words", "yes", "n0")
    assert rc == 2 and not lines and "'n0'" in err
    with pytest.raises(SystemExit) as exit_info:  # --words swallowed the file name
        run_cli(capsys, "--model", ckpt, "--words", "yes", "no", f)
    assert exit_info.value.code == 2
    assert "put it after the files" in capsys.readouterr().err


def test_batches_give_the_same_results_as_single_files(model, tmp_path):
    lengths = [1.0, 2.3, 0.4, 1.7, 3.1, 0.9]
    files = [wav(tmp_path / f"{i}.wav", s, seed=i) for i, s in enumerate(lengths)]
    lexicon = spelled_words(model, noise(3.0))
    # clips of 2 s or less run whole, batched with padding; the two longer ones stream between them
    opts = dict(words=lexicon, min_word_score=0.0, fillers=0, long_seconds=2.0)
    single = [transcribe(f, model, **opts) for f in files]
    for batch_size in (2, 6):
        batched = list(transcribe_files(files, model, batch_size=batch_size, **opts))
        assert [r.path for r in batched] == files
        for a, b in zip(batched, single, strict=True):
            assert (a.label, a.text) == (b.label, b.text)
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert [(w.start, w.end) for w in a.words] == [(w.start, w.end) for w in b.words]


# ------------------------------------------------------------------------------- files and folders


def test_directories_are_walked_for_audio_files(ckpt, tmp_path, capsys):
    root = tmp_path / "rec"
    expected = [
        wav(root / "b.wav", 0.5),
        wav(root / "sub" / "a.flac.wav", 0.5),
        wav(root / "sub" / "z.wav", 0.5),
    ]
    (root / "notes.txt").write_text("not audio")
    (root / "sub" / "deeper").mkdir()
    rc, lines, _ = run_cli(capsys, "--model", ckpt, str(root), "--json")
    assert rc == 0
    assert [json.loads(line)["path"] for line in lines] == sorted(expected)


def test_empty_directory_is_a_clear_error(ckpt, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, lines, err = run_cli(capsys, "--model", ckpt, str(empty))
    assert rc == 2 and not lines
    assert "no audio files found in" in err and str(empty) in err and ".wav" in err
    with pytest.raises(SpeechRNNError, match="no audio files"):
        expand_paths([empty])
    # next to real files, the empty directory is reported like a bad file and the rest still run
    good = wav(tmp_path / "good.wav", 0.5)
    rc, lines, _ = run_cli(capsys, "--model", ckpt, str(empty), good, "--json")
    records = [json.loads(line) for line in lines]
    assert rc == 1
    assert records[0]["path"] == str(empty) and "no audio files" in records[0]["error"]
    assert records[1]["path"] == good and "label" in records[1]


def test_bad_files_are_reported_and_the_others_transcribed(ckpt, tmp_path, capsys):
    good = [wav(tmp_path / f"good{i}.wav", 0.8, seed=i) for i in range(3)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("RIFF? no, just text\n" * 20)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(Path(good[0]).read_bytes()[:30])  # the header cut short
    missing = tmp_path / "missing.wav"
    order = [good[0], str(corrupt), good[1], str(empty), str(text), str(truncated), str(missing), good[2]]
    bad = {str(corrupt), str(empty), str(text), str(truncated), str(missing)}
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.wav"
        save_audio(locked, noise(0.5))
        locked.chmod(0)
        order.insert(3, str(locked))
        bad.add(str(locked))
    rc, lines, _ = run_cli(capsys, "--model", ckpt, *order, "--json", "--batch-size", "2")
    records = [json.loads(line) for line in lines]
    assert rc == 1
    assert [r["path"] for r in records] == order
    for r in records:
        if r["path"] in bad:
            assert set(r) == {"path", "error"} and r["error"]
        else:
            assert set(r) == {"path", "label", "score", "text", "words"}
    errors = {r["path"]: r["error"] for r in records if "error" in r}
    assert "no such file" in errors[str(missing)]
    assert "empty" in errors[str(empty)]
    # the API yields the same, as values
    results = list(transcribe_files(order, ckpt))
    assert [isinstance(r, FailedFile) for r in results] == [p in bad for p in order]


# ------------------------------------------------------------------------------------ long audio


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_long_file_streams_in_bounded_memory(model, tmp_path):
    minutes = 20
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:  # written in blocks: never whole in memory
        for i in range(minutes * 6):
            f.write(noise(10.0, seed=i).astype(np.float32))
    lexicon = spelled_words(model, noise(10.0))
    transcribe(
        noise(40.0, seed=99), model, words=lexicon, min_word_score=0.0, fillers=0, long_seconds=0
    )  # warm up
    base = _rss()
    peak, done = [base], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = transcribe(path, model, words=lexicon, min_word_score=0.0, fillers=0)
    finally:
        done.set()
        watcher.join()
    growth = peak[0] - base
    whole = minutes * 60 * RATE * 4  # the file as float32 samples alone, before any features
    assert result.duration == pytest.approx(minutes * 60)
    assert len(result.words) > 100 and result.words[-1].end > minutes * 60 - 60  # words all the way through
    assert growth < 25e6, f"memory grew by {growth / 1e6:.1f} MB"
    assert growth < whole / 3


def test_block_size_does_not_change_the_transcription(model, tmp_path):
    audio = noise(75.0, seed=3)  # longer than one 30 s decoding segment, so segments are cut too
    path = tmp_path / "long.wav"
    save_audio(path, audio)
    lexicon = spelled_words(model, audio[: 10 * RATE])
    results = {
        block: transcribe(
            path, model, words=lexicon, min_word_score=0.0, fillers=0, long_seconds=20, block_seconds=block
        )
        for block in (0.37, 4.0, 30.0)
    }
    reference = results[30.0]
    assert len(reference.words) > 50
    # with blocks of 0.37 s, many words straddle a block boundary: each must come out once, unchanged
    straddling = [w for w in reference.words if int(w.start / 0.37) != int(w.end / 0.37)]
    assert len(straddling) > 10
    for block, result in results.items():
        assert (result.label, result.text) == (reference.label, reference.text), block
        assert [(w.start, w.end) for w in result.words] == [(w.start, w.end) for w in reference.words], block
        assert [w.score for w in result.words] == pytest.approx([w.score for w in reference.words], abs=1e-4)
        assert result.score == pytest.approx(reference.score, abs=1e-5)
    # an array streams the same way as the file it came from
    from_array = transcribe(
        sf.read(path, dtype="float32")[0],
        model,
        words=lexicon,
        min_word_score=0.0,
        fillers=0,
        long_seconds=20,
        block_seconds=1.3,
    )
    assert from_array.text == reference.text


def test_streamed_step_energies_match_the_whole_signal():
    audio = noise(3.0).astype(np.float32)
    expected = step_energy(audio, 320)
    rng = np.random.default_rng(0)
    energies, got, fed, taken = _StepEnergies(320), [], 0, 0
    while fed < audio.size:
        n = int(rng.integers(1, 5000))
        energies.feed(audio[fed : fed + n])
        fed = min(fed + n, audio.size)
        ready = fed // 320 - taken - int(rng.integers(0, 3))  # the model lags behind the audio
        if ready > 0:
            got.append(energies.take(taken, ready))
            taken += ready
    energies.feed(np.zeros(0, np.float32), final=True)
    got.append(energies.take(taken, expected.size - taken))
    np.testing.assert_allclose(np.concatenate(got), expected)


# ------------------------------------------------------------------------------------------ labels


def test_long_audio_label_is_the_best_window_preferring_commands():
    picker = _LabelPicker(LABELS)
    silence, unknown, yes = (torch.zeros(len(LABELS)) for _ in range(3))
    silence[0], unknown[1], yes[2] = 9.0, 4.0, 1.0  # very sure of silence, a bit of "yes"
    picker.update(torch.stack([silence] * 20))
    assert picker.result()[0] == "_silence_"
    picker.update(torch.stack([unknown, silence]))
    assert picker.result()[0] == "_unknown_"
    picker.update(torch.stack([yes, silence]))
    label, score = picker.result()
    assert label == "yes" and score == pytest.approx(torch.softmax(yes, 0)[2].item())
    picker.update(torch.stack([unknown * 2]))  # a surer unknown does not beat a command
    assert picker.result()[0] == "yes"


def test_short_clip_label_pools_the_whole_clip(model):
    audio = torch.from_numpy(noise(0.9).astype(np.float32))[None]
    with torch.no_grad():
        feats, frames = model.featurize(audio, torch.tensor([audio.shape[1]]))
        out, _ = model(feats, frames)
    label, score = _clip_label(model, out.attn_logits[0], out.label_logits[0])
    probs = out.pooled_logits()[0].softmax(0)
    assert label == LABELS[int(probs.argmax())] and score == pytest.approx(float(probs.max()), abs=1e-5)


# ------------------------------------------------------------------------------ the trained model

PHRASES = ("yes", "go left stop", "down up off")


def speak(text: str, path: Path) -> np.ndarray:
    """`text` said by espeak-ng's default voice with 100 ms between words, at 16 kHz.

    The pause matches how the training phrases are built (words synthesised apart, 80-300 ms gaps); fully
    connected speech ("golefstop" at espeak's default rate) is a known gap of the shipped model.
    """
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-g", "10", "-w", str(path), text], check=True, capture_output=True)
    return load_audio(path)


def test_trained_model_transcribes_spoken_commands(tmp_path):
    model = speechrnn.load_model()
    right = 0
    for k, text in enumerate(PHRASES):
        audio = speak(text, tmp_path / f"{k}.wav")
        padded = np.concatenate([np.zeros(8000), audio, np.zeros(8000)]).astype(np.float32)
        result = transcribe(padded, model)
        right += result.text == text
        for w in result.words:
            assert 0.3 <= w.start < w.end <= 0.7 + audio.size / RATE
    assert right >= 2, f"{right} of {len(PHRASES)} phrases transcribed exactly"


def test_trained_model_word_across_a_block_boundary(tmp_path):
    model = speechrnn.load_model()
    clip = speak("go left stop", tmp_path / "phrase.wav")
    alone = transcribe(np.concatenate([np.zeros(8000), clip, np.zeros(8000)]).astype(np.float32), model)
    assert alone.text == "go left stop", f"the model hears {alone.text!r} in the clip on its own"
    # 40 s of faint noise with the phrase straddling the boundary of two 10 s blocks
    long = noise(40.0, seed=5) * 0.01
    start = 10 * RATE - clip.size // 2
    long[start : start + clip.size] += clip
    # Without fillers: what is compared is where the blocks meet, not how "stop" competes with "shop".
    blocks = transcribe(long.astype(np.float32), model, long_seconds=20, block_seconds=10, fillers=0)
    whole = transcribe(long.astype(np.float32), model, long_seconds=60, fillers=0)  # read whole: no boundary

    def near(result):  # elsewhere in the noise the model hears one "six" (21 s, score about 0.6)
        return [w for w in result.words if start / RATE - 1.0 <= w.start <= (start + clip.size) / RATE + 1.0]

    assert " ".join(w.word for w in near(blocks)) == "go left stop"
    # The same audio read whole is the reference: the clip alone, in silence, ends "stop" 0.1 s sooner than
    # it does in the noise, whichever way the noisy file is read.
    for w, a in zip(near(blocks), near(whole), strict=True):
        assert (w.word, w.start, w.end) == (
            a.word,
            pytest.approx(a.start, abs=0.1),
            pytest.approx(a.end, abs=0.1),
        )


# ------------------------------------------------------------------------------------------- benchmark


def test_benchmark_script_runs_and_keeps_other_sections(fake_corpus, ckpt, tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "scripts"))  # it imports bench_streaming
    spec = importlib.util.spec_from_file_location(
        "bench_transcribe", Path(__file__).parents[1] / "scripts" / "bench_transcribe.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nother numbers\n<!-- other:end -->\n")
    out = tmp_path / "bench.json"
    args = ["--data", str(fake_corpus), "--model", ckpt, "--quick", "--phrases", "3", "--minutes", "0.3"]
    for _ in range(2):  # the second run replaces the section it wrote
        assert bench.main([*args, "--json-out", str(out), "--md-out", str(md)]) == 0
    result = json.loads(out.read_text())
    assert 1 <= result["phrases"]["phrases"] <= 3 and set(result["phrases"]["wer"]) == {
        "greedy",
        "beam",
        "beam_no_unk",
    }
    assert result["recording"]["seconds"] >= 18 and result["recording"]["keywords"] > 0
    text = md.read_text()
    assert "other numbers" in text and text.count(bench.MARK_START) == 1 and text.count(bench.MARK_END) == 1
