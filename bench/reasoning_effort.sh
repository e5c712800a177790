#!/usr/bin/env bash
# reasoning_effort as a compute dial on the embedded model: `ponder eval` at every level, sending
# only OpenAI's `reasoning_effort` (the server's presets pick strategy, width and temperature), on
# held-out reasoning-gym chain sums (seeds unused by the policy calibration). Writes into
# ${OUT:-bench/results/reasoning_effort}. About 8 minutes on a 2-core CPU machine with SIZE=14.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results/reasoning_effort}
size=${SIZE:-14}
mkdir -p "$out"
# PONDER: the command to run (default: the installed `ponder`).
${PONDER:-.venv/bin/ponder} eval --serve --port "${PORT:-0}" --no-progress --concurrency 8 --max-tokens 64 \
  --dataset "rg:chain_sum?size=${size}&seed=301&min_terms=2&max_terms=2&min_digits=1&max_digits=1" \
  --dataset "rg:chain_sum?size=${size}&seed=302&min_terms=3&max_terms=3&min_digits=1&max_digits=1" \
  --dataset "rg:chain_sum?size=${size}&seed=303&min_terms=2&max_terms=2&min_digits=2&max_digits=2" \
  --reasoning-effort "${LEVELS:-none,minimal,low,medium,high,xhigh,max}" \
  --title 'reasoning_effort on held-out chain sums, SmolLM2-135M' --output "$out"
