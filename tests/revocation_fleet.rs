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

use common::idp::Idp;
use common::revocation::{config, list, token, CLUSTER};
use common::{until_status, Proxy};

#[test]
fn four_workers_make_one_list_fetch_per_period_and_all_refuse_a_newly_listed_sub() {
    let t0 = common::now();
    let server = Idp::serving(&list(t0, json!({ "sub": [] })));
    let cfg = config(json!({}), json!({}));
    let proxy = Proxy::wasm_with_cluster(&cfg, CLUSTER, server.port(), 4);
    let token = token(json!({ "sub": "mallory" }));
    let get = || proxy.get(&token);
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
    server.serve(&list(t0 + 1, json!({ "sub": ["mallory"] })));
    let (_, latency) = until_status(get, 401, 200, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(100)); // > PEER_POLL: the peers have adopted
    let statuses: Vec<u16> = (0..40).map(|_| get().status).collect();
    eprintln!("revocation latency with 4 workers (publish -> first 401): {latency:?}");
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(latency < Duration::from_millis(2500), "latency {latency:?}");
}
