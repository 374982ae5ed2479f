//! Remote JWKS, end to end: the filter fetches keys itself through an Envoy cluster from a
//! real local JWKS server (`common::idp`) that counts requests and can rotate keys,
//! fail, send garbage or a huge body, answer slowly, or not at all.
//!
//! Each test runs its own Envoy (`--concurrency 1`) and JWKS server, so modes and counts do
//! not leak between tests.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::idp::{jwks_only, Idp, Mode};
use common::mint::{self, Key};
use common::upstream::Upstream;

const ISS: &str = "https://idp.example";

/// A provider `idp` with `remote_jwks` through cluster `jwks`, plus `extra` remote_jwks fields.
fn config(extra: Value) -> Value {
    let mut remote = json!({
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "2s" },
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        remote[k] = v.clone();
    }
    json!({
        "providers": { "idp": {
            "issuer": ISS,
            "remote_jwks": remote,
            "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }],
    })
}

/// Our filter with `cfg`, an echo upstream, and cluster `jwks` pointing at `jwks`.
struct Setup {
    envoy: Envoy,
    _upstream: Upstream,
}

fn start(cfg: &Value, jwks: &Idp) -> Setup {
    start_with_workers(cfg, jwks, 1)
}

fn start_with_workers(cfg: &Value, jwks: &Idp, workers: u32) -> Setup {
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, cfg)], upstream.port());
    Setup {
        envoy: Envoy::start_with_concurrency(
            &bootstrap::with_cluster(&boot, "jwks", jwks.port()),
            workers,
        ),
        _upstream: upstream,
    }
}

impl Setup {
    fn get(&self, token: &str) -> common::http::Response {
        Request::get("/api")
            .bearer(token)
            .send(self.envoy.port("wasm"))
    }
}

/// A token for the provider, signed with `key` under `kid`.
fn token(kid: &str, key: Key) -> String {
    let claims = json!({ "iss": ISS, "sub": "alice", "exp": common::now() + 3600 });
    mint::sign(
        &json!({ "alg": "RS256", "kid": kid }),
        &claims,
        "RS256",
        key,
    )
}

fn good() -> String {
    token("rsa-a", Key::RsaA)
}

/// Waits until `f` is true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn cold_start_pauses_requests_until_keys_arrive() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    jwks.set_mode(Mode::Slow {
        delay: Duration::from_secs(2),
        then: Box::new(Mode::Serve {
            body: jwks_only(&["rsa-a"]),
            max_age: None,
        }),
    });
    let cfg = config(json!({
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "5s" },
    }));
    let setup = start(&cfg, &jwks);
    let port = setup.envoy.port("wasm");
    let token = good();
    let answered = AtomicUsize::new(0);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    let status = Request::get("/api").bearer(&token).send(port).status;
                    answered.fetch_add(1, Ordering::SeqCst);
                    status
                })
            })
            .collect();
        // The key set is still on its way: every request is held, none refused.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            answered.load(Ordering::SeqCst),
            0,
            "requests answered before the keys"
        );
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "statuses {statuses:?}");
    eprintln!("cold start: 50 requests, {} fetch(es)", jwks.requests());
}

#[test]
fn cold_start_that_fails_answers_401_after_the_timeout() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    jwks.set_mode(Mode::Hang);
    let setup = start(&config(json!({})), &jwks);
    let started = Instant::now();
    let resp = setup.get(&good());
    assert_eq!(resp.status, 401, "{resp}");
    assert_eq!(resp.body_str(), "Jwks remote fetch is failed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn rotation_costs_no_valid_request_one_refetch() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let setup = start(&config(json!({})), &jwks);
    assert_eq!(setup.get(&good()).status, 200);
    let before = jwks.requests();
    // The identity provider adds a key and starts signing with it.
    jwks.rotate(&jwks_only(&["rsa-a", "rsa-b"]));
    let rotated = token("rsa-b", Key::RsaB);
    for i in 0..20 {
        let resp = setup.get(&rotated);
        assert_eq!(resp.status, 200, "request {i} after rotation: {resp}");
        let echo = resp.echo().expect("reached the upstream");
        assert_eq!(echo.header("x-jwt-sub"), Some("alice"));
    }
    assert_eq!(jwks.requests() - before, 1, "one refetch for the new kid");
    eprintln!("rotation: 20 requests with the new kid, 20 x 200, 1 refetch");
    let stat = |name: &str| {
        setup
            .envoy
            .stat(&format!("wasmcustom.jwt_authn_wasm.idp.{name}"))
    };
    assert_eq!(stat("jwks_unknown_kid_refetch"), Some(1));
    assert!(
        stat("jwks_fetch_success").unwrap_or(0) >= 2,
        "{:?}",
        stat("jwks_fetch_success")
    );
}

