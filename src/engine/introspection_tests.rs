//! Opaque tokens through the core (issue 14), natively: the engine and the per-VM cache driven
//! as the instance core will drive them (decide → ask → settle → decide again), against a fake
//! authorization server that counts its calls. Each test asserts what a client sees (status,
//! body, headers at the upstream) and how many introspections were made.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::introspection::cache::{IntrospectionCache, Outcome, RequestAnswers, Step};
use crate::introspection::Needed;
use crate::jwks_cache::Millis;
use crate::mint;

/// The fixed "now" of every test, in seconds: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.example.com";

fn config_json() -> Value {
    json!({
        "providers": {
            "jwt": {
                "issuer": ISSUER,
                "local_jwks": { "inline_string": mint::JWKS },
                "claim_to_headers": [{ "header_name": "x-sub", "claim_name": "sub" }]
            },
            "opaque": {
                "issuer": ISSUER,
                "introspection": {
                    "http_uri": { "uri": "https://idp.example.com/token/introspection",
                                  "cluster": "idp", "timeout": "2s" },
                    "client_id": "gateway",
                    "client_secret": { "inline_string": "gateway-secret" },
                    "allow_inline_secret": true,
                    "cache_duration": "60s",
                    "negative_cache_duration": "5s",
                    "stale_if_error": "120s"
                },
                "claim_to_headers": [{ "header_name": "x-client-id", "claim_name": "client_id" }],
                "identity_header": { "header_name": "x-identity",
                                     "claims": { "client": "client_id", "scopes": "scope" } }
            }
        },
        "rules": [
            { "match": { "prefix": "/any" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "jwt" }, { "provider_name": "opaque" } ] } } },
            { "match": { "prefix": "/scoped" }, "requires": { "provider_name": "opaque",
                "required_scopes": { "all_of": ["read"] } } },
            { "match": { "prefix": "/claims" }, "requires": { "provider_name": "opaque",
                "required_claims": [{ "name": "username", "equals": "jdoe" }] } },
            { "match": { "prefix": "/aud" }, "requires": { "provider_and_audiences": {
                "provider_name": "opaque", "audiences": ["api"] } } },
            { "match": { "prefix": "/optional" }, "requires": { "allow_missing": {} } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "opaque" } }
        ]
    })
}

