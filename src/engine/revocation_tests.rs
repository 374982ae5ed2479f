//! The revocation check on the request path (issue 15), natively: a provider with `revocation`
//! and a store that hands the engine a list (or none). What a client sees: status, body,
//! challenge; what the stats see: the reason.

use serde_json::{json, Value};

use super::*;
use crate::mint;
use crate::revocation::RevocationList;
use crate::signature::SignatureBackend;
use std::cell::Cell;

/// The fixed "now" of every test: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

/// `example` (with a verified-token cache) checks a revocation list; `other` does not.
fn config_with(policy: Value) -> Config {
    let json = json!({
        "providers": {
            "example": {
                "issuer": "https://example.com",
                "local_jwks": { "inline_string": mint::JWKS },
                "jwt_cache_config": { "jwt_cache_size": 10 },
                "revocation": {
                    "http_uri": { "uri": "https://idp.example.com/revocations.json",
                                  "cluster": "idp", "timeout": "2s" },
                    "cache_duration": "1s",
                    "max_staleness": "5s"
                }
            },
            "other": {
                "issuer": "https://other.com",
                "from_headers": [ { "name": "x-other-token" } ],
                "local_jwks": { "inline_string": mint::JWKS }
            }
        },
        "rules": [
            { "match": { "prefix": "/other" }, "requires": { "provider_name": "other" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "example" } }
        ],
        "failure_policy": policy
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

fn config() -> Config {
    config_with(json!({}))
}

/// The list of the tests: jti `j-revoked`, sub `mallory`, alice's tokens issued before NOW.
fn list() -> RevocationList {
    RevocationList::parse(
        json!({ "issued_at": NOW - 10, "jti": ["j-revoked"], "sub": ["mallory"],
                "issued_before": { "sub": { "alice": NOW } } })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn token(claims: Value) -> String {
    let mut payload = json!({ "iss": "https://example.com", "sub": "bob", "exp": NOW + 3600,
                              "iat": NOW - 60 });
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    // `null`: the token has no such claim.
    payload.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    mint::token("RS256", &payload)
}

/// Keys from the configuration; the revocation list as given.
struct Lists<'l> {
    config: &'l Config,
    list: ListAvailability<'l>,
}

impl KeyStore for Lists<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        self.config.keys(provider)
    }
    fn revocation(&self, _provider: ProviderId) -> ListAvailability<'_> {
        self.list
    }
}

struct Counting(Cell<usize>);

impl SignatureBackend for Counting {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        self.0.set(self.0.get() + 1);
        None
    }
}

fn request(path: &str, header: &str, token: &str) -> RequestHeaders {
    RequestHeaders::new(vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.test".to_vec()),
        (":scheme".to_owned(), b"http".to_vec()),
        (header.to_owned(), token.as_bytes().to_vec()),
    ])
}

fn decide_with<'c>(
    cfg: &'c Config,
    list: ListAvailability<'_>,
    cache: &mut TokenCache,
    sigs: &Counting,
    token: &str,
) -> Decision<'c> {
    let store = Lists { config: cfg, list };
    let vm = Vm {
        keys: &store,
        signatures: sigs,
        cache,
    };
    let auth = format!("Bearer {token}");
    decide_in(cfg, vm, &request("/api", "authorization", &auth), NOW)
}

fn decide_once<'c>(cfg: &'c Config, list: ListAvailability<'_>, token: &str) -> Decision<'c> {
    let sigs = Counting(Cell::new(0));
    decide_with(cfg, list, &mut cfg.token_cache(), &sigs, token)
}

/// (status, body, challenge, reason) of a final decision.
fn seen(d: &Decision) -> (u32, &'static str, Option<String>, Option<&'static str>) {
    match d {
        Decision::Allow { verdict, .. } => (200, "", None, verdict.failure.map(AuthError::reason)),
        Decision::Deny { denial, verdict } => (
            denial.status,
            denial.body,
            denial.www_authenticate.clone(),
            verdict.failure.map(AuthError::reason),
        ),
        Decision::Wait(_) => (0, "wait", None, None),
    }
}

const CHALLENGE: &str = r#"Bearer realm="http://api.test/api", error="invalid_token""#;

type Seen = (u32, &'static str, Option<String>, Option<&'static str>);

fn revoked() -> Seen {
    (
        401,
        "Jwt has been revoked",
        Some(CHALLENGE.to_owned()),
        Some("revoked"),
    )
}

const ALLOWED: Seen = (200, "", None, None);

