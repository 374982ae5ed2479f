//! The core end to end, natively: configuration JSON + request headers + a fixed clock →
//! decision. One row per behaviour; tokens are minted from the fixture keys.

use serde_json::{json, Value};

use super::*;
use crate::config::OUTCOME_HEADER;
use crate::jwks::KeySet;
use crate::mint;
use crate::signature::SignatureBackend;
use std::sync::Arc;

/// The fixed "now" of every test: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn config() -> Config {
    Config::from_json(config_json().to_string().as_bytes()).unwrap()
}

fn config_json() -> Value {
    json!({
        "providers": {
            "example": {
                "issuer": "https://example.com",
                "audiences": ["api"],
                "local_jwks": { "inline_string": mint::JWKS },
                "forward_payload_header": "x-jwt-payload",
                "claim_to_headers": [
                    { "header_name": "x-jwt-sub", "claim_name": "sub" },
                    { "header_name": "x-jwt-org", "claim_name": "org.id" }
                ]
            },
            "other": {
                "issuer": "https://other.com",
                "from_headers": [ { "name": "x-other-token" } ],
                "local_jwks": { "inline_string": mint::JWKS },
                "claim_to_headers": [ { "header_name": "x-other-sub", "claim_name": "sub" } ]
            }
        },
        "rules": [
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/optional" }, "requires": { "allow_missing": {} } },
            { "match": { "prefix": "/lenient" }, "requires": { "allow_missing_or_failed": {} } },
            { "match": { "prefix": "/any-or-none" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "example" }, { "allow_missing": {} } ] } } },
            { "match": { "prefix": "/any" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "example" }, { "provider_name": "other" } ] } } },
            { "match": { "prefix": "/all" }, "requires": { "requires_all": { "requirements": [
                { "provider_name": "example" }, { "provider_name": "other" } ] } } },
            { "match": { "prefix": "/aud2" }, "requires": { "provider_and_audiences": {
                "provider_name": "example", "audiences": ["api2"] } } },
            { "match": { "prefix": "/scoped" }, "requires": { "provider_name": "example",
                "required_scopes": { "all_of": ["read"], "any_of": ["admin", "ops"] } } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "example" } }
        ],
        "bypass_cors_preflight": true
    })
}

