# The two commands a newcomer runs: `make run` (the main job) and `make test`. Both install what is missing first.
.PHONY: run test quick batch bundle gpu-check setup setup-cuda build reference-env bench-transformers bench-noop bench-noop-scale bench-adaptive clean-outputs

E3PIPE := target/debug/e3pipe

run: build
	$(E3PIPE) run pipelines/scaling.yaml

test: setup
	scripts/slurm-local.sh start
	scripts/chromium.sh
	cargo test
	cargo clippy --all-targets -- -D warnings
	scripts/check_bundles.sh

quick: build
	$(E3PIPE) run pipelines/quick.yaml

batch: build
	$(E3PIPE) run pipelines/batch.yaml

# `make build TORCH=2.11` (or `make bundle TORCH=2.11`) builds against another supported libtorch (torch-versions.txt).
TORCH ?=

setup:
	scripts/setup.sh
	$(if $(TORCH),TORCH=$(TORCH) scripts/setup.sh)

# GPU machines: the full torch wheel with its CUDA libraries.
setup-cuda:
	E3PIPE_CUDA=1 scripts/setup.sh

build: setup
	TORCH=$(TORCH) scripts/build.sh > /dev/null

# dist/e3pipe-<version>-libtorch<release>-<arch>.tar.xz: see "Running on a GPU node" in README.
bundle: setup
	TORCH=$(TORCH) scripts/bundle.sh

# On a GPU node, from a checkout (from a bundle: scripts/gpu_check.sh there).
gpu-check: setup
	bin=$$(TORCH=$(TORCH) scripts/build.sh) && E3PIPE_BIN=$$bin/e3pipe scripts/gpu_check.sh

# Python with transformers, for fixtures and the reference benchmark (full torch, ~2.7 GB).
reference-env:
	test -x .venv-ref/bin/python || python3 -m venv .venv-ref
	.venv-ref/bin/pip install -q -r scripts/requirements-reference.txt

bench-transformers: build reference-env
	.venv-ref/bin/python scripts/bench_vs_transformers.py

bench-noop: build
	python3 scripts/bench_noop.py

bench-noop-scale: build
	python3 scripts/bench_noop_scale.py

bench-adaptive: build
	python3 scripts/bench_adaptive.py

clean-outputs:
	rm -rf cache results latest tables figs
