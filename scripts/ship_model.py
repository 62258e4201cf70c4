#!/usr/bin/env python3
"""Install a trained checkpoint as the package's default model and write its model card.

Strips the optimiser state (keeps the configs, labels, normalisation, weights and the metrics history),
evaluates it on the held-out-voice test split at full context and in streaming mode, and writes
`speechrnn/assets/model.pt` and `speechrnn/assets/MODEL_CARD.md`.

    python scripts/ship_model.py --ckpt runs/default/model.pt --data data/synth-default \
        --command "scripts/train_default.sh" [--note "trained on ..."] [--lineage steps.md]

A fine-tune's card says how the model was made from the first step on: copy the shipped card's "How it was
made" section to a file, add the new step's commands, and pass it as `--lineage`.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from speechrnn.checkpoint import default_model_path, model_from_checkpoint, read_checkpoint, save_checkpoint
from speechrnn.corpus import META_DIR
from speechrnn.evaluate import evaluate_model
from speechrnn.latency import LIVE
from speechrnn.speechcommands import SpeechCommandsDataset
from speechrnn.streaming import latency_steps
from speechrnn.system import usable_cores

DEFAULT_COMMAND = "scripts/train_default.sh"  # retrains the default model from scratch
ENGINE_NAMES = {
    "piper": "Piper neural voice", "espeak": "espeak-ng", "mbrola": "MBROLA", "pico": "SVOX Pico", "rhvoice": "RHVoice",
}  # fmt: skip
NON_COMMERCIAL = {  # engines some of whose voices are licensed for non-commercial use only
    "mbrola": "MBROLA's databases (non-commercial, non-military use only)",
    "rhvoice": "RHVoice's evgeniy-eng, lyubov and eleven voices of other languages (CC BY-NC-ND 4.0), hana "
    "(CC BY-NC-SA 4.0) and talgat (non-commercial)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="trained checkpoint")
    ap.add_argument("--data", required=True, help="the corpus it was trained on (its test split is scored)")
    ap.add_argument("--command", default=None, help="how it was trained, for the card (default: the last step "
                    "of --lineage, else scripts/train_default.sh)")  # fmt: skip
    ap.add_argument("--note", default="", help="free text for the card (hardware, caveats)")
    ap.add_argument(
        "--lineage", help="Markdown file: the model's steps as commands, the card's 'How it was made'"
    )
    ap.add_argument("--chunk-ms", type=float, default=LIVE.chunk_ms)
    ap.add_argument("--lookahead-ms", type=float, default=LIVE.lookahead_ms)
    ap.add_argument("--out", default=str(default_model_path()))
    args = ap.parse_args()

    ckpt = read_checkpoint(args.ckpt)
    model = model_from_checkpoint(ckpt, args.ckpt)
    torch.set_num_threads(usable_cores())
    test = SpeechCommandsDataset(args.data, "test", labels=model.labels)
    full = evaluate_model(model, test, progress_bar=True)
    chunk, lookahead = latency_steps(model, args.chunk_ms, args.lookahead_ms)
    stream = evaluate_model(model, test, chunk=chunk, lookahead=lookahead, progress_bar=True)
    train = ckpt.get("train", {})
    history = train.get("progress", {}).get("history", [])
    info = {
        "data": str(args.data),
        "command": args.command
        or ("the last step of the card's 'How it was made'" if args.lineage else DEFAULT_COMMAND),
        "note": args.note,
        "test_accuracy": full["accuracy"],
        "test_accuracy_streaming": stream["accuracy"],
        "streaming": {"chunk_ms": args.chunk_ms, "lookahead_ms": args.lookahead_ms},
        "test_wer_greedy": full.get("wer"),
        "test_clips": full["n"],
        "test_phrases": full.get("n_phrases"),
        "training_seconds": train.get("progress", {}).get("seconds"),
        "epochs": len(history),
    }
    slim = {"config": train.get("config"), "progress": {k: v for k, v in train.get("progress", {}).items()}}
    save_checkpoint(args.out, model, train=slim, info=info)
    size_mb = Path(args.out).stat().st_size / 1e6
    card = Path(args.out).with_name("MODEL_CARD.md")
    card.write_text(model_card(model, args, info, full, stream, size_mb))
    print(json.dumps(info, indent=1))
    print(f"wrote {args.out} ({size_mb:.1f} MB) and {card}")


def model_card(model, args: argparse.Namespace, info: dict, full: dict, stream: dict, size_mb: float) -> str:
    """The Markdown of MODEL_CARD.md: the model, how it was made, its held-out figures, limits and licences."""
    build = Path(args.data) / META_DIR / "build.json"
    used = json.loads(build.read_text())["engines"] if build.is_file() else []
    engines = ", ".join(ENGINE_NAMES.get(e, e) for e in used) or "engines not recorded"
    bound = [NON_COMMERCIAL[e] for e in used if e in NON_COMMERCIAL]
    licence = (
        f"\n## Licence of the training voices\nThe corpus includes voices licensed for non-commercial use: "
        f"{'; '.join(bound)}.\nThat condition may bind this model too. A corpus built without them "
        "(`SPEECHRNN_NONFREE=0 scripts/setup.sh`\non a fresh machine) gives a model free of it.\n"
        if bound
        else ""
    )
    lineage = Path(args.lineage).read_text().strip() + "\n\n" if args.lineage else ""
    if lineage and not lineage.startswith("## How it was made"):
        lineage = "## How it was made\n" + lineage
    if args.command:
        command = f"`{args.command}`"
    else:
        command = (
            "the last step of [How it was made](#how-it-was-made)" if lineage else f"`{DEFAULT_COMMAND}`"
        )
    note = f" ({args.note})" if args.note else ""
    cfg = model.config
    table = "".join(
        f"| per-keyword thresholds, {name} | {min(t.values()):g}-{max(t.values()):g}, calibrated on validation "
        "(`scripts/calibrate_thresholds.py`; `listen --threshold` sets one for all) |\n"
        for name, t in model.thresholds.items()
        if t
    )
    return f"""# Default speechrnn model

