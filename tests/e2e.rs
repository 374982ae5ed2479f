//! End-to-end behaviour of our filter alone, in a real Envoy (V8, `--concurrency 1`,
//! `failure_policy: FAIL_CLOSED`), in front of the echo upstream.
//!
//! One shared Envoy serves the request tests (listener `main`, and `strip` with
//! `strip_failure_response: true`); each config-error test starts its own Envoy and expects it to
//! refuse the config. Every request test ends with `assert_vm_healthy`: a crash in the VM must
//! never hide behind a plausible status.
//!
//! Run: `make build && cargo test --test e2e`.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::{tail, Envoy};
use common::http::{Request, Response, DEFAULT_HOST};
use common::mint;
use common::upstream::Upstream;
use common::Proxy;

const ISS1: &str = "https://issuer-one.example";
const ISS2: &str = "https://issuer-two.example";
/// 2100-01-01.
const FAR: i64 = 4_102_444_800;

/// Two providers: `p1` reads the default locations (Authorization, `?access_token=`), `p2` reads
/// `?token=`. Rules: `/p1` needs p1, `/p2` needs p2, `/optional` takes p1 or nothing, `/public`
/// needs nothing; other paths match no rule.
fn config() -> Value {
    json!({
        "providers": {
            "p1": {
                "issuer": ISS1,
                "audiences": ["api-one"],
                "local_jwks": { "inline_string": mint::JWKS },
                "forward_payload_header": "x-jwt-payload",
                "claim_to_headers": [
                    { "header_name": "x-jwt-sub", "claim_name": "sub" },
                    { "header_name": "x-jwt-email", "claim_name": "profile.email" },
                ],
            },
            "p2": {
                "issuer": ISS2,
                "local_jwks": { "inline_string": mint::JWKS },
                "from_params": ["token"],
                "claim_to_headers": [{ "header_name": "x-jwt-two-sub", "claim_name": "sub" }],
            },
        },
        "rules": [
            { "match": { "prefix": "/p1" }, "requires": { "provider_name": "p1" } },
            { "match": { "prefix": "/p2" }, "requires": { "provider_name": "p2" } },
            { "match": { "prefix": "/optional" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "p1" }, { "allow_missing": {} } ] } } },
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/scoped" }, "requires": { "provider_name": "p1",
                "required_scopes": { "all_of": ["orders:read"], "any_of": ["admin", "support"] } } },
        ],
    })
}

/// Headers the filter emits; a client must never get them to the upstream.
const IDENTITY: &[&str] = &["x-jwt-sub", "x-jwt-email", "x-jwt-payload", "x-jwt-two-sub"];

/// The shared Envoy and the number of live V8 VMs right after it started.
struct Fixture {
    proxy: Proxy,
    vms_at_start: Option<u64>,
}

static MAIN: OnceLock<Result<Fixture, String>> = OnceLock::new();

fn fixture() -> &'static Fixture {
    let fx = MAIN.get_or_init(|| {
        let cfg = config();
        let mut strip = cfg.clone();
        strip["strip_failure_response"] = json!(true);
        let proxy = Proxy::try_start(&[
            Listener::new("main", Side::Wasm, &cfg),
            Listener::new("strip", Side::Wasm, &strip),
        ])?;
        let vms_at_start = proxy.envoy.stat(VM_GAUGE);
        Ok(Fixture {
            proxy,
            vms_at_start,
        })
    });
    match fx {
        Ok(fx) => fx,
        Err(e) => panic!("Envoy with our filter did not start: {e}"),
    }
}

const VM_GAUGE: &str = "wasm.envoy.wasm.runtime.v8.active";

fn send(req: &Request) -> Response {
    fixture().proxy.send("main", req)
}

