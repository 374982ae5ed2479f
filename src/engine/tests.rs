//! The core end to end, natively: configuration JSON + request headers + a fixed clock →
//! decision. One row per behaviour; tokens are minted from the fixture keys.

use serde_json::{json, Value};

use super::*;
use crate::mint;

/// The fixed "now" of every test: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fn config() -> Config {
    let cfg = json!({
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
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
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

fn decide_at(cfg: &Config, path: &str, extra: &[(&str, &str)]) -> Decision {
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
                HeaderOp::Set(k, v) => Some((k.clone(), v.clone())),
                HeaderOp::Remove(_) => None,
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
                HeaderOp::Remove(k) => Some(k.clone()),
                HeaderOp::Set(..) => None,
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
        let got = status(&decide_at(&cfg, path, &extra));
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
    let want = ["x-jwt-org", "x-jwt-payload", "x-jwt-sub", "x-other-sub"];
    for path in ["/public", "/optional", "/lenient", "/"] {
        let token = bearer(&good());
        let d = decide_at(
            &cfg,
            path,
            &[("authorization", &token), ("x-jwt-sub", "mallory")],
        );
        let Decision::Allow { ops, .. } = &d else {
            panic!("{path}: {d:?}")
        };
        let first: Vec<_> = ops.iter().take(want.len()).cloned().collect();
        let expected: Vec<_> = want
            .iter()
            .map(|h| HeaderOp::Remove(h.to_string()))
            .collect();
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
        removed(&d).len(),
        cfg.emitted_headers.len(),
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