| | |
|---|---|
| architecture | {cfg.layers} x {cfg.hidden} {"bidirectional (latency-controlled) " if cfg.bidirectional else ""}{cfg.cell.upper()}, stride {cfg.stride} (20 ms steps), CTC head over {cfg.n_vocab} symbols + attention-pooled label head |
| parameters | {model.num_parameters():,} ({size_mb:.1f} MB on disk) |
| labels | {len(model.labels)}: {", ".join(model.labels)} |
| features | {model.features.n_mfcc} MFCC from {model.features.n_mels} log-mel bands, {model.features.win_ms:g} ms window, {model.features.hop_ms:g} ms hop |
| training data | `{args.data}` built by `speechrnn synth --preset default` (synthetic voices only) |
| training command | {command} |
| training time | {info["training_seconds"] or 0:.0f} s, {info["epochs"]} epochs{note} |
{table}
{lineage}## Held-out-voice test split (voices never heard in training)
| mode | accuracy | WER of phrases and connected utterances (greedy CTC) |
|---|---|---|
| full context | {full["accuracy"]:.2%} on {full["n"]} clips | {full.get("wer", float("nan")):.2%} on {full.get("n_phrases", 0)} phrases and utterances |
| streaming, chunk {args.chunk_ms:g} ms + look-ahead {args.lookahead_ms:g} ms | {stream["accuracy"]:.2%} | {stream.get("wer", float("nan")):.2%} |

Measured with `speechrnn eval --data {args.data} --split test [--chunk-ms {args.chunk_ms:g} --lookahead-ms {args.lookahead_ms:g}]`
on {platform.machine()} ({platform.processor() or "cpu"}).

## Limitations
Trained only on synthetic speech ({engines}) with simulated rooms,
noise and channels. Accuracy on unseen *synthetic* voices is what the table measures; real people, accents
and microphones are harder and will score lower. Retrain on your own recordings (`speechrnn train`) for
anything that matters.
{licence}"""


if __name__ == "__main__":
    main()