/// p1's claims: `{"iss":ISS1,"sub":"alice","aud":"api-one","exp":FAR,
/// "profile":{"email":"alice@example.com"}}` with `patch` merged (`null` removes).
fn c1(patch: Value) -> Value {
    let mut c = json!({ "iss": ISS1, "sub": "alice", "aud": "api-one", "exp": FAR,
                        "profile": { "email": "alice@example.com" } });
    if let (Some(obj), Some(p)) = (c.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

/// A good p1 token (RS256, kid rsa-a).
fn good() -> String {
    mint::token("RS256", &c1(json!({})))
}

/// Fails if the wasm VM crashed or failed at any point so far: a panic, a trap, a failed
/// callback, a fail-closed stream, or fewer live VMs than at start.
fn assert_vm_healthy() {
    let fx = fixture();
    let bad = fx.proxy.envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
    let vms = fx.proxy.envoy.stat(VM_GAUGE);
    assert!(
        vms.is_some() && vms == fx.vms_at_start,
        "{VM_GAUGE}: {vms:?}, at start {:?}",
        fx.vms_at_start
    );
}

// ---------------------------------------------------------------------------------------------
// Allowed requests.

#[test]
fn good_token_reaches_upstream_with_identity() {
    let token = good();
    let resp = send(&Request::get("/p1/orders?id=7").bearer(&token));
    assert_eq!(resp.status, 200, "{resp}");
    let echo = resp.upstream();
    assert_eq!(echo.target, "/p1/orders?id=7");
    assert_eq!(echo.header("x-jwt-sub"), Some("alice"));
    assert_eq!(echo.header("x-jwt-email"), Some("alice@example.com"));
    // forward_payload_header carries the token's payload segment as sent.
    assert_eq!(echo.header("x-jwt-payload"), token.split('.').nth(1));
    // forward defaults to false: the token does not reach the upstream.
    assert!(!echo.has("authorization"), "{resp}");
    assert_vm_healthy();
}

#[test]
fn token_in_query_parameter() {
    let resp = send(&Request::get(format!("/p1?access_token={}", good())));
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.upstream().header("x-jwt-sub"), Some("alice"));
    let p2 = mint::token("ES256", &json!({ "iss": ISS2, "sub": "bob", "exp": FAR }));
    let resp = send(&Request::get(format!("/p2?a=1&token={p2}")));
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.upstream().header("x-jwt-two-sub"), Some("bob"));
    assert_vm_healthy();
}

#[test]
fn rule_less_and_requirement_less_routes_pass_without_token() {
    for path in ["/elsewhere", "/public"] {
        let resp = send(&Request::get(path));
        assert_eq!(resp.status, 200, "{path}: {resp}");
    }
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Denied requests: status, body, WWW-Authenticate.

#[test]
fn missing_token_is_401_with_bearer_realm() {
    let resp = send(&Request::get("/p1/x?y=1"));
    assert_eq!(resp.status, 401, "{resp}");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(format!("Bearer realm=\"http://{DEFAULT_HOST}/p1/x?y=1\"").as_str()),
        "{resp}"
    );
    assert_eq!(resp.body_str(), "Jwt is missing");
    assert_vm_healthy();
}

#[test]
fn invalid_token_is_401_with_invalid_token_error() {
    let want = format!("Bearer realm=\"http://{DEFAULT_HOST}/p1\", error=\"invalid_token\"");
    for (what, token, body) in [
        (
            "tampered",
            mint::tampered(&good()),
            "Jwt verification fails",
        ),
        (
            "expired",
            mint::token("RS256", &c1(json!({"exp": common::now() - 3600}))),
            "Jwt is expired",
        ),
    ] {
        let resp = send(&Request::get("/p1").bearer(&token));
        assert_eq!(resp.status, 401, "{what}: {resp}");
        assert_eq!(
            resp.header("www-authenticate"),
            Some(want.as_str()),
            "{what}: {resp}"
        );
        assert_eq!(resp.body_str(), body, "{what}");
    }
    assert_vm_healthy();
}

#[test]
fn wrong_audience_is_403() {
    let resp =
        send(&Request::get("/p1").bearer(&mint::token("RS256", &c1(json!({"aud": "api-two"})))));
    assert_eq!(resp.status, 403, "{resp}");
    assert_eq!(resp.body_str(), "Audiences in Jwt are not allowed");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(
            format!("Bearer realm=\"http://{DEFAULT_HOST}/p1\", error=\"invalid_token\"").as_str()
        ),
        "{resp}"
    );
    assert_vm_healthy();
}

