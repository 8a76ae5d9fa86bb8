#!/usr/bin/env bash
# Part of `make test`: e3pipe against both supported libtorch releases, as a user on a node would run it. For each
# release (torch-versions.txt) it builds a bundle (`make bundle TORCH=…`), unpacks it in a directory outside the
# checkout, and runs the quick pipeline with E3PIPE_LIBTORCH pointing at that release's install. It also checks
# that a bundle refuses a libtorch of another release and runs without one at all (exit 2, nothing written), and
# runs scripts/gpu_check.sh --cpu-smoke from the 2.11 bundle. Prints the time of each part.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
t0=$(date +%s)
lap() { echo "check_bundles: $1 ($(( $(date +%s) - t0 )) s)"; }
fail() { echo "check_bundles: FAILED: $1" >&2; exit 1; }

releases=$(grep -v '^#' torch-versions.txt | awk 'NF { print $1 }')
work=$(mktemp -d /tmp/e3pipe-bundles.XXXXXX)
trap 'rm -rf "$work"' EXIT
for full in $releases; do
  short=${full%.*}
  TORCH=$short scripts/setup.sh
  archive=$(TORCH=$short scripts/bundle.sh)
  lap "built $(basename "$archive") ($(du -m "$archive" | cut -f1) MB)"
  tar -C "$work" -xJf "$archive"
  if [ "$short" = "$(grep -v '^#' torch-versions.txt | awk 'NF { print $1; exit }' | sed 's/\.[0-9]*$//')" ]; then
    lib="$root/.venv/libtorch"
  else
    lib="$root/.venv-torch-$short/libtorch"
  fi
  eval "lib_$(echo "$short" | tr . _)=\$lib"
done

for dir in "$work"/e3pipe-*; do
  release=$(basename "$dir" | sed 's/.*-libtorch\([0-9.]*\)-.*/\1/')
  short=${release%.*}
  lib=$(eval "echo \$lib_$(echo "$short" | tr . _)")
  other=""
  for full in $releases; do [ "${full%.*}" != "$short" ] && other=$(eval "echo \$lib_$(echo "${full%.*}" | tr . _)"); done
  cd "$dir"
  # Every binary starts wherever the torch wheel does (manylinux_2_28): no glibc symbol newer than 2.28, no
  # libstdc++ newer than GCC 8's (GLIBCXX_3.4.25, CXXABI_1.3.11), and no system library of its own.
  for b in bin/*; do
    [ "$(head -c4 "$b" | tail -c3)" = ELF ] || continue
    newest() { objdump -T "$b" | { grep -o "($1_[0-9.]*)" || true; } | tr -d '()' | sort -V -u | tail -1; }
    for limit in GLIBC_2.28 GLIBCXX_3.4.25 CXXABI_1.3.11; do
      prefix=${limit%_*}
      have=$(newest "$prefix")
      [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$have" "$limit" | sort -V | tail -1)" = "$limit" ] \
        || fail "$b needs $have, newer than $limit (manylinux_2_28)"
    done
    echo "check_bundles: $(basename "$dir")/$b: newest $(newest GLIBC) $(newest GLIBCXX) $(newest CXXABI)"
  done
  if find . -name 'libstdc++*' -o -name 'libgcc_s*' -o -name 'libc.so*' | grep -q .; then fail "$dir ships a system library"; fi
  # The worker carries no path to this machine's libtorch.
  if readelf -d bin/e3pipe-worker | grep -qE 'RPATH|RUNPATH'; then fail "$dir/bin/e3pipe-worker keeps a RUNPATH"; fi
  # Without a libtorch, and with another release: exit 2, the versions named, nothing written.
  set +e
  out=$(env -u E3PIPE_LIBTORCH LD_LIBRARY_PATH= bin/e3pipe run pipelines/quick.yaml 2>&1); code=$?
  set -e
  [ "$code" = 2 ] && grep -q "this bundle carries no libtorch" <<< "$out" || fail "no libtorch: exit $code: $out"
  set +e
  out=$(E3PIPE_LIBTORCH="$other" bin/e3pipe run pipelines/quick.yaml 2>&1); code=$?
  set -e
  [ "$code" = 2 ] && grep -q "but this e3pipe was built for libtorch $release" <<< "$out" || fail "other libtorch: exit $code: $out"
  [ ! -e results ] && [ ! -e cache ] || fail "a refused run wrote results or cache"
  lap "libtorch $release bundle: refused no libtorch and another release (exit 2, nothing written)"
  E3PIPE_LIBTORCH="$lib" bin/e3pipe run pipelines/quick.yaml > quick.log 2>&1 || { cat quick.log; fail "quick pipeline on libtorch $release"; }
  python3 - "$release" <<'PY' || fail "quick pipeline results on libtorch $release"
import glob, json, sys
release = sys.argv[1]
points = [m["point"] for f in glob.glob("latest/inference/*.json") for m in json.load(open(f))["metrics"].values()]
assert len(points) == 9, len(points)
for p in points:
    assert p["status"] == "ok", p
    assert p["libtorch_version"].split("+")[0] == release, p["libtorch_version"]
    assert p["input_tokens"] == p["context_length"], p
print(f"check_bundles: libtorch {release}: 9 points ok, each recording libtorch {p['libtorch_version']}")
PY
  lap "libtorch $release bundle: quick pipeline from $dir"
  if [ "$short" != 2.13 ] && command -v sbatch >/dev/null; then
    # The Slurm executor from the bundle: each task's job script puts E3PIPE_LIBTORCH's lib/ on the library path.
    E3PIPE_LIBTORCH="$lib" bin/e3pipe run pipelines/quick.yaml --executor slurm --force bench-bert > slurm.log 2>&1 \
      || { cat slurm.log; fail "quick pipeline's BERT step on Slurm from the libtorch $release bundle"; }
    python3 -c "
import json
pts = [m['point'] for m in json.load(open('latest/inference/minilm-random.json'))['metrics'].values()]
assert len(pts) == 3 and all(p['executor'] == 'slurm' and p['libtorch_version'].startswith('$release') for p in pts), pts
" || fail "Slurm points of the libtorch $release bundle"
    lap "libtorch $release bundle: the BERT step again as a Slurm array"
  fi
  if [ "$short" != 2.13 ]; then
    E3PIPE_LIBTORCH="$lib" scripts/gpu_check.sh --cpu-smoke > gpu_check.log 2>&1 || { cat gpu_check.log; fail "gpu_check.sh --cpu-smoke"; }
    grep -E '^(PASS|SKIP|INFO|FAIL)' gpu_check.log
    lap "libtorch $release bundle: scripts/gpu_check.sh --cpu-smoke"
  fi
  cd "$root"
done
lap "passed"
