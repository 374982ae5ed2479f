//! Revocation (issue 15), end to end in real Envoy: a provider with local keys and a
//! `revocation` list fetched through an Envoy cluster from a stand-in list server on loopback
//! (`common::idp`, which serves any body, counts requests and can fail). What a user sees:
//!
//! - a newly listed `jti` and `sub` are refused (401 `Jwt has been revoked`,
//!   `error="invalid_token"`) within about one `cache_duration`, tokens already in the
//!   verified-token cache included; the latency is measured and printed;
//! - `issued_before` for `alice` refuses her token issued before the cutoff and accepts one
//!   issued at or after it (one without `iat` is refused: fail closed);
//! - the list server failing for longer than `max_staleness` gives 503, and the first good
//!   fetch after it recovers;
//! - `require_signed`: a correctly signed list is used; a badly signed or unsigned one is a
//!   failed fetch (`revocation_fetch_failed.bad_signature` / `.not_signed`) and the last good
//!   list stays in force;
//! - what a 100,000-entry list costs in Envoy's RSS with four workers (one list fetch per period
//!   for the whole Envoy is `tests/revocation_fleet.rs`).
//!
//! Every wait polls for the outcome with a deadline; `cache_duration` is 1 s where the test
//! waits for a refresh.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::envoy::Envoy;
use common::http::{Request, Response};
use common::idp::{Idp, Mode};
use common::mint::{self, Key};
use common::revocation::{config, list, token, CLUSTER, PROVIDER};
use common::{eventually, until_status, Proxy};

const REVOKED_BODY: &str = "Jwt has been revoked";
const UNAVAILABLE_BODY: &str = "Jwt revocation list is unavailable";

/// `document` as a compact JWS signed by the provider's own key `rsa-a`.
fn signed(document: &str) -> String {
    let payload: Value = serde_json::from_str(document).unwrap();
    mint::sign(
        &json!({ "alg": "RS256", "kid": "rsa-a" }),
        &payload,
        "RS256",
        Key::RsaA,
    )
}

/// An echo upstream and an Envoy (`concurrency` workers) running `cfg` on listener `wasm`,
/// its list cluster pointing at `server`.
fn start(cfg: &Value, server: &Idp, concurrency: u32) -> Proxy {
    Proxy::wasm_with_cluster(cfg, CLUSTER, server.port(), concurrency)
}

fn get(port: u16, token: &str) -> Response {
    Request::get("/api").bearer(token).send(port)
}

/// The request reached the upstream with a 200.
fn assert_allowed(port: u16, token: &str, what: &str) {
    let resp = get(port, token);
    assert_eq!(resp.status, 200, "{what}: {resp}");
    resp.upstream();
}

/// A local 401 for a revoked token: the body, the challenge, nothing reached the upstream.
fn assert_revoked(resp: &Response, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {resp}");
    assert_eq!(resp.body_str(), REVOKED_BODY, "{what}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge:?}"
    );
    assert!(resp.echo().is_none(), "{what}: reached the upstream");
}

/// Polls `check` until it holds, for at most `within`.
fn until(within: Duration, what: &str, check: impl FnMut() -> bool) {
    assert!(eventually(within, check), "{what}: not within {within:?}");
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stat(&format!("wasmcustom.jwt_authn_wasm.{PROVIDER}.{name}"))
        .unwrap_or(0)
}

