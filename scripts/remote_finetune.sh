#!/usr/bin/env bash
# Fine-tune a model several times side by side on a machine you can only copy files to (a rented GPU):
# unpack a corpus bundle made by `scripts/corpus_bundle.py pack`, run one `speechrnn train --init` per
# seed:lr pair at once, and write each run's end (weights, config and history; no optimiser state, ~5 MB)
# and its log to OUT_DIR. Average the ends with their start afterwards (`scripts/average_checkpoints.py`).
#
# It needs only python3 with torch, torchaudio, numpy, tqdm and soundfile; speechrnn runs from this checkout
# (no install). Where soundfile is missing, put its wheels (soundfile, cffi, pycparser) in WHEELS.
#
#   BUNDLE=/tmp/corpus.tgz OUT_DIR=/tmp/out MINUTES=7.5 RUNS="21:3e-4 22:5e-4" scripts/remote_finetune.sh
#
# Environment (defaults in brackets; relative paths are from the repository root):
#   BUNDLE   the corpus bundle [.dev/corpus.tgz]     CORPUS  where to unpack it [/tmp/corpus]
#   INIT     the model to start from [speechrnn/assets/model.pt]; none: fresh weights (from scratch)
#   RUNS     space-separated seed:lr pairs, one run each ["21:3e-4 22:3e-4"]
#   MINUTES  training time per run; the learning rate's cosine follows it [7.5]
#   WORKERS  data-loading processes per run [(cores - runs) / runs]
#   BATCH    clips per step [128]         STREAMS  training streams per epoch [4000]
#   DEVICE   auto, cpu, cuda [auto]       OUT_DIR  where the ends and logs go [runs/remote]
#   WORK     where the runs write their full checkpoints [/tmp/remote_finetune]
#   WHEELS   a folder of wheels to install first [.whl if present]
#   TRAIN_ARGS  more `speechrnn train` flags, e.g. "--vtlp-range 0.85 1.15", or "--keep-epochs" to keep
#               every epoch's weights in WORK/seedN/model.epochN.pt for averaging
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
PY=${PY:-python3}
BUNDLE=${BUNDLE:-.dev/corpus.tgz}
CORPUS=${CORPUS:-/tmp/corpus}
INIT=${INIT:-speechrnn/assets/model.pt}
RUNS=${RUNS:-"21:3e-4 22:3e-4"}
MINUTES=${MINUTES:-7.5}
BATCH=${BATCH:-128}
STREAMS=${STREAMS:-4000}
DEVICE=${DEVICE:-auto}
OUT_DIR=${OUT_DIR:-runs/remote}
WORK=${WORK:-/tmp/remote_finetune}
WHEELS=${WHEELS:-.whl}
read -ra PAIRS <<<"$RUNS"
FROM=(--init "$INIT")
[ "$INIT" = none ] && FROM=()
WORKERS=${WORKERS:-$(( ($(nproc) - ${#PAIRS[@]}) / ${#PAIRS[@]} ))}
(( WORKERS < 1 )) && WORKERS=1

say() { printf 'remote_finetune: %s\n' "$*"; }
die() { printf 'remote_finetune: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$OUT_DIR" "$WORK" || die "cannot write to $OUT_DIR or $WORK"
if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || die "could not install the wheels in $WHEELS"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
$PY -c "import torch, torchaudio, soundfile; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__,
'cuda' if torch.cuda.is_available() else 'no GPU')" || die "python3 lacks torch, torchaudio or soundfile"
if [ ! -f "$CORPUS/validation_list.txt" ]; then
    [ -f "$BUNDLE" ] || die "no corpus at $CORPUS and no bundle at $BUNDLE"
    $PY scripts/corpus_bundle.py unpack "$BUNDLE" "$CORPUS" || die "could not unpack $BUNDLE"
fi
say "${#PAIRS[@]} run(s) of $MINUTES min, $WORKERS data workers each, ready after $(( SECONDS - START )) s"

pids=()
for pair in "${PAIRS[@]}"; do
    seed=${pair%%:*} lr=${pair#*:}
    name=seed$seed
    # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
    $PY -m speechrnn train --data "$CORPUS" "${FROM[@]}" --out "$WORK/$name/model.pt" \
        --device "$DEVICE" --workers "$WORKERS" --batch-size "$BATCH" --lr "$lr" --streams "$STREAMS" --seed "$seed" \
        --epochs 1000 --max-minutes "$MINUTES" ${TRAIN_ARGS:-} >"$OUT_DIR/$name.log" 2>&1 &
    pids+=($!)
    sleep 2  # stagger the corpus scans
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

$PY - "$OUT_DIR" "$WORK" "${PAIRS[@]}" <<'EOF'
import sys
from pathlib import Path

from speechrnn.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint

out, work = Path(sys.argv[1]), Path(sys.argv[2])
for pair in sys.argv[3:]:
    name = "seed" + pair.split(":")[0]
    src = work / name / "model.last.pt"
    if not src.exists():
        print(f"{name}: no checkpoint (see {out / name}.log)")
        continue
    ckpt = read_checkpoint(src)
    slim = {k: v for k, v in ckpt["train"].items() if k in ("config", "progress")}  # as average_checkpoints
    save_checkpoint(out / f"{name}.end.pt", model_from_checkpoint(ckpt, str(src)), train=slim)
    last = ckpt["train"]["progress"]["history"][-1]
    streamed = last.get("val_stream_accuracy")  # none when trained without streams
    print(f"{name}: {len(ckpt['train']['progress']['history'])} epochs, {last['clips_per_s']:.0f} clips/s, "
          f"validation accuracy {last['val_accuracy']:.4f}" + (f", streamed {streamed:.4f}" if streamed else ""))
EOF
say "done in $(( SECONDS - START )) s; ends and logs in $OUT_DIR"
exit $failed
