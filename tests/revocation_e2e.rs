//! Revocation (issue 15), end to end: a provider with local keys and a `revocation` list
//! fetched through an Envoy cluster from a stand-in list server on loopback (`common::idp`,
//! which serves any body and can fail). Cold start waits for the first list; a newly listed
//! `sub` is refused within about one `cache_duration`; past `max_staleness` without a good
//! fetch, requests get 503.

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

fn list(issued_at: i64, subs: &[&str]) -> String {
    json!({ "issued_at": issued_at, "sub": subs }).to_string()
}

fn serve(server: &Idp, body: String) {
    server.set_mode(Mode::Serve {
        body,
        max_age: None,
    });
}

#[test]
fn revoke_a_sub_then_list_unavailable() {
    let t0 = common::now();
    let server = Idp::serving(&list(t0, &[]));
    serve(&server, list(t0, &[]));
    let cfg = json!({
        "providers": { "idp": {
            "issuer": ISS,
            "local_jwks": { "inline_string": mint::JWKS },
            "revocation": {
                "http_uri": { "uri": "http://lists.example/revocations.json",
                              "cluster": "revocations", "timeout": "1s" },
                "cache_duration": "1s",
                "max_staleness": "3s",
            },
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }],
    });
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, &cfg)], upstream.port());
    let envoy = Envoy::start(&bootstrap::with_cluster(
        &boot,
        "revocations",
        server.port(),
    ));
    let port = envoy.port("wasm");
    let token = mint::sign(
        &json!({ "alg": "RS256", "kid": "rsa-a" }),
        &json!({ "iss": ISS, "sub": "mallory", "exp": common::now() + 3600 }),
        "RS256",
        Key::RsaA,
    );
    let get = || Request::get("/api").bearer(&token).send(port);

    // (1) Cold start: the request waits for the first list; mallory is not on it.
    let resp = get();
    assert_eq!(resp.status, 200, "cold start: {resp}");
    assert!(server.requests() >= 1, "no list fetched");

    // (2) The server lists mallory: refused within ~2 s.
    let fetches = server.requests();
    let published = Instant::now();
    serve(&server, list(t0 + 1, &["mallory"]));
    let deadline = published + Duration::from_secs(3);
    let revoked = loop {
        let resp = get();
        if resp.status == 401 {
            break resp;
        }
        assert_eq!(resp.status, 200, "before revocation: {resp}");
        assert!(Instant::now() < deadline, "not revoked within 3 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let latency = published.elapsed();
    eprintln!(
        "revocation latency (publish -> first 401): {latency:?}, {} list fetches meanwhile",
        server.requests() - fetches
    );
    assert_eq!(revoked.body_str(), "Jwt has been revoked");
    let challenge = revoked.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{challenge:?}"
    );
    // cache_duration (1 s) + fetch + the refresh timer's granularity: about 2 s.
    assert!(latency < Duration::from_millis(2500), "latency {latency:?}");

    // (3) The server fails: past max_staleness (3 s) requests get 503.
    server.set_mode(Mode::Status(500));
    let failed_at = Instant::now();
    let deadline = failed_at + Duration::from_secs(6);
    let unavailable = loop {
        let resp = get();
        if resp.status == 503 {
            break resp;
        }
        assert_eq!(resp.status, 401, "while stale: {resp}");
        assert!(Instant::now() < deadline, "no 503 within 6 s of the outage");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("503 after {:?} of outage", failed_at.elapsed());
    assert_eq!(unavailable.body_str(), "Jwt revocation list is unavailable");
    let stat = |name: &str| envoy.stat(&format!("wasmcustom.jwt_authn_wasm.idp.{name}"));
    assert!(
        stat("revocation_fetch_success").unwrap_or(0) >= 2,
        "{:?}",
        stat("revocation_fetch_success")
    );
    assert!(
        stat("revocation_fetch_failed.status").unwrap_or(0) >= 1,
        "{:?}",
        stat("revocation_fetch_failed.status")
    );
}
