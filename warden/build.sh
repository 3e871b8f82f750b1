#!/bin/sh
# Builds the static, libc-free warden binary.
#
#   warden/build.sh OUT [CC]
#
# CC defaults to gcc (the host architecture); the Dockerfile passes
# x86_64-linux-gnu-gcc or aarch64-linux-gnu-gcc to cross-compile.
set -eu
out=${1:?usage: build.sh OUT [CC]}
cc=${2:-gcc}
here=$(dirname "$0")
# -nostdlib/-ffreestanding: no libc, our own _start. -static -no-pie: no
# loader. The rest strips everything that is not code: unwind tables, build
# id, symbols, page padding between segments, the stack protector (it needs
# libc's guard).
"$cc" -Os -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector \
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-pie -no-pie \
  -Wall -Wextra -Werror \
  -Wl,--gc-sections -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,noseparate-code -s \
  -o "$out" "$here/warden.c"