/// iss example.com, aud api, sub alice, exp in an hour, org.id o1.
fn good_claims() -> Value {
    json!({ "iss": "https://example.com", "aud": "api", "sub": "alice",
            "exp": NOW + 3600, "org": { "id": "o1" } })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// RS256, kid rsa-a, `good_claims()`.
fn good() -> String {
    mint::token("RS256", &good_claims())
}

/// A token of the `other` provider (iss other.com, sub bob).
fn other() -> String {
    mint::token(
        "ES256",
        &json!({ "iss": "https://other.com", "sub": "bob", "exp": NOW + 60 }),
    )
}

fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> RequestHeaders {
    let mut pairs = vec![
        (":method".to_owned(), method.as_bytes().to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.test".to_vec()),
        (":scheme".to_owned(), b"http".to_vec()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    RequestHeaders::new(pairs)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn decide_at<'c>(cfg: &'c Config, path: &str, extra: &[(&str, &str)]) -> Decision<'c> {
    decide(cfg, cfg, &request("GET", path, extra), NOW)
}

/// (status, body) of a decision; 200 and "" for an allow, 0 and "wait" for a wait.
fn status(d: &Decision) -> (u32, &'static str) {
    match d {
        Decision::Allow { .. } => (200, ""),
        Decision::Deny { denial, .. } => (denial.status, denial.body),
        Decision::Wait(_) => (0, "wait"),
    }
}

fn set_headers(d: &Decision) -> Vec<(String, String)> {
    match d {
        Decision::Allow { ops, .. } => ops
            .iter()
            .filter_map(|op| match op {
                HeaderOp::Set(k, v) => Some((k.to_string(), v.clone())),
                HeaderOp::Remove(_) | HeaderOp::FilterState(..) => None,
            })
            .collect(),
        Decision::Deny { .. } | Decision::Wait(_) => vec![],
    }
}

/// The filter state an allowed decision sets, as (key, value).
fn filter_state(d: &Decision) -> Vec<(String, String)> {
    match d {
        Decision::Allow { ops, .. } => ops
            .iter()
            .filter_map(|op| match op {
                HeaderOp::FilterState(k, v) => Some((k.to_string(), v.clone())),
                HeaderOp::Set(..) | HeaderOp::Remove(..) => None,
            })
            .collect(),
        Decision::Deny { .. } | Decision::Wait(_) => vec![],
    }
}

fn removed(d: &Decision) -> Vec<String> {
    match d {
        Decision::Allow { ops, .. } => ops
            .iter()
            .filter_map(|op| match op {
                HeaderOp::Remove(k) => Some(k.to_string()),
                HeaderOp::Set(..) | HeaderOp::FilterState(..) => None,
            })
            .collect(),
        Decision::Deny { .. } | Decision::Wait(_) => vec![],
    }
}

#[test]
#[rustfmt::skip]
fn status_table() {
    let cfg = config();
    let auth = |t: String| vec![("authorization".to_owned(), bearer(&t))];
    let claims = good_claims;
    let rs = |c: Value| mint::token("RS256", &c);
    let query_good = format!("/?access_token={}", good());
    let query_expired = format!("/?access_token={}", rs(with(claims(), "exp", json!(1))));
    let cases: Vec<(&str, &str, Vec<(String, String)>, u32, &str)> = vec![
        ("good token", "/", auth(good()), 200, ""),
        ("missing token", "/", vec![], 401, "Jwt is missing"),
        ("public route, no token", "/public/x", vec![], 200, ""),
        ("public route, garbage token", "/public", auth("garbage".into()), 200, ""),
        ("expired beyond skew", "/", auth(rs(with(claims(), "exp", json!(NOW - 61)))), 401, "Jwt is expired"),
        ("expired within skew", "/", auth(rs(with(claims(), "exp", json!(NOW - 60)))), 200, ""),
        ("nbf within skew", "/", auth(rs(with(claims(), "nbf", json!(NOW + 60)))), 200, ""),
        ("nbf beyond skew", "/", auth(rs(with(claims(), "nbf", json!(NOW + 61)))), 401, "Jwt not yet valid"),
        ("no exp is fine by default", "/", auth(rs(without(claims(), "exp"))), 200, ""),
        ("wrong issuer", "/", auth(rs(with(claims(), "iss", json!("https://evil.com")))), 401, "Jwt issuer is not configured"),
        ("missing issuer", "/", auth(rs(without(claims(), "iss"))), 401, "Jwt issuer is not configured"),
        ("wrong audience", "/", auth(rs(with(claims(), "aud", json!("other")))), 403, "Audiences in Jwt are not allowed"),
        ("no audience", "/", auth(rs(without(claims(), "aud"))), 403, "Audiences in Jwt are not allowed"),
        ("audience array", "/", auth(rs(with(claims(), "aud", json!(["x", "api"])))), 200, ""),
        ("audience with scheme and slash", "/", auth(rs(with(claims(), "aud", json!("https://api/")))), 200, ""),
        ("audience override", "/aud2", auth(good()), 403, "Audiences in Jwt are not allowed"),
        ("audience override ok", "/aud2", auth(rs(with(claims(), "aud", json!("api2")))), 200, ""),
        ("lower-case bearer is not our prefix", "/", vec![("authorization".into(), format!("bearer {}", good()))], 401, "Jwt is missing"),
        ("query token", &query_good, vec![], 200, ""),
        ("two locations, one bad", &query_expired, auth(good()), 401, "Jwt is expired"),
        ("duplicated authorization", "/", vec![("authorization".into(), format!("{},{}", bearer(&good()), bearer(&good())),)], 401, "Jwt header carries more than one token"),
        ("token too large", "/", auth("a".repeat(20_000)), 401, "Jwt is too large"),
        ("optional: none", "/optional", vec![], 200, ""),
        ("optional: good", "/optional", auth(good()), 200, ""),
        ("optional: bad", "/optional", auth(rs(with(claims(), "exp", json!(1)))), 401, "Jwt is expired"),
        ("optional: unknown issuer", "/optional", auth(rs(with(claims(), "iss", json!("x")))), 401, "Jwt issuer is not configured"),
        ("lenient: bad", "/lenient", auth(rs(with(claims(), "exp", json!(1)))), 200, ""),
        ("lenient: garbage", "/lenient", auth("a.b.c".into()), 200, ""),
        ("any: first", "/any", auth(good()), 200, ""),
        ("any: second", "/any", vec![("x-other-token".into(), other())], 200, ""),
        ("any: none", "/any", vec![], 401, "Jwt is missing"),
        ("any: bad first", "/any", auth(rs(with(claims(), "exp", json!(1)))), 401, "Jwt is expired"),
        ("any-or-none: none", "/any-or-none", vec![], 200, ""),
        ("any-or-none: bad", "/any-or-none", auth(rs(with(claims(), "exp", json!(1)))), 401, "Jwt is expired"),
        ("any-or-none: a stranger's token is not missing", "/any-or-none", auth(other()), 401, "Jwt issuer is not configured"),
        ("all: both", "/all", vec![("authorization".into(), bearer(&good())), ("x-other-token".into(), other())], 200, ""),
        ("all: one", "/all", auth(good()), 401, "Jwt is missing"),
    ];
    let mut failures = Vec::new();
    for (name, path, headers, want_status, want_body) in cases {
        let extra: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let d = decide_at(&cfg, path, &extra);
        // Every reason has its counter (a reason without one would never be counted).
        if let Decision::Deny { verdict, .. } = &d {
            let reason = verdict.failure.map(AuthError::reason);
            if !reason.is_some_and(|r| crate::metrics::DENY_REASONS.contains(&r)) {
                failures.push(format!("{name}: reason {reason:?} has no counter"));
            }
        }
        let got = status(&d);
        if got != (want_status, want_body) {
            failures.push(format!(
                "{name}: got {got:?}, want ({want_status}, {want_body:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_algorithm_verifies_and_none_is_refused() {
    let cfg = config();
    for alg in crate::jwt::Alg::ALL {
        let token = mint::token(alg.name(), &good_claims());
        let d = decide_at(&cfg, "/", &[("authorization", &bearer(&token))]);
        assert_eq!(status(&d), (200, ""), "{alg}");
        let token = mint::token_without_kid(alg.name(), &good_claims());
        let d = decide_at(&cfg, "/", &[("authorization", &bearer(&token))]);
        assert_eq!(status(&d), (200, ""), "{alg} without kid");
    }
    let header = json!({ "alg": "none", "typ": "JWT" });
    let token = mint::sign(&header, &good_claims(), "HS256", mint::Key::Hmac);
    let d = decide_at(&cfg, "/", &[("authorization", &bearer(&token))]);
    assert_eq!(status(&d), (401, "Jwt header [alg] is not supported"));
}

#[test]
fn identity_headers_are_set_and_the_token_consumed() {
    let cfg = config();
    let d = decide_at(&cfg, "/", &[("authorization", &bearer(&good()))]);
    let sets = set_headers(&d);
    assert!(
        sets.contains(&("x-jwt-sub".into(), "alice".into())),
        "{sets:?}"
    );
    assert!(
        sets.contains(&("x-jwt-org".into(), "o1".into())),
        "{sets:?}"
    );
    let payload = good().split('.').nth(1).unwrap().to_owned();
    assert!(
        sets.contains(&("x-jwt-payload".into(), payload)),
        "{sets:?}"
    );
    assert!(removed(&d).contains(&"authorization".to_owned()));
}

#[test]
fn emitted_headers_are_removed_on_every_route_first() {
    let cfg = config();
    // Those the request carries (spoofed); an absent one needs no host call.
    let want = ["x-jwt-org", "x-jwt-sub", "x-other-sub"];
    for path in ["/public", "/optional", "/lenient", "/"] {
        let token = bearer(&good());
        let d = decide_at(
            &cfg,
            path,
            &[
                ("authorization", &token),
                ("x-jwt-sub", "mallory"),
                ("x-other-sub", "eve"),
                ("x-jwt-org", "evil"),
            ],
        );
        let Decision::Allow { ops, .. } = &d else {
            panic!("{path}: {d:?}")
        };
        let first: Vec<_> = ops.iter().take(want.len()).cloned().collect();
        let expected: Vec<_> = want.iter().map(|h| HeaderOp::Remove(h)).collect();
        assert_eq!(first, expected, "{path}");
    }
}

#[test]
fn lenient_route_keeps_identity_of_a_good_token_only() {
    let cfg = config();
    let d = decide_at(&cfg, "/lenient", &[("authorization", &bearer(&good()))]);
    assert!(set_headers(&d).contains(&("x-jwt-sub".into(), "alice".into())));
    let bad = mint::token("RS256", &with(good_claims(), "exp", json!(1)));
    let d = decide_at(&cfg, "/lenient", &[("authorization", &bearer(&bad))]);
    assert_eq!(set_headers(&d), vec![]);
    assert_eq!(
        removed(&d),
        Vec::<String>::new(),
        "bad token is not consumed"
    );
}

#[test]
fn failed_branch_of_requires_all_leaves_no_identity() {
    let cfg = config();
    let d = decide_at(&cfg, "/all", &[("authorization", &bearer(&good()))]);
    assert!(matches!(d, Decision::Deny { .. }));
}

#[test]
fn www_authenticate_follows_rfc_6750() {
    let cfg = config();
    let d = decide_at(&cfg, "/x?y=1", &[]);
    let Decision::Deny { denial, .. } = d else {
        panic!()
    };
    assert_eq!(
        denial.www_authenticate.unwrap(),
        "Bearer realm=\"http://api.test/x?y=1\""
    );
    let d = decide_at(&cfg, "/x", &[("authorization", "Bearer a.b.c")]);
    let Decision::Deny { denial, .. } = d else {
        panic!()
    };
    assert_eq!(
        denial.www_authenticate.unwrap(),
        "Bearer realm=\"http://api.test/x\", error=\"invalid_token\""
    );
    let long = format!("/{}", "a".repeat(300));
    let d = decide_at(&cfg, &long, &[]);
    let Decision::Deny { denial, .. } = d else {
        panic!()
    };
    assert_eq!(
        denial.www_authenticate.unwrap(),
        format!("Bearer realm=\"http://api.test{}\"", &long[..256])
    );
}

#[test]
fn cors_preflight_bypasses_only_with_both_headers() {
    let cfg = config();
    let preflight = request(
        "OPTIONS",
        "/",
        &[
            ("origin", "https://app"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(status(&decide(&cfg, &cfg, &preflight, NOW)).0, 200);
    let plain_options = request("OPTIONS", "/", &[("origin", "https://app")]);
    assert_eq!(status(&decide(&cfg, &cfg, &plain_options, NOW)).0, 401);
}

#[test]
fn non_utf8_token_bytes_are_a_clean_401() {
    let cfg = config();
    let headers = RequestHeaders::new(vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), b"/".to_vec()),
        ("authorization".to_owned(), b"Bearer \xff\xfe".to_vec()),
    ]);
    assert_eq!(status(&decide(&cfg, &cfg, &headers, NOW)).0, 401);
}

/// A key store whose `example` provider (id 0) is remote: keys pending, or a set of kids that
/// a refetch may still bring.
struct FakeRemote<'c> {
    config: &'c Config,
    pending: bool,
    learnable: &'static [&'static str],
}

impl KeyStore for FakeRemote<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match (provider, self.pending) {
            (0, true) => Availability::Pending,
            _ => self.config.keys(provider),
        }
    }
    fn may_learn_kid(&self, provider: ProviderId, kid: &str) -> bool {
        provider == 0 && self.learnable.contains(&kid)
    }
}

#[test]
fn waits_only_where_keys_on_the_way_could_change_a_denial() {
    let cfg = config();
    let pending = FakeRemote {
        config: &cfg,
        pending: true,
        learnable: &[],
    };
    let decide_with = |store: &dyn KeyStore, path: &str, token: &str| {
        decide(
            &cfg,
            store,
            &request("GET", path, &[("authorization", &bearer(token))]),
            NOW,
        )
    };
    let wait = |kid: Option<&str>| {
        Decision::Wait(Wait {
            provider: 0,
            kid: kid.map(str::to_owned),
        })
    };
    // Cold start: a token for the pending provider waits.
    assert_eq!(decide_with(&pending, "/", &good()), wait(None));
    // A token naming another issuer does not wait for this provider's keys.
    let stranger = mint::token(
        "RS256",
        &with(good_claims(), "iss", json!("https://evil.com")),
    );
    assert_eq!(status(&decide_with(&pending, "/", &stranger)).0, 401);
    // Another branch that succeeds needs no wait.
    let d = decide(
        &cfg,
        &pending,
        &request("GET", "/any", &[("x-other-token", &other())]),
        NOW,
    );
    assert_eq!(status(&d).0, 200);
    // Lenient routes never wait: failure is fine there.
    assert_eq!(status(&decide_with(&pending, "/lenient", &good())).0, 200);

    // Rotation: a kid the current set lacks waits if a refetch may bring it, else 401.
    let rotated = mint::sign(
        &json!({ "alg": "RS256", "kid": "next" }),
        &good_claims(),
        "RS256",
        mint::Key::RsaA,
    );
    let learning = FakeRemote {
        config: &cfg,
        pending: false,
        learnable: &["next"],
    };
    assert_eq!(decide_with(&learning, "/", &rotated), wait(Some("next")));
    let spent = FakeRemote {
        config: &cfg,
        pending: false,
        learnable: &[],
    };
    assert_eq!(
        status(&decide_with(&spent, "/", &rotated)),
        (401, "Jwks doesn't have key to match kid or alg from Jwt")
    );
}

#[test]
fn insufficient_scope_is_403_with_the_scopes_needed() {
    let cfg = config();
    let scoped = |scope: &str| {
        let token = mint::token("RS256", &with(good_claims(), "scope", json!(scope)));
        decide_at(&cfg, "/scoped/x", &[("authorization", &bearer(&token))])
    };
    assert_eq!(status(&scoped("read ops")), (200, ""));
    assert!(set_headers(&scoped("read admin")).contains(&("x-jwt-sub".into(), "alice".into())));
    for (scope, needed) in [
        ("read", "admin ops"),
        ("ops", "read"),
        ("", "read admin ops"),
    ] {
        let Decision::Deny { denial, verdict } = scoped(scope) else {
            panic!("{scope:?} allowed")
        };
        assert_eq!(verdict.failure, Some(AuthError::InsufficientScope));
        assert_eq!(
            (denial.status, denial.body),
            (403, "Jwt lacks a required scope")
        );
        assert_eq!(
            denial.www_authenticate.unwrap(),
            format!(
                "Bearer realm=\"http://api.test/scoped/x\", error=\"insufficient_scope\", scope=\"{needed}\""
            ),
            "{scope:?}"
        );
    }
    // Scopes are judged only on a verified token: a forged one is 401 invalid_token.
    let token = mint::token("RS256", &with(good_claims(), "scope", json!("read admin")));
    let forged = format!("{}AAAA", token.trim_end_matches(|c| c != '.'));
    let d = decide_at(&cfg, "/scoped", &[("authorization", &bearer(&forged))]);
    assert_eq!(status(&d).0, 401);
}

// ---------------------------------------------------------------------------------------------
// Authorization (ours): claims, identity header, failure policies, report-only, verdicts.

/// `config()`'s providers with `extra` top-level fields, an identity header on `example`, and
/// rules: `/claims` (required_claims), `/get-only` (GET on `*.api.test`), `/` (example).
fn authz_config(extra: Value) -> Config {
    let mut cfg = json!({
        "providers": {
            "example": {
                "issuer": "https://example.com",
                "audiences": ["api"],
                "local_jwks": { "inline_string": mint::JWKS },
                "identity_header": { "header_name": "x-identity", "claims": {
                    "user_id": "sub", "org": "org.id", "roles": "realm_access.roles",
                    "scopes": "scope", "email": "email" } }
            },
            "other": {
                "issuer": "https://other.com",
                "from_headers": [ { "name": "x-other-token" } ],
                "local_jwks": { "inline_string": mint::JWKS }
            }
        },
        "rules": [
            { "match": { "prefix": "/claims" }, "requires": { "provider_name": "example",
                "required_claims": [
                    { "name": "realm_access.roles", "contains": "admin" },
                    { "name": "email_verified", "equals": true },
                    { "name": "org.id", "one_of": ["o1", "o2"] } ] } },
            { "match": { "prefix": "/get-only", "methods": ["GET"], "hosts": ["*.api.test"] },
                "requires": { "provider_name": "other" } },
            { "match": { "prefix": "/any" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "example" }, { "provider_name": "other" } ] } } },
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "example" } }
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

fn admin_claims() -> Value {
    let c = with(
        good_claims(),
        "realm_access",
        json!({ "roles": ["user", "admin"] }),
    );
    with(c, "email_verified", json!(true))
}

#[test]
#[rustfmt::skip]
fn claim_rules_decide_403() {
    let cfg = authz_config(json!({}));
    let rs = |c: Value| bearer(&mint::token("RS256", &c));
    let cases: Vec<(&str, Value, u32)> = vec![
        ("all hold", admin_claims(), 200),
        ("not admin", with(admin_claims(), "realm_access", json!({ "roles": ["user"] })), 403),
        ("roles a string", with(admin_claims(), "realm_access", json!({ "roles": "admin" })), 403),
        ("email not verified", with(admin_claims(), "email_verified", json!(false)), 403),
        ("email_verified a string", with(admin_claims(), "email_verified", json!("true")), 403),
        ("other org", with(admin_claims(), "org", json!({ "id": "o3" })), 403),
        ("second org", with(admin_claims(), "org", json!({ "id": "o2" })), 200),
        ("claims missing", good_claims(), 403),
    ];
    for (name, claims, want) in cases {
        let d = decide_at(&cfg, "/claims", &[("authorization", &rs(claims))]);
        assert_eq!(status(&d).0, want, "{name}: {d:?}");
        if let Decision::Deny { denial, verdict } = d {
            assert_eq!(denial.body, "Jwt claims are not allowed", "{name}");
            assert_eq!(
                denial.www_authenticate.as_deref(),
                Some("Bearer realm=\"http://api.test/claims\", error=\"insufficient_scope\""),
                "{name}"
            );
            assert_eq!(verdict, Verdict { failure: Some(AuthError::ClaimMismatch), provider: Some(0) });
        }
    }
    // Claims are judged only on a verified token: a forged admin token is 401.
    let forged = format!("{}AAAA", mint::token("RS256", &admin_claims()).trim_end_matches(|c| c != '.'));
    let d = decide_at(&cfg, "/claims", &[("authorization", &bearer(&forged))]);
    assert_eq!(status(&d), (401, "Jwt verification fails"));
}

#[test]
fn rules_match_methods_and_hosts() {
    let cfg = authz_config(json!({}));
    let at = |method: &str, host: &str| {
        let mut req = request(method, "/get-only", &[("x-other-token", &other())]);
        req = RequestHeaders::new(
            [(":authority".to_owned(), host.as_bytes().to_vec())]
                .into_iter()
                .chain(
                    [":method", ":path", "x-other-token"]
                        .iter()
                        .filter_map(|h| Some((h.to_string(), req.get(h)?.to_vec()))),
                )
                .collect(),
        );
        decide(&cfg, &cfg, &req, NOW)
    };
    // The rule matches: `other`'s token is what it needs.
    assert_eq!(status(&at("GET", "v1.api.test:443")), (200, ""));
    // Another method or host falls through to `/` (example's token, which is missing).
    assert_eq!(status(&at("POST", "v1.api.test")).0, 401);
    assert_eq!(status(&at("GET", "api.test")).0, 401);
}

/// Decodes an identity header value.
fn identity_of(d: &Decision) -> Option<Value> {
    use base64::Engine as _;
    let (_, v) = set_headers(d)
        .into_iter()
        .find(|(k, _)| k == "x-identity")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
#[rustfmt::skip]
fn identity_header_carries_mapped_claims_with_scopes_as_an_array() {
    let cfg = authz_config(json!({}));
    let rs = |c: Value| bearer(&mint::token("RS256", &c));
    let cases: Vec<(&str, Value, Value)> = vec![
        ("scope string", with(admin_claims(), "scope", json!("read  write")),
            json!({ "user_id": "alice", "org": "o1", "roles": ["user", "admin"], "scopes": ["read", "write"] })),
        ("scope array", with(good_claims(), "scope", json!(["a", 1, "b"])),
            json!({ "user_id": "alice", "org": "o1", "scopes": ["a", "b"] })),
        ("missing and null claims left out", with(without(good_claims(), "org"), "email", Value::Null),
            json!({ "user_id": "alice" })),
        ("values keep their JSON type", with(good_claims(), "email", json!({ "n": 42 })),
            json!({ "user_id": "alice", "org": "o1", "email": { "n": 42 } })),
    ];
    for (name, claims, want) in cases {
        let d = decide_at(&cfg, "/", &[("authorization", &rs(claims))]);
        assert_eq!(identity_of(&d), Some(want), "{name}");
    }
    // Always stripped first, on every route; set only from a verified token.
    for path in ["/public", "/any"] {
        let d = decide_at(&cfg, path, &[("x-identity", "eyJ1c2VyX2lkIjoibWFsbG9yeSJ9"), ("x-other-token", &other())]);
        assert_eq!(removed(&d).first().map(String::as_str), Some("x-identity"), "{path}: {d:?}");
        assert_eq!(identity_of(&d), None, "{path}");
    }
}

#[test]
#[rustfmt::skip]
fn failure_policies_per_class() {
    let expired = bearer(&mint::token("RS256", &with(good_claims(), "exp", json!(NOW - 3600))));
    let wrong_aud = bearer(&mint::token("RS256", &with(good_claims(), "aud", json!("x"))));
    let good_token = bearer(&good());
    let policy = |missing: &str, invalid: &str| authz_config(json!({ "failure_policy": {
        "token_missing": missing, "token_invalid": invalid } }));
    // (policy, token, status, body, identity set)
    let cases: Vec<(&str, Config, Option<&str>, u32, &str, bool)> = vec![
        ("default, missing", policy("deny_401", "deny_401"), None, 401, "Jwt is missing", false),
        ("default, invalid", policy("deny_401", "deny_401"), Some(&expired), 401, "Jwt is expired", false),
        ("missing 503", policy("deny_503", "deny_401"), None, 503, "Jwt is missing", false),
        ("invalid 503", policy("deny_401", "deny_503"), Some(&expired), 503, "Jwt is expired", false),
        ("missing allowed", policy("allow", "deny_401"), None, 200, "", false),
        ("missing allowed, invalid still denied", policy("allow", "deny_401"), Some(&expired), 401, "Jwt is expired", false),
        ("invalid allowed", policy("deny_401", "allow"), Some(&expired), 200, "", false),
        ("invalid allowed, missing still denied", policy("deny_401", "allow"), None, 401, "Jwt is missing", false),
        ("a good token still gets identity", policy("allow", "allow"), Some(&good_token), 200, "", true),
        ("forbidden is always 403", policy("allow", "allow"), Some(&wrong_aud), 403, "Audiences in Jwt are not allowed", false),
    ];
    for (name, cfg, token, want_status, want_body, identity) in cases {
        let extra: Vec<(&str, &str)> = token.map(|t| ("authorization", t)).into_iter().collect();
        let d = decide_at(&cfg, "/", &extra);
        assert_eq!(status(&d), (want_status, want_body), "{name}");
        assert_eq!(identity_of(&d).is_some(), identity, "{name}");
        if let Decision::Deny { denial, .. } = &d {
            assert_eq!(denial.www_authenticate.is_some(), want_status != 503, "{name}: 503 has no challenge");
        }
        if let (Decision::Allow { ops, .. }, Some(t)) = (&d, token) {
            // Let through without identity: the unverified token is not consumed.
            if !identity {
                assert!(!ops.contains(&HeaderOp::Remove("authorization")), "{name}: {t}");
            }
        }
    }
}

/// A provider whose keys are unavailable (a remote key set that failed).
struct NoKeys;

impl KeyStore for NoKeys {
    fn keys(&self, _: ProviderId) -> Availability<'_> {
        Availability::Unavailable
    }
}

#[test]
fn keys_unavailable_policy() {
    for (policy, want) in [
        ("deny_401", (401, "Jwks remote fetch is failed")),
        ("deny_503", (503, "Jwks remote fetch is failed")),
        ("allow", (200, "")),
    ] {
        let cfg = authz_config(json!({ "failure_policy": { "keys_unavailable": policy } }));
        let req = request("GET", "/", &[("authorization", &bearer(&good()))]);
        let d = decide(&cfg, &NoKeys, &req, NOW);
        assert_eq!(status(&d), want, "{policy}");
        let verdict = match d {
            Decision::Allow { verdict, .. } | Decision::Deny { verdict, .. } => verdict,
            Decision::Wait(_) => panic!("{policy}: waits"),
        };
        assert_eq!(
            verdict.failure,
            Some(AuthError::KeysUnavailable),
            "{policy}"
        );
    }
}

fn outcome_header(d: &Decision) -> Option<String> {
    set_headers(d)
        .into_iter()
        .find(|(k, _)| k == OUTCOME_HEADER)
        .map(|(_, v)| v)
}

#[test]
#[rustfmt::skip]
fn report_only_never_denies_and_tells_the_upstream() {
    let cfg = authz_config(json!({ "report_only": true, "failure_policy": { "token_invalid": "allow" } }));
    let rs = |c: Value| bearer(&mint::token("RS256", &c));
    let cases: Vec<(&str, &str, Vec<(&str, String)>, &str, bool)> = vec![
        ("good", "/", vec![("authorization", bearer(&good()))], "allowed", true),
        ("public", "/public", vec![], "allowed", false),
        ("missing", "/", vec![], "denied; status=401; reason=missing", false),
        ("expired, policy allows", "/", vec![("authorization", rs(with(good_claims(), "exp", json!(1))))], "allowed; reason=expired", false),
        ("audience", "/", vec![("authorization", rs(with(good_claims(), "aud", json!("x"))))], "denied; status=403; reason=audience", false),
        ("claims", "/claims", vec![("authorization", bearer(&good()))], "denied; status=403; reason=claim", false),
        ("spoofed outcome and identity", "/", vec![(OUTCOME_HEADER, "allowed".into()), ("x-identity", "e30=".into())], "denied; status=401; reason=missing", false),
    ];
    for (name, path, extra, want, identity) in cases {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let d = decide_at(&cfg, path, &extra);
        assert_eq!(status(&d), (200, ""), "{name}");
        assert_eq!(outcome_header(&d).as_deref(), Some(want), "{name}");
        assert_eq!(identity_of(&d).is_some(), identity, "{name}");
        // A header the filter emits is removed wherever the client sent it.
        let removed = removed(&d);
        for spoofed in [OUTCOME_HEADER, "x-identity"] {
            let sent = extra.iter().any(|(k, _)| *k == spoofed);
            assert_eq!(removed.contains(&spoofed.to_owned()), sent, "{name}: {spoofed}");
        }
    }
    // Not in report-only: no outcome header.
    let enforcing = authz_config(json!({}));
    let d = decide_at(&enforcing, "/", &[("authorization", &bearer(&good()))]);
    assert_eq!(outcome_header(&d), None);
}

#[test]
#[rustfmt::skip]
fn verdicts_name_the_reason_and_provider() {
    let cfg = authz_config(json!({}));
    let rs = |c: Value| bearer(&mint::token("RS256", &c));
    let (example, other_id) = (Some(0), Some(1));
    let cases: Vec<(&str, &str, Vec<(&str, String)>, Option<AuthError>, Option<ProviderId>)> = vec![
        ("no rule", "/public", vec![], None, None),
        ("good", "/", vec![("authorization", bearer(&good()))], None, example),
        ("missing", "/", vec![], Some(AuthError::Missing), example),
        ("expired", "/", vec![("authorization", rs(with(good_claims(), "exp", json!(1))))], Some(AuthError::Expired), example),
        ("any: second verifies", "/any", vec![("x-other-token", other())], None, other_id),
        ("any: first fails, second missing", "/any", vec![("authorization", rs(with(good_claims(), "nbf", json!(NOW + 3600))))], Some(AuthError::NotYetValid), example),
        ("any: second fails", "/any", vec![("x-other-token", "a.b".into())], Some(AuthError::BadFormat), other_id),
    ];
    for (name, path, extra, failure, provider) in cases {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let verdict = match decide_at(&cfg, path, &extra) {
            Decision::Allow { verdict, .. } | Decision::Deny { verdict, .. } => verdict,
            Decision::Wait(_) => panic!("{name}: waits"),
        };
        assert_eq!(verdict, Verdict { failure, provider }, "{name}");
        assert!(failure.is_none_or(|f| crate::metrics::DENY_REASONS.contains(&f.reason())), "{name}");
    }
}

/// Counts the signature checks that reach it and leaves every verdict to our own code.
struct Counting(std::cell::Cell<usize>);

impl SignatureBackend for Counting {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        self.0.set(self.0.get() + 1);
        None
    }
}

/// `config()` with `jwt_cache_config` (size `size`) on `example`.
fn cached_config(size: u32) -> Config {
    let mut cfg = config_json();
    cfg["providers"]["example"]["jwt_cache_config"] = json!({ "jwt_cache_size": size });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

/// Decides `GET path` with `token` through `cache`, counting signature checks in `sigs`.
fn decide_cached<'c>(
    cfg: &'c Config,
    keys: &dyn KeyStore,
    cache: &mut TokenCache,
    sigs: &Counting,
    path: &str,
    token: &str,
    now: i64,
) -> Decision<'c> {
    let vm = Vm {
        keys,
        signatures: sigs,
        cache,
    };
    let auth = bearer(token);
    decide_in(
        cfg,
        vm,
        &request("GET", path, &[("authorization", &auth)]),
        now,
    )
}

