//! Revocation lists shared across the VMs of one Envoy (issues 12 and 15), end to end: with
//! `--concurrency 4` (four workers, four wasm VMs), the list server sees one fetch per
//! `cache_duration` for the whole Envoy, not one per worker, and once a newly listed `sub` is
//! refused on one worker, every worker refuses it (the others adopt the list from shared data
//! within `PEER_POLL`).

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::idp::{Idp, Mode};
use common::mint::{self, Key};
use common::upstream::Upstream;

const ISS: &str = "https://idp.example";

/// The list document served: `sub` values listed, issued at `issued_at`.
fn document(issued_at: i64, subs: &[&str]) -> Mode {
    Mode::Serve {
        body: json!({ "issued_at": issued_at, "sub": subs }).to_string(),
        max_age: None,
    }
}

#[test]
fn four_workers_make_one_list_fetch_per_period_and_all_refuse_a_newly_listed_sub() {
    let t0 = common::now();
    let server = Idp::serving("{}");
    server.set_mode(document(t0, &[]));
    let revocation = json!({
        "http_uri": { "uri": "http://lists.example/revocations.json",
                      "cluster": "revocations", "timeout": "1s" },
        "cache_duration": "1s",
        "max_staleness": "30s",
    });
    let provider = json!({ "issuer": ISS, "local_jwks": { "inline_string": mint::JWKS },
                           "revocation": revocation });
    let rule = json!({ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } });
    let cfg = json!({ "providers": { "idp": provider }, "rules": [rule] });
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, &cfg)], upstream.port());
    let envoy = Envoy::start_with_concurrency(
        &bootstrap::with_cluster(&boot, "revocations", server.port()),
        4,
    );
    let port = envoy.port("wasm");
    let token = mint::sign(
        &json!({ "alg": "RS256", "kid": "rsa-a" }),
        &json!({ "iss": ISS, "sub": "mallory", "exp": common::now() + 3600 }),
        "RS256",
        Key::RsaA,
    );
    let get = || Request::get("/api").bearer(&token).send(port);
    for _ in 0..8 {
        let resp = get();
        assert_eq!(resp.status, 200, "mallory is not listed yet: {resp}");
    }

    // Over five periods of 1 s, the list server sees about five fetches: one per period for
    // the whole Envoy (four workers fetching for themselves would make about twenty).
    let before = server.requests();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(5) {
        assert_eq!(get().status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    let fetches = server.requests() - before;
    eprintln!(
        "list fetches in {:?} with 4 workers: {fetches}",
        window.elapsed()
    );
    assert!((3..=7).contains(&fetches), "{fetches} list fetches in 5 s");

    // mallory is listed: the first 401 comes within cache_duration + fetch; from then on
    // every worker refuses (each request on a new connection, spread over the workers).
    let published = Instant::now();
    server.set_mode(document(t0 + 1, &["mallory"]));
    loop {
        let resp = get();
        if resp.status == 401 {
            break;
        }
        assert_eq!(resp.status, 200, "before revocation: {resp}");
        assert!(
            published.elapsed() < Duration::from_secs(3),
            "not revoked in 3 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let latency = published.elapsed();
    std::thread::sleep(Duration::from_millis(100)); // > PEER_POLL: the peers have adopted
    let statuses: Vec<u16> = (0..40).map(|_| get().status).collect();
    eprintln!("revocation latency with 4 workers (publish -> first 401): {latency:?}");
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(latency < Duration::from_millis(2500), "latency {latency:?}");
}
