#!/usr/bin/env bash
# Adaptive self-consistency and DeepConf online against self-consistency@16 (issue #14), one request
# at a time, 256 tokens, temperature 0.7, on held-out reasoning-gym problems (seeds unused by any
# calibration data). Run from the repository root; takes the engine lock machine-wide.
# Usage: docs/results/adaptive/run.sh OUTPUT_FOLDER [PROBLEMS_PER_TASK] [SEED]
set -euo pipefail
out=${1:?output folder}
size=${2:-10}
seed=${3:-1401}
exec flock /tmp/ponder-engine.lock timeout 600 .venv/bin/ponder eval --serve --port 0 \
  --no-progress --concurrency 1 --max-tokens 256 --temperature 0.7 \
  --dataset "rg:chain_sum?size=${size}&seed=${seed}" \
  --dataset "rg:basic_arithmetic?size=${size}&seed=$((seed + 1))" \
  --strategy 'self_consistency@16={"strategy": "self_consistency", "n": 16}' \
  --strategy 'adaptive_sc@16={"strategy": "self_consistency", "n": 16, "adaptive": true}' \
  --strategy 'deepconf_online@16={"strategy": "deepconf", "n": 16, "mode": "online"}' \
  --output "$out"
