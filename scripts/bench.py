#!/usr/bin/env python
"""The benchmark report: every number of speechrnn side by side, measured in one process by one command.

    .venv/bin/python scripts/bench.py [--model CKPT] [--data DIR] [--quick] [--out-dir docs]

Sections, in the order they run (each says in the report how much it measured):
- Size: parameters; checkpoint, PyTorch int8, ONNX fp32 and ONNX int8 files on disk.
- Streaming compute on one core (`torch.set_num_threads(1)`, onnxruntime `intra_op_num_threads=1`): the
  recogniser and spotter fed 100 ms blocks, 100 ms chunks + 80 ms look-ahead, for PyTorch eager fp32 and
  int8 and onnxruntime fp32 and int8, taking turns every 5 s so a load from elsewhere hits all alike.
  CPU time of the thread per chunk, real-time factor, resident memory each backend adds.
- MFCC throughput: our batched torchaudio path against librosa on the same clips (`bench_mfcc.py`'s methods).
- Training throughput: a few optimiser steps of the model's architecture and of its GRU, LSTM and plain RNN
  variants on one batch of the corpus (the same steps, so the same latency draws), extrapolated to one
  epoch of the corpus's training split. Model compute only: data loading and augmentation run in worker
  processes during training, and the per-epoch validation is not counted.
- Accuracy on a seeded subset of the held-out-voice test split: full context and streaming (the chunked
  pass, which equals the live stream), phrase WER (greedy CTC), for fp32 and int8, PyTorch and onnxruntime.
- Live keyword spotting (`bench_streaming.py`'s streams and scoring): test words and phrases end to end over
  noise through each backend's live stack: correct, wrong and false-positive rates, detection latency from
  the end of the word, false alarms per hour on non-command speech.

Without a trained model (none given, none shipped) a random-init model of the default architecture is
measured: speed and size hold, accuracy is meaningless (the report says so).

Writes docs/bench.json and the section between `<!-- report:start -->` and `<!-- report:end -->` at the top of
docs/BENCHMARKS.md; the sections other scripts write there are left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import bench_mfcc
import bench_streaming
import numpy as np
import torch
from torch.utils.data import Subset

from speechrnn.audio import SAMPLE_RATE
from speechrnn.checkpoint import save_checkpoint
from speechrnn.decoding import greedy_decode, word_error_rate
from speechrnn.evaluate import evaluate_model
from speechrnn.export import export_onnx, quantize_torch
from speechrnn.latency import LIVE
from speechrnn.live import RESET_AFTER_SILENCE_MS
from speechrnn.model import Recognizer, pool_labels
from speechrnn.recognizer import StreamingRecognizer, StreamOutput
from speechrnn.speechcommands import SpeechCommandsDataset, collate
from speechrnn.spotter import KeywordSpotter, SpotterConfig
from speechrnn.streaming import TorchStep, latency_steps
from speechrnn.system import usable_cores
from speechrnn.train import TrainConfig, compute_loss, cpu_threads
from speechrnn.words import SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- report:start -->", "<!-- report:end -->"
DEFAULT_DATA = ROOT / "data" / "synth-default"
# The latency setting measured throughout: the issue's 100 ms chunks with listen's look-ahead.
CHUNK_MS = 100.0
LOOKAHEAD_MS = LIVE.lookahead_ms
BLOCK_MS = bench_streaming.BLOCK_MS  # audio per block, as a microphone delivers it
ROUND_BLOCKS = 50  # the compute measurement's backends take turns every this many blocks (5 s)
TOLERANCE_S = 0.75  # a detection matches a word up to this long after its end (as bench_streaming)
SNR_DB = 20.0
DEFAULT_THREADS = torch.get_num_threads()  # before anything pins it to one
TARGETS = {
    "onnx_speedup": 2.0,  # onnxruntime step at least this many times faster than PyTorch eager
    "rtf": 0.02,  # onnxruntime real-time factor on one core at most this
    "int8_accuracy_points": 1.0,  # int8 accuracy within this many points of float
    "int8_size_ratio": 2.0,  # int8 file at least this many times smaller
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything is measured (the full run, or `--quick`)."""

    stream_seconds: float = 120.0  # synthetic stream for the compute measurement
    mfcc_clips: int = 256
    mfcc_repeats: int = 3
    train_batch: int = 64  # TrainConfig's default batch size
    train_steps: int = 4  # timed optimiser steps per cell (after one warm-up step)
    test_clips: int = 1000  # test-split items for the accuracy table
    words: int = 300  # spotting stream: test word clips
    phrases: int = 60  # ... phrase clips
    unknown: int = 30  # ... unknown-word clips
    non_command: int = 150  # false-alarm stream: sentences, and as many unknown words


