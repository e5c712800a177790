#!/usr/bin/env bash
# Fits the compute-optimal policy table in the held-out run's regime (256 tokens, temperature 0.7)
# on tuning problems that share no seed with data/ or any earlier calibration: reasoning-gym
# chain_sum and basic_arithmetic at the calibration's three shapes (one-digit pairs, one-digit
# triples, two-digit pairs; 25 each, seeds 2901-2906) and 50 gsm_symbolic (seed 2907), written to
# tuning/ so that no generator is needed where it runs, against a running Ponder at SERVER. The
# table is written to TABLE (a server whose --policy-table is TABLE picks it up without a restart)
# and the calibration's rows beside it.
# Usage: docs/results/heldout/calibrate.sh SERVER TABLE [CONCURRENCY]
set -euo pipefail
server=${1:?server URL}
table=${2:?table file}
concurrency=${3:-32}
ponder=${PONDER:-ponder}
here=$(cd "$(dirname "$0")" && pwd)
sets=()
for task in chain_sum basic_arithmetic gsm_symbolic; do
  sets+=(--dataset "$here/tuning/$task.jsonl")
done
$ponder calibrate --server "$server" --no-progress ${LIMIT:+--limit "$LIMIT"} \
  --concurrency "$concurrency" --max-tokens 256 --temperature 0.7 "${sets[@]}" \
  --name heldout-regime --folds 5 --output "$table"
