"""The command line under hostile use: every option of every command with NaN, infinities, zero, negative,
huge, empty and wrong-type values and with paths that are folders, files or missing either passes its
checks or stops with one line `speechrnn CMD: error: ...` and status 2, before any work and without writing
a file. Then one regression test for each failure the hostile run of issue 31 found."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import speechrnn.config as config_module
from speechrnn import cli
from speechrnn.checkpoint import load_model, save_checkpoint
from speechrnn.clip_label import COMMAND_FLOOR, _LabelPicker
from speechrnn.decoding import Word
from speechrnn.latency import LIVE
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.transcribe import Transcription

NUMBERS = ["nan", "NaN", "inf", "-inf", "-1", "0", "1", "0.5", "2", "120", "1e8", "1e308", "1" + "0" * 40,
           "", "abc", "1.5", "0x10", " 3", "9" * 400]  # fmt: skip
LABELS = ("_silence_", "_unknown_", "yes", "no", "house")


def run(argv: list[str], check_only: bool = True) -> tuple[int, str, str]:
    """`speechrnn ARGV` in this process: (status, stdout, stderr); SystemExit is a status too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv, check_only=check_only)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, command: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"speechrnn {command}: error: "), err


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A folder, a file, a checkpoint and a WAV to point options at."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "folder").mkdir()
    (root / "file.txt").write_text("not audio\n")
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=len(LABELS), hidden=8, layers=1), LABELS)
    save_checkpoint(root / "tiny.pt", model)
    sf.write(root / "clip.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    return root


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------------- the property


def _paths(root: Path) -> st.SearchStrategy[str]:
    """A folder, a file, a missing path, a path under a file, an empty string, a checkpoint, a WAV."""
    return st.sampled_from([str(root / "folder"), str(root / "file.txt"), str(root / "missing"),
                            str(root / "file.txt" / "below"), "", str(root / "tiny.pt"), str(root / "clip.wav"),
                            str(root / "new" / "out.onnx"), str(root / "new" / "m.pt")])  # fmt: skip


def _values(root: Path) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NUMBERS), _paths(root), st.sampled_from(["cpu", "cuda", "cuda:7", "banana"]),
                     st.text(max_size=8))  # fmt: skip


def _options(command: str) -> list[argparse.Action]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [a for a in sub._actions if a.option_strings and a.option_strings[0] != "-h"]


REQUIRED = {"synth": ["--out"], "train": ["--data", "--out"], "eval": ["--data"], "export": ["--out"]}