#[test]
fn a_cached_token_skips_the_signature_but_not_the_claims() {
    let cfg = cached_config(10);
    let mut cache = cfg.token_cache();
    let sigs = Counting(std::cell::Cell::new(0));
    let token = good();
    let first = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", &token, NOW);
    assert_eq!(status(&first), (200, ""));
    assert_eq!(sigs.0.get(), 1);
    let again = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", &token, NOW + 10);
    assert_eq!(again, first, "same answer, identity headers included");
    assert_eq!(sigs.0.get(), 1, "a hit checks no signature");
    // Audience and time still decide on a hit.
    let aud = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/aud2", &token, NOW);
    assert_eq!(status(&aud).0, 403);
    let clock_back = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", &token, NOW - 7200);
    assert_eq!(
        status(&clock_back).0,
        200,
        "no nbf: an earlier clock is fine"
    );
    let nbf = mint::token("RS256", &with(good_claims(), "nbf", json!(NOW)));
    assert_eq!(
        status(&decide_cached(
            &cfg, &cfg, &mut cache, &sigs, "/x", &nbf, NOW
        ))
        .0,
        200
    );
    let checks = sigs.0.get();
    let early = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", &nbf, NOW - 3600);
    assert_eq!(status(&early).0, 401, "not yet valid, though cached");
    assert_eq!(
        sigs.0.get(),
        checks,
        "the refusal came from the cached entry's claims"
    );
    // A tampered token is another token: checked, and refused.
    let mut bad = token.clone();
    bad.push('A');
    assert_eq!(
        status(&decide_cached(
            &cfg, &cfg, &mut cache, &sigs, "/x", &bad, NOW
        ))
        .0,
        401
    );
}

