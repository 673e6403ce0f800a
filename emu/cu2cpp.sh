#!/bin/sh
# cu2cpp.sh IN.cu - prints IN.cu as C++ for the CUDA emulator: every launch
# `kernel<<<cfg>>>(args)` becomes `infemu::launcher(cfg).go("kernel", kernel, args)`.
# A launch must keep `<<<`, `>>>` and its opening parenthesis on one line.
set -eu
printf '#line 1 "%s"\n' "$1"
sed -E 's/([A-Za-z_][A-Za-z0-9_]*(<[^<>;]*>)?)[[:space:]]*<<<(.*)>>>[[:space:]]*\(/infemu::launcher(\3).go("\1", \1, /' "$1"
