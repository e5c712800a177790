#!/usr/bin/env bash
# compute_optimal against fixed strategies on the embedded model: calibrate a policy table on one
# set of reasoning-gym chain sums, then evaluate every strategy on a held-out set (other seeds)
# with a server that loads that table. Writes into ${OUT:-bench/results/compute_optimal}.
# About 35 minutes on a 2-core CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results/compute_optimal}
ponder=.venv/bin/ponder
mkdir -p "$out"
common=(--serve --port "${PORT:-0}" --no-progress --concurrency 8 --max-tokens 64 --temperature 0.8)
sets() {  # one-digit pairs, one-digit triples, two-digit pairs; seeds from $1
  echo "--dataset rg:chain_sum?size=20&seed=${1}1&min_terms=2&max_terms=2&min_digits=1&max_digits=1"
  echo "--dataset rg:chain_sum?size=20&seed=${1}2&min_terms=3&max_terms=3&min_digits=1&max_digits=1"
  echo "--dataset rg:chain_sum?size=20&seed=${1}3&min_terms=2&max_terms=2&min_digits=2&max_digits=2"
}
mapfile -t calibration < <(sets 10 | tr ' ' '\n')
mapfile -t heldout < <(sets 20 | tr ' ' '\n')

"$ponder" calibrate "${common[@]}" "${calibration[@]}" --output "$out/policy.json"
PONDER_POLICY_TABLE="$out/policy.json" "$ponder" eval "${common[@]}" "${heldout[@]}" \
  --strategy 'none={"strategy": "none"}' \
  --strategy 'self_consistency@4={"strategy": "self_consistency", "n": 4}' \
  --strategy 'self_consistency@8={"strategy": "self_consistency", "n": 8}' \
  --strategy 'self_consistency@16={"strategy": "self_consistency", "n": 16}' \
  --strategy 'best_of_n@8={"strategy": "best_of_n", "n": 8, "verifier": "confidence", "weighted": true}' \
  --strategy 'compute_optimal={"strategy": "compute_optimal"}' \
  --title 'held-out chain sums, SmolLM2-135M' --output "$out/heldout"
