#!/usr/bin/env bash
# `make oci`: packs the filter into an OCI image that Istio's WasmPlugin pulls (`url: oci://`),
# in the Wasm image spec's *compat* variant, which is what istio-agent reads first:
#
#   - an OCI image manifest (application/vnd.oci.image.manifest.v1+json) with the annotation
#     module.wasm.image/variant=compat;
#   - exactly ONE layer, application/vnd.oci.image.layer.v1.tar+gzip, a gzip'd tar holding one
#     file, plugin.wasm (the module);
#   - an ordinary image config (application/vnd.oci.image.config.v1+json).
#
# (The *oci* variant instead uses two layers with the custom media type
# application/vnd.module.wasm.content.layer.v1+wasm and config
# application/vnd.module.wasm.config.v1+json; Istio reads it too, but ordinary tools and some
# registries do not handle custom media types, so we build the compat variant.)
#
# Output: an OCI image layout directory $OUT/jwt-authn-wasm (tag $TAG) and the same as an
# archive, $OUT/jwt-authn-wasm.tar. Push with skopeo, keeping the digest:
#   skopeo copy --preserve-digests oci:$OUT/jwt-authn-wasm:$TAG docker://REGISTRY/jwt-authn-wasm:$TAG
# The last line printed is the manifest digest: WasmPlugin's `sha256` for an oci:// url.
#
# Built with umoci (Debian package `umoci`); installed with apt-get when missing and we are
# root (`--ensure-tool` does only that). The build is reproducible: same module, same digest.
#
# Environment: WASM (default: the release build), OUT (default: target/oci), TAG (default: the
# crate version), SOURCE_DATE_EPOCH (default: 0; the timestamps inside the image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "oci-image: $*" >&2; }

ensure_umoci() {
    command -v umoci >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing umoci with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci >&2
    fi
    command -v umoci >/dev/null 2>&1 || {
        log "umoci is needed: install it (Debian/Ubuntu: apt-get install umoci) and rerun"
        exit 1
    }
}

ensure_umoci
[[ "${1:-}" == "--ensure-tool" ]] && exit 0

WASM="${WASM:-target/wasm32-wasip1/release/jwt_authn_wasm.wasm}"
OUT="${OUT:-target/oci}"
TAG="${TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}"
EPOCH="${SOURCE_DATE_EPOCH:-0}"
CREATED="$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)"

[[ -f "$WASM" ]] || { log "$WASM not found: run \`make build\` first"; exit 1; }

layout="$OUT/jwt-authn-wasm"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$layout" "$OUT/jwt-authn-wasm.tar"
mkdir -p "$OUT"

# `umoci insert` (0.4.7) writes a tar without padding or end blocks; unpack + repack writes a
# well-formed one. The bundle's rootfs holds only plugin.wasm.
rootless=()
[[ $(id -u) -eq 0 ]] || rootless=(--rootless)
umoci init --layout "$layout"
umoci new --image "$layout:$TAG"
umoci unpack "${rootless[@]}" --image "$layout:$TAG" "$stage/bundle" >/dev/null
install -m 0644 "$WASM" "$stage/bundle/rootfs/plugin.wasm"
touch -d "@$EPOCH" "$stage/bundle/rootfs/plugin.wasm" "$stage/bundle/rootfs"
umoci repack "${rootless[@]}" --image "$layout:$TAG" --history.created "$CREATED" \
    --history.created_by "make oci (tests/oci-image.sh)" "$stage/bundle"
umoci config --image "$layout:$TAG" --no-history --created "$CREATED" \
    --manifest.annotation module.wasm.image/variant=compat \
    --manifest.annotation org.opencontainers.image.title=jwt-authn-wasm \
    --manifest.annotation "org.opencontainers.image.version=$TAG"
umoci gc --layout "$layout"
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
    -cf "$OUT/jwt-authn-wasm.tar" .

digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout/index.json")"
log "image layout: $layout:$TAG; archive: $OUT/jwt-authn-wasm.tar"
log "module sha256 (for an https:// or file:// url): $(sha256sum "$WASM" | cut -d' ' -f1)"
log "manifest digest (WasmPlugin sha256 for oci://, without \"sha256:\"):"
echo "${digest#sha256:}"