fn config_with(patch: Value) -> Config {
    let mut v = config_json();
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

/// An RFC 7662 answer for client `gateway-app`, active, scope "read write", exp in an hour.
fn active() -> Value {
    json!({ "active": true, "iss": ISSUER, "client_id": "gateway-app", "username": "jdoe",
            "scope": "read write", "exp": NOW + 3600, "token_type": "Bearer" })
}

/// The fake authorization server: what it answers per token, and the calls it got.
#[derive(Default)]
struct Server {
    answers: HashMap<String, (u32, String)>,
    calls: RefCell<Vec<String>>,
    down: bool,
}

impl Server {
    fn with(mut self, token: &str, status: u32, body: Value) -> Self {
        self.answers
            .insert(token.to_owned(), (status, body.to_string()));
        self
    }

    /// The answer to one introspection callout: (status, body); `None` status: no response.
    fn answer(&self, needed: &Needed) -> (Option<u32>, Vec<u8>) {
        let body = String::from_utf8(needed.request.body.clone()).unwrap();
        let token = body
            .split('&')
            .find_map(|p| p.strip_prefix("token="))
            .unwrap()
            .to_owned();
        // The filter authenticates as configured, client_secret_basic by default.
        assert!(needed
            .request
            .header("authorization")
            .is_some_and(|v| v.starts_with("Basic ")));
        self.calls.borrow_mut().push(token.clone());
        if self.down {
            return (None, Vec::new());
        }
        match self.answers.get(&token) {
            Some((status, body)) => (Some(*status), body.clone().into_bytes()),
            None => (Some(200), br#"{"active":false}"#.to_vec()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.borrow().len()
    }
}

fn request(path: &str, token: Option<&str>) -> RequestHeaders {
    let mut pairs = vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.test".to_vec()),
        (":scheme".to_owned(), b"http".to_vec()),
    ];
    if let Some(t) = token {
        pairs.push((
            "authorization".to_owned(),
            format!("Bearer {t}").into_bytes(),
        ));
    }
    RequestHeaders::new(pairs)
}

/// One VM: its configuration and introspection cache.
struct Vm1 {
    config: Config,
    cache: IntrospectionCache,
}

impl Vm1 {
    fn new(config: Config) -> Vm1 {
        let cache = IntrospectionCache::new(&config, &[7; 32]);
        Vm1 { config, cache }
    }

    /// Decides one request at `now_ms` as the instance core will: decide; ask what is needed
    /// (the server answers at once); settle; decide again with what the request was told.
    fn decide(
        &mut self,
        server: &Server,
        path: &str,
        token: Option<&str>,
        now_ms: Millis,
    ) -> Decision<'_> {
        let headers = request(path, token);
        let now = i64::try_from(now_ms / 1000).unwrap();
        let mut own: Vec<(
            ProviderId,
            crate::introspection::CacheKey,
            Result<crate::introspection::Answer, crate::oauth::Unavailable>,
        )> = Vec::new();
        for _round in 0..4 {
            let needed = {
                let mut answers = RequestAnswers::new(&self.cache, now_ms);
                for (p, k, o) in &own {
                    answers.record(*p, *k, o.clone());
                }
                let keys: &Config = &self.config;
                let vm = Vm {
                    keys,
                    signatures: &crate::signature::PureRust,
                    cache: &mut crate::token_cache::TokenCache::disabled(),
                };
                match decide_introspecting(&self.config, vm, &answers, &headers, now) {
                    Introspecting::Decided(_) => None,
                    Introspecting::Ask(needed) => Some(needed),
                }
            };
            let Some(needed) = needed else {
                // Decide for real, borrowing the configuration for the caller.
                let mut answers = RequestAnswers::new(&self.cache, now_ms);
                for (p, k, o) in &own {
                    answers.record(*p, *k, o.clone());
                }
                let vm = Vm {
                    keys: &self.config,
                    signatures: &crate::signature::PureRust,
                    cache: &mut crate::token_cache::TokenCache::disabled(),
                };
                return match decide_introspecting(&self.config, vm, &answers, &headers, now) {
                    Introspecting::Decided(d) => d,
                    Introspecting::Ask(n) => panic!("asked again for {n:?}"),
                };
            };
            for n in needed {
                match self.cache.find(n.provider, &n.key, 1, now_ms) {
                    Step::Ask => {
                        let (status, body) = server.answer(&n);
                        let (waiters, outcome) =
                            self.cache.settle(n.provider, &n.key, status, &body, now_ms);
                        assert_eq!(waiters, vec![1]);
                        match outcome {
                            Outcome::Cached => {}
                            Outcome::Uncached(a) => own.push((n.provider, n.key, Ok(a))),
                            Outcome::Failed(e) => own.push((n.provider, n.key, Err(e))),
                        }
                    }
                    Step::Ready => {}
                    Step::Wait => panic!("nobody else is asking"),
                    Step::Failed { .. } => own.push((
                        n.provider,
                        n.key,
                        Err(crate::oauth::Unavailable::NoResponse),
                    )),
                }
            }
        }
        panic!("not decided after 4 rounds");
    }
}

const T0: Millis = 1_700_000_000_000;

fn status(d: &Decision) -> (u32, &'static str) {
    match d {
        Decision::Allow { .. } => (200, ""),
        Decision::Deny { denial, .. } => (denial.status, denial.body),
        Decision::Wait(_) => (0, "wait"),
    }
}

fn header(d: &Decision, name: &str) -> Option<String> {
    match d {
        Decision::Allow { ops, .. } => ops.iter().find_map(|op| match op {
            HeaderOp::Set(k, v) if *k == name => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    }
}

fn reason(d: &Decision) -> Option<&'static str> {
    match d {
        Decision::Allow { verdict, .. } | Decision::Deny { verdict, .. } => {
            verdict.failure.map(AuthError::reason)
        }
        Decision::Wait(_) => None,
    }
}

#[test]
fn an_active_token_is_allowed_with_its_claims_and_asked_once() {
    let server = Server::default().with("opaque-1", 200, active());
    let mut vm = Vm1::new(config_with(json!({})));
    let d = vm.decide(&server, "/", Some("opaque-1"), T0);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(header(&d, "x-client-id").as_deref(), Some("gateway-app"));
    let identity = header(&d, "x-identity").unwrap();
    let identity: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, identity).unwrap(),
    )
    .unwrap();
    assert_eq!(
        identity,
        json!({ "client": "gateway-app", "scopes": ["read", "write"] })
    );
    // From the cache: no second call, the same answer.
    let d = vm.decide(&server, "/", Some("opaque-1"), T0 + 30_000);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(server.calls(), 1);
    // Past cache_duration (60 s) the server is asked again.
    let d = vm.decide(&server, "/", Some("opaque-1"), T0 + 61_000);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(server.calls(), 2);
}

