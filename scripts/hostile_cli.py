#!/usr/bin/env python3
"""Run the command line as a hostile but realistic user would, as real processes, and count what goes wrong.

Every case runs `python -m speechrnn ...` in a scratch folder and is judged by what a user sees:
- traceback: a Python traceback on stderr (or an exit status no command gives: a crash);
- data loss: a file that was there is changed or gone where it should not be, or an error left output behind;
- silent wrong answer: a run that should have been refused, or warned about, exits 0 without a word, prints
  NaN in JSON, or answers for audio that was not all there;
- stray output: more than the one line on stderr where there should be one (a decoder's own messages, a
  worker's line after Ctrl-C);
- otherwise the case is clean: it worked, or it stopped with one line `speechrnn CMD: error: ...`.

The cases are those of issue 31 (each failure it found, as its own case), then every numeric option of every
command with NaN, infinities, zero, negative, huge, empty and wrong-type values. Training runs are tiny
(a tone corpus from tests/fakecorpus.py, one small epoch). Prints a table (case, command, outcome) and the
totals, and writes the same to docs/CLI_HOSTILE.md.

    python scripts/hostile_cli.py [--out docs/CLI_HOSTILE.md] [--keep DIR] [--only REGEX]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakecorpus import COMMANDS, make_fake_corpus  # noqa: E402 - tests/ is put on the path above

TIMEOUT_S = 300
TINY_TRAIN = ["--hidden", "8", "--layers", "1", "--epochs", "1", "--batch-size", "4", "--streams", "0",
              "--workers", "0", "--limit-batches", "2", "--threads", "1"]  # fmt: skip
OUTCOMES = ("traceback", "data loss", "silent wrong answer", "stray output", "clean")
HOSTILE_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "9" * 400, "", "abc"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str  # "error": refused with one line; "ok": exit 0; "either": any clean outcome
    check: Callable[[Result], str | None] | None = None  # a silent wrong answer found, or None
    protect: list[Path] = field(default_factory=list)  # files that must come out unchanged
    setup: Callable[[], None] | None = None
    run: Callable[[Case], Result] | None = None  # a case that is more than one call
    stdin: str | None = None
    quiet: bool = False  # stderr holds at most one line


@dataclass
class Row:
    case: str
    command: str
    outcome: str  # "clean", "traceback", "data loss", "silent wrong answer"
    detail: str


def speechrnn(argv: list[str], cwd: Path, stdin: str | None = None) -> Result:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "speechrnn", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env, input=stdin)  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every regular file below `folder` with its bytes (folders, pipes and unreadable files as None)."""

    def content(p: Path) -> bytes | None:
        try:
            return p.read_bytes() if p.is_file() else None
        except OSError:
            return None

    return {str(p.relative_to(folder)): content(p) for p in folder.rglob("*")}


def judge(case: Case, result: Result, before: dict, after: dict, w: Path) -> tuple[str, str]:
    said_last = (result.err.strip().splitlines() or [""])[-1]
    first = (said_last or (result.out.strip().splitlines() or [""])[0])[:110]
    if "Traceback" in result.err or result.code not in (0, 1, 2, 130):
        return "traceback", first or f"exit {result.code}"
    said = [line for line in result.err.splitlines() if line.strip()]
    if case.quiet and len(said) > 1:
        return "stray output", f"{len(said)} lines on stderr: {' / '.join(said[:2])[:100]}"
    if result.code == 130:
        return "clean", first
    protected = {str(p.relative_to(w)) for p in case.protect}
    changed = [k for k, v in before.items() if k in protected and after.get(k) != v]
    if changed:
        return "data loss", f"changed: {', '.join(changed)}"
    if result.code == 2:
        errors = [line for line in said if ": error:" in line]
        if len(errors) != 1 or not said[-1].startswith(f"speechrnn {case.argv[0]}: error:"):
            return "traceback", f"not one error line: {first}"
        left = sorted(set(after) - set(before))
        if left:
            return "data loss", f"an error left output behind: {', '.join(left[:3])}"
    if case.expect == "error" and result.code == 0:
        return "silent wrong answer", "accepted without a word: " + (first or "exit 0")
    if case.expect == "ok" and result.code != 0:
        return "silent wrong answer", f"refused, expected to work: {first}"
    if "NaN" in result.out or "Infinity" in result.out:
        return "silent wrong answer", "NaN in the output"
    problem = case.check(result) if case.check else None
    if problem and problem.startswith("data loss: "):
        return "data loss", problem.removeprefix("data loss: ")
    if problem:
        return "silent wrong answer", problem
    return "clean", first if result.code else f"ok: {first}" if first else "ok"