#[test]
fn a_storm_of_unknown_kids_is_rate_limited() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let setup = start(&config(json!({})), &jwks);
    assert_eq!(setup.get(&good()).status, 200);
    let before = jwks.requests();
    for i in 0..100 {
        let resp = setup.get(&token(&format!("forged-{i}"), Key::RsaA));
        assert_eq!(resp.status, 401, "{resp}");
    }
    assert!(
        jwks.requests() - before <= 1,
        "{} refetches for 100 unknown kids",
        jwks.requests() - before
    );
    eprintln!(
        "storm: 100 unknown kids, {} refetch(es)",
        jwks.requests() - before
    );
    assert_eq!(setup.get(&good()).status, 200, "good tokens still pass");
}

#[test]
fn outages_keep_the_last_good_keys() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    // Refresh every second (80% of the 1 s minimum), retry after 100 ms, back off at most
    // 0.5 s (failures pile up over the six outages below).
    let cfg = config(json!({
        "cache_duration": "1s", "min_cache_duration": "1s",
        "async_fetch": { "failed_refetch_duration": "0.1s" }, "max_backoff": "0.5s",
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "0.5s" },
    }));
    let setup = start(&cfg, &jwks);
    assert_eq!(setup.get(&good()).status, 200);
    let outages = [
        ("500", Mode::Status(500)),
        ("garbage", Mode::Garbage),
        ("huge body", Mode::Huge(2 * 1024 * 1024)),
        ("connection closed", Mode::Close),
        ("timeout", Mode::Hang),
        (
            "no usable key",
            Mode::Serve {
                body: mint::JWKS_WEAK.to_owned(),
                max_age: None,
            },
        ),
    ];
    for (name, mode) in outages {
        let before = jwks.requests();
        jwks.set_mode(mode);
        assert!(
            eventually(Duration::from_secs(5), || jwks.requests() >= before + 2),
            "{name}: the filter did not retry"
        );
        let resp = setup.get(&good());
        assert_eq!(resp.status, 200, "{name}: {resp}");
    }
    let log = setup.envoy.log();
    for reason in ["status", "not_jwks", "too_large", "no_usable_key"] {
        assert!(
            log.contains(&format!("({reason})")),
            "no {reason} failure logged"
        );
        let stat = format!("wasmcustom.jwt_authn_wasm.idp.jwks_fetch_failed.{reason}");
        assert!(
            setup.envoy.stat(&stat).unwrap_or(0) >= 1,
            "{stat} not counted"
        );
    }
    // Recovery: a rotated set is picked up by the next refresh.
    jwks.set_mode(Mode::Serve {
        body: jwks_only(&["rsa-b"]),
        max_age: None,
    });
    let rotated = token("rsa-b", Key::RsaB);
    assert!(eventually(Duration::from_secs(5), || setup
        .get(&rotated)
        .status
        == 200));
}

#[test]
fn cache_control_max_age_sets_the_refresh() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    jwks.set_mode(Mode::Serve {
        body: jwks_only(&["rsa-a"]),
        max_age: Some(2),
    });
    let cfg = config(json!({ "min_cache_duration": "1s" }));
    let setup = start(&cfg, &jwks);
    assert_eq!(setup.get(&good()).status, 200);
    let before = jwks.requests();
    // 80% of 2 s: a refresh within ~1.6 s, although cache_duration is 600 s.
    assert!(
        eventually(Duration::from_secs(4), || jwks.requests() > before),
        "no refresh after max-age"
    );
}

#[test]
fn an_unknown_cluster_is_a_clean_401() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let cfg = config(json!({
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "no-such-cluster", "timeout": "1s" },
    }));
    let setup = start(&cfg, &jwks);
    let resp = setup.get(&good());
    assert_eq!(resp.status, 401, "{resp}");
    assert!(setup.envoy.log().contains("(dispatch)"));
    assert_eq!(jwks.requests(), 0);
}

