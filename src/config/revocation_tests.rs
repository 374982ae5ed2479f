//! `revocation` (issue 15) and `failure_policy.revocation_unavailable`: what loads, with which
//! defaults, and what is refused naming the field.

use serde_json::{json, Value};
use std::time::Duration;

use super::*;
use crate::mint;

fn with_revocation(revocation: Value) -> Result<Config, ConfigError> {
    let json = json!({ "providers": { "p": {
        "issuer": "https://example.com",
        "local_jwks": { "inline_string": mint::JWKS },
        "revocation": revocation } } });
    Config::from_json(json.to_string().as_bytes())
}

fn http_uri() -> Value {
    json!({ "uri": "https://idp.example.com/revocations.json?v=1",
            "cluster": "outbound|443||idp.example.com", "timeout": "2s" })
}

#[test]
fn revocation_loads_with_defaults() {
    let cfg = with_revocation(json!({ "http_uri": http_uri() })).unwrap();
    let r = cfg.providers[0].revocation.as_ref().unwrap();
    assert_eq!(r.cluster, "outbound|443||idp.example.com");
    assert_eq!(r.target.authority, "idp.example.com");
    assert_eq!(r.target.path, "/revocations.json?v=1");
    assert_eq!(r.timeout, Duration::from_secs(2));
    assert_eq!(r.policy.cache_duration, Duration::from_secs(60));
    assert_eq!(r.policy.max_staleness, Duration::from_secs(300));
    assert!(!r.policy.require_signed);
    // Without `revocation`, no check.
    let plain = json!({ "providers": { "p": {
        "issuer": "i", "local_jwks": { "inline_string": mint::JWKS } } } });
    let cfg = Config::from_json(plain.to_string().as_bytes()).unwrap();
    assert!(cfg.providers[0].revocation.is_none());
}

#[test]
fn cache_duration_is_kept_as_configured_down_to_one_second() {
    let cfg = with_revocation(json!({ "http_uri": http_uri(), "cache_duration": "1s",
                                      "max_staleness": "1s", "require_signed": true }))
    .unwrap();
    let r = cfg.providers[0].revocation.as_ref().unwrap();
    assert_eq!(r.policy.cache_duration, Duration::from_secs(1));
    assert_eq!(r.policy.max_staleness, Duration::from_secs(1));
    assert!(r.policy.require_signed);
}

#[test]
#[rustfmt::skip]
fn revocation_refusals_name_the_field() {
    let uri = |u: &str| json!({ "uri": u, "cluster": "c", "timeout": "1s" });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no http_uri", json!({}), "providers.p.revocation"),
        ("not a URL", json!({ "http_uri": uri("idp/list") }), "providers.p.revocation.http_uri.uri"),
        ("empty URL", json!({ "http_uri": uri("") }), "providers.p.revocation.http_uri.uri"),
        ("no cluster", json!({ "http_uri": { "uri": "https://idp/", "cluster": "", "timeout": "1s" } }), "providers.p.revocation.http_uri.cluster"),
        ("zero timeout", json!({ "http_uri": { "uri": "https://idp/", "cluster": "c", "timeout": "0s" } }), "providers.p.revocation.http_uri.timeout"),
        ("under a second", json!({ "http_uri": uri("https://idp/"), "cache_duration": "0.5s" }), "providers.p.revocation.cache_duration"),
        ("zero cache_duration", json!({ "http_uri": uri("https://idp/"), "cache_duration": "0s" }), "providers.p.revocation.cache_duration"),
        ("bad duration", json!({ "http_uri": uri("https://idp/"), "cache_duration": "30" }), "providers.p.revocation.cache_duration"),
        ("staleness below cache_duration", json!({ "http_uri": uri("https://idp/"), "cache_duration": "60s", "max_staleness": "30s" }), "providers.p.revocation.max_staleness"),
        ("require_signed not a bool", json!({ "http_uri": uri("https://idp/"), "require_signed": "yes" }), "providers.p.revocation.require_signed"),
        ("unknown field", json!({ "http_uri": uri("https://idp/"), "refresh": "1s" }), "providers.p.revocation"),
    ];
    for (name, revocation, field) in cases {
        match with_revocation(revocation) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(
                e.field.starts_with(field) && e.to_string().contains(field),
                "{name}: field {:?} (want {field:?}); message {e}",
                e.field
            ),
        }
    }
}

#[test]
fn revocation_unavailable_is_a_failure_policy_class() {
    let load = |policy: Value| {
        let json = json!({ "providers": { "p": {
            "issuer": "i", "local_jwks": { "inline_string": mint::JWKS } } },
            "failure_policy": policy });
        Config::from_json(json.to_string().as_bytes())
    };
    assert_eq!(
        load(json!({}))
            .unwrap()
            .failure_policy
            .revocation_unavailable,
        OnFailure::Deny503
    );
    assert_eq!(
        load(json!({ "revocation_unavailable": "allow" }))
            .unwrap()
            .failure_policy
            .revocation_unavailable,
        OnFailure::Allow
    );
    let e = load(json!({ "revocation_unavailable": "deny_402" })).unwrap_err();
    assert!(
        e.field.starts_with("failure_policy.revocation_unavailable"),
        "{e}"
    );
}
