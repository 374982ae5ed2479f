//! The cached-token decision measured natively (issue 13), not a test: `#[ignore]`d, run with
//! `cargo test --release --lib cached_decision_cost -- --ignored --nocapture` (or under `perf
//! record`). It builds the engine with `make bench`'s cached configuration (one provider, one
//! `claim_to_headers` `x-jwt-sub`, `jwt_cache_config`) and decides the same request with the
//! same token many times, printing nanoseconds per decision and per stage. Each stage runs
//! alone on the same inputs, so the stages add up to about the whole. It asserts only that the
//! decision is the one the bench counts (allowed, `x-jwt-sub` set), never a time.
//!
//! `distinct_decision_cost` does the same for 2000 distinct tokens without the cache (the
//! bench's distinct RS256 and ES256 rows), the host's `verify_signature` stood in for by an
//! instant "valid" after its argument is built: what our own code costs on a cache miss.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;

use super::*;
use crate::extract::extract;
use crate::mint;
use crate::pairs;
use crate::propagate;
use crate::verify;

const NOW: i64 = 1_700_000_000;
const ROUNDS: u32 = 200_000;

fn config() -> Config {
    let config = json!({
        "providers": { "bench": {
            "issuer": "https://issuer.bench",
            "audiences": ["bench"],
            "local_jwks": { "inline_string": mint::JWKS },
            "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            "jwt_cache_config": {},
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "bench" } }],
    });
    Config::from_json(config.to_string().as_bytes()).unwrap()
}

/// What Envoy hands a wasm filter for `wrk`'s request (`GET /` with the token).
fn request_map(token: &str) -> Vec<u8> {
    let bearer = format!("Bearer {token}");
    pairs::serialize(&[
        (":authority", "127.0.0.1:10000"),
        (":path", "/"),
        (":method", "GET"),
        (":scheme", "http"),
        ("authorization", &bearer),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5d6a7c2e-8f3b-4a1d-9e0c-2b7f6a5d4c3e"),
    ])
}

/// Nanoseconds per call of `f`, best of three runs of `ROUNDS`.
fn ns_per(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "a measurement: cargo test --release --lib cached_decision_cost -- --ignored --nocapture"]
fn cached_decision_cost() {
    let cfg = config();
    let mut cache = cfg.token_cache();
    let claims = json!({ "iss": "https://issuer.bench", "aud": "bench", "sub": "user-0",
                         "exp": NOW + 86_400, "jti": "bench-0" });
    let token = mint::token("RS256", &claims);
    let map = request_map(&token);
    let decide_once = |cache: &mut TokenCache, headers: &RequestHeaders| {
        let vm = Vm {
            keys: &cfg,
            signatures: &PureRust,
            cache,
        };
        decide_in(&cfg, vm, headers, NOW)
    };
    let headers = RequestHeaders::from_map(Some(map.clone()));
    // The first decision verifies and fills the cache; every later one is a hit.
    let first = decide_once(&mut cache, &headers);
    let Decision::Allow { ops, verdict } = decide_once(&mut cache, &headers) else {
        panic!("the cached request is allowed: {first:?}");
    };
    assert_eq!(verdict.failure, None);
    assert!(
        ops.contains(&HeaderOp::Set("x-jwt-sub", "user-0".to_owned())),
        "{ops:?}"
    );

    let whole = ns_per(|| {
        let headers = RequestHeaders::from_map(Some(black_box(map.clone())));
        black_box(decide_once(&mut cache, black_box(&headers)));
    });
    let read = ns_per(|| {
        black_box(RequestHeaders::from_map(Some(black_box(map.clone()))));
    });
    let decide = ns_per(|| {
        black_box(decide_once(&mut cache, black_box(&headers)));
    });
    let provider = cfg.providers.first().unwrap();
    let policy = provider.policy();
    let matched = ns_per(|| {
        black_box(
            cfg.rules
                .iter()
                .position(|r| r.matcher.matches(&headers) == Ok(true)),
        );
    });
    let found = ns_per(|| {
        black_box(extract(black_box(&headers), &provider.locations));
    });
    let text = extract(&headers, &provider.locations)
        .into_iter()
        .next()
        .unwrap()
        .token
        .unwrap()
        .into_owned();
    let parsed = ns_per(|| {
        black_box(cache.parsed(black_box(&text)));
    });
    let version = cfg.keys(0);
    let Availability::Ready(keys) = version else {
        panic!("local keys are ready");
    };
    let hit = cache.provider(0).unwrap();
    let looked_up = ns_per(|| {
        black_box(hit.get(black_box(&text), keys.version(), NOW));
    });
    let verified = hit.get(&text, keys.version(), NOW).unwrap().clone();
    let rechecked = ns_per(|| {
        black_box(verify::recheck(black_box(&verified), policy, None, NOW)).ok();
    });
    let location = provider.locations.first().unwrap();
    let identity = ns_per(|| {
        let mut ops = Vec::new();
        propagate::consume_token(provider, location, &headers, &mut ops);
        propagate::identity(provider, &verified, None, &mut ops);
        propagate::filter_state(provider, &verified, None, &mut ops);
        black_box(ops);
    });
    println!("cached decision, native, ns per request (best of 3 x {ROUNDS}):");
    println!("  read + decide           {whole:8.0}");
    println!("  read the header map     {read:8.0}");
    println!("  decide (decide_in)      {decide:8.0}");
    println!("  of which, alone:");
    println!("    match the rule        {matched:8.0}");
    println!("    find the token        {found:8.0}");
    println!("    cache: parsed         {parsed:8.0}");
    println!("    cache: get            {looked_up:8.0}");
    println!("    recheck claims        {rechecked:8.0}");
    println!("    identity operations   {identity:8.0}");
}

