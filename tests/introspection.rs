//! Opaque tokens end to end (issue 14): the filter in a real Envoy introspects tokens at a real
//! authorization server (oidc-provider on loopback, `common::authserver`) through an Envoy
//! cluster, caches the answers, and decides as the README says. Counts are the server's own.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::authserver::{AuthServer, Config, INTROSPECTION_PATH, ORDERS};
use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::upstream::{Echo, Upstream};
use common::Proxy;

/// Providers `jwt` (the server's JWTs, from its JWKS) and `opaque` (introspected as client
/// `gateway` with `secret`, answers cached `cache_duration`), one `requires_any` route.
fn filter_config(s: &AuthServer, secret: &str, cache_duration: &str) -> Value {
    filter_config_with(s, secret, cache_duration, json!({}))
}

/// `filter_config` with `extra` members in the `introspection` block.
fn filter_config_with(s: &AuthServer, secret: &str, cache_duration: &str, extra: Value) -> Value {
    let mut cfg = json!({
        "providers": {
            "jwt": {
                "issuer": s.issuer(),
                "local_jwks": { "inline_string": s.jwks() },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }]
            },
            "opaque": {
                "issuer": s.issuer(),
                "introspection": {
                    "http_uri": { "uri": s.url(INTROSPECTION_PATH), "cluster": "authserver",
                                  "timeout": "2s" },
                    "client_id": "gateway",
                    "client_secret": { "inline_string": secret },
                    "allow_inline_secret": true,
                    "cache_duration": cache_duration
                },
                "claim_to_headers": [{ "header_name": "x-client-id", "claim_name": "client_id" }]
            }
        },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "jwt" }, { "provider_name": "opaque" } ] } } }]
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        cfg["providers"]["opaque"]["introspection"][k] = v.clone();
    }
    cfg
}

fn start(s: &AuthServer, secret: &str, cache_duration: &str) -> Proxy {
    start_config(s, &filter_config(s, secret, cache_duration))
}

/// Our filter with `cfg`, an echo upstream, and cluster `authserver` pointing at `s`.
fn start_config(s: &AuthServer, cfg: &Value) -> Proxy {
    Proxy::wasm_with_cluster(cfg, "authserver", s.port(), 1)
}

/// Introspection requests the filter (client `gateway`) made.
fn introspections(s: &AuthServer) -> u64 {
    s.counts().client("gateway", "introspection")
}

#[test]
fn an_opaque_token_is_introspected_once_cached_and_refused_after_revocation() {
    let s = AuthServer::start(&Config::standard());
    let setup = start(&s, "gateway-secret", "2s");
    let service = Config::standard().client("service");
    let token = s.cc_token(&service, Some("read"), None);
    let before = introspections(&s);
    let resp = setup.get(&token);
    assert_eq!(resp.status, 200, "{resp}\n{}", setup.envoy.log_tail(30));
    let echo = Echo::from_json(resp.body.as_slice()).unwrap();
    assert_eq!(echo.header("x-client-id"), Some("service"));
    for _ in 0..5 {
        assert_eq!(setup.get(&token).status, 200);
    }
    assert_eq!(
        introspections(&s) - before,
        1,
        "six requests, one introspection"
    );
    // Revoked at the server: still accepted while the positive answer lives (2 s), then 401.
    // Polled for (each request within the answer's life is served from the cache, so the
    // polls cost the server nothing); the lifetimes themselves are tested natively
    // (`src/introspection/cache/tests.rs`).
    s.revoke(&service, &token).unwrap();
    assert_eq!(setup.get(&token).status, 200, "within cache_duration");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let resp = setup.get(&token);
        if resp.status != 200 || std::time::Instant::now() > deadline {
            break resp;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(resp.status, 401, "{resp}");
    assert_eq!(resp.body_str(), "Token is not active");
    assert_eq!(introspections(&s) - before, 2);
}

#[test]
fn a_jwt_and_an_opaque_token_on_one_requires_any_route() {
    let s = AuthServer::start(&Config::standard());
    let setup = start(&s, "gateway-secret", "60s");
    let service = Config::standard().client("service");
    let before = introspections(&s);
    let jwt = s.cc_token(&service, Some("orders:read"), Some(ORDERS));
    let resp = setup.get(&jwt);
    assert_eq!(resp.status, 200, "{resp}\n{}", setup.envoy.log_tail(30));
    assert_eq!(
        introspections(&s),
        before,
        "a JWT of the JWT provider is not introspected"
    );
    let opaque = s.cc_token(&service, Some("read"), None);
    assert_eq!(setup.get(&opaque).status, 200);
    assert_eq!(introspections(&s) - before, 1);
}

#[test]
fn a_wrong_client_secret_is_503_and_a_warning_naming_the_provider_not_the_secret() {
    let s = AuthServer::start(&Config::standard());
    let setup = start(&s, "not-the-secret", "60s");
    let token = s.cc_token(&Config::standard().client("service"), Some("read"), None);
    let resp = setup.get(&token);
    assert_eq!(resp.status, 503, "{resp}");
    let log = setup.envoy.log();
    assert!(
        log.contains("provider `opaque`"),
        "{}",
        setup.envoy.log_tail(30)
    );
    assert!(!log.contains("not-the-secret"));
}

#[test]
fn fifty_concurrent_requests_with_one_new_token_make_one_introspection() {
    let s = AuthServer::start(&Config::standard());
    let setup = start(&s, "gateway-secret", "60s");
    let token = s.cc_token(&Config::standard().client("service"), Some("read"), None);
    let before = introspections(&s);
    let port = setup.envoy.port("wasm");
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || Request::get("/api").bearer(&token).send(port).status)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        introspections(&s) - before,
        1,
        "50 requests, one introspection"
    );
}