#[test]
fn without_jwt_cache_config_every_request_checks_the_signature() {
    let cfg = config();
    let mut cache = cfg.token_cache();
    let sigs = Counting(std::cell::Cell::new(0));
    for _ in 0..3 {
        let d = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", &good(), NOW);
        assert_eq!(status(&d).0, 200);
    }
    assert_eq!(sigs.0.get(), 3);
}

/// Keys for every provider from one key set, which a test can replace.
struct Keys(Arc<KeySet>);

impl KeyStore for Keys {
    fn keys(&self, _: ProviderId) -> Availability<'_> {
        Availability::Ready(&self.0)
    }
}

#[test]
fn new_keys_void_the_cache() {
    let cfg = cached_config(10);
    let mut cache = cfg.token_cache();
    let sigs = Counting(std::cell::Cell::new(0));
    let old = Keys(Arc::new(KeySet::from_json(mint::JWKS).unwrap()));
    let token = good();
    for _ in 0..2 {
        decide_cached(&cfg, &old, &mut cache, &sigs, "/x", &token, NOW);
    }
    assert_eq!(sigs.0.get(), 1);
    let new = Keys(Arc::new(KeySet::from_json(mint::JWKS).unwrap()));
    for _ in 0..2 {
        let d = decide_cached(&cfg, &new, &mut cache, &sigs, "/x", &token, NOW);
        assert_eq!(status(&d).0, 200);
    }
    assert_eq!(
        sigs.0.get(),
        2,
        "verified once more under the new key set, then cached"
    );
}

