#!/usr/bin/env bash
# The main job (README): until the Kafka worker lands, run the model tool on
# the tiny model: describe it, tokenize a prompt, and stream a generation.
# Uses ../shared/models/stories260K.gguf when present, else writes a random
# tiny model (which generates gibberish, but runs the same code).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${INFERNO_MODEL:-../shared/models/stories260K.gguf}
if [ ! -f "$model" ]; then
  model=build/models/random-tiny.gguf
  mkdir -p build/models
  [ -f "$model" ] || bin/inferno-model random "$model" --preset tiny --type f32 --seed 1
  echo "(../shared absent: using a random-weights model, output is gibberish)"
fi
prompt=${INFERNO_PROMPT:-Once upon a time}
echo "== inferno-model info $model"
bin/inferno-model info "$model"
echo
echo "== inferno-model tokenize \"$prompt\""
bin/inferno-model tokenize "$model" --pieces "$prompt"
echo
echo "== inferno-model generate (greedy, 64 tokens)"
bin/inferno-model generate "$model" --max-tokens 64 --temperature 0 "$prompt"