#[test]
fn with_the_server_stopped_cached_tokens_serve_within_stale_if_error_and_new_ones_are_503() {
    let mut s = AuthServer::start(&Config::standard());
    let cfg = filter_config_with(
        &s,
        "gateway-secret",
        "1s",
        json!({ "stale_if_error": "30s" }),
    );
    let setup = start_config(&s, &cfg);
    let service = Config::standard().client("service");
    let cached = s.cc_token(&service, Some("read"), None);
    let new = s.cc_token(&service, Some("read"), None);
    assert_eq!(setup.get(&cached).status, 200);
    s.stop();
    std::thread::sleep(Duration::from_millis(1_500));
    // Past cache_duration, within stale_if_error: served from the stale answer.
    let resp = setup.get(&cached);
    assert_eq!(resp.status, 200, "{resp}\n{}", setup.envoy.log_tail(20));
    // Never answered: 503 (failure_policy.introspection_unavailable's default).
    assert_eq!(setup.get(&new).status, 503);
}

/// `bootstrap` with `environment_variables.key_values` {`name`: `value`} in every Wasm VM's
/// `vm_config` (Envoy's way to give a VM environment variables).
fn with_vm_env(bootstrap: &str, name: &str, value: &str) -> String {
    fn walk(v: &mut Value, name: &str, value: &str) {
        match v {
            Value::Object(map) => {
                if let Some(vm) = map.get_mut("vm_config") {
                    vm["environment_variables"] = json!({ "key_values": { name: value } });
                }
                map.values_mut().for_each(|v| walk(v, name, value));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, name, value)),
            _ => {}
        }
    }
    let mut doc: Value = serde_json::from_str(bootstrap).unwrap();
    walk(&mut doc, name, value);
    doc.to_string()
}

#[test]
fn the_client_secret_from_the_vms_environment_works() {
    let s = AuthServer::start(&Config::standard());
    let mut cfg = filter_config(&s, "unused", "60s");
    cfg["providers"]["opaque"]["introspection"]["client_secret"] =
        json!({ "environment_variable": "INTROSPECTION_SECRET" });
    cfg["providers"]["opaque"]["introspection"]
        .as_object_mut()
        .unwrap()
        .remove("allow_inline_secret");
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, &cfg)], upstream.port());
    let boot = with_vm_env(&boot, "INTROSPECTION_SECRET", "gateway-secret");
    let envoy = Envoy::start(&bootstrap::with_cluster(&boot, "authserver", s.port()));
    let token = s.cc_token(&Config::standard().client("service"), Some("read"), None);
    let resp = Request::get("/api").bearer(&token).send(envoy.port("wasm"));
    assert_eq!(resp.status, 200, "{resp}\n{}", envoy.log_tail(30));
    assert!(!envoy.log().contains("gateway-secret"));
}