#[test]
fn the_cache_holds_at_most_its_size() {
    let cfg = cached_config(2);
    let mut cache = cfg.token_cache();
    let sigs = Counting(std::cell::Cell::new(0));
    let tokens: Vec<String> = (0..3)
        .map(|n| mint::token("RS256", &with(good_claims(), "n", json!(n))))
        .collect();
    for _ in 0..2 {
        for token in &tokens {
            let d = decide_cached(&cfg, &cfg, &mut cache, &sigs, "/x", token, NOW);
            assert_eq!(status(&d).0, 200);
        }
    }
    assert_eq!(
        sigs.0.get(),
        6,
        "three tokens round-robin through two slots: all misses"
    );
    assert_eq!(cache.provider(0).map(|c| c.len()), Some(2));
}

// Hardening, round 2 (issue 11): decide on the bytes that arrive.

/// A request of raw bytes: `:method`, `:path`, `:authority` and `extra`.
fn raw_request(
    method: &str,
    path: &[u8],
    authority: &[u8],
    extra: &[(&str, &str)],
) -> RequestHeaders {
    let mut pairs = vec![
        (":method".to_owned(), method.as_bytes().to_vec()),
        (":path".to_owned(), path.to_vec()),
        (":authority".to_owned(), authority.to_vec()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    RequestHeaders::new(pairs)
}

/// Regression (issue 11, item 1): `GET /admin/users?x=\xff` with no token asks for a token, as
/// native does: before, the `:path` read as "" and no rule matched, so it was let through.
#[test]
fn non_utf8_path_still_matches_its_rule() {
    let cfg = config();
    for path in [&b"/admin/users?x=\xff"[..], b"/\xff", b"/admin\xc3\x28"] {
        let d = decide(&cfg, &cfg, &raw_request("GET", path, b"api.test", &[]), NOW);
        assert_eq!(status(&d), (401, "Jwt is missing"), "{path:?}");
    }
    // The rule that matches is the one the rest of the bytes name.
    let d = decide(
        &cfg,
        &cfg,
        &raw_request("GET", b"/public/\xff", b"api.test", &[]),
        NOW,
    );
    assert_eq!(status(&d), (200, ""));
    let token = bearer(&good());
    let req = raw_request(
        "GET",
        b"/admin?x=\xff",
        b"api.test",
        &[("authorization", &token)],
    );
    assert_eq!(status(&decide(&cfg, &cfg, &req, NOW)), (200, ""));
}

/// Regression (issue 11, item 1): a request the filter cannot read is refused with 400 (never
/// allowed, never forwarded), whatever the failure policy, and in report_only too.
#[test]
fn unreadable_requests_are_refused_with_400_whatever_the_policy() {
    let lenient = authz_config(json!({ "report_only": true, "failure_policy": {
        "token_missing": "allow", "token_invalid": "allow", "keys_unavailable": "allow" } }));
    let strict = config();
    let only_path = RequestHeaders::new(vec![(":path".to_owned(), b"/public".to_vec())]);
    let only_method = RequestHeaders::new(vec![(":method".to_owned(), b"GET".to_vec())]);
    let empty_path = RequestHeaders::new(vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), Vec::new()),
    ]);
    for cfg in [&strict, &lenient] {
        for (what, req) in [
            ("unreadable map", RequestHeaders::from_host(None)),
            ("no :method", only_path.clone()),
            ("no :path", only_method.clone()),
            ("empty :path", empty_path.clone()),
        ] {
            let d = decide(cfg, cfg, &req, NOW);
            let Decision::Deny { denial, verdict } = &d else {
                panic!("{what}: {d:?}");
            };
            assert_eq!((denial.status, denial.body), (400, "Bad request"), "{what}");
            assert_eq!(denial.www_authenticate, None, "{what}");
            assert_eq!(
                verdict.failure,
                Some(AuthError::UnreadableRequest),
                "{what}"
            );
        }
    }
}