QUICK = Plan(
    stream_seconds=3.0,
    mfcc_clips=8,
    mfcc_repeats=1,
    train_batch=8,
    train_steps=1,
    test_clips=24,
    words=8,
    phrases=2,
    unknown=2,
    non_command=3,
)


# --- helpers --------------------------------------------------------------------------------------------


@contextmanager
def section(name: str, timings: dict) -> Iterator[None]:
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 1)
    print(f"bench: {name} done in {timings[name]:.1f} s", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine() -> dict:
    info = bench_mfcc.machine()
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def feed(recognizer, audio: np.ndarray) -> list[StreamOutput]:
    """A whole stream through a recogniser in 100 ms blocks, then its flush."""
    block = SAMPLE_RATE * BLOCK_MS // 1000
    outs = [recognizer.accept(audio[pos : pos + block]) for pos in range(0, audio.size, block)]
    return [*outs, recognizer.flush()]


def backends(
    model: Recognizer,
    int8: Recognizer,
    onnx_files: dict[str, Path],
    reset: float | None = RESET_AFTER_SILENCE_MS,
) -> dict[str, Callable]:
    """Name -> factory of a fresh live recogniser, for every backend measured, set up as `listen` does
    (`reset`: its pause reset; None for the exact chunked computation)."""
    made: dict[str, Callable] = {
        "PyTorch eager fp32": lambda: StreamingRecognizer(TorchStep(model, CHUNK_MS, LOOKAHEAD_MS), reset),
        "PyTorch eager int8": lambda: StreamingRecognizer(TorchStep(int8, CHUNK_MS, LOOKAHEAD_MS), reset),
    }
    if onnx_files:
        from speechrnn.onnx_runner import OnnxStep

        for kind, path in onnx_files.items():
            made[f"onnxruntime {kind}"] = lambda path=path: StreamingRecognizer(
                OnnxStep(path, threads=1), reset
            )
    return made


# --- size -----------------------------------------------------------------------------------------------


def export_all(model: Recognizer, int8: Recognizer, workdir: Path, source: str) -> tuple[dict, dict]:
    """Write every deployable form into `workdir`; returns ONNX paths by kind and the size table."""
    ckpt = workdir / "model.pt"
    save_checkpoint(ckpt, model)  # weights, configs and normalisation: no training state
    q_state = workdir / "model.int8.pt"
    torch.save(int8.state_dict(), q_state)
    onnx_files, seconds = {}, {}
    try:
        for kind, quantize in (("fp32", False), ("int8", True)):
            start = time.perf_counter()
            onnx_files[kind] = export_onnx(
                model,
                workdir / f"model.{kind}.onnx",
                chunk_ms=CHUNK_MS,
                lookahead_ms=LOOKAHEAD_MS,
                quantize=quantize,
                source=source,
            )
            seconds[kind] = round(time.perf_counter() - start, 2)
    except Exception as err:  # onnx or onnxruntime missing or failing: report, measure the rest
        print(
            f"bench: ONNX export failed ({type(err).__name__}: {err}); skipping onnxruntime", file=sys.stderr
        )
        onnx_files = {}
    files = {"checkpoint fp32 (weights only)": ckpt, "PyTorch int8 state dict": q_state}
    files.update({f"ONNX step {kind}": path for kind, path in onnx_files.items()})
    sizes = {name: path.stat().st_size for name, path in files.items()}
    size = {
        "parameters": model.num_parameters(),
        "bytes": sizes,
        "export_seconds": seconds,
        "torch_int8_ratio": round(
            sizes["checkpoint fp32 (weights only)"] / sizes["PyTorch int8 state dict"], 2
        ),
    }
    if onnx_files:
        size["onnx_int8_ratio"] = round(sizes["ONNX step fp32"] / sizes["ONNX step int8"], 2)
    return onnx_files, size


# --- streaming compute ----------------------------------------------------------------------------------


def measure_compute(makers: dict[str, Callable], labels: tuple[str, ...], seconds: float) -> dict:
    """Per-chunk CPU time, real-time factors and memory of every backend on the same synthetic stream."""
    warmup = list(bench_streaming.synthetic_blocks(min(5.0, seconds), seed=1))
    recs, spotters, memory = {}, {}, {}
    for name, make in makers.items():  # built one after another: the resident memory each one adds
        before = bench_streaming.rss_mb()
        recs[name] = make()
        spotters[name] = KeywordSpotter(labels, recs[name].step_seconds)
        for block in warmup:
            spotters[name].update(recs[name].accept(block))
        memory[name] = round(bench_streaming.rss_mb() - before, 1)
    cpu = {name: [] for name in recs}
    wall = {name: [] for name in recs}
    rss_start = bench_streaming.rss_mb()
    blocks = list(bench_streaming.synthetic_blocks(seconds))
    for start in range(0, len(blocks), ROUND_BLOCKS):
        # Taking turns round by round: a load from elsewhere slows them alike, while each backend keeps
        # its weights in cache as a live deployment does (turns every block cost onnxruntime ~2x).
        for name, rec in recs.items():
            for block in blocks[start : start + ROUND_BLOCKS]:
                c0, w0 = time.thread_time(), time.perf_counter()
                spotters[name].update(rec.accept(block))
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    rss_growth = bench_streaming.rss_mb() - rss_start
    audio_s = len(next(iter(cpu.values()))) * BLOCK_MS / 1000
    rows = {}
    for name in recs:
        ms = 1000 * np.array(cpu[name])
        rows[name] = {
            "chunk_ms_median": round(float(np.median(ms)), 3),
            "chunk_ms_mean": round(float(ms.mean()), 3),
            "chunk_ms_p99": round(float(np.percentile(ms, 99)), 3),
            "rtf": round(float(ms.sum() / 1000 / audio_s), 4),
            "rtf_wall": round(float(sum(wall[name]) / audio_s), 4),
            "memory_added_mb": memory[name],
        }
    eager = rows["PyTorch eager fp32"]["chunk_ms_mean"]
    for row in rows.values():
        row["speedup_vs_eager"] = round(eager / row["chunk_ms_mean"], 2)
    return {
        "stream_seconds": audio_s,
        "block_ms": BLOCK_MS,
        "round_seconds": ROUND_BLOCKS * BLOCK_MS / 1000,
        "chunk_ms": CHUNK_MS,
        "lookahead_ms": LOOKAHEAD_MS,
        "algorithmic_latency_ms": CHUNK_MS + LOOKAHEAD_MS,
        "rss_growth_mb_all_backends": round(rss_growth, 2),
        "backends": rows,
    }


# --- training throughput --------------------------------------------------------------------------------


def measure_training(model: Recognizer, data: Path, plan: Plan) -> dict:
    """Seconds per optimiser step of each cell type on one batch, and the implied epoch time."""
    threads = cpu_threads(TrainConfig.threads, world=1)  # what `train` uses on the CPU
    torch.set_num_threads(threads)
    train_set = SpeechCommandsDataset(data, "train", labels=model.labels)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(train_set), size=min(plan.train_batch, len(train_set)), replace=False)
    batch = collate([train_set[int(i)] for i in picks])
    cfg = TrainConfig(data=str(data), batch_size=plan.train_batch)
    rows = {}
    for cell in dict.fromkeys((model.config.cell, "gru", "lstm", "rnn")):
        torch.manual_seed(0)
        net = Recognizer(dataclasses.replace(model.config, cell=cell), model.labels, model.features)
        net.set_normalization(model.feat_mean, model.feat_std)
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
        times = []
        for step in range(1 + plan.train_steps):  # the same steps (latency draws) for every cell
            start = time.perf_counter()
            loss, _ = compute_loss(net, batch, cfg, step, torch.device("cpu"))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
            optimizer.step()
            times.append(time.perf_counter() - start)
        per_step = float(np.mean(times[1:]))
        steps_per_epoch = len(train_set) // plan.train_batch
        rows[cell] = {
            "parameters": net.num_parameters(),
            "seconds_per_step": round(per_step, 3),
            "clips_per_s": round(plan.train_batch / per_step, 1),
            "epoch_minutes": round(steps_per_epoch * per_step / 60, 1),
        }
    torch.set_num_threads(1)
    return {
        "threads": threads,
        "batch_size": plan.train_batch,
        "timed_steps": plan.train_steps,
        "train_items": len(train_set),
        "batch_seconds_of_audio": round(float(batch.audio_lengths.sum()) / SAMPLE_RATE, 1),
        "default_cell": model.config.cell,
        "cells": rows,
    }


