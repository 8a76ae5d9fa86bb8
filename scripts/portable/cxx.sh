#!/usr/bin/env bash
# The C++ compiler of the portable build: zig's clang against glibc 2.28's headers, with GCC's libstdc++ headers
# (libtorch's ABI: zig's own libc++ is another ABI), and the prelude that keeps libstdc++ symbols at GCC 8's.
here="$(cd "$(dirname "$0")" && pwd)"
gcc_major=$(gcc -dumpversion | cut -d. -f1)
args=()
for a in "$@"; do
  case "$a" in --target=*) ;; *) args+=("$a") ;; esac   # the cc crate's triple; zig takes its own below
done
zig_lib="$(dirname "${E3PIPE_ZIG:?}")/lib"
# libstdc++'s headers first (their `#include_next` of the C headers must find glibc's after them), then clang's
# builtins and glibc 2.28's headers as zig would order them. zig's raw clang driver (`zig c++` puts glibc's
# headers first, before any of ours).
arch=$(uname -m)
case "$arch" in x86_64) libc_arch=x86 ;; *) libc_arch=$arch ;; esac
exec "$E3PIPE_ZIG" clang -x c++ -target "$arch-unknown-linux-gnu" -D__GLIBC_MINOR__=28 -nostdinc -nostdinc++ \
  -isystem "$here/include" \
  -isystem "/usr/include/c++/$gcc_major" -isystem "/usr/include/$arch-linux-gnu/c++/$gcc_major" \
  -isystem "$zig_lib/include" -isystem "$zig_lib/libc/include/$libc_arch-linux-gnu" \
  -isystem "$zig_lib/libc/include/generic-glibc" -isystem "$zig_lib/libc/include/$libc_arch-linux-any" \
  -isystem "$zig_lib/libc/include/any-linux-any" \
  -include "$here/prelude.h" "${args[@]}"