/// Regression (issue 11, item 8): an `:authority` a `hosts` rule cannot parse refuses (400);
/// `Host: api.test.` (one trailing dot) matches `*.api.test`-style rules like `api.test`.
#[test]
fn hosts_rule_refuses_an_unparsable_authority() {
    let cfg = authz_config(json!({}));
    let other = other();
    let at = |authority: &[u8]| {
        raw_request("GET", b"/get-only", authority, &[("x-other-token", &other)])
    };
    assert_eq!(
        status(&decide(&cfg, &cfg, &at(b"v1.api.test"), NOW)),
        (200, "")
    );
    assert_eq!(
        status(&decide(&cfg, &cfg, &at(b"v1.api.test."), NOW)),
        (200, "")
    );
    for bad in [&b"v1.api.test\xff"[..], b"a b", b"u@v1.api.test"] {
        assert_eq!(
            status(&decide(&cfg, &cfg, &at(bad), NOW)),
            (400, "Bad request"),
            "{bad:?}"
        );
    }
}

/// Regression (issue 11, item 5): `methods: ["GET"]` matches `get` (HTTP/2 forwards it as
/// sent, and frameworks route it as `GET`).
#[test]
fn methods_rule_matches_any_ascii_case() {
    let cfg = authz_config(json!({}));
    let other = other();
    let other_id = cfg.providers.iter().position(|p| p.name == "other");
    for method in ["GET", "get", "Get"] {
        let req = raw_request(
            method,
            b"/get-only",
            b"v1.api.test",
            &[("x-other-token", &other)],
        );
        let d = decide(&cfg, &cfg, &req, NOW);
        assert_eq!(status(&d), (200, ""), "{method}");
        assert_eq!(
            d_verdict_provider(&d),
            other_id,
            "{method}: decided by the /get-only rule"
        );
    }
}