def noise_wav(path: Path, seconds: float, seed: int = 0, rate: int = 16000) -> Path:
    audio = np.random.default_rng(seed).uniform(-0.3, 0.3, round(seconds * rate)).astype(np.float32)
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


def build_cases(w: Path) -> list[Case]:
    """The cases, with their files made in the scratch folder `w`."""
    import torch

    from speechrnn.checkpoint import load_model, save_checkpoint
    from speechrnn.model import ModelConfig, Recognizer

    corpus = w / "corpus"
    make_fake_corpus(corpus)
    (w / "folder").mkdir()
    (w / "file.txt").write_text("not audio\n")
    clip = noise_wav(w / "clip.wav", 1.0)
    torch.manual_seed(0)
    labels = ("_silence_", "_unknown_", *COMMANDS)
    save_checkpoint(w / "tiny.pt", Recognizer(ModelConfig(n_labels=len(labels), hidden=8, layers=1), labels))
    nan_model = load_model(w / "tiny.pt")
    with torch.no_grad():
        next(nan_model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(w / "nan.pt", nan_model)
    full = (w / "clip.wav").read_bytes()
    noise_wav(w / "long.wav", 2.0)
    (w / "truncated.wav").write_bytes(noise_wav(w / "t.wav", 2.0).read_bytes()[: 44 + 2 * 5318])
    (w / "t.wav").unlink()
    (w / "random.mp3").write_bytes(b"ID3" + np.random.default_rng(2).bytes(5000))
    os.mkfifo(w / "fifo.wav")
    noise_wav(w / "noise300.wav", 300.0, seed=7)
    del full

    def json_lines(result: Result) -> list[dict]:
        def no_nan(name: str):
            raise ValueError(name)

        return [json.loads(line, parse_constant=no_nan) for line in result.out.splitlines() if line.strip()]

    def error_line_says(*words: str) -> Callable[[Result], str | None]:
        def check(result: Result) -> str | None:
            lines = json_lines(result)
            if not lines or "error" not in lines[0] or not all(x in lines[0]["error"] for x in words):
                return f"no error line saying {' '.join(words)}: {result.out[:80]}"
            return None

        return check

    def label_means_something(result: Result) -> str | None:
        label = json_lines(result)[0].get("label")
        return None if label in ("_silence_", "_unknown_") else f"5 min of white noise labelled {label!r}"

    run_dir = w / "runs"

    def existing_run() -> None:
        run_dir.mkdir(exist_ok=True)
        (run_dir / "m.pt").write_bytes(b"a four-epoch model")
        (run_dir / "m.metrics.jsonl").write_text('{"epoch": 1}\n')

    def metrics_one_line_per_epoch(path: Path) -> Callable[[Result], str | None]:
        def check(result: Result) -> str | None:
            epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines()]
            if len(epochs) != len(set(epochs)):
                return f"data loss: metrics.jsonl logs an epoch twice: {epochs}"
            temps = sorted(p.name for p in path.parent.glob(".*"))
            return f"data loss: temp files left: {temps}" if temps else None

        return check

    def killed_then_resumed(case: Case) -> Result:
        out = w / "kill" / "m.pt"
        where = ["--data", str(corpus), "--out", str(out), "--workers", "0", "--threads", "1"]
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "speechrnn", "train", *TINY_TRAIN, *where, "--epochs", "4"],
                                cwd=w, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        metrics = out.with_suffix(".metrics.jsonl")
        deadline = time.monotonic() + TIMEOUT_S
        # Killed in the saves of the second epoch: its metrics line is written, its last.pt not yet.
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and metrics.read_text().count("\n") >= 2:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return speechrnn(["train", *where, "--resume"], w)

    def ctrl_c_synth(case: Case) -> Result:
        out = w / "synth-interrupted"
        argv = ["synth", "--out", str(out), "--preset", "tiny", "--jobs", "2", "--quiet"]
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "speechrnn", *argv], cwd=w, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None and len(list(out.rglob("*.wav"))) < 3:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
        out_text, err_text = proc.communicate(timeout=TIMEOUT_S)
        return Result(proc.returncode, out_text, err_text)

    def synth_resumes(result: Result) -> str | None:
        again = speechrnn(["synth", "--out", str(w / "synth-interrupted"), "--preset", "tiny", "--jobs", "2",
                           "--quiet"], w)  # fmt: skip
        return None if again.code == 0 else f"the interrupted build did not resume: {again.err[-100:]}"

    onnx = w / "tiny.onnx"
    m = ["--model", str(w / "tiny.pt")]
    cases = [
        # -------------------------------------------------------------------------- data loss
        Case("train over an existing run", ["train", "--data", str(corpus), "--out", str(run_dir / "m.pt"),
             *TINY_TRAIN], "error", protect=[run_dir / "m.pt", run_dir / "m.metrics.jsonl"], setup=existing_run),
        Case("train --overwrite an existing run", ["train", "--data", str(corpus), "--out", str(run_dir / "m.pt"),
             *TINY_TRAIN, "--overwrite"], "ok", check=metrics_one_line_per_epoch(run_dir / "m.metrics.jsonl")),
        Case("kill -9 while saving, then --resume", ["train", "(kill -9 in the saves of epoch 2, then --resume)"],
             "ok", run=killed_then_resumed,
             check=metrics_one_line_per_epoch(w / "kill" / "m.metrics.jsonl")),
        Case("synth --out a regular file", ["synth", "--out", str(w / "file.txt"), "--preset", "tiny"], "error",
             protect=[w / "file.txt"]),
        Case("synth, Ctrl-C, then again", ["synth", "--preset", "tiny", "(Ctrl-C, then again)"], "either",
             run=ctrl_c_synth, check=synth_resumes, quiet=True),
        # ---------------------------------------------------------------------- crashes
        Case("export the tiny model", ["export", *m, "--out", str(onnx)], "ok"),
        Case("listen --reset-after-silence-ms nan", ["listen", *m, "--input", str(clip), "--fast",
             "--reset-after-silence-ms", "nan"], "error"),
        Case("listen --reset-after-silence-ms inf", ["listen", *m, "--input", str(clip), "--fast",
             "--reset-after-silence-ms", "inf"], "error"),
        Case("listen --onnx --reset-after-silence-ms nan", ["listen", "--onnx", str(onnx), "--input", str(clip),
             "--fast", "--reset-after-silence-ms", "nan"], "error"),
        Case("listen --onnx --reset-after-silence-ms inf", ["listen", "--onnx", str(onnx), "--input", str(clip),
             "--fast", "--reset-after-silence-ms", "inf"], "error"),
        Case("listen --onnx replays a file", ["listen", "--onnx", str(onnx), "--input", str(clip), "--fast"], "ok"),
        Case("transcribe --device cuda", ["transcribe", *m, str(clip), "--device", "cuda"], "either"),
        Case("transcribe --device banana", ["transcribe", *m, str(clip), "--device", "banana"], "error"),
        Case("eval --device cuda", ["eval", *m, "--data", str(corpus), "--device", "cuda"], "either"),
        Case("eval --device banana", ["eval", *m, "--data", str(corpus), "--device", "banana"], "error"),
        Case("train --batch-size 0", ["train", "--data", str(corpus), "--out", str(w / "b0" / "m.pt"),
             *TINY_TRAIN, "--batch-size", "0"], "error"),
        Case("train --lr nan", ["train", "--data", str(corpus), "--out", str(w / "lr" / "m.pt"), *TINY_TRAIN,
             "--lr", "nan"], "error"),
        Case("train --hidden 0", ["train", "--data", str(corpus), "--out", str(w / "h0" / "m.pt"), *TINY_TRAIN,
             "--hidden", "0"], "error"),
        Case("train --dropout 2", ["train", "--data", str(corpus), "--out", str(w / "d2" / "m.pt"), *TINY_TRAIN,
             "--dropout", "2"], "error"),
        Case("train --out a folder", ["train", "--data", str(corpus), "--out", str(w / "folder"), *TINY_TRAIN],
             "error"),
        Case("eval --plot into a missing folder", ["eval", *m, "--data", str(corpus), "--plot",
             str(w / "plots" / "new" / "confusion.png")], "ok",
             check=lambda r: None if (w / "plots/new/confusion.png").is_file() else "no plot written"),
        Case("eval --plot under a file", ["eval", *m, "--data", str(corpus), "--plot",
             str(w / "file.txt" / "c.png")], "error"),
        Case("eval --batch-size 0", ["eval", *m, "--data", str(corpus), "--batch-size", "0"], "error"),
        Case("export --chunk-ms 1e8", ["export", *m, "--out", str(w / "huge.onnx"), "--chunk-ms", "1e8"], "error"),
        # --------------------------------------------------------------- wrong answers without a word
        Case("transcribe a truncated WAV", ["transcribe", *m, str(w / "truncated.wav"), "--json"], "either",
             check=error_line_says("truncated", "5318")),
        Case("transcribe with NaN weights", ["transcribe", "--model", str(w / "nan.pt"), str(clip), "--json"],
             "error"),
        Case("listen with NaN weights", ["listen", "--model", str(w / "nan.pt"), "--input", str(clip), "--fast"],
             "error"),
        Case("export NaN weights", ["export", "--model", str(w / "nan.pt"), "--out", str(w / "nan.onnx")],
             "error"),
        Case("transcribe --min-word-score 2", ["transcribe", *m, str(clip), "--min-word-score", "2"], "error"),
        Case("transcribe --min-word-score nan", ["transcribe", *m, str(clip), "--min-word-score", "nan"], "error"),
        Case("transcribe 5 min of white noise (shipped model)", ["transcribe", str(w / "noise300.wav"), "--json"],
             "ok", check=label_means_something),
        Case("listen --device with --input", ["listen", *m, "--input", str(clip), "--device", "0"], "error"),
        Case("listen --chunk-ms with --onnx", ["listen", "--onnx", str(onnx), "--input", str(clip), "--fast",
             "--chunk-ms", "200"], "error"),
        Case("eval --lookahead-ms without --chunk-ms", ["eval", *m, "--data", str(corpus), "--lookahead-ms", "80"],
             "error"),
        Case("transcribe a FIFO", ["transcribe", *m, str(w / "fifo.wav"), "--json"], "either",
             check=error_line_says("pipe")),
        Case("transcribe /dev/stdin from a pipe", ["transcribe", *m, "/dev/stdin", "--json"], "either",
             check=error_line_says("pipe"), stdin="RIFF...."),
        Case("transcribe a random .mp3", ["transcribe", *m, str(w / "random.mp3")], "either", quiet=True),
        Case("transcribe an unreadable file", ["transcribe", *m, str(w / "locked.wav"), "--json"], "either",
             check=error_line_says("ermission") if os.geteuid() else None,
             setup=lambda: (noise_wav(w / "locked.wav", 0.5), os.chmod(w / "locked.wav", 0))),
    ]  # fmt: skip
    # Every numeric option of every command, with hostile values: refused in one line, or (where the value
    # happens to be valid) checked and run.
    numeric = {
        "train": (["--data", str(corpus), "--out", str(w / "CASE" / "m.pt"), *TINY_TRAIN],
                  ["--epochs", "--batch-size", "--lr", "--ctc-weight", "--clip-grad", "--vtlp", "--streams",
                   "--seed", "--workers", "--threads", "--hidden", "--layers", "--dropout", "--max-minutes"]),
        "eval": ([*m, "--data", str(corpus)], ["--chunk-ms", "--batch-size"]),
        "transcribe": ([*m, str(clip)], ["--beam", "--min-word-score", "--batch-size"]),
        "listen": ([*m, "--input", str(clip), "--fast"], ["--threshold", "--chunk-ms", "--lookahead-ms",
                                                          "--reset-after-silence-ms"]),
        "export": ([*m, "--out", str(w / "CASE" / "x.onnx")], ["--chunk-ms", "--lookahead-ms"]),
        "synth": (["--out", str(w / "CASE"), "--preset", "tiny", "--quiet"], ["--per-word", "--seed", "--jobs"]),
    }  # fmt: skip
    for command, (base, options) in numeric.items():
        for option in options:
            for value in HOSTILE_NUMBERS:
                expect = "either" if value == "0" else "error"  # 0 is a fair value of some options
                slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{command}{option}_{value}")  # a folder of its own
                argv = [command, *(a.replace("CASE", slug) for a in base), option, value]
                cases.append(Case(f"{command} {option} {value!r}", argv, expect))
    return cases