#[test]
fn a_listed_token_is_401_invalid_token_jwt_has_been_revoked() {
    let cfg = config();
    let list = list();
    let ready = ListAvailability::Ready(&list);
    for (name, claims, want) in [
        ("not listed", json!({}), ALLOWED),
        ("listed jti", json!({ "jti": "j-revoked" }), revoked()),
        ("listed sub", json!({ "sub": "mallory" }), revoked()),
        (
            "alice before her cutoff",
            json!({ "sub": "alice", "iat": NOW - 1 }),
            revoked(),
        ),
        (
            "alice without iat",
            json!({ "sub": "alice", "iat": null }),
            revoked(),
        ),
        (
            "alice after her cutoff",
            json!({ "sub": "alice", "iat": NOW }),
            ALLOWED,
        ),
        ("another jti", json!({ "jti": "j-other" }), ALLOWED),
        ("a jti that is not a string", json!({ "jti": 7 }), ALLOWED),
    ] {
        let t = token(claims);
        assert_eq!(seen(&decide_once(&cfg, ready, &t)), want, "{name}");
    }
    assert!(crate::metrics::DENY_REASONS.contains(&"revoked"));
    assert!(crate::metrics::DENY_REASONS.contains(&"revocation_unavailable"));
}

#[test]
fn revocation_comes_after_signature_issuer_and_time() {
    let cfg = config();
    let list = list();
    let ready = ListAvailability::Ready(&list);
    let expired = token(json!({ "jti": "j-revoked", "exp": NOW - 3600 }));
    assert_eq!(seen(&decide_once(&cfg, ready, &expired)).3, Some("expired"));
    let tampered = mint::tampered(&token(json!({ "jti": "j-revoked" })));
    assert_eq!(
        seen(&decide_once(&cfg, ready, &tampered)).3,
        Some("signature")
    );
    // Nor is a list asked for when the signature fails: no wait for a pending one.
    let d = decide_once(&cfg, ListAvailability::Pending, &tampered);
    assert_eq!(seen(&d).3, Some("signature"));
}

#[test]
fn a_cached_token_is_checked_against_the_current_list() {
    let cfg = config();
    let mut cache = cfg.token_cache();
    let sigs = Counting(Cell::new(0));
    let t = token(json!({ "jti": "j-revoked" }));
    let empty = RevocationList::parse(br#"{"issued_at": 1}"#).unwrap();
    let first = decide_with(&cfg, ListAvailability::Ready(&empty), &mut cache, &sigs, &t);
    assert_eq!(seen(&first).0, 200);
    assert_eq!(sigs.0.get(), 1);
    // The list now revokes it: the cache vouches for the signature only.
    let list = list();
    let again = decide_with(&cfg, ListAvailability::Ready(&list), &mut cache, &sigs, &t);
    assert_eq!(seen(&again).1, "Jwt has been revoked");
    assert_eq!(sigs.0.get(), 1, "the second decision was a cache hit");
}

#[test]
fn no_list_yet_waits_and_no_list_at_all_is_503() {
    let cfg = config();
    let t = token(json!({}));
    assert_eq!(
        decide_once(&cfg, ListAvailability::Pending, &t),
        Decision::Wait(Wait {
            provider: cfg.provider_id("example").unwrap(),
            kid: None
        })
    );
    assert_eq!(
        seen(&decide_once(&cfg, ListAvailability::Unavailable, &t)),
        (
            503,
            "Jwt revocation list is unavailable",
            None,
            Some("revocation_unavailable")
        )
    );
    // A store that holds no lists (the default method) fails closed too.
    let d = decide(
        &cfg,
        &cfg,
        &request("/api", "authorization", &format!("Bearer {t}")),
        NOW,
    );
    assert_eq!(seen(&d).0, 503);
    // A provider without `revocation` never asks.
    let o = mint::token(
        "ES256",
        &json!({ "iss": "https://other.com", "sub": "mallory", "exp": NOW + 60 }),
    );
    let d = decide(&cfg, &cfg, &request("/other", "x-other-token", &o), NOW);
    assert_eq!(seen(&d).0, 200);
}

#[test]
fn revocation_unavailable_follows_its_failure_policy() {
    let t = token(json!({}));
    for (policy, want) in [("deny_503", 503), ("deny_401", 401), ("allow", 200)] {
        let cfg = config_with(json!({ "revocation_unavailable": policy }));
        let d = decide_once(&cfg, ListAvailability::Unavailable, &t);
        assert_eq!(seen(&d).0, want, "{policy}");
        assert_eq!(seen(&d).3, Some("revocation_unavailable"), "{policy}");
    }
    // `token_invalid` governs a revoked token (it is one), not the list's absence.
    let cfg = config_with(json!({ "token_invalid": "deny_503" }));
    let list = list();
    let d = decide_once(
        &cfg,
        ListAvailability::Ready(&list),
        &token(json!({ "sub": "mallory" })),
    );
    assert_eq!(seen(&d).0, 503);
}
