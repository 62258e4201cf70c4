#!/usr/bin/env bash
# Install what is missing (scripts/setup.sh), then run the main job.
#
# Until a trained model ships, the main job builds a tiny synthetic corpus and plots what the front end
# sees (waveform and MFCC of a few clips). Outputs go to runs/demo/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${SPEECHRNN_VENV:-.venv}
OUT=runs/demo

./scripts/setup.sh
mkdir -p "$OUT"
speechrnn() { "$VENV/bin/speechrnn" "$@"; }

# --- the main job --------------------------------------------------------------------------------------
CORPUS=$OUT/corpus
echo "demo: synthesising a tiny corpus in $CORPUS (a finished one is kept, an interrupted one resumed)"
speechrnn synth --preset tiny --out "$CORPUS"
echo "demo: plotting what the front end sees"
"$VENV/bin/python" scripts/show_features.py "$CORPUS" --out "$OUT/features.png"