fn d_verdict_provider(d: &Decision) -> Option<ProviderId> {
    match d {
        Decision::Allow { verdict, .. } | Decision::Deny { verdict, .. } => verdict.provider,
        Decision::Wait(_) => None,
    }
}

/// Regression (issue 11, item 4): `cookie: session=<valid>; session=<forged>` and
/// `?access_token=<valid>&access_token=<other>` are malformed (401 invalid_token), as a comma
/// in a token header is.
#[test]
fn repeated_token_cookie_or_param_is_a_401() {
    let cfg = config();
    let good = good();
    let forged = mint::tampered(&good);
    let d = decide_at(
        &cfg,
        &format!("/?access_token={good}&access_token={forged}"),
        &[],
    );
    assert_eq!(
        status(&d),
        (401, "Jwt cookie or query parameter occurs more than once")
    );
    let Decision::Deny { denial, .. } = &d else {
        panic!("{d:?}")
    };
    assert!(denial
        .www_authenticate
        .as_deref()
        .is_some_and(|w| w.contains("error=\"invalid_token\"")));
    let mut cookies = config_json();
    cookies["providers"]["example"]["from_cookies"] = json!(["session"]);
    let cfg = Config::from_json(cookies.to_string().as_bytes()).unwrap();
    let d = decide_at(
        &cfg,
        "/",
        &[("cookie", &format!("session={good}; session={forged}"))],
    );
    assert_eq!(
        status(&d),
        (401, "Jwt cookie or query parameter occurs more than once")
    );
    let d = decide_at(&cfg, "/", &[("cookie", &format!("session={good}"))]);
    assert_eq!(status(&d), (200, ""));
}

/// Regression (issue 11, item 9): in `requires_any: [{scoped provider}, {allow_missing_or_failed}]`
/// a token that failed the scope (or audience) check gets through without its identity; a
/// good token of another provider among the rest still sets its own (as Envoy).
#[test]
fn allow_missing_or_failed_gives_no_identity_to_a_token_a_sibling_refused() {
    let mut cfg = config_json();
    cfg["rules"] = json!([
        { "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "example", "required_scopes": { "all_of": ["admin"] } },
            { "provider_and_audiences": { "provider_name": "example", "audiences": ["other-api"] } },
            { "allow_missing_or_failed": {} } ] } } }
    ]);
    let cfg = Config::from_json(cfg.to_string().as_bytes()).unwrap();
    let no_scope = bearer(&good());
    let d = decide_at(&cfg, "/", &[("authorization", &no_scope)]);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(set_headers(&d), vec![], "no identity from a refused token");
    assert_eq!(
        filter_state(&d),
        vec![],
        "no filter state from a refused token"
    );
    let admin = bearer(&mint::token(
        "RS256",
        &with(good_claims(), "scope", json!("admin")),
    ));
    let d = decide_at(&cfg, "/", &[("authorization", &admin)]);
    assert!(set_headers(&d).contains(&("x-jwt-sub".into(), "alice".into())));
    assert!(filter_state(&d).contains(&("wasm.jwt_authn_wasm.subject".into(), "alice".into())));
    // A refused token alongside a good one of another provider: only the good one's identity.
    let other = other();
    let d = decide_at(
        &cfg,
        "/",
        &[("authorization", &no_scope), ("x-other-token", &other)],
    );
    let set = set_headers(&d);
    assert!(
        set.contains(&("x-other-sub".into(), "bob".into())),
        "{set:?}"
    );
    assert!(!set.iter().any(|(k, _)| k == "x-jwt-sub"), "{set:?}");
}

/// Regression (issue 11, item 10): a client's `x-jwt-authn-outcome` is removed when not in
/// report_only too.
#[test]
fn outcome_header_from_the_client_is_removed_when_enforcing() {
    let cfg = authz_config(json!({}));
    for path in ["/public", "/"] {
        let token = bearer(&good());
        let d = decide_at(
            &cfg,
            path,
            &[(OUTCOME_HEADER, "allowed"), ("authorization", &token)],
        );
        assert!(removed(&d).contains(&OUTCOME_HEADER.to_owned()), "{path}");
        assert_eq!(outcome_header(&d), None, "{path}");
    }
}

