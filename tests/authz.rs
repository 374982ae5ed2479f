//! Authorization and identity, end to end in a real Envoy (V8, `--concurrency 1`), in front of
//! the echo upstream: scopes and claim rules (403), method and host matching, the identity
//! header as the upstream receives it, spoofed identity stripped on every path, each failure
//! policy, report-only, and the per-reason counters read from Envoy's admin `/stats`.
//!
//! One shared Envoy with one listener per configuration; only `metered` is used by the metrics
//! test alone, so its counters are exact.
//!
//! Run: `make build && cargo test --test authz`.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{json, Value};

use common::bootstrap::{Listener, Side};
use common::http::{Request, Response, DEFAULT_HOST};
use common::mint;
use common::Proxy;

const ISS: &str = "https://issuer-one.example";
/// 2100-01-01.
const FAR: i64 = 4_102_444_800;
/// The identity header of provider `p1`.
const IDENTITY_HEADER: &str = "x-verified-identity";
const OUTCOME: &str = "x-jwt-authn-outcome";
/// Headers the filter emits; a client must never get them to the upstream.
const IDENTITY: &[&str] = &[IDENTITY_HEADER, "x-jwt-sub"];

/// Provider `p1` (inline keys, identity header, `x-jwt-sub`) and provider `idp` (remote keys
/// through cluster `nowhere`, which does not exist: its keys are never available). Rules:
/// `/scoped` needs scope `orders:read`; `/claims` needs role `admin` and a verified email;
/// `/writes` needs a token for POST/PUT/DELETE on `*.example.test` only; `/optional` takes p1
/// or nothing; `/lenient-scoped` takes p1 with scope `orders:write`, else anyone; `/remote` needs idp; `/public` needs nothing; everything else needs p1.
fn config(extra: Value) -> Value {
    let mut cfg = json!({
        "providers": {
            "p1": {
                "issuer": ISS,
                "audiences": ["api"],
                "local_jwks": { "inline_string": mint::JWKS },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
                "identity_header": {
                    "header_name": "X-Verified-Identity",
                    "claims": { "user_id": "sub", "email": "email", "org_id": "org_id",
                                "roles": "realm_access.roles", "scopes": "scope" },
                },
            },
            "idp": {
                "issuer": "https://idp.example",
                "remote_jwks": { "http_uri": { "uri": "http://idp.example/jwks",
                    "cluster": "nowhere", "timeout": "1s" } },
            },
        },
        "rules": [
            { "match": { "prefix": "/lenient-scoped" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "p1", "required_scopes": { "all_of": ["orders:write"] } },
                { "allow_missing_or_failed": {} } ] } } },
            { "match": { "prefix": "/scoped" }, "requires": { "provider_name": "p1",
                "required_scopes": { "all_of": ["orders:read"] } } },
            { "match": { "prefix": "/claims" }, "requires": { "provider_name": "p1",
                "required_claims": [
                    { "name": "realm_access.roles", "contains": "admin" },
                    { "name": "email_verified", "equals": true } ] } },
            { "match": { "prefix": "/writes", "methods": ["POST", "PUT", "DELETE"],
                         "hosts": ["*.example.test"] },
              "requires": { "provider_name": "p1" } },
            { "match": { "prefix": "/writes" } },
            { "match": { "prefix": "/optional" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "p1" }, { "allow_missing": {} } ] } } },
            { "match": { "prefix": "/remote" }, "requires": { "provider_name": "idp" } },
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "p1" } },
        ],
        "bypass_cors_preflight": true,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        cfg[k] = v.clone();
    }
    cfg
}