@st.composite
def hostile_argv(draw, root: Path) -> list[str]:
    command = draw(st.sampled_from(["synth", "train", "eval", "transcribe", "listen", "export"]))
    options = _options(command)
    chosen = draw(st.lists(st.sampled_from(options), unique_by=lambda a: a.dest, max_size=5))
    required = [a for a in options if a.option_strings[0] in REQUIRED.get(command, [])]
    argv = [command]
    if command == "transcribe":
        argv += draw(st.lists(_paths(root), min_size=0, max_size=2))
    for action in [*required, *chosen]:
        argv.append(action.option_strings[0])
        if action.nargs == 0:  # a flag
            continue
        count = action.nargs if isinstance(action.nargs, int) else 1
        argv += [draw(_values(root)) for _ in range(count)]
    return argv


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_option_passes_its_checks_or_stops_with_one_line(sandbox, data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    argv = data.draw(hostile_argv(sandbox))
    before = listing(sandbox)
    code, out, err = run(argv)
    assert "Traceback" not in err and out == ""
    if code != 0:
        assert_one_line_error(code, err, argv[0])
    assert listing(sandbox) == before  # nothing written, not even a folder


@pytest.mark.parametrize("command", ["synth", "train", "eval", "transcribe", "listen", "export"])
def test_help_is_fast_and_imports_no_torch(command):
    probe = (f"import sys\nfrom speechrnn import cli\ntry:\n    cli.main([{command!r}, '--help'])\n"
             "except SystemExit as e:\n    assert e.code == 0\nassert 'torch' not in sys.modules, 'torch'\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: speechrnn" in proc.stdout


def test_defaults_come_from_the_configs():
    parser = cli.build_parser()
    train = parser.parse_args(["train", "--data", "d", "--out", "o.pt"])
    cfg, model = cli._train_configs(train)
    assert replace(cfg, data="x") == config_module.TrainConfig(data="x")
    assert model == config_module.ModelConfig(n_labels=0)
    listen = parser.parse_args(["listen"])
    assert listen.reset_after_silence_ms == config_module.RESET_AFTER_SILENCE_MS
    export = parser.parse_args(["export", "--out", "m.onnx"])
    assert (export.chunk_ms, export.lookahead_ms) == (
        LIVE.chunk_ms,
        LIVE.lookahead_ms,
    )
    transcribe = parser.parse_args(["transcribe", "x.wav"])
    assert transcribe.min_word_score == config_module.DecodingOptions.min_word_score


# ----------------------------------------------------------------------------- data loss


def test_train_refuses_to_replace_a_run_unless_told(sandbox, tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"a four-epoch model")
    argv = ["train", "--data", str(sandbox / "folder"), "--out", str(out)]
    code, _, err = run(argv)
    assert_one_line_error(code, err, "train")
    assert "a training run is there already (m.pt)" in err and "--resume" in err and "--overwrite" in err
    assert out.read_bytes() == b"a four-epoch model"
    assert run([*argv, "--overwrite"])[0] == 0
    code, _, err = run([*argv, "--overwrite", "--resume"])
    assert_one_line_error(code, err, "train")
    code, _, err = run([*argv, "--resume"])  # no OUT.last.pt to continue from
    assert_one_line_error(code, err, "train")
    assert "no checkpoint to resume from" in err


def test_resume_warns_of_the_settings_it_ignores(sandbox, tmp_path):
    out = tmp_path / "m.pt"
    out.with_suffix(".last.pt").write_bytes(b"state")
    argv = ["train", "--data", str(sandbox / "folder"), "--out", str(out), "--resume"]
    code, _, err = run([*argv, "--lr", "0.1", "--hidden", "32", "--workers", "0"])
    assert code == 0
    assert "--lr, --hidden ignored" in err and "--workers" not in err


def test_init_warns_of_the_architecture_it_ignores_and_takes_dropout(sandbox, tmp_path, monkeypatch):
    base = tmp_path / "base.pt"
    base.write_bytes(b"a checkpoint")
    argv = ["train", "--data", str(sandbox / "folder"), "--out", str(tmp_path / "m.pt"), "--init", str(base)]
    code, _, err = run([*argv, "--hidden", "32", "--layers", "2", "--dropout", "0.0", "--lr", "0.1"])
    assert code == 0
    assert "--init keeps the checkpoint's architecture; --hidden, --layers ignored" in err
    assert "--dropout" not in err and "--lr" not in err
    assert "ignored" not in run(argv)[2]
    told = []
    monkeypatch.setattr("speechrnn.train.train", lambda *a, **kw: told.append(kw["init_dropout"]))
    for extra in (["--dropout", "0.05"], []):
        run([*argv, *extra], check_only=False)
    assert told == [0.05, None]  # only a dropout given replaces the checkpoint's


# ------------------------------------------------------------------- crashes before the work


@pytest.mark.parametrize(
    "argv, message",
    [
        (["listen", "--reset-after-silence-ms", "nan"], "--reset-after-silence-ms: expected a finite number"),
        (["listen", "--reset-after-silence-ms", "inf"], "--reset-after-silence-ms: expected a finite number"),
        (["listen", "--onnx", "{file}", "--reset-after-silence-ms", "inf"], "expected a finite number"),
        (["transcribe", "{wav}", "--device", "banana"], "--device: expected cpu, cuda or cuda:N, got 'banana'"),
        (["transcribe", "{wav}", "--device", "cuda"], "--device cuda: no CUDA GPU is available"),
        (["eval", "--data", "{folder}", "--device", "banana"], "--device: expected cpu, cuda"),
        (["eval", "--data", "{folder}", "--device", "cuda:0"], "no CUDA GPU is available"),
        (["train", "--data", "{folder}", "--out", "{new}", "--device", "cuda"], "no CUDA GPU is available"),
        (["train", "--data", "{folder}", "--out", "{new}", "--batch-size", "0"], "--batch-size: expected a whole"),
        (["train", "--data", "{folder}", "--out", "{new}", "--lr", "nan"], "--lr: expected a finite number"),
        (["train", "--data", "{folder}", "--out", "{new}", "--hidden", "0"], "--hidden: expected a whole number"),
        (["train", "--data", "{folder}", "--out", "{new}", "--dropout", "2"], "--dropout: expected a finite"),
        (["train", "--data", "{folder}", "--out", "{folder}"], "is a folder, expected the path of a checkpoint"),
        (["train", "--data", "{file}", "--out", "{new}"], "--data {file}: is a file, expected a folder"),
        (["eval", "--data", "{folder}", "--plot", "{file}/x.png"], "cannot be created, {file} is a file"),
        (["eval", "--data", "{folder}", "--plot", "{folder}"], "expected a .png, .pdf, .svg file"),
        (["eval", "--data", "{folder}", "--batch-size", "0"], "--batch-size: expected a whole number"),
        (["export", "--out", "{new}.onnx", "--chunk-ms", "1e8"], "--chunk-ms: expected a finite number in (0, 10000]"),
        (["synth", "--out", "{file}"], "--out {file}: is a file, expected a corpus folder"),
        (["transcribe", "{wav}", "--min-word-score", "2"], "--min-word-score: expected a finite number in [0, 1]"),
        (["transcribe", "{wav}", "--min-word-score", "nan"], "--min-word-score: expected a finite number"),
        (["listen", "--input", "{wav}", "--device", "1"], "--device chooses a microphone, --input replays a file"),
        (["listen", "--onnx", "{file}", "--chunk-ms", "100"], "--chunk-ms: the ONNX file fixes its chunk"),
        (["listen", "--onnx", "{file}", "--lookahead-ms", "80"], "--lookahead-ms: the ONNX file fixes its chunk"),
        (["eval", "--data", "{folder}", "--lookahead-ms", "80"], "--lookahead-ms applies to a chunk: give --chunk-ms"),
    ],
)  # fmt: skip
def test_bad_options_stop_before_the_work_with_one_line(sandbox, monkeypatch, argv, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    names = {"file": sandbox / "file.txt", "folder": sandbox / "folder", "wav": sandbox / "clip.wav",
             "new": sandbox / "new" / "m.pt"}  # fmt: skip
    argv = [a.format(**names) for a in argv]
    code, _, err = run(argv, check_only=False)  # the work would start if the checks let it
    assert_one_line_error(code, err, argv[0])
    assert message.format(**names) in err
    assert not (sandbox / "new").exists()


def test_eval_plot_into_a_new_folder_is_made(monkeypatch, tmp_path, sandbox):
    # It used to fail after the whole evaluation; now the folder is made where the plot is written.
    from speechrnn import evaluate

    monkeypatch.setattr(evaluate, "SpeechCommandsDataset", lambda *a, **k: [])
    monkeypatch.setattr(evaluate, "evaluate_model", lambda net, ds, **k: {
        "n": 0, "accuracy": 0.0, "loss": float("nan"), "labels": list(net.labels), "per_class": {},
        "confusion": [[0] * len(net.labels)] * len(net.labels)})  # fmt: skip
    plot = tmp_path / "new" / "folder" / "confusion.png"
    code, out, err = run(["eval", "--model", str(sandbox / "tiny.pt"), "--data", str(sandbox / "folder"),
                          "--json", "--plot", str(plot)], check_only=False)  # fmt: skip
    assert code == 0, err
    assert plot.stat().st_size > 1000
    assert json.loads(out, parse_constant=_no_constants)["loss"] is None  # NaN is not JSON


def _no_constants(name: str):
    raise AssertionError(f"{name} in JSON output")


# ------------------------------------------------------------------ wrong answers without a word


def test_a_truncated_wav_is_an_error_line_not_a_transcription(sandbox, tmp_path):
    data = (sandbox / "clip.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 2 * 5318])
    code, out, _ = run(
        ["transcribe", "--model", str(sandbox / "tiny.pt"), str(cut), "--json"], check_only=False
    )
    assert code == 1
    line = json.loads(out)
    assert set(line) == {"path", "error"} and "truncated" in line["error"] and "5318 samples" in line["error"]


def test_nan_weights_are_refused_at_load(sandbox, tmp_path):
    model = load_model(sandbox / "tiny.pt")
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("nan")
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, model)
    for argv in (["transcribe", "--model", str(bad), str(sandbox / "clip.wav"), "--json"],
                 ["listen", "--model", str(bad), "--input", str(sandbox / "clip.wav"), "--fast"],
                 ["export", "--model", str(bad), "--out", str(tmp_path / "x.onnx")]):  # fmt: skip
        code, out, err = run(argv, check_only=False)
        assert_one_line_error(code, err, argv[0])
        assert "holds 1 NaN or infinite values" in err and out == ""
    assert not (tmp_path / "x.onnx").exists()


def test_transcribe_never_prints_nan_in_json(monkeypatch, capsys):
    transcribe = importlib.import_module("speechrnn.transcribe")  # the package's name is the function

    nan = float("nan")
    fake = [Transcription("a.wav", "yes", nan, "yes", (Word("yes", 0.1, 0.4, 0.9),)),
            Transcription("b.wav", "no", 0.9, "no", (Word("no", 0.1, 0.4, nan),)),
            Transcription("c.wav", "no", 0.9, "no", (Word("no", 0.1, 0.4, 0.8),))]  # fmt: skip
    monkeypatch.setattr(transcribe, "transcribe_files", lambda *a, **k: iter(fake))
    code = transcribe.main_transcribe(paths=["x"], model=None, as_json=True, beam=4, words=None,
                                      min_word_score=0.3, device="cpu", batch_size=1)  # fmt: skip
    lines = [json.loads(line, parse_constant=_no_constants) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [set(line) for line in lines[:2]] == [{"path", "error"}] * 2
    assert lines[2]["score"] == 0.9


def test_a_long_noise_is_not_labelled_by_its_luckiest_window():
    # Many windows of noise: mostly silence, and one window leaning 0.2 to "house" (a command on top).
    picker = _LabelPicker(LABELS)
    windows = torch.log(torch.tensor([[0.7, 0.2, 0.04, 0.03, 0.03]] * 500 + [[0.18, 0.195, 0.2, 0.2, 0.225]]))
    picker.update(windows, COMMAND_FLOOR)
    assert picker.result()[0] == "_unknown_"  # the unsure window reads as its best other label
    unsure = _LabelPicker(LABELS)
    unsure.update(windows)  # without the floor: the old answer
    assert unsure.result()[0] == "house"
    picker.update(torch.log(torch.tensor([[0.05, 0.05, 0.85, 0.03, 0.02]])), COMMAND_FLOOR)
    assert picker.result() == ("yes", pytest.approx(0.85))  # a sure command still wins


def test_the_label_rule_for_long_audio_is_documented():
    text = " ".join(run(["transcribe", "--help"])[1].split())
    assert f"only where a window is at least {COMMAND_FLOOR:g} sure of it" in text


def test_synth_workers_leave_ctrl_c_to_the_parent(monkeypatch):
    from speechrnn import synth

    monkeypatch.setattr(synth, "Synthesizer", lambda: None)
    monkeypatch.setattr(synth.torch, "set_num_threads", lambda n: None)
    before = signal.getsignal(signal.SIGINT)
    try:
        synth._init_worker()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_os_failure_during_the_work_is_one_line(sandbox, monkeypatch):
    transcribe = importlib.import_module("speechrnn.transcribe")  # the package's name is the function

    def full(**kwargs):
        raise OSError(28, "No space left on device", "out.jsonl")

    monkeypatch.setattr(transcribe, "main_transcribe", full)
    code, _, err = run(["transcribe", str(sandbox / "clip.wav")], check_only=False)
    assert_one_line_error(code, err, "transcribe")
    assert "out.jsonl: No space left on device" in err


def test_numbers_are_parsed_as_written():
    parse = cli._number(0.0, 1.0)
    assert parse("0.25") == 0.25 and math.isclose(parse("1e-3"), 0.001)
    for text in ("nan", "inf", "-0.1", "1.01", "", "x"):
        with pytest.raises(Exception, match="expected a finite number in"):
            parse(text)


@pytest.mark.parametrize("argv", [["eval", "--data", "\r"], ["train", "--data", "a\nb", "--out", "m.pt"],
                                  ["listen", "--bogus\n"]])  # fmt: skip
def test_a_control_character_in_a_value_stays_on_the_one_line(argv):
    code, _, err = run(argv)
    assert_one_line_error(code, err, argv[0])
    assert "\\r" in err or "\\n" in err