/// The host's `verify_signature` stood in for by an instant "valid", after building the very
/// argument the glue sends (so what is measured is our code on both sides of the host call).
struct InstantHost;

impl SignatureBackend for InstantHost {
    fn verify(&self, hash: &str, spki: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
        black_box(crate::signature::encode_arguments(
            hash, spki, signature, message,
        ));
        Some(true)
    }
}

#[test]
#[ignore = "a measurement: cargo test --release --lib distinct_decision_cost -- --ignored --nocapture"]
fn distinct_decision_cost() {
    // `make bench`'s `wasm` listener: the cached configuration without `jwt_cache_config`.
    let config = json!({
        "providers": { "bench": {
            "issuer": "https://issuer.bench",
            "audiences": ["bench"],
            "local_jwks": { "inline_string": mint::JWKS },
            "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "bench" } }],
    });
    let cfg = Config::from_json(config.to_string().as_bytes()).unwrap();
    for alg in ["RS256", "ES256"] {
        let tokens: Vec<String> = (0..2000)
            .map(|n| {
                let claims = json!({ "iss": "https://issuer.bench", "aud": "bench",
                                     "sub": format!("user-{n}"), "exp": NOW + 86_400,
                                     "jti": format!("bench-{n}") });
                mint::token(alg, &claims)
            })
            .collect();
        let maps: Vec<Vec<u8>> = tokens.iter().map(|t| request_map(t)).collect();
        let mut cache = cfg.token_cache();
        let mut n = 0;
        let mut next = || {
            n = (n + 1) % maps.len();
            n
        };
        let whole = ns_per(|| {
            let headers = RequestHeaders::from_map(Some(black_box(maps[next()].clone())));
            let vm = Vm {
                keys: &cfg,
                signatures: &InstantHost,
                cache: &mut cache,
            };
            let decision = decide_in(&cfg, vm, &headers, NOW);
            assert!(
                matches!(decision, Decision::Allow { ref verdict, .. } if verdict.failure.is_none())
            );
            black_box(decision);
        });
        let parsed = ns_per(|| {
            black_box(crate::jwt::parse(black_box(&tokens[next()]))).ok();
        });
        let provider = cfg.providers.first().unwrap();
        let Availability::Ready(keys) = cfg.keys(0) else {
            panic!("local keys are ready");
        };
        let jwts: Vec<_> = tokens
            .iter()
            .map(|t| std::rc::Rc::new(crate::jwt::parse(t).unwrap()))
            .collect();
        let verified = ns_per(|| {
            let jwt = &jwts[next()];
            black_box(verify::verify(
                jwt,
                provider.policy(),
                Some(keys),
                None,
                NOW,
                &InstantHost,
            ))
            .ok();
        });
        // The same decisions with every signature checked by our own code (`host_signatures:
        // false`): RS256 through `rsa_pkcs1`, ES256 through the p256 crate.
        let pure = ns_per(|| {
            let headers = RequestHeaders::from_map(Some(black_box(maps[next()].clone())));
            let vm = Vm {
                keys: &cfg,
                signatures: &PureRust,
                cache: &mut cache,
            };
            black_box(decide_in(&cfg, vm, &headers, NOW));
        });
        println!("distinct {alg}, no cache, native, host signature instant, ns per request (best of 3 x {ROUNDS}):");
        println!("  read + decide, signature in pure Rust {pure:8.0}");
        println!("  read + decide           {whole:8.0}");
        println!("  of which, alone:");
        println!("    jwt::parse            {parsed:8.0}");
        println!("    verify (parsed)       {verified:8.0}");
    }
}
