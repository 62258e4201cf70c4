"""Start-up time and resident memory of the live path: the PyTorch step against the ONNX step.

Each measurement is a fresh interpreter that does what `speechrnn listen` does before and while it listens:
import the package, open the step (load the checkpoint, or the exported file into onnxruntime), build the
recogniser and spotter, and hear its first 100 ms block; then it streams 30 s more. Reported per backend,
the median of `--runs` processes: seconds to the first block heard (start-up, wall clock and CPU), resident memory then and at
the end (VmRSS, MiB), its peak (VmHWM), and whether torch was imported at all.

Writes docs/bench_live.json and the section between `<!-- startup:start -->` and `<!-- startup:end -->` of
docs/LIVE.md (other sections are left alone).

Usage:
    .venv/bin/python scripts/bench_live.py [--model CKPT] [--runs 3]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- startup:start -->", "<!-- startup:end -->"
STREAM_S = 30.0  # audio streamed after the first block, for the memory in use

CHILD = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
import speechrnn
from speechrnn.live import KeywordListener, open_step

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")

step = open_step(model=MODEL, onnx=ONNX)
listener = KeywordListener(step)
rng = np.random.default_rng(0)
block = lambda: (0.01 * rng.standard_normal(1600)).astype(np.float32)
listener.accept(block())
ready, ready_cpu = time.perf_counter() - t0, time.process_time()
rss_ready = rss("VmRSS")
for _ in range(int(STREAM_S * 10)):
    listener.accept(block())
heavy = any(m.split(".")[0] in ("torch", "torchaudio") for m in sys.modules)
print(repr({"startup_s": ready, "startup_cpu_s": ready_cpu, "rss_ready_mib": rss_ready, "rss_end_mib": rss("VmRSS"),
            "peak_mib": rss("VmHWM"), "torch_imported": heavy}))
"""


def measure(model: str | None, onnx: str | None, runs: int) -> dict:
    """Median of `runs` fresh processes (`CHILD`) for one backend."""
    code = CHILD.replace("MODEL", repr(model)).replace("ONNX", repr(onnx)).replace("STREAM_S", repr(STREAM_S))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rows = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        rows.append(ast.literal_eval(done.stdout.strip().splitlines()[-1]))  # the dict CHILD printed
    out = {
        key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0] if key != "torch_imported"
    }
    out["torch_imported"] = any(r["torch_imported"] for r in rows)
    return out


def section(results: dict) -> str:
    rows = "\n".join(
        f"| {name} | {r['startup_s']:.2f} | {r['startup_cpu_s']:.2f} | {r['rss_ready_mib']:.0f} | {r['rss_end_mib']:.0f} | "
        f"{r['peak_mib']:.0f} | {'yes' if r['torch_imported'] else 'no'} |"
        for name, r in results["backends"].items()
    )
    return f"""{START}
## Start-up time and memory

Measured by `scripts/bench_live.py` on {results["date"]}: {results["model"]}; median of {results["runs"]} fresh
processes each. Start-up: from the interpreter's first import to the first 100 ms block heard (import, open
the step, build the recogniser and spotter), in wall-clock seconds and in the CPU time the process used
(steadier on a busy machine); memory: resident set then, after {STREAM_S:g} s more of
streaming, and its peak. Machine: {results["machine"]}, load average {results["load_average"][0]:g} at the end
(shared: other work slows the wall-clock figures).

| backend | start-up (s, wall) | start-up (s, CPU) | resident at start (MiB) | after {STREAM_S:g} s (MiB) | peak (MiB) | torch imported |
| --- | --- | --- | --- | --- | --- | --- |
{rows}
{END}"""


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else "# The live path\n"
    if START in old and END in old:
        new = old[: old.index(START)] + text + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + text + "\n"
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint (default: the model shipped with speechrnn)")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per backend (default: 3)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    args = ap.parse_args()

    from speechrnn.checkpoint import default_model_path, load_model
    from speechrnn.export import export_onnx

    model_name = args.model or f"shipped model ({default_model_path().relative_to(ROOT)})"
    with tempfile.TemporaryDirectory(
        prefix="speechrnn-live-"
    ) as tmp:  # the file as `speechrnn export` writes it
        onnx = str(export_onnx(load_model(args.model), Path(tmp) / "model.onnx"))
        backends = {
            "PyTorch (checkpoint)": measure(args.model, None, args.runs),
            "onnxruntime (exported step)": measure(None, onnx, args.runs),
        }
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "model": model_name,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "backends": backends,
    }
    (args.out_dir / "bench_live.json").write_text(json.dumps(results, indent=1) + "\n")
    write_section(args.out_dir / "LIVE.md", section(results))
    print(json.dumps(backends, indent=1))


if __name__ == "__main__":
    main()