# --- accuracy -------------------------------------------------------------------------------------------


def runner_scores(recognizer, items: list) -> dict:
    """Accuracy and phrase WER of a live recogniser (stream each clip, then pool its steps)."""
    correct = labelled = 0
    refs, hyps = [], []
    for ex in items:
        out = StreamOutput.concat(feed(recognizer, ex.audio.numpy()))
        if ex.label >= 0:
            lengths = torch.tensor([out.steps])
            attn, logits = torch.from_numpy(out.attn_logits), torch.from_numpy(out.step_logits)
            pooled = pool_labels(attn[None], logits[None], lengths)
            correct += int(pooled.argmax(-1).item() == ex.label)
            labelled += 1
        elif ex.has_text and ex.text:
            refs.append(ex.text)
            hyps.append(greedy_decode(torch.from_numpy(out.ctc_log_probs))[0])
    return {
        "accuracy": correct / max(labelled, 1),
        "wer": word_error_rate(refs, hyps) if refs else None,
    }


def measure_accuracy(
    model: Recognizer, int8: Recognizer, makers: dict[str, Callable], data: Path, plan: Plan
) -> dict:
    test = SpeechCommandsDataset(data, "test", labels=model.labels)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.permutation(len(test))[: plan.test_clips]).tolist()
    subset = Subset(test, chosen)
    chunk, lookahead = latency_steps(model, CHUNK_MS, LOOKAHEAD_MS)
    torch.set_num_threads(usable_cores())
    rows = {}
    for name, net in (("PyTorch fp32", model), ("PyTorch int8", int8)):
        full = evaluate_model(net, subset, batch_size=32, progress_bar=False)
        stream = evaluate_model(
            net, subset, batch_size=32, chunk=chunk, lookahead=lookahead, progress_bar=False
        )
        rows[name] = {
            "accuracy_full": full["accuracy"],
            "accuracy_streaming": stream["accuracy"],
            "wer_full": full.get("wer"),
            "wer_streaming": stream.get("wer"),
        }
    n, n_phrases = full["n"], full.get("n_phrases", 0)
    torch.set_num_threads(1)
    items = [test[i] for i in chosen]
    for name, make in makers.items():
        if name.startswith("onnxruntime"):
            scores = runner_scores(make(), items)
            rows[name] = {
                "accuracy_full": None,
                "accuracy_streaming": scores["accuracy"],
                "wer_full": None,
                "wer_streaming": scores["wer"],
            }
    return {
        "split": "test",
        "items": len(chosen),
        "of": len(test),
        "labelled": n,
        "phrases": n_phrases,
        "chunk_ms": CHUNK_MS,
        "lookahead_ms": LOOKAHEAD_MS,
        "models": rows,
    }


