#!/usr/bin/env bash
# Builds and runs a private test binary from only the given sources, so one
# module can be tested while other modules in the tree are half-written.
#   tools/devtest.sh NAME SOURCES... [-- SUITE...]
# Test files (tests/test_<x>.c) among SOURCES are registered automatically;
# tests/runner.c, tests/testutil.c and engine/status.c are always added.
set -euo pipefail
name=$1; shift
srcs=(); args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; args=("$@"); break; fi
  srcs+=("$1"); shift
done
out=build/dev/$name
mkdir -p "$out"
reg=$out/registry.c
{ echo '/* generated */'
  for s in "${srcs[@]}"; do
    case $s in tests/test_*.c) n=${s#tests/test_}; n=${n%.c}; echo "void test_register_$n(void);";; esac
  done
  echo 'void tu_register_all(void) {'
  for s in "${srcs[@]}"; do
    case $s in tests/test_*.c) n=${s#tests/test_}; n=${n%.c}; echo "    test_register_$n();";; esac
  done
  echo '}'; } > "$reg"
CFLAGS=${CFLAGS:--std=c11 -O2 -g -march=native -Wall -Wextra -Werror -Wno-unused-parameter -fno-strict-aliasing -pthread}
gcc $CFLAGS ${EXTRA_CFLAGS:-} -D_GNU_SOURCE -I. -Iengine -Iqueue -Iworker -Ikernels \
  tests/runner.c tests/testutil.c engine/status.c "${srcs[@]}" "$reg" \
  -lcunit -lpcre2-8 -lrdkafka -lhiredis -lavro -lmicrohttpd -lm -lpthread ${EXTRA_LDFLAGS:-} -o "$out/inferno-tests"
"$out/inferno-tests" "${args[@]}"
