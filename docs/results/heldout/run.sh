#!/usr/bin/env bash
# Issue 14's held-out measurement: every configuration of strategies.json, one at a time, on the
# 600 held-out problems of data/ (reasoning-gym chain_sum and basic_arithmetic at the policy
# calibration's difficulty, a third each of one-digit pairs, one-digit triples and two-digit pairs,
# seeds 2601-2626; gsm_symbolic at its defaults, seed 2603; 200 each; no seed used by any
# calibration), 256 tokens, temperature 0.7, against a running
# Ponder at SERVER. Each configuration's rows are appended to OUTPUT as it finishes, so a run cut
# short keeps what it finished; `ponder eval`'s own table and plot for it go to
# ${EVAL_DIR:-OUTPUT.d}/LABEL/. TASKS (default "chain_sum basic_arithmetic gsm_symbolic") picks
# the tasks and LIMIT the first N problems of each.
# Usage: docs/results/heldout/run.sh SERVER OUTPUT [CONCURRENCY] [LABEL ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
server=${1:?server URL}
output=${2:?output JSONL}
concurrency=${3:-32}
shift $(($# < 3 ? $# : 3))
ponder=${PONDER:-ponder}
evals=${EVAL_DIR:-$output.d}
datasets=()
for task in ${TASKS:-chain_sum basic_arithmetic gsm_symbolic}; do
  datasets+=(--dataset "$here/data/$task.jsonl")
done
labels=("$@")
if [ ${#labels[@]} -eq 0 ]; then
  mapfile -t labels < <(python3 -c "import json,sys; [print(c['label']) for c in json.load(open(sys.argv[1]))]" "$here/strategies.json")
fi
for label in "${labels[@]}"; do
  tts=$(python3 -c "import json,sys; print(json.dumps(next(c['tts'] for c in json.load(open(sys.argv[1])) if c['label'] == sys.argv[2])))" "$here/strategies.json" "$label")
  $ponder eval --server "$server" --no-progress ${LIMIT:+--limit "$LIMIT"} \
    --concurrency "$concurrency" --max-tokens 256 --temperature 0.7 "${datasets[@]}" \
    --strategy "$label=$tts" --output "$evals/$label" || echo "ponder eval of $label failed" >&2
  # Its rows are kept even if only the table or plot failed after them.
  [ -f "$evals/$label/results.jsonl" ] && cat "$evals/$label/results.jsonl" >>"$output"
done
