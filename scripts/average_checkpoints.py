#!/usr/bin/env python3
"""Average the weights of several checkpoints of one model into one checkpoint.

Snapshots along one training run (stochastic weight averaging), or fine-tunes that started from the same
weights, average into a model that usually generalises better than any of them: the average sits nearer the
middle of the basin they share. The checkpoints must agree on the architecture, features, labels and
normalisation; the first one's training history is kept with the list of what was averaged.

    python scripts/average_checkpoints.py runs/swa/snaps/*.pt --out runs/swa/average.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechrnn.checkpoint import average_checkpoints, read_checkpoint, save_checkpoint
from speechrnn.errors import SpeechRNNError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpts", nargs="+", help="checkpoints to average (two or more)")
    ap.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    args = ap.parse_args()
    if len(args.ckpts) < 2:
        ap.error("expected two or more checkpoints to average")
    try:
        model = average_checkpoints(args.ckpts)
        train = read_checkpoint(args.ckpts[0]).get("train", {})
    except SpeechRNNError as err:
        sys.exit(f"error: {err}")
    slim = {k: v for k, v in train.items() if k in ("config", "progress")}  # no optimiser state
    save_checkpoint(args.out, model, train=slim, info={"averaged_from": [str(Path(p)) for p in args.ckpts]})
    print(f"averaged {len(args.ckpts)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