/// Like native: `strip_failure_response` drops the body and the WWW-Authenticate header.
#[test]
fn strip_failure_response_empties_the_body() {
    let fx = fixture();
    for (what, req, status) in [
        ("missing", Request::get("/p1"), 401),
        (
            "invalid",
            Request::get("/p1").bearer(&mint::tampered(&good())),
            401,
        ),
        (
            "audience",
            Request::get("/p1").bearer(&mint::token("RS256", &c1(json!({"aud": "x"})))),
            403,
        ),
    ] {
        let resp = fx.proxy.send("strip", &req);
        assert_eq!(resp.status, status, "{what}: {resp}");
        assert!(resp.body.is_empty(), "{what}: {resp}");
        assert_eq!(resp.header("www-authenticate"), None, "{what}: {resp}");
    }
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Hostile requests: clean answers, never a VM crash (which would be a 503).

#[test]
fn non_utf8_header_bytes_get_a_clean_401() {
    let cases: Vec<(&str, Request)> = vec![
        (
            "authorization",
            Request::get("/p1").header("authorization", b"Bearer \xff\xfe.\xc3\x28.\x80"),
        ),
        (
            "authorization prefix",
            Request::get("/p1").header("authorization", b"\xffearer abc.def.ghi"),
        ),
        (
            "other header",
            Request::get("/p1").header("x-bin", b"\xff\xfe"),
        ),
        (
            "identity header",
            Request::get("/p1").header("x-jwt-sub", b"\xff\xfe"),
        ),
        (
            "cookie",
            Request::get("/p1").header("cookie", b"session=\xff\xfe"),
        ),
    ];
    for (what, req) in cases {
        let resp = send(&req);
        assert_eq!(resp.status, 401, "{what}: {resp}");
    }
    // Non-UTF-8 bytes in the path never reach a filter: Envoy's codec answers 400 itself.
    let resp = send(&Request::get(b"/p1?access_token=\xff\xfe".as_slice()));
    assert_eq!(resp.status, 400, "query: {resp}");
    // Non-UTF-8 bytes elsewhere do not stop a good token.
    let resp = send(
        &Request::get("/p1")
            .bearer(&good())
            .header("x-bin", b"\xff\xfe"),
    );
    assert_eq!(resp.status, 200, "{resp}");
    let resp = send(&Request::get("/elsewhere").header("x-jwt-sub", b"\xff\xfe"));
    assert_eq!(resp.status, 200, "{resp}");
    resp.assert_upstream_lacks(IDENTITY);
    assert_vm_healthy();
}

/// Envoy joins repeated Authorization headers into one comma-separated value.
#[test]
fn duplicated_authorization_headers_get_401() {
    let token = good();
    let resp = send(&Request::get("/p1").bearer(&token).bearer(&token));
    assert_eq!(resp.status, 401, "{resp}");
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|v| v.ends_with(", error=\"invalid_token\"")),
        "{resp}"
    );
    assert_vm_healthy();
}

#[test]
fn token_of_20_kb_gets_401() {
    let seg = "A".repeat(20 * 1024 / 3);
    let resp = send(&Request::get("/p1").bearer(&format!("{seg}.{seg}.{seg}")));
    assert_eq!(resp.status, 401, "{resp}");
    // A properly signed token with a 20 kB claim: whatever the size limit decides, no crash.
    let big = mint::token("RS256", &c1(json!({ "pad": "x".repeat(20 * 1024) })));
    let resp = send(&Request::get("/p1").bearer(&big));
    assert_ne!(resp.status, 503, "{resp}");
    assert_vm_healthy();
}

#[test]
fn spoofed_identity_headers_stripped_on_rule_less_route() {
    for path in ["/elsewhere", "/public"] {
        let req = IDENTITY
            .iter()
            .fold(Request::get(path), |r, h| r.header(h, "mallory"));
        let resp = send(&req);
        assert_eq!(resp.status, 200, "{path}: {resp}");
        resp.assert_upstream_lacks(IDENTITY);
    }
    assert_vm_healthy();
}

#[test]
fn spoofed_identity_headers_stripped_on_allow_missing_route() {
    let req = IDENTITY
        .iter()
        .fold(Request::get("/optional"), |r, h| r.header(h, "mallory"));
    let resp = send(&req);
    assert_eq!(resp.status, 200, "{resp}");
    resp.assert_upstream_lacks(IDENTITY);
    // With a token, the verified claims replace the forged ones.
    let req = IDENTITY
        .iter()
        .fold(Request::get("/optional").bearer(&good()), |r, h| {
            r.header(h, "mallory")
        });
    let resp = send(&req);
    assert_eq!(resp.status, 200, "{resp}");
    let echo = resp.upstream();
    assert_eq!(echo.header_all("x-jwt-sub"), vec!["alice"], "{resp}");
    assert!(!echo.has("x-jwt-two-sub"), "{resp}");
    assert_vm_healthy();
}