/// Listeners: `enforce` (defaults), `report` (report-only), `open` (missing → allow, invalid
/// → 503, keys → 503), `lax` (missing → 503, invalid → allow, keys → allow), `metered`.
fn proxy() -> &'static Proxy {
    static PROXY: OnceLock<Result<Proxy, String>> = OnceLock::new();
    let proxy = PROXY.get_or_init(|| {
        let policy = |missing: &str, invalid: &str, keys: &str| {
            config(json!({ "failure_policy": {
                "token_missing": missing, "token_invalid": invalid, "keys_unavailable": keys } }))
        };
        let mut metered = config(json!({}));
        let providers = metered["providers"].as_object_mut().unwrap();
        let (p1, idp) = (
            providers.remove("p1").unwrap(),
            providers.remove("idp").unwrap(),
        );
        providers.insert("metered".into(), p1);
        providers.insert("metered_remote".into(), idp);
        let text = metered.to_string();
        let metered: Value = serde_json::from_str(
            &text
                .replace("\"provider_name\":\"p1\"", "\"provider_name\":\"metered\"")
                .replace(
                    "\"provider_name\":\"idp\"",
                    "\"provider_name\":\"metered_remote\"",
                ),
        )
        .unwrap();
        Proxy::try_start(&[
            Listener::new("enforce", Side::Wasm, &config(json!({}))),
            Listener::new(
                "report",
                Side::Wasm,
                &config(json!({ "report_only": true })),
            ),
            Listener::new("open", Side::Wasm, &policy("allow", "deny_503", "deny_503")),
            Listener::new("lax", Side::Wasm, &policy("deny_503", "allow", "allow")),
            Listener::new("metered", Side::Wasm, &metered),
        ])
    });
    match proxy {
        Ok(p) => p,
        Err(e) => panic!("Envoy with our filter did not start: {e}"),
    }
}

fn send(listener: &str, req: &Request) -> Response {
    proxy().send(listener, req)
}

fn assert_vm_healthy() {
    let bad = proxy().envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
}