/// Issue 18 part 3: a verified token's identity is filter state (provider, issuer, subject, and
/// one key per identity-header field), with the header rules for values; nothing without a
/// verified token, in report_only or by a failure policy `allow` either.
#[test]
#[rustfmt::skip]
fn verified_identity_becomes_filter_state() {
    let cfg = authz_config(json!({}));
    let rs = |c: Value| bearer(&mint::token("RS256", &c));
    let claims = with(with(admin_claims(), "scope", json!("read  write")), "email", json!(" padded"));
    let d = decide_at(&cfg, "/", &[("authorization", &rs(claims))]);
    let state = |k: &str, v: &str| (format!("wasm.jwt_authn_wasm.{k}"), v.to_owned());
    assert_eq!(filter_state(&d), vec![
        state("provider", "example"),
        state("issuer", "https://example.com"),
        state("subject", "alice"),
        // Fields in name order (as in the identity header); the padded email is left out,
        // as it would be from a header.
        state("identity.org", "o1"),
        state("identity.roles", r#"["user","admin"]"#),
        state("identity.scopes", "read write"),
        state("identity.user_id", "alice"),
    ]);
    let expired = rs(with(good_claims(), "exp", json!(NOW - 3600)));
    let report = authz_config(json!({ "report_only": true }));
    let allow = authz_config(json!({ "failure_policy": { "token_invalid": "allow" } }));
    for (name, cfg, path, token) in [
        ("no token", &cfg, "/public", None),
        ("report_only, expired", &report, "/", Some(&expired)),
        ("failure policy allow, expired", &allow, "/", Some(&expired)),
    ] {
        let extra: Vec<(&str, &str)> = token.map(|t| ("authorization", t.as_str())).into_iter().collect();
        let d = decide_at(cfg, path, &extra);
        assert_eq!(status(&d), (200, ""), "{name}");
        assert_eq!(filter_state(&d), vec![], "{name}");
    }
}

/// `filter_state: false` (ours, per provider): the same allowed decision with the same headers,
/// and no filter state; without it (the default) the identity is filter state.
#[test]
fn filter_state_false_sets_none() {
    let cfg = |filter_state: Option<bool>| {
        let mut provider = json!({ "issuer": "https://example.com", "audiences": ["api"],
            "local_jwks": { "inline_string": mint::JWKS },
            "identity_header": { "header_name": "x-identity", "claims": { "user_id": "sub" } } });
        if let Some(on) = filter_state {
            provider["filter_state"] = json!(on);
        }
        let cfg = json!({ "providers": { "example": provider }, "rules": [
            { "match": { "prefix": "/" }, "requires": { "provider_name": "example" } }] });
        Config::from_json(cfg.to_string().as_bytes()).unwrap()
    };
    let token = bearer(&mint::token("RS256", &good_claims()));
    let (default, on, off) = (cfg(None), cfg(Some(true)), cfg(Some(false)));
    let decided = |cfg| decide_at(cfg, "/", &[("authorization", token.as_str())]);
    let (default, on, off) = (decided(&default), decided(&on), decided(&off));
    assert_eq!(status(&off), (200, ""));
    assert_eq!(set_headers(&off), set_headers(&default));
    assert!(
        set_headers(&off).iter().any(|(k, _)| k == "x-identity"),
        "{off:?}"
    );
    assert_eq!(filter_state(&off), vec![]);
    assert_eq!(filter_state(&on), filter_state(&default));
    assert!(
        filter_state(&default)
            .iter()
            .any(|(k, _)| k == "wasm.jwt_authn_wasm.subject"),
        "{default:?}"
    );
}

// Issue 13: the open path (`decide_open`, no clock) and `decide` never differ.

/// Every config × request × time: where `decide_open` decides, `decide` decides the same at
/// any time; where it does not, a rule with `requires` matched a readable request (the only
/// case that needs a time). Over the fixture configs with and without CORS bypass, in
/// `report_only`, with failure policies `allow`, stripped failure bodies, and no rules.
#[test]
fn the_open_path_decides_as_decide_at_any_time() {
    let with_cfg = |base: Value, extra: Value| {
        let mut cfg = base;
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        Config::from_json(cfg.to_string().as_bytes()).unwrap()
    };
    let allow_all = json!({ "failure_policy": { "token_missing": "allow",
        "token_invalid": "allow", "keys_unavailable": "allow" } });
    let configs = vec![
        config(),
        with_cfg(config_json(), json!({ "bypass_cors_preflight": false })),
        with_cfg(config_json(), json!({ "report_only": true })),
        with_cfg(config_json(), json!({ "strip_failure_response": true })),
        with_cfg(config_json(), json!({ "rules": [] })),
        with_cfg(config_json(), json!({ "rules": [], "report_only": true })),
        with_cfg(config_json(), allow_all.clone()),
        authz_config(json!({})),
        authz_config(json!({ "report_only": true })),
        authz_config(json!({ "report_only": true, "bypass_cors_preflight": true })),
        authz_config(allow_all),
    ];
    let expired = bearer(&mint::token(
        "RS256",
        &with(good_claims(), "exp", json!(NOW - 3600)),
    ));
    let future = bearer(&mint::token(
        "RS256",
        &with(good_claims(), "nbf", json!(NOW + 3600)),
    ));
    let (good, other) = (bearer(&good()), other());
    let tokens: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("authorization", &good)],
        vec![("authorization", &expired)],
        vec![("authorization", &future)],
        vec![("authorization", "Bearer not.a.jwt")],
        vec![("x-other-token", &other)],
        vec![("authorization", &good), ("x-other-token", &other)],
        // Smuggled identity: removed on every route.
        vec![("x-jwt-sub", "mallory"), ("x-identity", "{}")],
    ];
    let paths = [
        "/public",
        "/public/x?q=1",
        "/optional",
        "/lenient",
        "/any-or-none",
        "/any",
        "/all",
        "/aud2",
        "/scoped",
        "/claims",
        "/get-only/x",
        "/",
        "/elsewhere",
    ];
    let cors = [
        ("origin", "https://o.test"),
        ("access-control-request-method", "GET"),
    ];
    let mut requests = Vec::new();
    for path in paths {
        for token in &tokens {
            for method in ["GET", "POST"] {
                requests.push(request(method, path, token));
            }
            let mut preflight = token.clone();
            preflight.extend(cors);
            requests.push(request("OPTIONS", path, &preflight));
            // Half a preflight is not one.
            requests.push(request("OPTIONS", path, &[cors[0]]));
        }
        requests.push(raw_request("GET", path.as_bytes(), b"x.api.test", &[]));
        requests.push(raw_request(
            "GET",
            path.as_bytes(),
            b"bad authority\xff",
            &[],
        ));
    }
    requests.push(RequestHeaders::from_host(None));
    requests.push(RequestHeaders::new(vec![(
        ":path".to_owned(),
        b"/public".to_vec(),
    )]));
    requests.push(RequestHeaders::new(vec![(
        ":method".to_owned(),
        b"GET".to_vec(),
    )]));
    let times = [NOW, 0, NOW + 86_400 * 365, i64::MAX];
    let (mut open, mut checked) = (0, 0);
    for (c, cfg) in configs.iter().enumerate() {
        for (r, headers) in requests.iter().enumerate() {
            let case = format!("config {c}, request {r}: {}", headers.url());
            match decide_open(cfg, headers) {
                Some(decided) => {
                    open += 1;
                    for now in times {
                        let full = decide(cfg, cfg, headers, now).into_final();
                        assert_eq!(full, Ok(decided.clone()), "{case} at {now}");
                    }
                }
                None => {
                    checked += 1;
                    assert!(headers.readable().is_ok(), "{case}");
                    let bypassed = cfg.bypass_cors_preflight && is_cors_preflight(headers);
                    assert!(!bypassed, "{case}");
                    let rule = cfg
                        .rules
                        .iter()
                        .find(|r| r.matcher.matches(headers) != Ok(false));
                    let rule = rule.unwrap_or_else(|| panic!("{case}: no rule matched"));
                    assert_eq!(rule.matcher.matches(headers), Ok(true), "{case}");
                    assert!(rule.requirement.is_some(), "{case}");
                }
            }
        }
    }
    // Both sides are exercised in earnest.
    assert!(
        open > 500 && checked > 500,
        "open {open}, checked {checked}"
    );
}