#[test]
fn listed_jti_and_sub_are_refused_cached_tokens_included_then_issued_before() {
    let t0 = common::now();
    let server = Idp::serving(&list(t0, json!({})));
    let cfg = config(
        json!({}),
        json!({ "jwt_cache_config": { "jwt_cache_size": 100 } }),
    );
    let proxy = start(&cfg, &server, 1);
    let envoy = &proxy.envoy;
    let port = envoy.port("wasm");

    let leaked = token(json!({ "sub": "bob", "jti": "leaked-1" }));
    let mallory = token(json!({ "sub": "mallory", "jti": "m-1" }));
    let carol = token(json!({ "sub": "carol", "jti": "c-1" }));
    let alice_old = token(json!({ "sub": "alice", "jti": "a-1", "iat": t0 - 100 }));

    // Cold start waits for the first list, which names nobody: every token passes, and from
    // now on each is in the verified-token cache.
    for (t, what) in [
        (&leaked, "leaked"),
        (&mallory, "mallory"),
        (&carol, "carol"),
        (&alice_old, "alice"),
    ] {
        assert_allowed(port, t, what);
    }
    assert!(server.requests() >= 1, "no list fetched");

    // The identity team lists the leaked token's jti and mallory: both cached tokens are
    // refused within about one cache_duration (1 s) plus one timer tick.
    let fetches = server.requests();
    server.serve(&list(
        t0 + 1,
        json!({ "jti": ["leaked-1"], "sub": ["mallory"] }),
    ));
    let (resp, latency) = until_status(|| get(port, &leaked), 401, 200, Duration::from_secs(4));
    eprintln!(
        "revocation latency (publish -> first 401, cached token, cache_duration 1s): {latency:?}, \
         {} list fetches meanwhile",
        server.requests() - fetches
    );
    assert_revoked(&resp, "cached token, listed jti");
    assert_revoked(&get(port, &mallory), "cached token, listed sub");
    let mallory_fresh = token(json!({ "sub": "mallory", "jti": "m-2" }));
    assert_revoked(&get(port, &mallory_fresh), "new token, listed sub");
    assert_allowed(port, &carol, "carol, not listed");
    assert_allowed(port, &alice_old, "alice, not listed yet");
    assert!(
        latency < Duration::from_millis(3000),
        "latency {latency:?} at cache_duration 1s"
    );
    assert!(stat(envoy, "denied.revoked") >= 3, "denied.revoked");

    // Alice resets her password: tokens issued before the cutoff are refused, one issued at
    // the cutoff or later is accepted, one without `iat` is refused (fail closed).
    let cutoff = common::now() - 10;
    let alice_at = token(json!({ "sub": "alice", "jti": "a-2", "iat": cutoff }));
    let alice_new = token(json!({ "sub": "alice", "jti": "a-3", "iat": cutoff + 5 }));
    let alice_no_iat = token(json!({ "sub": "alice", "jti": "a-4" }));
    assert_allowed(
        port,
        &alice_new,
        "alice's new token, before the cutoff is listed",
    );
    server.serve(&list(
        t0 + 2,
        json!({ "jti": ["leaked-1"], "sub": ["mallory"],
                    "issued_before": { "sub": { "alice": cutoff } } }),
    ));
    let (resp, _) = until_status(|| get(port, &alice_old), 401, 200, Duration::from_secs(4));
    assert_revoked(&resp, "alice's token issued before the cutoff (cached)");
    assert_allowed(port, &alice_at, "alice's token issued at the cutoff");
    assert_allowed(
        port,
        &alice_new,
        "alice's token issued after the cutoff (cached)",
    );
    assert_revoked(&get(port, &alice_no_iat), "alice's token without iat");
    assert_revoked(&get(port, &leaked), "leaked jti, still listed");
    assert_allowed(port, &carol, "carol");
}

#[test]
fn list_server_down_past_max_staleness_is_503_then_recovers() {
    let t0 = common::now();
    let server = Idp::serving(&list(t0, json!({ "sub": ["mallory"] })));
    let cfg = config(json!({ "max_staleness": "3s" }), json!({}));
    let proxy = start(&cfg, &server, 1);
    let envoy = &proxy.envoy;
    let port = envoy.port("wasm");
    let carol = token(json!({ "sub": "carol" }));
    let mallory = token(json!({ "sub": "mallory" }));

    assert_allowed(port, &carol, "carol at cold start");
    assert_revoked(&get(port, &mallory), "mallory, listed from the start");

    // The server fails: the last good list is used for max_staleness (3 s), then 503.
    server.set_mode(Mode::Status(500));
    let (resp, outage) = until_status(|| get(port, &carol), 503, 200, Duration::from_secs(7));
    eprintln!("503 after {outage:?} of outage (max_staleness 3s)");
    assert!(
        outage >= Duration::from_millis(2000),
        "503 after only {outage:?}: the last good list was not kept"
    );
    assert_eq!(resp.body_str(), UNAVAILABLE_BODY);
    assert!(resp.echo().is_none(), "reached the upstream");
    let resp = get(port, &mallory);
    assert_eq!(resp.status, 503, "mallory while unavailable: {resp}");
    assert!(stat(envoy, "revocation_fetch_failed.status") >= 2);
    assert!(stat(envoy, "denied.revocation_unavailable") >= 2);

    // The server is back: the next fetch (backoff at most cache_duration) restores the list.
    server.serve(&list(t0 + 1, json!({ "sub": ["mallory"] })));
    let (_, recovery) = until_status(|| get(port, &carol), 200, 503, Duration::from_secs(4));
    eprintln!("200 again {recovery:?} after the list server came back");
    assert_allowed(port, &carol, "carol after recovery");
    assert_revoked(&get(port, &mallory), "mallory after recovery");
    assert!(stat(envoy, "revocation_fetch_success") >= 2);
}