/// Every worker has its own VM, and the main thread one more: with `--concurrency 4`, five VMs
/// want the keys. They coordinate through shared data, so one fetch serves them all, at start
/// and at every refresh.
#[test]
fn one_fetch_per_envoy_with_four_workers() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let cfg = config(json!({ "cache_duration": "3s", "min_cache_duration": "1s" }));
    let setup = start_with_workers(&cfg, &jwks, 4);
    // Requests land on all workers: each VM has (adopted) the key set.
    let port = setup.envoy.port("wasm");
    let token = good();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|_| s.spawn(|| Request::get("/api").bearer(&token).send(port).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(jwks.requests(), 1, "one fetch at start for five VMs");
    // Refresh at 80% of 3 s: over 6 s, two or three refreshes, not five VMs' worth each.
    std::thread::sleep(Duration::from_secs(6));
    let refreshes = jwks.requests() - 1;
    assert!(
        (1..=3).contains(&refreshes),
        "{refreshes} fetches for about two refreshes"
    );
    eprintln!(
        "--concurrency 4: 1 fetch at start, {refreshes} in the next 6 s (refresh every 2.4 s)"
    );
    assert_eq!(setup.get(&good()).status, 200);
}

/// `oidc_discovery`: the issuer's OpenID configuration names the JWKS, fetched through the same
/// cluster; the discovered URL is reused for refreshes until a fetch fails.
#[test]
fn oidc_discovery_finds_the_jwks() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    jwks.set_discovery(Some(
        json!({ "issuer": ISS, "jwks_uri": "http://keys.idp.example/certs" }).to_string(),
    ));
    let cfg = json!({
        "providers": { "idp": {
            "issuer": ISS,
            "remote_jwks": {
                "oidc_discovery": true,
                "http_uri": { "cluster": "jwks", "timeout": "2s" },
                "cache_duration": "1s", "min_cache_duration": "1s",
            },
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }],
    });
    let setup = start(&cfg, &jwks);
    assert_eq!(setup.get(&good()).status, 200);
    assert_eq!((jwks.discovery_requests(), jwks.requests()), (1, 1));
    // Refreshes fetch the discovered JWKS directly.
    assert!(eventually(Duration::from_secs(4), || jwks.requests() >= 3));
    assert_eq!(jwks.discovery_requests(), 1);
    // A document without jwks_uri is a counted failure; keys stay.
    jwks.set_discovery(Some(json!({ "issuer": ISS }).to_string()));
    jwks.set_mode(Mode::Status(500)); // the JWKS fails once, so discovery runs again
    assert!(eventually(Duration::from_secs(6), || {
        setup
            .envoy
            .stat("wasmcustom.jwt_authn_wasm.idp.jwks_fetch_failed.discovery")
            .unwrap_or(0)
            >= 1
    }));
    assert_eq!(setup.get(&good()).status, 200);
}

/// Regression: a JWKS response reset after its headers (the IdP closing mid-body) reached the
/// filter with no response attached, and reading its `:status` through the SDK panicked: the
/// VM aborted, the next VM took the lease and aborted too. Now it is a failed fetch (`reset`):
/// a cold start answers 401, the last good keys keep serving, and no VM fails.
#[test]
fn a_response_reset_after_its_headers_is_a_failed_fetch() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let cut = Mode::HeadersThenClose {
        body: jwks_only(&["rsa-a"]),
    };
    jwks.set_mode(cut.clone());
    let cfg = config(json!({
        "cache_duration": "1s", "min_cache_duration": "1s",
        "async_fetch": { "failed_refetch_duration": "0.1s" }, "max_backoff": "0.3s",
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "1s" },
    }));
    let setup = start(&cfg, &jwks);
    // Cold start: every fetch is cut, so there are no keys.
    assert!(eventually(Duration::from_secs(5), || jwks.requests() >= 2));
    let resp = setup.get(&good());
    assert_eq!(resp.status, 401, "{resp}");
    // The IdP recovers; the filter learns the keys.
    jwks.rotate(&jwks_only(&["rsa-a"]));
    assert!(eventually(Duration::from_secs(5), || setup
        .get(&good())
        .status
        == 200));
    // Refreshes are cut again: the last good keys keep serving.
    let before = jwks.requests();
    jwks.set_mode(cut);
    assert!(eventually(Duration::from_secs(5), || jwks.requests() >= before + 2));
    assert_eq!(setup.get(&good()).status, 200);
    assert!(
        setup
            .envoy
            .stat("wasmcustom.jwt_authn_wasm.idp.jwks_fetch_failed.reset")
            .unwrap_or(0)
            >= 2,
        "resets not counted"
    );
    assert_eq!(setup.envoy.wasm_failures(), Vec::<String>::new());
    assert_eq!(setup.envoy.wasm_failure_stats(), vec![]);
}
