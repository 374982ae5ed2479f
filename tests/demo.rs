//! `make run` works as a newcomer would try it: the demo script starts Envoy with the filter
//! and the echo upstream, and in `--check` mode sends the README's three curls itself (token →
//! 200 with `x-jwt-sub`, no token → 401, `/public` → 200) on free ports.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn make_run_demo_answers_as_the_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm = root.join("target/wasm32-wasip1/release/jwt_authn_wasm.wasm");
    assert!(
        wasm.is_file(),
        "run `make build` first: {} is missing",
        wasm.display()
    );
    let out = Command::new("python3")
        .arg(root.join("tests/demo/run.py"))
        .arg("--check")
        .env("WASM", &wasm)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo check failed:\n{text}");
    assert!(text.contains("0 failed"), "{text}");
}
