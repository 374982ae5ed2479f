//! `make oci` (`tests/oci-image.sh`) builds the image Istio pulls for `url: oci://…`: this test
//! builds it from the release module into a scratch directory and checks it the way
//! istio-agent reads it (Wasm image spec, compat variant): an OCI image layout whose manifest
//! has exactly one `application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`,
//! byte for byte the module; every digest and size matches its blob; the digest the script
//! prints (for WasmPlugin's `sha256`) is the manifest's; and a second build gives the same
//! digest.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Runs `tests/oci-image.sh` into `out`; returns the digest it printed.
fn build(out: &Path, wasm: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let result = Command::new(root.join("tests/oci-image.sh"))
        .env("OUT", out)
        .env("WASM", wasm)
        .env("TAG", "test")
        .output()
        .expect("run tests/oci-image.sh");
    assert!(
        result.status.success(),
        "tests/oci-image.sh failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8(result.stdout).unwrap().trim().to_string()
}

/// The blob a descriptor points to, after checking its media type, digest and size.
fn blob(layout: &Path, descriptor: &Value, media_type: &str) -> Vec<u8> {
    assert_eq!(descriptor["mediaType"], media_type, "{descriptor}");
    let digest = descriptor["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "blob content does not match its digest"
    );
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "{descriptor}"
    );
    bytes
}

#[test]
fn make_oci_builds_the_image_istio_pulls() {
    let wasm = common::bootstrap::require_wasm_module();
    let module = std::fs::read(&wasm).unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oci");
    let printed = build(&out, &wasm);
    let layout = out.join("jwt-authn-wasm");

    let oci_layout: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "test"
    );
    assert_eq!(
        manifests[0]["digest"].as_str(),
        Some(format!("sha256:{printed}").as_str()),
        "the printed digest (WasmPlugin sha256) must be the manifest's"
    );

    let manifest: Value = serde_json::from_slice(&blob(&layout, &manifests[0], MANIFEST)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "Istio wants exactly one layer: {manifest}");
    let config: Value =
        serde_json::from_slice(&blob(&layout, &manifest["config"], CONFIG)).unwrap();

    // The layer: gzip'd tar whose only file is plugin.wasm, the module itself.
    let compressed = blob(&layout, &layers[0], LAYER);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str(),
        Some(format!("sha256:{}", sha256_hex(&tar_bytes)).as_str()),
        "the config's diff_id is the digest of the uncompressed layer"
    );
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.expect("a well-formed tar entry");
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            files.push((name, content));
        }
    }
    assert_eq!(files.len(), 1, "one file in the layer");
    let (name, content) = &files[0];
    assert_eq!(Path::new(name).file_name().unwrap(), "plugin.wasm");
    assert!(*content == module, "plugin.wasm is not the module");

    // The archive form holds the same layout.
    assert!(out.join("jwt-authn-wasm.tar").is_file());

    // Reproducible: the same module gives the same digest, so a WasmPlugin's sha256 can be
    // computed by anyone from the source.
    let again = build(&out, &wasm);
    assert_eq!(again, printed, "a second build changed the digest");
}
