"""Benchmark: MFCC throughput of our torchaudio front end against librosa on the same clips.

    .venv/bin/python scripts/bench_mfcc.py [--clips 512] [--repeats 3]

Methods, all with the same settings (40 MFCC from 40 HTK mel bands, 20-7600 Hz, 25 ms Hann window,
10 ms hop, 512-point FFT, no centre padding):
- librosa, per clip: melspectrogram, power_to_db, mfcc for each clip in a loop, as it is usually called;
- librosa, batch: one call on the `(clips, samples)` array (librosa >= 0.9 takes leading dimensions);
- ours, batch: `speechrnn.features.mfcc` on the `(clips, samples)` tensor, as the training loop calls it;
- ours, per clip: `speechrnn.features.mfcc` in a loop, as transcribing single files calls it.
Each runs single-threaded and with the default thread counts. A timing is the median of `--repeats` passes
over all clips after one warm-up pass (librosa's first call compiles with numba); the methods take
turns pass by pass, so a load from elsewhere slows them alike.

Writes `docs/bench_mfcc.json` and the "MFCC front end" section of `docs/BENCHMARKS.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio

from speechrnn.audio import SAMPLE_RATE
from speechrnn.features import DB_PER_NEPER, FeatureConfig, librosa_mfcc, mfcc
from speechrnn.system import usable_cores

ROOT = Path(__file__).resolve().parent.parent
START_MARK, END_MARK = "<!-- mfcc:start -->", "<!-- mfcc:end -->"
CONFIG = FeatureConfig()


def make_clips(count: int, seconds: float, seed: int = 0) -> np.ndarray:
    """`(count, samples)` float32: noise plus two tones of random pitch, at random levels."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f1, f2 = rng.uniform(100, 400, (2, count, 1)) * [[[1.0]], [[6.0]]]
    tones = 0.3 * np.sin(2 * np.pi * f1 * t) + 0.1 * np.sin(2 * np.pi * f2 * t)
    level = rng.uniform(0.05, 1.0, (count, 1))
    return (level * (tones + 0.1 * rng.standard_normal((count, n)))).astype(np.float32)


@contextlib.contextmanager
def threads(count: int | None) -> Iterator[None]:
    """Limit torch, OpenMP and BLAS to `count` threads (None: leave the defaults)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # installed with librosa (through scikit-learn)

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(before)


def median_seconds(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each method. Passes take turns, so a load from elsewhere hits all methods alike."""
    for fn in methods.values():
        fn()  # warm-up: numba compilation, filter banks, allocator
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),
        "torch_default_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }


def busy_warning() -> str | None:
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        return (
            f"load average {load:.1f} on {cores} cores: other processes are running, and multi-threaded "
            "timings suffer most (an OpenMP thread that loses its core stalls the others at each barrier)"
        )
    return None


def run(clips: np.ndarray, repeats: int) -> list[dict]:
    batch = torch.from_numpy(clips)
    methods: dict[str, Callable[[], object]] = {
        "librosa, per clip": lambda: [librosa_mfcc(c) for c in clips],
        "librosa, batch": lambda: librosa_mfcc(clips),
        "ours, batch": lambda: mfcc(batch),
        "ours, per clip": lambda: [mfcc(c) for c in batch],
    }
    results = []
    for thread_count in (1, None):
        with threads(thread_count):
            label = "1" if thread_count == 1 else f"default ({torch.get_num_threads()})"
            for name, seconds in median_seconds(methods, repeats).items():
                results.append(
                    {
                        "method": name,
                        "threads": label,
                        "seconds": round(seconds, 4),
                        "clips_per_s": round(len(clips) / seconds, 1),
                    }
                )
                print(
                    f"  {name:18s} threads {label:12s} {seconds:7.3f} s  {len(clips) / seconds:9.1f} clips/s"
                )
    return results


def agreement(clips: np.ndarray) -> float:
    """Largest difference between our MFCC and librosa's (in nepers) over a few of the clips."""
    sample = clips[:8]
    ours = mfcc(sample).numpy()
    theirs = librosa_mfcc(sample).transpose(0, 2, 1) / DB_PER_NEPER
    return float(np.abs(ours - theirs).max())


def speedups(results: list[dict]) -> dict:
    """clips/s of each of our methods over librosa per clip, for each thread setting."""
    out = {}
    for threads_label in dict.fromkeys(r["threads"] for r in results):
        rows = {r["method"]: r for r in results if r["threads"] == threads_label}
        base = rows["librosa, per clip"]["clips_per_s"]
        out[threads_label] = {
            name: round(row["clips_per_s"] / base, 2)
            for name, row in rows.items()
            if name != "librosa, per clip"
        }
    return out


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        START_MARK,
        "## MFCC front end",
        "",
        f"{s['clips']} clips of {s['clip_seconds']:g} s at 16 kHz -> {CONFIG.n_mfcc} MFCC every "
        f"{CONFIG.hop_ms:g} ms, the same settings in both libraries (outputs agree to "
        f"{report['max_abs_difference_nepers']:.1e}). Median of {s['repeats']} passes after a warm-up. "
        "Ratio: clips/s over librosa called per clip with the same threads. "
        "Written by `scripts/bench_mfcc.py`.",
        "",
        "| method | threads | seconds | clips/s | ratio |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        ratio = report["speedup_vs_librosa_per_clip"][r["threads"]].get(r["method"], 1.0)
        lines.append(
            f"| {r['method']} | {r['threads']} | {r['seconds']:.3f} | {r['clips_per_s']:.0f} | {ratio:.2f}x |"
        )
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), Python {m['python']}, "
        f"torch {m['torch']}, torchaudio {m['torchaudio']}, librosa {m['librosa']}, numpy {m['numpy']}; "
        f"{report['date']}. Load average {m['load_average_1min_at_start']:g} at the start and "
        f"{m['load_average_1min_at_end']:g} at the end: on a shared machine other processes slow the "
        "multi-threaded rows most (an OpenMP thread that loses its core stalls the others at each barrier).",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of the shared benchmarks page, or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nSpeed and accuracy of speechrnn.\n"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        text = head + section + rest.split(END_MARK, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=512, help="number of clips")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each clip")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per method (median reported)")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "bench_mfcc.json", help="JSON output")
    parser.add_argument(
        "--markdown", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="page to update"
    )
    args = parser.parse_args(argv)

    clips = make_clips(args.clips, args.seconds)
    print(f"bench_mfcc: {args.clips} clips of {args.seconds:g} s")
    if warning := busy_warning():
        print(f"bench_mfcc: warning: {warning}")
    info = machine()
    results = run(clips, args.repeats)
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    report = {
        "benchmark": "mfcc",
        "date": time.strftime("%Y-%m-%d"),
        "machine": info,
        "settings": {
            "clips": args.clips,
            "clip_seconds": args.seconds,
            "repeats": args.repeats,
            "features": CONFIG.to_dict(),
        },
        "max_abs_difference_nepers": agreement(clips),
        "results": results,
        "speedup_vs_librosa_per_clip": speedups(results),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    write_section(args.markdown, markdown(report))
    print(f"bench_mfcc: wrote {args.json} and the MFCC section of {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