# --- live spotting --------------------------------------------------------------------------------------


def measure_spotting(makers: dict[str, Callable], labels: tuple[str, ...], data: Path, plan: Plan) -> dict:
    """`bench_streaming`'s streaming test through every backend: the same two streams for all."""
    rng = np.random.default_rng(0)
    records = bench_streaming.split_records(data, "test")
    keywords = {label for label in labels if label not in (SILENCE, UNKNOWN)}

    def pick(kind: str, n: int) -> list[dict]:
        rs = [r for r in records if r.get("label") == kind or (kind == "word" and r.get("label") in keywords)]
        return [rs[i] for i in sorted(rng.permutation(len(rs))[:n])]

    commands = pick("word", plan.words) + pick("_phrase_", plan.phrases) + pick(UNKNOWN, plan.unknown)
    commands = [commands[i] for i in rng.permutation(len(commands))]
    non_command = pick("_sentence_", plan.non_command) + pick(UNKNOWN, plan.non_command)
    noise = bench_streaming.noise_bed(data, records)
    audio, words = bench_streaming.build_stream(data, commands, noise, rng, SNR_DB, (0.4, 1.2))
    fa_audio, _ = bench_streaming.build_stream(data, non_command, noise, rng, SNR_DB, (0.3, 1.0))
    config = SpotterConfig()
    rows = {}
    for name, make in makers.items():
        detections = bench_streaming.detect(feed(make(), audio), labels, config)
        row = bench_streaming.score(detections, words, keywords, TOLERANCE_S)
        false_alarms = len(bench_streaming.detect(feed(make(), fa_audio), labels, config))
        row["false_alarms_per_hour"] = round(false_alarms / (fa_audio.size / SAMPLE_RATE / 3600), 1)
        rows[name] = row
    return {
        "stream_seconds": round(audio.size / SAMPLE_RATE, 1),
        "non_command_seconds": round(fa_audio.size / SAMPLE_RATE, 1),
        "clips": {"words": plan.words, "phrases": plan.phrases, "unknown": plan.unknown},
        "non_command_clips": len(non_command),
        "snr_db": SNR_DB,
        "tolerance_ms": TOLERANCE_S * 1000,
        "threshold": config.threshold,
        "backends": rows,
    }


