#!/usr/bin/env bash
# Confidence-guided step search (#17) on the embedded model: prm_beam_search, mcts and
# tree_of_thoughts guided by the model's own step confidence (`verifier: confidence`) against
# the same searches guided by `step_judge`, self-consistency and confidence-selected best-of-N,
# on reasoning-gym chain sums. The default measure is the search default (`step_mean`). Each phase is one `ponder eval` under the shared engine lock
# (at most ~10 minutes on the 2-core CPU machine), so run them one at a time:
#
#   bench/guided_search.sh tune     # which confidence measure: seeds 301-303, 30 problems
#   bench/guided_search.sh heldout  # held out (seeds 401-403, 60 problems): each search guided
#                                   # by confidence and by step_judge, SC@2/4/8, BoN@4 confidence
#
# Writes into ${OUT:-bench/results/guided_search}/PHASE.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/results/guided_search}
ponder=.venv/bin/ponder
lock=${LOCK:-/tmp/ponder-engine.lock}
common=(--serve --port "${PORT:-0}" --no-progress --concurrency 8 --max-tokens 96 --temperature 0.8)
sets() {  # one-digit pairs, one-digit triples, two-digit pairs; $1 problems each, seeds from $2
  echo "--dataset rg:chain_sum?size=${1}&seed=${2}1&min_terms=2&max_terms=2&min_digits=1&max_digits=1"
  echo "--dataset rg:chain_sum?size=${1}&seed=${2}2&min_terms=3&max_terms=3&min_digits=1&max_digits=1"
  echo "--dataset rg:chain_sum?size=${1}&seed=${2}3&min_terms=2&max_terms=2&min_digits=2&max_digits=2"
}
# The same search shapes in every phase: 4 steps of at most 32 tokens.
step='"max_steps": 4, "step_tokens": 32'
beam="\"strategy\": \"prm_beam_search\", \"n\": 4, \"beam_width\": 2, $step"
mcts="\"strategy\": \"mcts\", \"simulations\": 4, \"expansions\": 2, $step"
tot="\"strategy\": \"tree_of_thoughts\", \"breadth\": 2, \"proposals\": 2, $step"
phase=${1:?usage: guided_search.sh tune|heldout}
mkdir -p "$out/$phase"
case "$phase" in
  tune)
    mapfile -t data < <(sets 10 30 | tr ' ' '\n')
    configs=()
    for measure in step_mean step_lowest_group path_mean; do
      for search in beam mcts tot; do
        configs+=(--strategy "$search/$measure={${!search}, \"verifier\": \"confidence\", \"confidence\": \"$measure\"}")
      done
    done
    ;;
  heldout)
    mapfile -t data < <(sets 20 40 | tr ' ' '\n')
    configs=()
    for search in beam mcts tot; do
      for verifier in confidence step_judge; do
        configs+=(--strategy "$search/$verifier={${!search}, \"verifier\": \"$verifier\"}")
      done
    done
    configs+=(
      --strategy 'self_consistency@2={"strategy": "self_consistency", "n": 2}'
      --strategy 'self_consistency@4={"strategy": "self_consistency", "n": 4}'
      --strategy 'self_consistency@8={"strategy": "self_consistency", "n": 8}'
      --strategy 'best_of_n@4/confidence={"strategy": "best_of_n", "n": 4, "verifier": "confidence"}'
    )
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
flock "$lock" timeout "${LIMIT_S:-600}" "$ponder" eval "${common[@]}" "${data[@]}" "${configs[@]}" \
  --title "chain sums, SmolLM2-135M: $phase" --output "$out/$phase"
