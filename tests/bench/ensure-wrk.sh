#!/usr/bin/env bash
# Installs wrk (the HTTP load generator `make bench` uses) from the distribution's packages.
set -euo pipefail
command -v wrk >/dev/null && exit 0
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "ensure-wrk: installing wrk with apt-get" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >&2
wrk --version >&2 || true