/// After a burst of hostile and ordinary requests the VM is still the one that started, and
/// still answers.
#[test]
fn vm_never_fails() {
    let token = good();
    for i in 0..50 {
        let req = match i % 5 {
            0 => Request::get("/p1").bearer(&token),
            1 => Request::get("/p1").header("authorization", b"Bearer \xff"),
            2 => Request::get("/p1").bearer(&"x".repeat(30_000)),
            3 => Request::get("/p1").bearer(&token).bearer("a.b.c"),
            _ => Request::get(format!(
                "/p1?access_token={}&access_token=..",
                mint::tampered(&token)
            )),
        };
        let resp = send(&req);
        assert_ne!(resp.status, 503, "request {i}: {resp}");
    }
    let resp = send(&Request::get("/p1").bearer(&token));
    assert_eq!(resp.status, 200, "{resp}");
    assert_vm_healthy();
    let fx = fixture();
    let failures = fx.proxy.envoy.wasm_failure_stats();
    assert!(failures.is_empty(), "wasm failure stats: {failures:?}");
}

// ---------------------------------------------------------------------------------------------
// Config errors: Envoy must refuse to start, and say which field is wrong.

/// Runs our filter alone with `cfg`; Envoy must exit non-zero and log every one of `needles`.
fn assert_refused(cfg: Value, needles: &[&str]) {
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("main", Side::Wasm, &cfg)], upstream.port());
    let (code, log) = Envoy::expect_refused(&boot);
    assert!(
        code.is_some_and(|c| c != 0),
        "Envoy exit code {code:?}\n{}",
        tail(&log, 40)
    );
    for needle in needles {
        assert!(
            log.contains(needle),
            "the log does not name {needle:?}:\n{}",
            tail(&log, 40)
        );
    }
}

#[test]
fn config_error_unknown_field() {
    let mut cfg = config();
    cfg["providers"]["p1"]["bogus_field"] = json!(1);
    assert_refused(cfg, &["providers.p1", "bogus_field"]);
}

#[test]
fn config_error_rule_names_missing_provider() {
    let mut cfg = config();
    cfg["rules"][0]["requires"]["provider_name"] = json!("nope");
    assert_refused(cfg, &["nope"]);
}

#[test]
fn config_error_bad_regex() {
    let mut cfg = config();
    cfg["rules"][0]["match"] = json!({ "safe_regex": { "regex": "/p1/(unclosed" } });
    assert_refused(cfg, &["rules[0]", "safe_regex"]);
}

#[test]
fn config_error_bad_duration() {
    let mut cfg = config();
    cfg["providers"]["p1"]["max_lifetime"] = json!("ten minutes");
    assert_refused(cfg, &["providers.p1.max_lifetime", "ten minutes"]);
}

