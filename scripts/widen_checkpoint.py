#!/usr/bin/env python3
"""Give a trained model more hidden units per direction without changing what it computes.

The new units start with zeros on every weight that leads out of them (`speechrnn.model.widen`), so the
widened checkpoint scores exactly as its source; fine-tune it (`speechrnn train --init WIDE ...`) to put the
new capacity to use. Each 100 ms chunk of live audio costs more: see `scripts/bench_streaming.py`.

    python scripts/widen_checkpoint.py speechrnn/assets/model.pt --hidden 224 --out runs/wide/start.pt
"""

from __future__ import annotations

import argparse
import sys

from speechrnn.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.model import widen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", help="the checkpoint to widen")
    ap.add_argument(
        "--hidden", type=int, required=True, help="hidden units per direction of the widened model"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the new units' incoming weights")
    ap.add_argument("--out", required=True, help="where to write the widened checkpoint")
    args = ap.parse_args(argv)
    try:
        ckpt = read_checkpoint(args.ckpt)
        model = model_from_checkpoint(ckpt, args.ckpt)
        wide = widen(model, args.hidden, args.seed)
    except (SpeechRNNError, ValueError) as err:
        sys.exit(f"error: {err}")
    info = {"widened_from": str(args.ckpt), "hidden": [model.config.hidden, args.hidden], "seed": args.seed}
    slim = {k: v for k, v in ckpt.get("train", {}).items() if k in ("config", "progress")}
    save_checkpoint(args.out, wide, train=slim, info=info)
    print(
        f"{args.ckpt}: {model.config.hidden} -> {args.hidden} hidden units per direction, "
        f"{model.num_parameters():,} -> {wide.num_parameters():,} parameters; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
