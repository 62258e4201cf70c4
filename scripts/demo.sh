#!/usr/bin/env bash
# Install what is missing (scripts/setup.sh), then run the main job.
#
# The main job, on the model shipped inside the package: transcribe the sample clips (label, text, word
# times), then stream a recording of several commands through the live keyword spotter exactly as a
# microphone would be (`listen --input`), and print what it heard. Outputs go to runs/demo/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${SPEECHRNN_VENV:-.venv}
OUT=runs/demo

./scripts/setup.sh
mkdir -p "$OUT"
speechrnn() { "$VENV/bin/speechrnn" "$@"; }

# --- the main job --------------------------------------------------------------------------------------
echo "demo: transcribing data/samples/ with the shipped model"
speechrnn transcribe data/samples
echo
echo "demo: the sample clips (data/samples/README.md says which voices are held out) said one after another, with pauses and noise: $OUT/commands.wav"
"$VENV/bin/python" scripts/make_stream.py data/samples --out "$OUT/commands.wav"
echo "demo: streaming it through the live keyword spotter (speechrnn listen --input ... --fast)"
speechrnn listen --input "$OUT/commands.wav" --fast
echo
echo "demo: done. Try: $VENV/bin/speechrnn listen    # your microphone; Ctrl-C to stop"
