//! The JSON Schema of the plugin configuration, `manifests/schema/plugin-config.schema.json`:
//! generated from the config types (`config::json_schema`, feature `schema`), so it can never
//! drift silently. This file fails when the checked-in copy is stale (`make schema` rewrites
//! it), checks that the schema refuses what the filter refuses, and validates the example
//! configurations a user copies: the README's JSON blocks and the `make run` demo. The
//! manifests' `pluginConfig`s are validated in `tests/manifests.rs`.

// Tests fail by panicking, and index into configurations they have just built.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::Path;
use std::process::Command;

use jwt_authn_wasm::config::{json_schema, Config, SCHEMA_PATH};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The validator of the schema as generated now.
fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&json_schema()).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Every schema error of `config`, as `path: message` lines.
fn schema_errors(config: &Value) -> Vec<String> {
    validator()
        .iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn checked_in_schema_is_current() {
    let path = root().join(SCHEMA_PATH);
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{SCHEMA_PATH} is stale or missing: the config types changed. Run `make schema` and \
         commit the result."
    );
}

/// A minimal valid configuration, to change one thing at a time.
fn minimal() -> Value {
    json!({
        "providers": { "p": {
            "issuer": "https://issuer.example/",
            "remote_jwks": { "http_uri": {
                "uri": "https://issuer.example/jwks", "cluster": "idp", "timeout": "5s",
            } },
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    })
}

#[test]
fn schema_accepts_a_minimal_config_the_filter_loads() {
    let config = minimal();
    assert_eq!(schema_errors(&config), Vec::<String>::new());
    Config::from_json(config.to_string().as_bytes()).expect("the filter loads it");
}

/// The schema must be able to fail: each mistake here is one a user makes, and one the filter
/// refuses at load too.
#[test]
fn schema_refuses_what_the_filter_refuses() {
    type Mistake = (&'static str, fn(&mut Value));
    let cases: [Mistake; 6] = [
        ("unknown top-level field", |c| c["provider"] = json!({})),
        ("misspelt provider field", |c| {
            c["providers"]["p"]["isuer"] = json!("x")
        }),
        ("duration without unit", |c| {
            c["providers"]["p"]["remote_jwks"]["http_uri"]["timeout"] = json!("5")
        }),
        ("audiences not a list", |c| {
            c["providers"]["p"]["audiences"] = json!("api")
        }),
        ("refused jwt_authn field", |c| {
            c["providers"]["p"]["jwt_cache_config"] = json!({})
        }),
        ("unknown requirement", |c| {
            c["rules"][0]["requires"] = json!({ "provider": "p" })
        }),
    ];
    for (what, break_it) in cases {
        let mut config = minimal();
        break_it(&mut config);
        assert!(
            !schema_errors(&config).is_empty(),
            "the schema accepted a config with a {what}: {config}"
        );
        assert!(
            Config::from_json(config.to_string().as_bytes()).is_err(),
            "the filter loaded a config with a {what}: {config}"
        );
    }
}

/// The README's ```json blocks: whole configurations as they are, fragments (`"requires": …`,
/// `"remote_jwks": …`) placed where they belong in a minimal configuration.
#[test]
fn readme_json_examples_validate() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect();
    assert!(!blocks.is_empty(), "no ```json block in README.md");
    let mut whole = 0;
    for block in blocks {
        let config = match serde_json::from_str::<Value>(block) {
            Ok(config) => {
                whole += 1;
                config
            }
            Err(_) => place_fragment(block),
        };
        let errors = schema_errors(&config);
        assert!(
            errors.is_empty(),
            "README block\n{block}\nfails the schema: {errors:#?}"
        );
    }
    assert!(whole > 0, "README.md has no whole configuration example");
}

fn place_fragment(block: &str) -> Value {
    let wrapped: Value = serde_json::from_str(&format!("{{{block}}}"))
        .unwrap_or_else(|e| panic!("README json block is neither JSON nor a member: {e}\n{block}"));
    let (key, value) = wrapped.as_object().and_then(|o| o.iter().next()).unwrap();
    let mut config = minimal();
    match key.as_str() {
        "requires" => config["rules"][0]["requires"] = value.clone(),
        "remote_jwks" => config["providers"]["p"]["remote_jwks"] = value.clone(),
        other => panic!("README json fragment `{other}`: teach tests/schema.rs where it goes"),
    }
    config
}

/// The `make run` demo configuration validates, and loads.
#[test]
fn demo_config_validates() {
    let out = Command::new("python3")
        .arg(root().join("tests/demo/run.py"))
        .arg("--print-config")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).expect("the demo config is JSON");
    assert_eq!(schema_errors(&config), Vec::<String>::new());
    Config::from_json(&out.stdout).expect("the filter loads the demo config");
}
