//! The per-VM introspection cache alone: bounds, lifetimes from the answers, what waiters take.

use serde_json::json;

use super::*;
use crate::config::Config;

const T0: Millis = 1_700_000_000_000;
const NOW: i64 = 1_700_000_000;

fn config(introspection: serde_json::Value) -> Config {
    let mut i = json!({
        "http_uri": { "uri": "https://idp.test/introspect", "cluster": "idp", "timeout": "2s" },
        "client_id": "gw",
        "client_secret": { "inline_string": "s" },
        "allow_inline_secret": true
    });
    for (k, v) in introspection.as_object().unwrap() {
        i[k] = v.clone();
    }
    let v = json!({ "providers": {
        "jwt": { "issuer": "https://j", "local_jwks": { "inline_string": crate::mint::JWKS } },
        "opaque": { "introspection": i } } });
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

/// The opaque provider's id (providers are sorted by name).
const P: ProviderId = 1;

fn key(cache: &IntrospectionCache, token: &str) -> CacheKey {
    RequestAnswers::new(cache, T0).key("opaque", token)
}

fn active(exp: i64) -> Vec<u8> {
    json!({ "active": true, "exp": exp })
        .to_string()
        .into_bytes()
}

#[test]
fn an_answer_never_outlives_exp_and_inactive_lives_the_negative_duration() {
    let mut cache = IntrospectionCache::new(&config(json!({})), &[0; 32]);
    let k = key(&cache, "t");
    assert_eq!(cache.find(P, &k, 1, T0), Step::Ask);
    // exp in 10 s: cached 10 s, not cache_duration's 60.
    let (_, outcome) = cache.settle(P, &k, Some(200), &active(NOW + 10), T0);
    assert_eq!(outcome, Outcome::Cached);
    let known = |cache: &IntrospectionCache, at| {
        matches!(
            RequestAnswers::new(cache, at).answer(P, &k),
            Known::Answer(_)
        )
    };
    assert!(known(&cache, T0 + 9_999));
    assert!(!known(&cache, T0 + 10_000));
    // An answer whose exp has passed is handed over, not kept.
    let k2 = key(&cache, "t2");
    assert_eq!(cache.find(P, &k2, 2, T0), Step::Ask);
    let (_, outcome) = cache.settle(P, &k2, Some(200), &active(NOW - 1), T0);
    assert!(matches!(outcome, Outcome::Uncached(Answer::Active(_))));
    // Inactive: 5 s.
    let k3 = key(&cache, "t3");
    cache.find(P, &k3, 3, T0);
    cache.settle(P, &k3, Some(200), br#"{"active":false}"#, T0);
    let answers = RequestAnswers::new(&cache, T0 + 4_999);
    assert_eq!(answers.answer(P, &k3), Known::Answer(&Answer::Inactive));
    assert_eq!(
        RequestAnswers::new(&cache, T0 + 5_000).answer(P, &k3),
        Known::Unknown
    );
}

#[test]
fn cache_duration_zero_keeps_nothing_and_asks_every_time() {
    let mut cache = IntrospectionCache::new(&config(json!({ "cache_duration": "0s" })), &[0; 32]);
    let k = key(&cache, "t");
    for i in 0..3 {
        assert_eq!(cache.find(P, &k, i, T0), Step::Ask);
        let (waiters, outcome) = cache.settle(P, &k, Some(200), &active(NOW + 600), T0);
        assert_eq!(waiters, vec![i]);
        assert!(matches!(outcome, Outcome::Uncached(Answer::Active(_))));
        assert_eq!(cache.len(P), 0);
    }
}

#[test]
fn failures_are_never_cached_and_name_their_class() {
    let mut cache = IntrospectionCache::new(&config(json!({})), &[0; 32]);
    let k = key(&cache, "t");
    for (status, body, why) in [
        (None, &b""[..], Unavailable::NoResponse),
        (Some(503), &b"{}"[..], Unavailable::ServerError),
        (
            Some(401),
            &br#"{"error":"invalid_client"}"#[..],
            Unavailable::ClientRejected,
        ),
        (Some(200), &b"<html>"[..], Unavailable::NotJson),
    ] {
        assert_eq!(cache.find(P, &k, 1, T0), Step::Ask);
        let (_, outcome) = cache.settle(P, &k, status, body, T0);
        assert_eq!(outcome, Outcome::Failed(why));
        assert_eq!(cache.len(P), 0);
        assert_eq!(cache.in_flight(), 0);
    }
}

#[test]
fn in_flight_introspections_are_bounded_per_vm() {
    let mut cache = IntrospectionCache::new(&config(json!({})), &[0; 32]);
    for i in 0..MAX_IN_FLIGHT {
        let k = key(&cache, &format!("t{i}"));
        assert_eq!(cache.find(P, &k, 1, T0), Step::Ask);
    }
    let k = key(&cache, "one-too-many");
    assert_eq!(cache.find(P, &k, 2, T0), Step::Failed { also: vec![] });
    assert_eq!(cache.in_flight(), MAX_IN_FLIGHT);
    // Nothing is left behind for it: once one settles, it can be asked.
    let first = key(&cache, "t0");
    cache.settle(P, &first, Some(200), &active(NOW + 60), T0);
    assert_eq!(cache.find(P, &k, 2, T0), Step::Ask);
}

#[test]
fn max_cache_entries_bounds_the_table() {
    let mut cache = IntrospectionCache::new(&config(json!({ "max_cache_entries": 2 })), &[0; 32]);
    for t in ["a", "b", "c"] {
        let k = key(&cache, t);
        assert_eq!(cache.find(P, &k, 1, T0), Step::Ask, "{t}");
        cache.settle(P, &k, Some(200), &active(NOW + 600), T0);
    }
    assert_eq!(cache.len(P), 2);
    // The oldest went first.
    let answers = RequestAnswers::new(&cache, T0);
    assert_eq!(answers.answer(P, &key(&cache, "a")), Known::Unknown);
    assert!(matches!(
        answers.answer(P, &key(&cache, "c")),
        Known::Answer(_)
    ));
    // A JWT provider has no table: nothing can be known there.
    assert_eq!(answers.answer(0, &key(&cache, "a")), Known::Failed);
}

#[test]
fn a_refused_filter_is_a_warning_naming_the_provider_not_the_secret() {
    let line = refusal_warning("opaque", Unavailable::ClientRejected).unwrap();
    assert!(
        line.contains("`opaque`") && line.contains("401/403"),
        "{line}"
    );
    assert!(!line.contains("gateway-secret"));
    assert_eq!(refusal_warning("opaque", Unavailable::ServerError), None);
}

#[test]
fn cache_hits_are_counted_per_read_from_the_cache() {
    let mut cache = IntrospectionCache::new(&config(json!({})), &[0; 32]);
    let k = key(&cache, "t");
    let answers = RequestAnswers::new(&cache, T0);
    assert_eq!(answers.answer(P, &k), Known::Unknown);
    assert!(answers.cache_hits().is_empty());
    cache.find(P, &k, 1, T0);
    cache.settle(P, &k, Some(200), &active(NOW + 600), T0);
    let answers = RequestAnswers::new(&cache, T0);
    assert!(matches!(answers.answer(P, &k), Known::Answer(_)));
    assert_eq!(answers.cache_hits(), vec![P]);
}