def run_cases(w: Path, cases: list[Case]) -> list[Row]:
    rows = []
    for case in cases:
        if case.setup:
            case.setup()
        before = snapshot(w)
        result = case.run(case) if case.run else speechrnn(case.argv, w, case.stdin)
        after = snapshot(w)
        outcome, detail = judge(case, result, before, after, w)
        shown = " ".join(shlex.quote(a.replace(str(w) + "/", "")) for a in case.argv)
        rows.append(Row(case.name, f"speechrnn {shown}", outcome, detail.replace(str(w) + "/", "")))
        print(f"{outcome:<20} {case.name:<45} {detail[:80]}", flush=True)
    return rows


def cell(text: str) -> str:
    """`text` for a Markdown table cell."""
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def table(rows: list[Row]) -> str:
    totals = {k: sum(r.outcome == k for r in rows) for k in OUTCOMES}
    lines = ["| case | command | outcome |", "| --- | --- | --- |"]
    for r in rows:
        outcome = r.detail if r.outcome == "clean" else f"**{r.outcome}**: {r.detail}"
        lines.append(f"| {cell(r.case)} | `{cell(r.command)}` | {cell(outcome)} |")
    summary = (f"{len(rows)} cases: {totals['traceback']} tracebacks, {totals['data loss']} data loss, "
               f"{totals['silent wrong answer']} silent wrong answers, {totals['stray output']} with stray "
               f"output; {totals['clean']} clean")  # fmt: skip
    return summary + "\n\n" + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "CLI_HOSTILE.md"), help="the report to write")
    parser.add_argument(
        "--keep", default=None, metavar="DIR", help="scratch folder to keep (default: a temp)"
    )
    parser.add_argument("--only", default=None, metavar="REGEX", help="run only the cases whose name matches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        w = Path(args.keep or tmp)
        w.mkdir(parents=True, exist_ok=True)
        cases = [c for c in build_cases(w) if args.only is None or re.search(args.only, c.name)]
        rows = run_cases(w, cases)
        if (w / "locked.wav").exists():
            os.chmod(w / "locked.wav", 0o644)
    report = table(rows)
    print("\n" + report)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    Path(args.out).write_text(
        "# The command line under hostile use\n\n"
        f"Written by `python scripts/hostile_cli.py` on {when} ({sys.platform}, "
        f"{'root' if os.geteuid() == 0 else 'a user'}; root reads every file, so the unreadable-file case "
        "cannot fail as root). Each case runs `python -m speechrnn` as its own process in a scratch folder and "
        "is judged by what a user sees: a traceback, data loss (a file changed or gone that should not be, "
        "or output left behind by an error), a silent wrong answer (a run that should have been refused exits "
        "0, NaN in JSON, an answer for audio that was not all there), or clean (it worked, or stopped with "
        "one line `speechrnn CMD: error: ...`). The cases are issue 31's, then every numeric option of every "
        "command with hostile values. Paths are shown relative to the scratch folder.\n\n"
        "The same script against the code before issue 31's fixes (commit cc19871, `--only` 24 of the issue's "
        "cases, leaving out `export --chunk-ms 1e8`, which tries to allocate 38 GiB) gave 10 tracebacks, 2 data "
        "loss (a run replaced; an epoch logged twice after kill -9), 10 silent wrong answers and 1 stray "
        "output.\n\n" + report
    )
    bad = sum(r.outcome != "clean" for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
