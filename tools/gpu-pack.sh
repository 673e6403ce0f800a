#!/usr/bin/env bash
# gpu-pack.sh PACK BUILD - completes the GPU pack (make gpu-pack builds the
# binaries into PACK/bin first): copies every shared library the packed
# binaries load that the GPU machine may lack into PACK/lib, the tiny model
# into PACK/shared/models, and writes PACK/MANIFEST (commit, build flags,
# sizes). The GPU machine has glibc, libstdc++/libgcc and the CUDA toolkit
# (CUDA 13, docs/cuda.md), and nothing can be installed there, so those are
# the only libraries left out: a copy of glibc would not match its loader.
#
# Exit status: 0, or 1 with one line on stderr saying what is missing.
set -euo pipefail
PACK=${1:?usage: gpu-pack.sh PACK BUILD}
BUILD=${2:?usage: gpu-pack.sh PACK BUILD}
SHARED=${INFERNO_SHARED:-../shared}
BINS=(inferno-test-gpu inferno-bench-gpu)

for b in "${BINS[@]}"; do
  [ -x "$PACK/bin/$b" ] || { echo "gpu-pack: $PACK/bin/$b missing (make gpu-pack builds it)" >&2; exit 1; }
done
rm -rf "$PACK/lib" "$PACK/shared" "$PACK/tools"
mkdir -p "$PACK/lib" "$PACK/shared/models"

# Libraries the GPU machine provides: the C library family, the compiler's
# runtime, the dynamic loader and the CUDA toolkit's (matched to its driver).
keep_out='^(libc|libm|libpthread|libdl|librt|libutil|libresolv|libmvec|ld-linux-x86-64|linux-vdso|libstdc\+\+|libgcc_s|libcudart|libcublas|libcublasLt|libcuda|libnvrtc|libnvJitLink)\.so'
for b in "${BINS[@]}"; do
  # ldd lists the transitive closure, so one pass per binary is enough.
  while read -r name _ path _; do
    [ -n "${path:-}" ] && [ "${path#/}" != "$path" ] || continue
    if echo "$name" | grep -Eq "$keep_out"; then continue; fi
    cp -L "$path" "$PACK/lib/$name"
  done < <(ldd "$PACK/bin/$b" | awk '$2 == "=>" {print $1, $2, $3, $4}')
  if ldd "$PACK/bin/$b" | grep -q 'not found'; then
    echo "gpu-pack: $b: a library is not found: $(ldd "$PACK/bin/$b" | grep 'not found' | head -1)" >&2
    exit 1
  fi
done
chmod u+w "$PACK"/lib/* 2>/dev/null || true

# x86-64-v3 and nothing beyond: no zmm register, no k-mask, no EVEX prefix
# (0x62 opens an instruction only as EVEX in 64-bit mode). A stale object of
# another build in $BUILD would show here.
for b in "${BINS[@]}"; do
  n=$(objdump -d "$PACK/bin/$b" | awk -F'\t' 'NF >= 3 && ($2 ~ /^62 / || $3 ~ /zmm|\{%k[0-7]\}/)' | wc -l)
  [ "$n" = 0 ] || { echo "gpu-pack: $b holds $n AVX-512 instructions (rm -rf $BUILD and rebuild)" >&2; exit 1; }
done

model="$SHARED/models/stories260K.gguf"
[ -r "$model" ] || { echo "gpu-pack: $model absent (the tiny model; INFERNO_SHARED points elsewhere)" >&2; exit 1; }
cp "$model" "$PACK/shared/models/"
chmod u+w "$PACK/shared/models/"*

{
  echo "# inferno-worker GPU pack (make gpu-pack; docs/cuda.md)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
  echo "cc: $(${CC:-gcc} --version | head -1)"
  echo "nvcc: $(${NVCC:-nvcc} --version 2>/dev/null | tail -1 || echo none)"
  echo "flags: PORTABLE=1 (-march=x86-64-v3) CUDA=1 EXTRA_CFLAGS=-DINF_NO_AVX512 EXTRA_LDFLAGS=-Wl,--as-needed"
  echo "build folder: $BUILD"
  echo "left out (on the GPU machine): glibc, libstdc++/libgcc, CUDA toolkit libraries"
  echo "sizes (bytes):"
  (cd "$PACK" && find bin lib shared -type f -printf '  %s %p\n' | sort -k2)
  echo "total: $(du -sb "$PACK" --exclude=MANIFEST | cut -f1)"
} > "$PACK/MANIFEST"
echo "gpu-pack: $PACK ready, $(du -sh "$PACK" | cut -f1) ($(ls "$PACK/lib" | wc -l) libraries)"
