#!/usr/bin/env bash
# Installs wasm-opt (Binaryen), which `make build` runs over the module, from the distribution's
# packages (Debian's `binaryen`) when it is missing.
set -euo pipefail
command -v wasm-opt >/dev/null && exit 0
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "ensure-wasm-opt: installing binaryen with apt-get" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq binaryen >&2
wasm-opt --version >&2
