use serde_json::json;

use super::*;
use crate::mint;

const NOW: i64 = 1_700_000_000;

/// A verified token with `exp` (or none), numbered by `sub` so each is distinct.
fn token(n: u32, exp: Option<i64>) -> (Rc<str>, Verified) {
    let mut claims = json!({ "iss": "i", "sub": n.to_string() });
    if let Some(exp) = exp {
        claims["exp"] = json!(exp);
    }
    let text = mint::token("HS256", &claims);
    let jwt = Verified::for_test(json!({ "alg": "HS256" }), claims);
    (Rc::from(text), jwt)
}

#[test]
fn hit_only_under_the_key_set_that_verified_it() {
    let mut cache = ProviderCache::new(10);
    let (h, jwt) = token(1, Some(NOW + 100));
    assert!(cache.get(&h, 7, NOW).is_none(), "empty");
    cache.insert(Rc::clone(&h), jwt, 7, NOW);
    assert!(cache.get(&h, 7, NOW).is_some());
    assert!(cache.get(&h, 8, NOW).is_none(), "new keys: a miss");
    let (other, _) = token(2, Some(NOW + 100));
    assert!(cache.get(&other, 7, NOW).is_none(), "another token");
}

#[test]
fn entries_end_at_exp_or_the_max_ttl() {
    let mut cache = ProviderCache::new(10);
    let (soon, jwt) = token(1, Some(NOW + 5));
    cache.insert(Rc::clone(&soon), jwt, 1, NOW);
    assert!(cache.get(&soon, 1, NOW + 4).is_some());
    assert!(cache.get(&soon, 1, NOW + 5).is_none(), "at exp");

    let (far, jwt) = token(2, Some(NOW + 100 * MAX_TTL_SECONDS));
    cache.insert(Rc::clone(&far), jwt, 1, NOW);
    assert!(cache.get(&far, 1, NOW + MAX_TTL_SECONDS - 1).is_some());
    assert!(cache.get(&far, 1, NOW + MAX_TTL_SECONDS).is_none());

    let (never, jwt) = token(3, None);
    cache.insert(Rc::clone(&never), jwt, 1, NOW);
    assert!(cache.get(&never, 1, NOW + MAX_TTL_SECONDS).is_none());
}

#[test]
fn bounded_the_oldest_goes_first() {
    let mut cache = ProviderCache::new(3);
    let tokens: Vec<_> = (0..5).map(|n| token(n, Some(NOW + 100))).collect();
    for (h, jwt) in &tokens {
        cache.insert(Rc::clone(h), jwt.clone(), 1, NOW);
        assert!(cache.len() <= 3);
    }
    let present: Vec<bool> = tokens
        .iter()
        .map(|(h, _)| cache.get(h, 1, NOW).is_some())
        .collect();
    assert_eq!(present, [false, false, true, true, true]);
}

#[test]
fn a_reinserted_token_keeps_one_entry() {
    let mut cache = ProviderCache::new(2);
    let (a, jwt_a) = token(1, Some(NOW + 100));
    let (b, jwt_b) = token(2, Some(NOW + 100));
    cache.insert(Rc::clone(&a), jwt_a.clone(), 1, NOW);
    cache.insert(Rc::clone(&a), jwt_a.clone(), 2, NOW); // verified again under new keys
    cache.insert(Rc::clone(&b), jwt_b, 2, NOW);
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&a, 2, NOW).is_some());
    assert!(cache.get(&b, 2, NOW).is_some());
    // Many more tokens: the cache never holds more than its size, whatever came twice.
    for n in 3..50 {
        let (h, jwt) = token(n, Some(NOW + 100));
        cache.insert(Rc::clone(&h), jwt.clone(), 2, NOW);
        cache.insert(Rc::clone(&h), jwt, 3, NOW);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.order.len(), 2);
    }
}

#[test]
fn parsed_tokens_are_found_in_any_provider_cache() {
    let cfg = crate::config::Config::from_json(
        json!({ "providers": {
            "a": { "local_jwks": { "inline_string": mint::JWKS } },
            "b": { "local_jwks": { "inline_string": mint::JWKS }, "jwt_cache_config": {} },
        } })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let mut caches = cfg.token_cache();
    assert!(caches.enabled());
    assert!(caches.provider(0).is_none(), "a has no jwt_cache_config");
    let (h, jwt) = token(1, Some(NOW + 100));
    caches
        .provider_mut(1)
        .unwrap()
        .insert(Rc::clone(&h), jwt, 1, NOW);
    assert!(caches.parsed(&h).is_some());
    assert!(!TokenCache::disabled().enabled());
}

#[test]
fn tokens_sharing_a_tail_never_share_an_entry() {
    // Same length, same last `HASHED_TAIL` bytes: the same hash, different texts.
    let tail = "t".repeat(HASHED_TAIL);
    let (a, b): (Rc<str>, Rc<str>) = (format!("a{tail}").into(), format!("b{tail}").into());
    let (_, jwt) = token(1, Some(NOW + 100));
    let mut cache = ProviderCache::new(10);
    cache.insert(Rc::clone(&a), jwt.clone(), 1, NOW);
    assert!(cache.get(&a, 1, NOW).is_some());
    assert!(cache.get(&b, 1, NOW).is_none(), "another text is a miss");
    cache.insert(Rc::clone(&b), jwt, 1, NOW);
    assert!(cache.get(&b, 1, NOW).is_some());
    assert!(cache.get(&a, 1, NOW).is_none(), "the newer took the slot");
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.order.len(), 1);
}