#[test]
fn config_error_jwks_without_usable_key() {
    let mut cfg = config();
    cfg["providers"]["p1"]["local_jwks"] =
        json!({ "inline_string": r#"{"keys":[{"kty":"RSA","kid":"no-n-no-e"},{"kty":"XYZ"}]}"# });
    assert_refused(cfg, &["providers.p1.local_jwks"]);
}

/// The hint for a missing module must say how to build it (and not skip).
#[test]
fn missing_module_message_says_make_build() {
    if let Err(msg) = bootstrap::wasm_module() {
        assert!(msg.contains("make build"), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes (our `required_scopes`): 403 insufficient_scope, RFC 6750 §3.1.

#[test]
fn missing_scope_is_403_insufficient_scope() {
    let token = |scope: &str| {
        mint::token(
            "RS256",
            &json!({ "iss": ISS1, "aud": "api-one", "sub": "alice", "exp": FAR, "scope": scope }),
        )
    };
    let resp = send(&Request::get("/scoped/orders").bearer(&token("orders:read support")));
    assert_eq!(resp.status, 200, "{resp}");
    let resp = send(&Request::get("/scoped/orders").bearer(&token("orders:read orders:write")));
    assert_eq!(resp.status, 403, "{resp}");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(
            format!(
                "Bearer realm=\"http://{DEFAULT_HOST}/scoped/orders\", error=\"insufficient_scope\", scope=\"admin support\""
            )
            .as_str()
        )
    );
    assert_eq!(resp.body_str(), "Jwt lacks a required scope");
    assert!(resp.echo().is_none(), "a 403 never reaches the upstream");
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Filter state (issue 18 part 3).

/// The verified identity is Envoy filter state, for access logs and RBAC. Its own Envoy, with
/// listener `rbac`: our filter (p1 with an identity header; `/open` lets anyone through but
/// sets identity only from a token with scope `admin`; everything else needs p1), then Envoy's
/// RBAC filter allowing only subject `alice` through a `filter_state` matcher, then the router.
/// Its access log prints our filter state.
#[test]
fn verified_identity_is_filter_state_for_access_logs_and_rbac() {
    let mut cfg = config();
    cfg["providers"]["p1"]["identity_header"] = json!({
        "header_name": "x-identity",
        "claims": { "email": "profile.email", "scopes": "scope" },
    });
    cfg["rules"] = json!([
        { "match": { "prefix": "/open" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "p1", "required_scopes": { "all_of": ["admin"] } },
            { "allow_missing_or_failed": {} } ] } } },
        { "match": { "prefix": "/" }, "requires": { "provider_name": "p1" } },
    ]);
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("rbac", Side::Wasm, &cfg)], upstream.port());
    let mut boot: Value = serde_json::from_str(&boot).unwrap();
    let hcm = &mut boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let state = |key: &str| format!("%FILTER_STATE(wasm.jwt_authn_wasm.{key}:PLAIN)%");
    hcm["access_log"] = json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": format!(
                "ACCESS %REQ(:PATH)% %RESPONSE_CODE% provider={} issuer={} subject={} email={} scopes={}\n",
                state("provider"), state("issuer"), state("subject"),
                state("identity.email"), state("identity.scopes"),
            ) } },
        },
    }]);
    let rbac = json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": { "action": "ALLOW", "policies": { "alice-only": {
                "permissions": [{ "any": true }],
                "principals": [{ "filter_state": {
                    "key": "wasm.jwt_authn_wasm.subject",
                    "string_match": { "exact": "alice" },
                } }],
            } } },
        },
    });
    hcm["http_filters"].as_array_mut().unwrap().insert(1, rbac);
    let envoy = Envoy::start(&boot.to_string());
    let port = envoy.port("rbac");

    let alice = good();
    let bob = mint::token("RS256", &c1(json!({ "sub": "bob" })));
    let admin = mint::token("RS256", &c1(json!({ "scope": "admin orders:read" })));
    // (path, token, status, the access log line after the path and status)
    let full = |sub: &str, scopes: &str| {
        format!("provider=p1 issuer={ISS1} subject={sub} email=alice@example.com scopes={scopes}")
    };
    let none = "provider=- issuer=- subject=- email=- scopes=-".to_owned();
    let cases = [
        ("/orders/alice", Some(&alice), 200, full("alice", "-")),
        ("/orders/bob", Some(&bob), 403, full("bob", "-")),
        ("/orders/none", None, 401, none.clone()),
        ("/open/alice-without-admin", Some(&alice), 403, none.clone()),
        ("/open/no-token", None, 403, none.clone()),
        (
            "/open/admin",
            Some(&admin),
            200,
            full("alice", "admin orders:read"),
        ),
    ];
    for (path, token, status, _) in &cases {
        let mut req = Request::get(path);
        if let Some(token) = token {
            req = req.bearer(token);
        }
        let resp = req.send(port);
        assert_eq!(resp.status, *status, "{path}: {resp}");
        if *status == 403 {
            assert!(
                resp.body_str().contains("RBAC"),
                "{path}: RBAC refused it: {resp}"
            );
        }
    }
    // Envoy writes access logs from a buffer it flushes about once a second; on a busy machine
    // that can take a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for (path, _, status, want) in &cases {
        let want = format!("ACCESS {path} {status} {want}");
        while !envoy.log().lines().any(|l| l == want) {
            assert!(
                std::time::Instant::now() < deadline,
                "no access log line {want:?}:\n{}",
                envoy.log_tail(20)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        eprintln!("{want}");
    }
    let bad = envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
}

/// `filter_state: false` (ours, per provider): a verified request still gets its identity
/// header upstream, and no filter state is set (the access log reads `-`).
#[test]
fn filter_state_false_sets_no_filter_state() {
    let mut cfg = config();
    cfg["providers"]["p1"]["filter_state"] = json!(false);
    cfg["rules"] = json!([{ "match": { "prefix": "/" }, "requires": { "provider_name": "p1" } }]);
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(
        &[Listener::new("nostate", Side::Wasm, &cfg)],
        upstream.port(),
    );
    let mut boot: Value = serde_json::from_str(&boot).unwrap();
    let hcm = &mut boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["access_log"] = json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string":
                "ACCESS %REQ(:PATH)% %RESPONSE_CODE% subject=%FILTER_STATE(wasm.jwt_authn_wasm.subject:PLAIN)% sub=%REQ(x-jwt-sub)%\n" } },
        },
    }]);
    let envoy = Envoy::start(&boot.to_string());
    let resp = Request::get("/orders/alice")
        .bearer(&good())
        .send(envoy.port("nostate"));
    assert_eq!(resp.status, 200, "{resp}");
    let want = "ACCESS /orders/alice 200 subject=- sub=alice";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !envoy.log().lines().any(|l| l == want) {
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line {want:?}:\n{}",
            envoy.log_tail(20)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let bad = envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
}