#[test]
fn an_inactive_token_is_401_and_remembered_for_the_negative_duration() {
    let server = Server::default();
    let mut vm = Vm1::new(config_with(json!({})));
    let d = vm.decide(&server, "/", Some("revoked"), T0);
    assert_eq!(status(&d), (401, "Token is not active"));
    assert_eq!(reason(&d), Some("inactive"));
    let Decision::Deny { denial, .. } = &d else {
        panic!("not denied: {d:?}")
    };
    assert!(denial
        .www_authenticate
        .as_deref()
        .is_some_and(|w| w.contains(r#"error="invalid_token""#)));
    vm.decide(&server, "/", Some("revoked"), T0 + 4_000);
    assert_eq!(server.calls(), 1, "negative answer cached 5 s");
    vm.decide(&server, "/", Some("revoked"), T0 + 5_000);
    assert_eq!(server.calls(), 2);
}

#[test]
fn a_failing_server_decides_by_the_introspection_unavailable_policy() {
    for (status_code, body) in [
        (500, json!({ "error": "boom" })),
        (401, json!({ "error": "invalid_client" })),
        (200, json!({ "active": "true" })),
    ] {
        let server = Server::default().with("t", status_code, body.clone());
        for (policy, expected) in [
            (json!({}), 503),
            (
                json!({ "failure_policy": { "introspection_unavailable": "deny_401" } }),
                401,
            ),
            (
                json!({ "failure_policy": { "introspection_unavailable": "allow" } }),
                200,
            ),
        ] {
            let mut vm = Vm1::new(config_with(policy.clone()));
            let d = vm.decide(&server, "/", Some("t"), T0);
            assert_eq!(status(&d).0, expected, "{status_code} {body} {policy}");
            assert_eq!(reason(&d), Some("introspection_unavailable"));
            // Let through by `allow`: without identity.
            assert_eq!(header(&d, "x-client-id"), None);
        }
    }
}

#[test]
fn errors_are_never_cached_and_a_stale_answer_serves_within_stale_if_error() {
    let mut server = Server::default().with("t", 200, active());
    let mut vm = Vm1::new(config_with(json!({})));
    assert_eq!(status(&vm.decide(&server, "/", Some("t"), T0)).0, 200);
    server.down = true;
    // A new token while the server is down: 503, and asked again next time (not cached).
    assert_eq!(status(&vm.decide(&server, "/", Some("new"), T0)).0, 503);
    assert_eq!(
        status(&vm.decide(&server, "/", Some("new"), T0 + 10)).0,
        503
    );
    assert_eq!(server.calls(), 3);
    // 61 s: past cache_duration, within stale_if_error (120 s): served from the stale answer.
    let d = vm.decide(&server, "/", Some("t"), T0 + 61_000);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(header(&d, "x-client-id").as_deref(), Some("gateway-app"));
    // 181 s: past both: 503.
    assert_eq!(
        status(&vm.decide(&server, "/", Some("t"), T0 + 181_000)).0,
        503
    );
}

#[test]
fn a_token_that_is_no_b64token_or_too_large_is_refused_before_any_callout() {
    let server = Server::default();
    let mut vm = Vm1::new(config_with(json!({})));
    for (token, reason_) in [
        ("a\"b", "malformed"),
        ("=abc", "malformed"),
        (&*"a".repeat(16 * 1024 + 1), "malformed"),
    ] {
        let d = vm.decide(&server, "/", Some(token), T0);
        assert_eq!(status(&d).0, 401, "{token:.20}");
        assert_eq!(reason(&d), Some(reason_));
    }
    assert_eq!(server.calls(), 0);
    // The largest b64token accepted is introspected.
    let d = vm.decide(&server, "/", Some(&"a".repeat(16 * 1024)), T0);
    assert_eq!(reason(&d), Some("inactive"));
    assert_eq!(server.calls(), 1);
}

#[test]
fn requires_any_accepts_a_jwt_or_an_opaque_token() {
    let server = Server::default().with("opaque-1", 200, active());
    let mut vm = Vm1::new(config_with(json!({})));
    let jwt = mint::token(
        "RS256",
        &json!({ "iss": ISSUER, "sub": "alice", "exp": NOW + 600 }),
    );
    let d = vm.decide(&server, "/any", Some(&jwt), T0);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(header(&d, "x-sub").as_deref(), Some("alice"));
    assert_eq!(
        server.calls(),
        0,
        "a JWT of the JWT provider's issuer is never introspected"
    );
    let d = vm.decide(&server, "/any", Some("opaque-1"), T0);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(header(&d, "x-client-id").as_deref(), Some("gateway-app"));
    assert_eq!(server.calls(), 1);
    // A JWT of that issuer with a bad signature is the JWT provider's to refuse, not
    // introspected into acceptance.
    let mut forged = jwt.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let d = vm.decide(&server, "/any", Some(&forged), T0);
    assert_eq!(status(&d).0, 401);
    assert_eq!(server.calls(), 1);
    // allow_missing routes the same way: opaque tokens are introspected.
    let d = vm.decide(&server, "/optional", Some("opaque-1"), T0);
    assert_eq!(status(&d), (200, ""));
    assert_eq!(header(&d, "x-client-id").as_deref(), Some("gateway-app"));
    assert_eq!(
        status(&vm.decide(&server, "/optional", Some("bad-one"), T0)).0,
        401
    );
}

#[test]
fn a_jwt_of_an_issuer_no_jwt_provider_names_is_introspected() {
    let jwt = mint::token(
        "RS256",
        &json!({ "iss": "https://elsewhere.example", "sub": "x", "exp": NOW + 600 }),
    );
    let server = Server::default().with(&jwt, 200, active());
    let mut vm = Vm1::new(config_with(json!({})));
    assert_eq!(status(&vm.decide(&server, "/", Some(&jwt), T0)), (200, ""));
    assert_eq!(server.calls(), 1);
}

#[test]
fn the_answers_claims_get_the_providers_and_the_routes_checks() {
    let cases: Vec<(&str, Value, (u32, &str))> = vec![
        (
            "/",
            with(active(), "exp", json!(NOW - 61)),
            (401, "Jwt is expired"),
        ),
        ("/", with(active(), "exp", json!(NOW - 59)), (200, "")),
        (
            "/",
            with(active(), "nbf", json!(NOW + 61)),
            (401, "Jwt not yet valid"),
        ),
        (
            "/",
            with(active(), "iss", json!("https://other.example")),
            (401, "Jwt issuer is not configured"),
        ),
        ("/", without(active(), "iss"), (200, "")),
        ("/aud", active(), (403, "Audiences in Jwt are not allowed")),
        (
            "/aud",
            with(active(), "aud", json!(["api", "x"])),
            (200, ""),
        ),
        ("/scoped", active(), (200, "")),
        (
            "/scoped",
            with(active(), "scope", json!("write")),
            (403, "Jwt lacks a required scope"),
        ),
        ("/claims", active(), (200, "")),
        (
            "/claims",
            with(active(), "username", json!("eve")),
            (403, "Jwt claims are not allowed"),
        ),
    ];
    for (path, answer, expected) in cases {
        let server = Server::default().with("t", 200, answer.clone());
        let mut vm = Vm1::new(config_with(json!({})));
        let d = vm.decide(&server, path, Some("t"), T0);
        assert_eq!(status(&d), expected, "{path} {answer}");
    }
}

fn with(mut v: Value, k: &str, val: Value) -> Value {
    v[k] = val;
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

#[test]
fn requests_with_one_new_token_make_one_call() {
    let config = config_with(json!({}));
    let mut cache = IntrospectionCache::new(&config, &[1; 32]);
    let headers = request("/", Some("shared"));
    let ask = |cache: &IntrospectionCache| {
        let answers = RequestAnswers::new(cache, T0);
        let vm = Vm {
            keys: &config,
            signatures: &crate::signature::PureRust,
            cache: &mut crate::token_cache::TokenCache::disabled(),
        };
        match decide_introspecting(&config, vm, &answers, &headers, NOW) {
            Introspecting::Ask(needed) => needed,
            Introspecting::Decided(d) => panic!("decided: {d:?}"),
        }
    };
    let needed = ask(&cache);
    assert_eq!(needed.len(), 1);
    let n = needed.first().unwrap().clone();
    // The callout carries the token and authenticates the filter; its Debug shows neither.
    let body = String::from_utf8(n.request.body.clone()).unwrap();
    assert!(body.contains("token=shared") && body.contains("token_type_hint=access_token"));
    assert!(!format!("{n:?}").contains("shared"));
    assert_eq!(cache.find(n.provider, &n.key, 1, T0), Step::Ask);
    for stream in 2..=50 {
        assert_eq!(ask(&cache).first().map(|m| m.key), Some(n.key));
        assert_eq!(cache.find(n.provider, &n.key, stream, T0), Step::Wait);
    }
    assert_eq!(cache.in_flight(), 1, "one introspection for 50 requests");
    let (waiters, outcome) = cache.settle(
        n.provider,
        &n.key,
        Some(200),
        active().to_string().as_bytes(),
        T0 + 5,
    );
    assert_eq!(waiters, (1..=50).collect::<Vec<u32>>());
    assert_eq!(outcome, Outcome::Cached);
    assert_eq!(cache.in_flight(), 0);
    let answers = RequestAnswers::new(&cache, T0 + 5);
    let vm = Vm {
        keys: &config,
        signatures: &crate::signature::PureRust,
        cache: &mut crate::token_cache::TokenCache::disabled(),
    };
    let d = decide_introspecting(&config, vm, &answers, &headers, NOW);
    assert!(
        matches!(d, Introspecting::Decided(Decision::Allow { .. })),
        "{d:?}"
    );
}

#[test]
fn the_decision_without_introspection_wired_is_503_not_allow() {
    // `engine::decide` (the glue before the seam) cannot ask: introspection_unavailable.
    let config = config_with(json!({}));
    let d = decide(&config, &config, &request("/", Some("opaque-1")), NOW);
    assert_eq!(status(&d).0, 503);
    assert_eq!(reason(&d), Some("introspection_unavailable"));
}
