use serde_json::{json, Value};

use crate::config::Config;
use crate::error::ConfigError;
use crate::oauth::AuthMethod;

/// The secret every test reads from the environment (set once, never changed).
const SECRET_VAR: &str = "JWT_AUTHN_TEST_INTROSPECTION_SECRET";
const SECRET: &str = "s3cr3t:with%odd chars";

fn set_secret() {
    std::env::set_var(SECRET_VAR, SECRET);
}

fn introspection() -> Value {
    json!({
        "http_uri": { "uri": "https://idp.example.com/token/introspection",
                      "cluster": "outbound|443||idp.example.com", "timeout": "2s" },
        "client_id": "gateway",
        "client_secret": { "environment_variable": SECRET_VAR },
    })
}

fn with(introspection: Value) -> Value {
    json!({ "providers": { "opaque": {
        "issuer": "https://idp.example.com",
        "introspection": introspection,
        "claim_to_headers": [{ "header_name": "x-client-id", "claim_name": "client_id" }],
    } } })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    set_secret();
    Config::from_json(v.to_string().as_bytes())
}

fn refused(v: &Value) -> ConfigError {
    match load(v) {
        Ok(_) => panic!("loaded: {v}"),
        Err(e) => e,
    }
}

#[test]
fn the_issues_example_loads_with_defaults() {
    let cfg = load(&with(introspection())).unwrap();
    let p = &cfg.providers[0];
    let i = p.introspection.as_deref().unwrap();
    assert_eq!(i.server.cluster, "outbound|443||idp.example.com");
    assert_eq!(i.server.endpoint.authority, "idp.example.com");
    assert_eq!(i.server.endpoint.path, "/token/introspection");
    assert_eq!(i.server.timeout.as_secs(), 2);
    assert_eq!(i.server.client.id, "gateway");
    assert_eq!(i.server.client.secret.expose(), SECRET);
    assert_eq!(i.server.client.method, AuthMethod::ClientSecretBasic);
    assert_eq!(
        (
            i.cache.cache_duration,
            i.cache.negative_cache_duration,
            i.cache.stale_if_error
        ),
        (60, 5, 0)
    );
    assert_eq!(i.max_cache_entries, 10_000);
    // The default introspection_unavailable policy is 503.
    assert_eq!(
        cfg.failure_policy.introspection_unavailable,
        crate::config::OnFailure::Deny503
    );
}

#[test]
fn every_field_of_the_issue_is_read() {
    let mut v = introspection();
    v["auth_method"] = json!("client_secret_post");
    v["cache_duration"] = json!("30s");
    v["negative_cache_duration"] = json!("0s");
    v["stale_if_error"] = json!("120s");
    v["max_cache_entries"] = json!(7);
    let cfg = load(&with(v)).unwrap();
    let i = cfg.providers[0].introspection.as_deref().unwrap();
    assert_eq!(i.server.client.method, AuthMethod::ClientSecretPost);
    assert_eq!(
        (
            i.cache.cache_duration,
            i.cache.negative_cache_duration,
            i.cache.stale_if_error
        ),
        (30, 0, 120)
    );
    assert_eq!(i.max_cache_entries, 7);
}

#[test]
fn an_inline_secret_needs_consent() {
    let mut v = introspection();
    v["client_secret"] = json!({ "inline_string": "inline-secret-value" });
    let e = refused(&with(v.clone()));
    assert_eq!(
        e.field,
        "providers.opaque.introspection.client_secret.inline_string"
    );
    assert!(!e.to_string().contains("inline-secret-value"), "{e}");
    v["allow_inline_secret"] = json!(true);
    let cfg = load(&with(v)).unwrap();
    let i = cfg.providers[0].introspection.as_deref().unwrap();
    assert_eq!(i.server.client.secret.expose(), "inline-secret-value");
    // Debug of the whole configuration never shows it.
    assert!(!format!("{cfg:?}").contains("inline-secret-value"));
}

#[test]
fn bad_introspection_blocks_are_refused_naming_the_field() {
    let base = introspection();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "uri",
            json!({ "http_uri": { "uri": "ftp://x/", "cluster": "c", "timeout": "1s" } }),
            "providers.opaque.introspection.http_uri.uri",
        ),
        (
            "cluster",
            json!({ "http_uri": { "uri": "https://x/i", "cluster": "", "timeout": "1s" } }),
            "providers.opaque.introspection.http_uri.cluster",
        ),
        (
            "timeout",
            json!({ "http_uri": { "uri": "https://x/i", "cluster": "c", "timeout": "0s" } }),
            "providers.opaque.introspection.http_uri.timeout",
        ),
        (
            "client_id",
            json!({ "client_id": "" }),
            "providers.opaque.introspection.client_id",
        ),
        (
            "client_id ctl",
            json!({ "client_id": "a\nb" }),
            "providers.opaque.introspection.client_id",
        ),
        (
            "unset variable",
            json!({ "client_secret": { "environment_variable": "JWT_AUTHN_TEST_SURELY_UNSET" } }),
            "providers.opaque.introspection.client_secret.environment_variable",
        ),
        (
            "both sources",
            json!({ "client_secret": { "environment_variable": SECRET_VAR, "inline_string": "x" } }),
            "providers.opaque.introspection.client_secret",
        ),
        (
            "no source",
            json!({ "client_secret": {} }),
            "providers.opaque.introspection.client_secret",
        ),
        (
            "filename",
            json!({ "client_secret": { "filename": "/etc/secret" } }),
            "providers.opaque.introspection.client_secret.filename",
        ),
        (
            "max_cache_entries",
            json!({ "max_cache_entries": 0 }),
            "providers.opaque.introspection.max_cache_entries",
        ),
    ];
    for (name, patch, field) in cases {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        let e = refused(&with(v));
        assert_eq!(e.field, field, "{name}: {e}");
        assert!(!e.to_string().contains(SECRET), "{name}: {e}");
    }
    // An unknown auth_method is a type error of the JSON, which names the value.
    let mut v = base.clone();
    v["auth_method"] = json!("private_key_jwt");
    let e = refused(&with(v));
    assert!(
        e.to_string().contains("auth_method") || e.to_string().contains("private_key_jwt"),
        "{e}"
    );
}

#[test]
fn introspection_excludes_key_sets_and_jwt_only_fields() {
    let mut v = with(introspection());
    v["providers"]["opaque"]["remote_jwks"] = json!({ "http_uri": {
        "uri": "https://idp.example.com/jwks", "cluster": "c", "timeout": "1s" } });
    assert_eq!(refused(&v).field, "providers.opaque.introspection");
    for (f, value) in [
        ("forward_payload_header", json!("x-payload")),
        ("allowed_typ", json!(["at+jwt"])),
        ("jwt_cache_config", json!({ "jwt_cache_size": 10 })),
    ] {
        let mut v = with(introspection());
        v["providers"]["opaque"][f] = value;
        assert_eq!(refused(&v).field, format!("providers.opaque.{f}"));
    }
}
