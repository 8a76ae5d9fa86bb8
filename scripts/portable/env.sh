# Sourced by scripts/build.sh when PORTABLE=1: the environment of a build whose binaries start wherever the torch
# wheel does (manylinux_2_28: glibc 2.28, GCC 8's libstdc++), e.g. RHEL/Rocky 8 and Ubuntu 20.04 nodes.
#
# - Rust code links against glibc 2.28's symbol stubs through zig (cargo-zigbuild, `--target <triple>.2.28`).
# - torch-sys's C++ glue is compiled by zig's clang against glibc 2.28's headers and GCC's libstdc++ headers
#   (`cxx.sh`: libtorch's ABI is libstdc++'s; zig's own libc++ would not link with it), with a prelude that keeps
#   libstdc++'s templates out of the shared library (see `prelude.h`).
# - libstdc++ is linked as the system's shared library (it is not shipped: the node's own is used, and needs only
#   the symbols GCC 8's has). Its own newer glibc references are the node's business, hence
#   `--allow-shlib-undefined`.
# Sets: PORTABLE_TARGET (the cargo triple) and the variables cargo, cc and cargo-zigbuild read.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
zig_venv="$root/.venv-zig"
if [ ! -x "$zig_venv/bin/cargo-zigbuild" ]; then
  echo "setup: installing zig and cargo-zigbuild for the portable build (PyPI, ~50 MB)" >&2
  python3 -m venv "$zig_venv"
  "$zig_venv/bin/pip" install --disable-pip-version-check -q ziglang==0.17.0 cargo-zigbuild==0.24.0 >&2
fi
E3PIPE_ZIG=$("$zig_venv/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
export E3PIPE_ZIG
export PATH="$zig_venv/bin:$PATH"
arch=$(uname -m)
triple="$arch-unknown-linux-gnu"
PORTABLE_TARGET="$triple.2.28"
triple_env=$(echo "$triple" | tr - _)
upper_env=$(echo "$triple_env" | tr '[:lower:]' '[:upper:]')
export "CXX_$triple_env=$root/scripts/portable/cxx.sh"
# No `-lstdc++` from the cc crate: zig reads it as "link zig's libc++". The system's libstdc++ goes in by path.
export "CXXSTDLIB_$triple_env="
libstdcxx=$(g++ -print-file-name=libstdc++.so.6)
gcc_lib=$(dirname "$(gcc -print-libgcc-file-name)")
export "CARGO_TARGET_${upper_env}_RUSTFLAGS=-C link-arg=$libstdcxx -C link-arg=-L$gcc_lib -C link-arg=-Wl,--allow-shlib-undefined"
