#!/usr/bin/env python
"""What a larger model would cost live: streaming compute of the recogniser at several widths and depths.

    .venv/bin/python scripts/bench_width.py [--shapes 160x3 192x3 224x3 256x3 160x4] [--seconds 20]

Each shape is the shipped model's architecture with another `hidden` and `layers` (random weights: compute
does not depend on them), fed the live path's 100 ms blocks on one core as `bench_streaming.py` measures it
(recogniser and label-head spotter). The shapes take turns, `--repeats` times, so that a load from elsewhere
on a shared machine hits them alike; the median real-time factor of each is reported, with its ratio to
the first shape's. The live budget is a real-time factor of 0.03 on one core (docs/LIVE.md).
Writes docs/bench_width.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from bench_streaming import measure_compute

from speechrnn.checkpoint import load_model
from speechrnn.latency import LIVE
from speechrnn.model import Recognizer

ROOT = Path(__file__).resolve().parents[1]


def shape(text: str) -> tuple[int, int]:
    """`HIDDENxLAYERS` -> (hidden, layers)."""
    try:
        hidden, layers = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HIDDENxLAYERS such as 192x3, got {text!r}") from None
    if hidden < 1 or layers < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return hidden, layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="checkpoint whose architecture is varied (default: shipped)"
    )
    parser.add_argument(
        "--shapes", type=shape, nargs="+", default=[(160, 3), (192, 3), (224, 3), (256, 3), (160, 4)]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="audio streamed per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_width.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = load_model(args.model)
    models = {}
    for hidden, layers in args.shapes:
        m = Recognizer(
            dataclasses.replace(base.config, hidden=hidden, layers=layers), base.labels, base.features
        )
        m.set_normalization(base.feat_mean, base.feat_std)
        models[hidden, layers] = m.eval()
    rtf: dict[tuple[int, int], list[float]] = {s: [] for s in models}
    for r in range(args.repeats):
        for s, m in models.items():
            rtf[s].append(measure_compute(m, args.seconds, LIVE.chunk_ms, LIVE.lookahead_ms)["rtf"])
        print(f"bench_width: round {r + 1} of {args.repeats}", file=sys.stderr, flush=True)
    first = float(np.median(rtf[args.shapes[0]]))
    rows = [
        {
            "hidden": h,
            "layers": n,
            "parameters": models[h, n].num_parameters(),
            "rtf_median": round(float(np.median(rtf[h, n])), 4),
            "rtf_runs": rtf[h, n],
            "vs_first": round(float(np.median(rtf[h, n])) / first, 2),
        }
        for h, n in args.shapes
    ]
    print(
        "| hidden x layers | parameters | real-time factor (one core) | vs first |\n| --- | --- | --- | --- |"
    )
    for r in rows:
        print(
            f"| {r['hidden']}x{r['layers']} | {r['parameters']:,} | {r['rtf_median']:.4f} | {r['vs_first']:.2f} |"
        )
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, torch threads 1",
        "chunk_ms": LIVE.chunk_ms,
        "lookahead_ms": LIVE.lookahead_ms,
        "seconds": args.seconds,
        "shapes": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
