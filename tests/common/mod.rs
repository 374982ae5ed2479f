//! Shared test support.
//!
//! - [`mint`]: signs test tokens with the fixture keys (`tests/fixtures`).
//! - [`envoy`]: a real Envoy process (ports chosen by Envoy, log, admin stats).
//! - [`upstream`]: the echo server that reports what reached the upstream.
//! - [`http`]: a raw HTTP/1.1 client.
//! - [`h2c`]: a raw HTTP/2 (cleartext, prior knowledge) client for the same requests.
//! - [`authserver`]: a real OAuth 2.0 authorization server (oidc-provider, npm) on loopback:
//!   client credentials, introspection, revocation, token exchange, per-endpoint counts.
//! - [`bootstrap`]: Envoy bootstraps running one `jwt_authn` JSON in our wasm filter, in native
//!   `jwt_authn`, or both side by side.
//! - [`table`]: the differential table: one `jwt_authn` configuration, the requests, native's
//!   answers (tests/differential.rs, tests/explain.rs).
//! - [`vectors`]: other projects' test key sets and ours, with the answers each filter gives.
//! - [`revocation`]: a provider with a revocation list behind a cluster, its list documents
//!   and tokens (tests/revocation_e2e.rs, tests/revocation_fleet.rs).
//!
//! Here: [`Proxy`] (an echo upstream and an Envoy; [`Proxy::wasm_with_cluster`] is our filter
//! on listener `wasm` with one cluster to a stand-in server), and the waits [`eventually`] and
//! [`until_status`].
//!
//! Each test binary compiles this whole module and uses part of it.
#![allow(dead_code)]

pub mod authserver;
pub mod bootstrap;
pub mod envoy;
pub mod h2c;
pub mod http;
pub mod idp;
pub mod mint;
pub mod revocation;
pub mod table;
pub mod upstream;
pub mod vectors;

use bootstrap::{Listener, Side};
use envoy::Envoy;
use http::{Request, Response};
use upstream::Upstream;

use std::time::{Duration, Instant};

use serde_json::Value;

/// An echo upstream plus an Envoy in front of it.
pub struct Proxy {
    /// The echo server all listeners route to.
    pub upstream: Upstream,
    /// The Envoy.
    pub envoy: Envoy,
}

impl Proxy {
    /// Starts an echo upstream and an Envoy with `listeners`; `Err` carries Envoy's start
    /// failure (with the log tail) or the missing-module hint, for shared fixtures to report in
    /// every test.
    pub fn try_start(listeners: &[Listener]) -> Result<Proxy, String> {
        if listeners.iter().any(|l| l.side == Side::Wasm) {
            bootstrap::wasm_module()?;
        }
        let upstream = Upstream::start();
        let boot = bootstrap::bootstrap(listeners, upstream.port());
        let envoy = Envoy::try_start(&boot).map_err(|e| e.to_string())?;
        Ok(Proxy { upstream, envoy })
    }

    /// Our filter running `cfg` on one listener `wasm` in an Envoy with `workers` worker
    /// threads, and cluster `cluster` pointing at `port` on loopback (a stand-in server:
    /// `common::idp`). Panics with Envoy's log if it does not start.
    pub fn wasm_with_cluster(cfg: &Value, cluster: &str, port: u16, workers: u32) -> Proxy {
        let upstream = Upstream::start();
        let boot = bootstrap::bootstrap(&[Listener::new("wasm", Side::Wasm, cfg)], upstream.port());
        let envoy =
            Envoy::start_with_concurrency(&bootstrap::with_cluster(&boot, cluster, port), workers);
        Proxy { upstream, envoy }
    }

    /// `GET /api` with `Bearer {token}` on listener `wasm`.
    pub fn get(&self, token: &str) -> Response {
        Request::get("/api")
            .bearer(token)
            .send(self.envoy.port("wasm"))
    }

    /// Sends `req` to the listener called `listener`.
    pub fn send(&self, listener: &str, req: &Request) -> Response {
        req.send(self.envoy.port(listener))
    }

    /// Sends `req` to the listener called `listener` over h2c (HTTP/2, prior knowledge).
    pub fn send_h2(&self, listener: &str, req: &Request) -> Response {
        h2c::send(self.envoy.port(listener), req)
    }
}

/// Seconds since the Unix epoch (tokens' `exp`/`nbf` are relative to this).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Every value of header `name` (lower-case) in a header list, in order.
pub fn header_values<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; the last answer of `f`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Calls `send` every 20 ms until its answer has status `want`, for at most `within`; every
/// answer before it must have status `meanwhile` (else the test fails). Returns that answer and
/// how long it took.
pub fn until_status(
    mut send: impl FnMut() -> Response,
    want: u16,
    meanwhile: u16,
    within: Duration,
) -> (Response, Duration) {
    let started = Instant::now();
    loop {
        let resp = send();
        if resp.status == want {
            return (resp, started.elapsed());
        }
        assert_eq!(resp.status, meanwhile, "waiting for {want}: {resp}");
        assert!(
            started.elapsed() < within,
            "no {want} within {within:?}; last: {resp}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