# --- MFCC -----------------------------------------------------------------------------------------------


def measure_mfcc(plan: Plan) -> dict:
    clips = bench_mfcc.make_clips(plan.mfcc_clips, 1.0)
    torch.set_num_threads(DEFAULT_THREADS)  # bench_mfcc measures one thread and the default
    results = bench_mfcc.run(clips, plan.mfcc_repeats)
    torch.set_num_threads(1)
    return {
        "clips": plan.mfcc_clips,
        "clip_seconds": 1.0,
        "repeats": plan.mfcc_repeats,
        "max_abs_difference_nepers": bench_mfcc.agreement(clips),
        "results": results,
        "speedup_vs_librosa_per_clip": bench_mfcc.speedups(results),
    }


# --- targets and report ---------------------------------------------------------------------------------


def targets(report: dict) -> list[dict]:
    """The issue's numbers to reach, measured: `{"target", "value", "met"}` rows.

    `met` is None where it cannot be judged: the accuracy of an untrained model.
    """
    rows = []
    compute = report.get("compute", {}).get("backends", {})
    ort = compute.get("onnxruntime fp32")
    if ort:
        rows.append(
            {
                "target": f"onnxruntime step >= {TARGETS['onnx_speedup']:g}x faster than PyTorch eager "
                f"per {CHUNK_MS:g} ms chunk",
                "value": f"{ort['speedup_vs_eager']:.2f}x (fp32), "
                f"{compute['onnxruntime int8']['speedup_vs_eager']:.2f}x (int8)",
                "met": ort["speedup_vs_eager"] >= TARGETS["onnx_speedup"],
            }
        )
        rows.append(
            {
                "target": f"real-time factor <= {TARGETS['rtf']:g} on one core (onnxruntime)",
                "value": f"{ort['rtf']:.4f} (fp32), {compute['onnxruntime int8']['rtf']:.4f} (int8)",
                "met": ort["rtf"] <= TARGETS["rtf"],
            }
        )
    models = report.get("accuracy", {}).get("models", {})
    pairs = [("PyTorch fp32", "PyTorch int8", "accuracy_full", "PyTorch, full context")]
    if "onnxruntime int8" in models:
        pairs.append(("onnxruntime fp32", "onnxruntime int8", "accuracy_streaming", "onnxruntime, streaming"))
    trained = not report["model"].startswith("random-init")
    for fp32, int8, key, what in pairs:
        if fp32 in models:
            drop = 100 * (models[fp32][key] - models[int8][key])
            rows.append(
                {
                    "target": f"int8 within {TARGETS['int8_accuracy_points']:g} point of float "
                    f"accuracy ({what})",
                    "value": f"{drop:+.2f} points lost" + ("" if trained else " (untrained model)"),
                    "met": drop <= TARGETS["int8_accuracy_points"] if trained else None,
                }
            )
    size = report.get("size", {})
    for key, what in (("onnx_int8_ratio", "ONNX"), ("torch_int8_ratio", "PyTorch")):
        if key in size:
            rows.append(
                {
                    "target": f"int8 >= {TARGETS['int8_size_ratio']:g}x smaller on disk ({what})",
                    "value": f"{size[key]:.2f}x",
                    "met": size[key] >= TARGETS["int8_size_ratio"],
                }
            )
    return rows


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def markdown(report: dict) -> str:
    m, plan = report["machine"], report["plan"]
    quick = " --quick" if report["quick"] else ""
    lines = [
        START,
        "## Summary: every number in one run",
        "",
        f"Measured by `scripts/bench.py{quick}` on {report['date']} in {report['seconds'] / 60:.1f} min, "
        f"in one process: {report['model']}. Machine: {m['cpu']}, {m['cores']} cores "
        f"({m['cores_usable']} usable), "
        f"load average {m['load_average_1min_at_start']:g} at the start and "
        f"{m['load_average_1min_at_end']:g} at the end (shared machine: other work slows "
        f"the wall-clock numbers; the per-chunk figures are CPU time of the thread). Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, librosa {m['librosa']}.",
    ]
    if report["quick"]:
        lines += ["", "**Quick mode: a smoke run on tiny subsets, not numbers to quote.**"]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for t in report["targets"]:
        met = "n/a" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {t['value']} | {met} |")

    c = report["compute"]
    lines += [
        "",
        f"### Streaming compute (one core, {c['chunk_ms']:g} ms chunks + {c['lookahead_ms']:g} ms "
        "look-ahead)",
        "",
        f"Recogniser + spotter fed {c['block_ms']} ms blocks of a {c['stream_seconds']:g} s synthetic "
        f"stream, the backends taking turns every {c['round_seconds']:g} s. Algorithmic latency "
        "(chunk + look-ahead) "
        f"{c['algorithmic_latency_ms']:g} ms before compute. Memory: resident set added by building each "
        "backend and streaming 5 s through it; resident growth over the timed stream, all backends: "
        f"{c['rss_growth_mb_all_backends']:+.1f} MiB.",
        "",
        "| backend | CPU ms per chunk, median / mean / p99 | real-time factor (CPU; wall) | vs eager "
        "| memory added |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in c["backends"].items():
        lines.append(
            f"| {name} | {r['chunk_ms_median']:.2f} / {r['chunk_ms_mean']:.2f} / {r['chunk_ms_p99']:.2f} "
            f"| {r['rtf']:.4f}; {r['rtf_wall']:.4f} | {r['speedup_vs_eager']:.2f}x "
            f"| {r['memory_added_mb']:.1f} MiB |"
        )
    lines.append(
        f"\nPeak resident memory of the process by the end of this measurement (torch, both models, both "
        f"onnxruntime sessions, the exports): {report['peak_rss_mb']:.0f} MiB."
    )

    a = report.get("accuracy")
    if a:
        lines += [
            "",
            "### Accuracy (held-out voices)",
            "",
            f"{a['items']} of the {a['of']} items of the test split (seeded draw): {a['labelled']} labelled "
            f"clips, {a['phrases']} phrases. Streaming = {a['chunk_ms']:g} ms chunks + "
            f"{a['lookahead_ms']:g} ms look-ahead (the chunked pass; onnxruntime: the live runner over each "
            "clip, without the live pause reset, which cuts phrases at their pauses and raises their WER). "
            "WER: greedy CTC on the phrases.",
            "",
            "| model | accuracy, full context | accuracy, streaming | phrase WER, full "
            "| phrase WER, streaming |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, r in a["models"].items():
            lines.append(
                f"| {name} | {_pct(r['accuracy_full'])} | {_pct(r['accuracy_streaming'])} "
                f"| {_pct(r['wer_full'])} | {_pct(r['wer_streaming'])} |"
            )
    s = report.get("spotting")
    if s:
        lines += [
            "",
            "### Live keyword spotting",
            "",
            f"`bench_streaming.py`'s test: {s['clips']['words']} test words, {s['clips']['phrases']} "
            f"phrases and {s['clips']['unknown']} unknown words end to end over noise at {s['snr_db']:g} dB "
            "SNR "
            f"({s['stream_seconds']:g} s), spotter threshold {s['threshold']:g}, match tolerance "
            f"{s['tolerance_ms']:g} ms after the word end; false alarms on {s['non_command_seconds']:g} s of "
            "sentences and unknown words. Percentages of the spoken command words.",
            "",
            "| backend | correct % | wrong % | false pos. % | false alarms / h | latency from word end, "
            "median / p90 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in s["backends"].items():
            lines.append(
                f"| {name} | {r['correct_pct']:.1f} | {r['wrong_pct']:.1f} | {r['false_positive_pct']:.1f} "
                f"| {r['false_alarms_per_hour']} "
                f"| {_ms(r['latency_median_ms'])} / {_ms(r['latency_p90_ms'])} ms |"
            )
    z = report["size"]
    lines += [
        "",
        "### Size",
        "",
        f"{z['parameters']:,} parameters. The ONNX files hold one streaming step with the MFCC front end "
        "(including ~1 MiB of DFT matrix, kept in float in the int8 file) and all metadata.",
        "",
        "| form | bytes | MiB |",
        "| --- | ---: | ---: |",
    ]
    for name, n in z["bytes"].items():
        lines.append(f"| {name} | {n:,} | {n / 2**20:.2f} |")

    f = report.get("mfcc")
    if f:
        lines += [
            "",
            "### MFCC front end",
            "",
            f"{f['clips']} clips of 1 s; median of {f['repeats']} passes (`bench_mfcc.py`'s methods; outputs "
            f"agree to {f['max_abs_difference_nepers']:.1e}). Ratio: clips/s over librosa per clip.",
            "",
            "| method | threads | clips/s | ratio |",
            "| --- | --- | ---: | ---: |",
        ]
        for r in f["results"]:
            ratio = f["speedup_vs_librosa_per_clip"][r["threads"]].get(r["method"], 1.0)
            lines.append(f"| {r['method']} | {r['threads']} | {r['clips_per_s']:.0f} | {ratio:.2f}x |")
    t = report.get("training")
    if t:
        lines += [
            "",
            "### Training throughput",
            "",
            f"{t['timed_steps']} optimiser steps (after a warm-up step) on one batch of {t['batch_size']} "
            f"training items ({t['batch_seconds_of_audio']:g} s of audio), {t['threads']} thread(s) as "
            "`speechrnn train` uses on this machine, the same latency draws for every cell; the epoch time "
            f"extrapolates to the {t['train_items']} items of the training split (model compute only: "
            "loading and augmentation run in worker processes, validation is not counted).",
            "",
            "| cell | parameters | s per step | clips/s | epoch, minutes |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for cell, r in t["cells"].items():
            mark = " (the model's)" if cell == t["default_cell"] else ""
            lines.append(
                f"| {cell}{mark} | {r['parameters']:,} | {r['seconds_per_step']:.3f} "
                f"| {r['clips_per_s']:.1f} | {r['epoch_minutes']:.1f} |"
            )
    skipped = report.get("skipped")
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    lines += ["", f"Sizes of this run: `{json.dumps(plan)}`. Everything is also in `docs/bench.json`.", END]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> None:
    """docs/bench.json, and this report's section at the top of BENCHMARKS.md (other sections kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    path = out_dir / "BENCHMARKS.md"
    section = markdown(report)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text and text.index(START) < text.index(END):
        text = text[: text.index(START)] + section.rstrip("\n") + text[text.index(END) + len(END) :]
    elif text.startswith("# "):
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{section}\n{rest.lstrip(chr(10))}"
    else:
        text = f"{section}\n{text}"
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", metavar="CKPT", help="checkpoint (default: the shipped model, else random-init)"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"corpus (default: {DEFAULT_DATA})")
    p.add_argument("--quick", action="store_true", help="tiny subsets: a smoke run for the tests")
    p.add_argument(
        "--out-dir", type=Path, default=ROOT / "docs", help="where bench.json and BENCHMARKS.md go"
    )
    args = p.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    started = time.perf_counter()
    host = machine()  # before the thread count is pinned: it records the default
    torch.set_num_threads(1)
    model, description = bench_streaming.bench_model(args.model)
    model.eval()
    int8 = quantize_torch(model)
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "model": description,
        "model_config": model.config.to_dict(),
        "machine": host,
        "plan": dataclasses.asdict(plan),
        "skipped": [],
    }
    timings: dict[str, float] = {}
    has_corpus = (args.data / "testing_list.txt").is_file()
    if not has_corpus:
        report["skipped"].append(f"training, accuracy and spotting (no corpus at {args.data})")
    with tempfile.TemporaryDirectory(prefix="speechrnn-bench-") as tmp, torch.no_grad():
        with section("size and export", timings):
            onnx_files, report["size"] = export_all(model, int8, Path(tmp), description)
        if not onnx_files:
            report["skipped"].append("onnxruntime backends (export failed)")
        makers = backends(model, int8, onnx_files)
        with section("streaming compute", timings):
            report["compute"] = measure_compute(makers, model.labels, plan.stream_seconds)
        report["peak_rss_mb"] = round(peak_rss_mb(), 1)
        with section("MFCC throughput", timings):
            report["mfcc"] = measure_mfcc(plan)
        if has_corpus:
            with section("training throughput", timings), torch.enable_grad():
                report["training"] = measure_training(model, args.data, plan)
            with section("accuracy", timings):
                exact = backends(model, int8, onnx_files, reset=None)  # comparable with the chunked pass
                report["accuracy"] = measure_accuracy(model, int8, exact, args.data, plan)
            with section("live spotting", timings):
                report["spotting"] = measure_spotting(makers, model.labels, args.data, plan)
    report["targets"] = targets(report)
    report["section_seconds"] = timings
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    write_report(report, args.out_dir)
    print(markdown(report))
    print(f"bench: wrote {args.out_dir / 'bench.json'} and {args.out_dir / 'BENCHMARKS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