/// p1's claims: sub alice, aud api, far exp, with `patch` merged (`null` removes).
fn claims(patch: Value) -> Value {
    let mut c = json!({ "iss": ISS, "sub": "alice", "aud": "api", "exp": FAR,
                        "email": "alice@example.com", "email_verified": true,
                        "scope": "orders:read profile", "realm_access": { "roles": ["admin"] } });
    for (k, v) in patch.as_object().into_iter().flatten() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn token(patch: Value) -> String {
    mint::token("RS256", &claims(patch))
}

/// A good token for `idp`, whose keys never arrive.
fn idp_token() -> String {
    token(json!({ "iss": "https://idp.example" }))
}

fn expired() -> String {
    token(json!({ "exp": common::now() - 3600 }))
}

/// `req` with every identity header (and the outcome header, as `forged`) forged.
fn spoofed(req: Request) -> Request {
    let forged = base64::engine::general_purpose::STANDARD.encode(r#"{"user_id":"mallory"}"#);
    req.header(IDENTITY_HEADER, &forged)
        .header("x-jwt-sub", "mallory")
        .header(OUTCOME, "forged")
}

/// The upstream's identity header, decoded.
fn identity(resp: &Response) -> Option<Value> {
    let value = resp.upstream().header(IDENTITY_HEADER)?.to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .expect("the identity header is standard base64");
    Some(serde_json::from_slice(&bytes).expect("the identity header is JSON"))
}

// ---------------------------------------------------------------------------------------------
// 403s: scopes and claims.

#[test]
fn missing_scope_is_403_insufficient_scope_with_the_exact_header() {
    let resp = send(
        "enforce",
        &Request::get("/scoped/x").bearer(&token(json!({}))),
    );
    assert_eq!(resp.status, 200, "{resp}");
    let resp = send(
        "enforce",
        &Request::get("/scoped/x?a=1").bearer(&token(json!({ "scope": "profile" }))),
    );
    assert_eq!(resp.status, 403, "{resp}");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(
            format!(
                "Bearer realm=\"http://{DEFAULT_HOST}/scoped/x?a=1\", error=\"insufficient_scope\", scope=\"orders:read\""
            )
            .as_str()
        ),
        "{resp}"
    );
    assert_eq!(resp.body_str(), "Jwt lacks a required scope");
    assert!(resp.echo().is_none(), "a 403 never reaches the upstream");
    assert_vm_healthy();
}

#[test]
fn claim_rules_answer_403() {
    let want =
        format!("Bearer realm=\"http://{DEFAULT_HOST}/claims\", error=\"insufficient_scope\"");
    for (what, patch, status) in [
        ("admin, verified", json!({}), 200),
        (
            "no admin role",
            json!({ "realm_access": { "roles": ["user"] } }),
            403,
        ),
        (
            "email not verified",
            json!({ "email_verified": false }),
            403,
        ),
        (
            "verified as a string",
            json!({ "email_verified": "true" }),
            403,
        ),
        ("claims missing", json!({ "realm_access": null }), 403),
    ] {
        let resp = send("enforce", &Request::get("/claims").bearer(&token(patch)));
        assert_eq!(resp.status, status, "{what}: {resp}");
        if status == 403 {
            assert_eq!(
                resp.header("www-authenticate"),
                Some(want.as_str()),
                "{what}"
            );
            assert_eq!(resp.body_str(), "Jwt claims are not allowed", "{what}");
        }
    }
    assert_vm_healthy();
}

#[test]
fn rules_match_methods_and_hosts() {
    let host = "api.example.test:8443";
    for (what, req, status) in [
        (
            "POST on the host",
            Request::new("POST", "/writes").host(host),
            401,
        ),
        (
            "DELETE on the host",
            Request::new("DELETE", "/writes").host(host),
            401,
        ),
        ("GET on the host", Request::get("/writes").host(host), 200),
        (
            "POST elsewhere",
            Request::new("POST", "/writes").host("other.test"),
            200,
        ),
        (
            "POST on the bare domain",
            Request::new("POST", "/writes").host("example.test"),
            200,
        ),
        (
            "POST on the host with a token",
            Request::new("POST", "/writes")
                .host(host)
                .bearer(&token(json!({}))),
            200,
        ),
    ] {
        let resp = send("enforce", &req);
        assert_eq!(resp.status, status, "{what}: {resp}");
    }
    assert_vm_healthy();
}

/// Regression (issue 11, items 5 and 8), over h2c where Envoy forwards `:method` as sent:
/// `delete` is a DELETE for `methods`, and `api.example.test.` (one trailing dot) is the host.
#[test]
fn methods_ignore_case_and_hosts_a_trailing_dot_over_h2c() {
    let h2 = |req: &Request| proxy().send_h2("enforce", req);
    for (what, method, host, status) in [
        ("delete", "delete", "api.example.test", 401),
        ("Delete", "Delete", "api.example.test:8443", 401),
        ("DELETE, trailing dot", "DELETE", "api.example.test.", 401),
        (
            "post, trailing dot and port",
            "post",
            "v1.example.test.:8443",
            401,
        ),
        ("get", "get", "api.example.test", 200),
        ("delete elsewhere", "delete", "other.test", 200),
    ] {
        let req = Request::new(method, "/writes").host(host);
        let resp = h2(&req);
        assert_eq!(resp.status, status, "h2c {what}: {resp}");
    }
    // Over HTTP/1 Envoy's codec itself refuses a lower-case method (400); the trailing dot
    // is ours to handle there too.
    let resp = send(
        "enforce",
        &Request::new("delete", "/writes").host("api.example.test"),
    );
    assert_eq!(resp.status, 400, "HTTP/1 delete: {resp}");
    let resp = send(
        "enforce",
        &Request::new("DELETE", "/writes").host("api.example.test."),
    );
    assert_eq!(resp.status, 401, "HTTP/1 DELETE, trailing dot: {resp}");
    let resp = send(
        "enforce",
        &Request::new("DELETE", "/writes")
            .host("api.example.test.")
            .bearer(&token(json!({}))),
    );
    assert_eq!(resp.status, 200, "HTTP/1 DELETE with a token: {resp}");
    assert_vm_healthy();
}

/// Regression (issue 11, item 9): `requires_any: [{p1 with scope orders:write},
/// {allow_missing_or_failed}]`: a token without the scope gets through, but without identity.
#[test]
fn lenient_scoped_route_gives_no_identity_to_a_token_that_failed_the_scope() {
    let resp = send(
        "enforce",
        &spoofed(Request::get("/lenient-scoped").bearer(&token(json!({})))),
    );
    assert_eq!(resp.status, 200, "{resp}");
    resp.assert_upstream_lacks(IDENTITY);
    let writer = token(json!({ "scope": "orders:write" }));
    let resp = send("enforce", &Request::get("/lenient-scoped").bearer(&writer));
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(resp.upstream().header("x-jwt-sub"), Some("alice"));
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Identity.

#[test]
fn identity_header_reaches_the_upstream_decoded() {
    let resp = send(
        "enforce",
        &spoofed(Request::get("/orders").bearer(&token(json!({ "org_id": 42 })))),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(
        identity(&resp),
        Some(
            json!({ "user_id": "alice", "email": "alice@example.com", "org_id": 42,
                     "roles": ["admin"], "scopes": ["orders:read", "profile"] })
        ),
        "{resp}"
    );
    assert_eq!(resp.upstream().header_all(IDENTITY_HEADER).len(), 1);
    assert_eq!(resp.upstream().header_all("x-jwt-sub"), vec!["alice"]);
    assert_vm_healthy();
}

#[test]
#[rustfmt::skip]
fn spoofed_identity_is_stripped_on_every_path() {
    let preflight = Request::new("OPTIONS", "/orders")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST");
    for (listener, what, req) in [
        ("enforce", "public", Request::get("/public")),
        ("enforce", "optional, no token", Request::get("/optional")),
        ("enforce", "CORS preflight (bypassed)", preflight.clone()),
        ("enforce", "rule-less method", Request::get("/writes")),
        ("report", "required, no token", Request::get("/orders")),
        ("report", "required, expired", Request::get("/orders").bearer(&expired())),
        ("report", "optional", Request::get("/optional")),
        ("report", "CORS preflight", preflight),
        ("open", "missing allowed by policy", Request::get("/orders")),
        ("lax", "invalid allowed by policy", Request::get("/orders").bearer(&expired())),
        ("lax", "keys unavailable, allowed", Request::get("/remote").bearer(&idp_token())),
    ] {
        let resp = send(listener, &spoofed(req));
        assert_eq!(resp.status, 200, "{listener} {what}: {resp}");
        resp.assert_upstream_lacks(IDENTITY);
        let echo = resp.upstream();
        let outcome = echo.header_all(OUTCOME);
        if listener == "report" {
            assert_eq!(outcome.len(), 1, "{what}: {resp}");
            assert_ne!(
                outcome[0], "forged",
                "{what}: the client's value got through"
            );
        } else {
            // Stripped when not in report-only too (issue 11, item 10): an upstream that reads
            // it must never get the client's value.
            assert!(outcome.is_empty(), "{listener} {what}: {outcome:?}");
        }
    }
    // Required with a good token: the forged values are replaced, never appended.
    let resp = send(
        "enforce",
        &spoofed(Request::get("/orders").bearer(&token(json!({})))),
    );
    assert_eq!(resp.upstream().header_all("x-jwt-sub"), vec!["alice"]);
    assert_eq!(identity(&resp).unwrap()["user_id"], "alice");
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Report-only and failure policies.

#[test]
#[rustfmt::skip]
fn report_only_never_denies_and_sets_the_outcome_header() {
    let cases = [
        ("good", Request::get("/orders").bearer(&token(json!({}))), "allowed", true),
        ("public", Request::get("/public"), "allowed", false),
        ("missing", Request::get("/orders"), "denied; status=401; reason=missing", false),
        ("expired", Request::get("/orders").bearer(&expired()), "denied; status=401; reason=expired", false),
        ("scope", Request::get("/scoped").bearer(&token(json!({ "scope": "x" }))), "denied; status=403; reason=scope", false),
        ("claim", Request::get("/claims").bearer(&token(json!({ "email_verified": false }))), "denied; status=403; reason=claim", false),
        ("keys", Request::get("/remote").bearer(&idp_token()), "denied; status=401; reason=keys_unavailable", false),
    ];
    for (what, req, outcome, has_identity) in cases {
        let resp = send("report", &req);
        assert_eq!(resp.status, 200, "{what}: {resp}");
        assert_eq!(
            resp.upstream().header(OUTCOME),
            Some(outcome),
            "{what}: {resp}"
        );
        assert_eq!(identity(&resp).is_some(), has_identity, "{what}: {resp}");
    }
    assert!(
        proxy()
            .envoy
            .log()
            .contains("report-only, not enforced: GET /orders: Jwt is missing (missing)"),
        "report-only logs what it let through"
    );
    assert_vm_healthy();
}

#[test]
#[rustfmt::skip]
fn each_failure_policy() {
    let good = token(json!({}));
    // (listener, what, request, status, body)
    let cases = [
        ("enforce", "missing: deny_401", Request::get("/orders"), 401, "Jwt is missing"),
        ("enforce", "invalid: deny_401", Request::get("/orders").bearer(&expired()), 401, "Jwt is expired"),
        ("enforce", "keys: deny_401", Request::get("/remote").bearer(&idp_token()), 401, "Jwks remote fetch is failed"),
        ("open", "missing: allow", Request::get("/orders"), 200, ""),
        ("open", "invalid: deny_503", Request::get("/orders").bearer(&expired()), 503, "Jwt is expired"),
        ("open", "keys: deny_503", Request::get("/remote").bearer(&idp_token()), 503, "Jwks remote fetch is failed"),
        ("lax", "missing: deny_503", Request::get("/orders"), 503, "Jwt is missing"),
        ("lax", "invalid: allow", Request::get("/orders").bearer(&expired()), 200, ""),
        ("lax", "keys: allow", Request::get("/remote").bearer(&idp_token()), 200, ""),
        ("lax", "forbidden stays 403", Request::get("/scoped").bearer(&token(json!({ "scope": "x" }))), 403, "Jwt lacks a required scope"),
        ("lax", "a good token still verifies", Request::get("/orders").bearer(&good), 200, ""),
    ];
    for (listener, what, req, status, body) in cases {
        let resp = send(listener, &req);
        assert_eq!(resp.status, status, "{listener} {what}: {resp}");
        match status {
            200 => {
                let echo = resp.upstream();
                let verified = what.contains("good token");
                assert_eq!(echo.has(IDENTITY_HEADER), verified, "{what}: {resp}");
                if what == "invalid: allow" {
                    // Let through as it came: the unverified token is not consumed.
                    assert!(echo.has("authorization"), "{what}: {resp}");
                }
            }
            503 => {
                assert_eq!(resp.body_str(), body, "{what}");
                assert_eq!(resp.header("www-authenticate"), None, "{what}: {resp}");
            }
            _ => assert_eq!(resp.body_str(), body, "{what}"),
        }
    }
    assert_vm_healthy();
}

// ---------------------------------------------------------------------------------------------
// Metrics.

#[test]
fn per_reason_counters_per_provider() {
    let tampered = {
        let t = token(json!({}));
        let cut = t.rfind('.').unwrap() + 1;
        format!("{}{}", &t[..cut], "A".repeat(t.len() - cut))
    };
    let requests = [
        Request::get("/orders").bearer(&token(json!({}))),
        Request::get("/orders").bearer(&token(json!({}))),
        Request::get("/orders"),
        Request::get("/orders").bearer("not-a-jwt"),
        Request::get("/orders").bearer(&tampered),
        Request::get("/orders").bearer(&expired()),
        Request::get("/orders").bearer(&token(json!({ "nbf": FAR - 10 }))),
        Request::get("/orders").bearer(&token(json!({ "iss": "https://stranger.example" }))),
        Request::get("/orders").bearer(&token(json!({ "aud": "other" }))),
        Request::get("/scoped").bearer(&token(json!({ "scope": "x" }))),
        Request::get("/claims").bearer(&token(json!({ "email_verified": false }))),
        Request::get("/remote").bearer(&idp_token()),
    ];
    for req in &requests {
        send("metered", req);
    }
    let stats = proxy().envoy.stats();
    let stat = |name: &str| {
        let key = format!("wasmcustom.jwt_authn_wasm.{name}");
        stats
            .get(&key)
            .map(String::as_str)
            .unwrap_or("absent")
            .to_owned()
    };
    for (name, want) in [
        ("metered.allowed", "2"),
        ("metered.denied.missing", "1"),
        ("metered.denied.malformed", "1"),
        ("metered.denied.signature", "1"),
        ("metered.denied.expired", "1"),
        ("metered.denied.not_yet_valid", "1"),
        ("metered.denied.issuer", "1"),
        ("metered.denied.audience", "1"),
        ("metered.denied.scope", "1"),
        ("metered.denied.claim", "1"),
        ("metered.denied.lifetime", "0"),
        ("metered_remote.denied.keys_unavailable", "1"),
        ("metered_remote.allowed", "0"),
    ] {
        assert_eq!(stat(name), want, "{name}");
    }
    // The totals over every listener exist too.
    for name in ["allowed", "denied.missing", "not_enforced"] {
        assert_ne!(stat(name), "absent", "{name}");
    }
    assert_vm_healthy();
}
