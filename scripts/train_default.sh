#!/usr/bin/env bash
# Retrain the shipped default model from scratch: build the default synthetic corpus (if absent), train,
# evaluate on the held-out voices, and install it as speechrnn/assets/model.pt with its model card.
#   ./scripts/train_default.sh                 # on a GPU if there is one, else the CPU
#   MINUTES=120 DEVICE=cpu ./scripts/train_default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PY=${SPEECHRNN_VENV:-.venv}/bin/python
DATA=${DATA:-data/synth-default}
OUT=${OUT:-runs/default/model.pt}
MINUTES=${MINUTES:-60}
DEVICE=${DEVICE:-auto}
if [ ! -f "$DATA/_meta_/build.json" ]; then
  "$PY" -m speechrnn synth --out "$DATA" --preset default --seed 0
fi
"$PY" -m speechrnn train --data "$DATA" --out "$OUT" --device "$DEVICE" --batch-size 128 --lr 3e-3 \
  --epochs 200 --max-minutes "$MINUTES"
"$PY" scripts/ship_model.py --ckpt "$OUT" --data "$DATA" \
  --command "MINUTES=$MINUTES DEVICE=$DEVICE scripts/train_default.sh"