#[test]
fn signed_list_a_bad_signature_is_refused_and_the_last_good_list_kept() {
    let t0 = common::now();
    let server = Idp::serving(&signed(&list(t0, json!({ "sub": ["mallory"] }))));
    let cfg = config(json!({ "require_signed": true }), json!({}));
    let proxy = start(&cfg, &server, 1);
    let envoy = &proxy.envoy;
    let port = envoy.port("wasm");
    let carol = token(json!({ "sub": "carol" }));
    let mallory = token(json!({ "sub": "mallory" }));

    // A correctly signed list is in force from the first request.
    assert_allowed(port, &carol, "carol, signed list");
    assert_revoked(&get(port, &mallory), "mallory, on the signed list");

    // A newer list that would un-revoke mallory, its signature forged: refused at every fetch.
    let forged = mint::tampered(&signed(&list(t0 + 1, json!({}))));
    server.serve(&forged);
    until(Duration::from_secs(5), "two bad_signature fetches", || {
        stat(envoy, "revocation_fetch_failed.bad_signature") >= 2
    });
    assert_revoked(&get(port, &mallory), "mallory under the last good list");
    assert_allowed(port, &carol, "carol under the last good list");

    // The same list unsigned: refused too (`not_signed`).
    server.serve(&list(t0 + 1, json!({})));
    until(Duration::from_secs(5), "two not_signed fetches", || {
        stat(envoy, "revocation_fetch_failed.not_signed") >= 2
    });
    assert_revoked(&get(port, &mallory), "mallory, unsigned list refused");

    // Correctly signed, it is taken: mallory is no longer listed.
    server.serve(&signed(&list(t0 + 1, json!({}))));
    let (_, taken) = until_status(|| get(port, &mallory), 200, 401, Duration::from_secs(4));
    eprintln!("signed list taken {taken:?} after it was served");
    assert_allowed(port, &carol, "carol, new signed list");
}

/// A full list (100,000 entries, about 2 MB of JSON) in Envoy with four workers: the request
/// path refuses its last entry and passes everyone else, and Envoy's RSS grows by a bounded
/// amount (printed: the README quotes it).
#[test]
fn a_full_list_in_four_workers() {
    let t0 = common::now();
    let server = Idp::serving(&list(t0, json!({ "sub": ["mallory"] })));
    let cfg = config(
        json!({ "cache_duration": "5s", "max_staleness": "60s" }),
        json!({}),
    );
    let proxy = start(&cfg, &server, 4);
    let envoy = &proxy.envoy;
    let port = envoy.port("wasm");
    let pid = envoy.pid().expect("Envoy's pid");
    let carol = token(json!({ "sub": "carol", "jti": "c-1" }));
    for _ in 0..8 {
        assert_allowed(port, &carol, "carol, small list");
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(pid);

    let jti: Vec<String> = (0..90_000).map(|n| format!("listed-{n:06}")).collect();
    let sub: Vec<String> = (0..5_000)
        .map(|n| format!("user-{n}@example.com"))
        .collect();
    let cutoffs: serde_json::Map<String, Value> = (0..5_000)
        .map(|n| (format!("reset-{n}"), json!(t0 - 60)))
        .collect();
    let full = list(
        t0 + 1,
        json!({ "jti": jti, "sub": sub, "issued_before": { "sub": cutoffs } }),
    );
    let bytes = full.len();
    server.serve(&full);
    let last = token(json!({ "sub": "dave", "jti": "listed-089999" }));
    // Every worker has the list once 24 new connections in a row (spread over the workers by
    // the kernel) are refused.
    let started = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 24 {
        let resp = get(port, &last);
        match resp.status {
            401 => {
                assert_revoked(&resp, "the list's last jti");
                in_a_row += 1;
            }
            200 => in_a_row = 0,
            _ => panic!("listed token: {resp}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every worker took the full list within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let loaded = started.elapsed();
    // One more period: every worker has fetched and parsed the full list again.
    std::thread::sleep(Duration::from_secs(6));
    for _ in 0..8 {
        assert_allowed(port, &carol, "carol, full list");
    }
    assert_revoked(
        &get(
            port,
            &token(json!({ "sub": "reset-4999", "iat": t0 - 120 })),
        ),
        "a listed cutoff",
    );
    let after = rss_kib(pid);
    let delta_mib = (after as f64 - before as f64) / 1024.0;
    eprintln!(
        "full list ({bytes} bytes, 100000 entries), four workers: in force in every worker after \
         {loaded:?}; Envoy RSS {:.1} -> {:.1} MiB ({delta_mib:+.1} MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(stat(envoy, "revocation_fetch_success") >= 2);
    assert!(
        delta_mib < 200.0,
        "Envoy's RSS grew by {delta_mib:.1} MiB for one 100,000-entry list"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
