//! Remote JWKS, end to end: the filter fetches keys itself through an Envoy cluster from a
//! real local JWKS server (`common::idp`) that counts requests and can rotate keys,
//! fail, send garbage or a huge body, answer slowly, not at all, or break a response after its
//! headers (over HTTP/1.1 or h2c).
//!
//! Each test runs its own Envoy (`--concurrency 1`, or 4 where the workers must share one
//! fetch) and JWKS server, so modes and counts do not leak between tests. The callout-fault
//! table is one test with one Envoy: each row has its own provider, cluster and JWKS server, so
//! rows do not leak into each other either.

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
use common::idp::{jwks_only, Break, Idp, Mode};
use common::mint::{self, Key};
use common::upstream::Upstream;
use common::{eventually, Proxy};

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
fn start(cfg: &Value, jwks: &Idp) -> Proxy {
    start_with_workers(cfg, jwks, 1)
}

fn start_with_workers(cfg: &Value, jwks: &Idp, workers: u32) -> Proxy {
    Proxy::wasm_with_cluster(cfg, "jwks", jwks.port(), workers)
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
    // Each answer that is not a usable key set, and a connection closed. A server that stalls
    // past the timeout at refresh is
    // `every_broken_response_is_a_failed_fetch_at_cold_start_and_at_refresh`'s (over HTTP/1.1
    // and h2c, each way a response can break); last-good keys through failed refreshes are
    // also tested natively (`src/callouts/tests.rs`).
    let outages = [
        ("500", Mode::Status(500)),
        ("garbage", Mode::Garbage),
        ("huge body", Mode::Huge(2 * 1024 * 1024)),
        ("connection closed", Mode::Close),
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
    // The refresh, due at 80% of 3 s: polled for, not slept for. The fleet protocol (one lease,
    // peers adopt) is covered natively (`src/fleet/tests.rs`, `src/filter/tests.rs`); what only
    // real Envoy shows is that its shared data carries it: when the refresh is due, five VMs
    // would each fetch within one timer tick (1 s) of it, and here only one does.
    assert!(
        eventually(Duration::from_secs(5), || jwks.requests() >= 2),
        "no refresh after 80% of cache_duration"
    );
    std::thread::sleep(TICK_AND_MARGIN);
    let refreshes = jwks.requests() - 1;
    assert_eq!(refreshes, 1, "one refresh fetch for five VMs");
    eprintln!("--concurrency 4: 1 fetch at start, 1 at the refresh (due every 2.4 s)");
    assert_eq!(setup.get(&good()).status, 200);
}

/// One timer tick of the filter (1 s, `filter::TICK`: every VM looks for due fetches that
/// often) and some margin, shorter than the 2.4 s between refreshes of a 3 s key set.
const TICK_AND_MARGIN: Duration = Duration::from_millis(1_300);

/// `share_key_sets: false`: no VM reads or writes shared data, so each fetches for itself
/// (four workers and the main thread) and every worker still serves.
#[test]
fn without_shared_key_sets_every_vm_fetches_for_itself() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    let mut cfg = config(json!({}));
    cfg["share_key_sets"] = json!(false);
    let setup = start_with_workers(&cfg, &jwks, 4);
    let port = setup.envoy.port("wasm");
    let token = good();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|_| s.spawn(|| Request::get("/api").bearer(&token).send(port).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        eventually(Duration::from_secs(2), || jwks.requests() == 5),
        "{} fetches for five VMs",
        jwks.requests()
    );
    eprintln!(
        "share_key_sets false, --concurrency 4: {} fetches at start",
        jwks.requests()
    );
}

/// At cold start with four workers, the identity provider's first answer is a failure, and a
/// slow one: every worker holds requests by then, the VM whose fetch it is and its peers,
/// which wait for that fetch through shared data. The failure must release them all at once,
/// as a success does, not each peer at its next timer tick (it took up to 1 s and more).
#[test]
fn a_failed_first_fetch_releases_requests_on_every_worker_at_once() {
    let jwks = Idp::serving(&jwks_only(&["rsa-a"]));
    // 1.5 s: half-way between two 1 s ticks of the peers, which all started with the fetch.
    jwks.set_mode(Mode::Slow {
        delay: Duration::from_millis(1500),
        then: Box::new(Mode::Status(500)),
    });
    let cfg = config(json!({
        "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "5s" },
    }));
    let setup = start_with_workers(&cfg, &jwks, 4);
    let port = setup.envoy.port("wasm");
    let token = good();
    let start = Instant::now();
    // One connection per request, so the kernel spreads them over the four workers.
    let answers: Vec<(u16, String, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..48)
            .map(|_| {
                s.spawn(|| {
                    let resp = Request::get("/api").bearer(&token).send(port);
                    (resp.status, resp.body_str().to_owned(), start.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body, _) in &answers {
        assert_eq!(
            (*status, body.as_str()),
            (401, "Jwks remote fetch is failed")
        );
    }
    let first = answers.iter().map(|a| a.2).min().unwrap();
    let last = answers.iter().map(|a| a.2).max().unwrap();
    // The identity provider's failure, on the test's clock (the retry comes a backoff and
    // another 1.5 s later, so this is the first fetch's).
    let failed = jwks.answered_at().expect("the fetch was answered") - start;
    // The requests were held for the fetch, on several workers (the debug line of each
    // denial carries its thread).
    let log = setup.envoy.log();
    let workers: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("jwt-authn-wasm: 401 GET /api"))
        .filter_map(|l| l.split(']').nth(1))
        .collect();
    eprintln!(
        "--concurrency 4, first fetch fails after 1.5 s: {} requests on {} workers; failure \
         at {failed:?}, answers from {first:?} to {last:?}: spread {:?}, last {:?} after the \
         failure",
        answers.len(),
        workers.len(),
        last - first,
        last.saturating_sub(failed)
    );
    assert!(
        first >= failed,
        "answered before the fetch ended: {first:?} < {failed:?}"
    );
    assert!(workers.len() >= 2, "one worker only: {workers:?}");
    assert!(
        last - first < Duration::from_millis(400),
        "the last answer came {:?} after the first",
        last - first
    );
    // When the VM holding the lease is the main thread's (which has no requests), every
    // worker is a peer: the answers can come together yet all late. Measured from the
    // failure, that shows.
    assert!(
        last - failed < Duration::from_millis(400),
        "the last answer came {:?} after the failure",
        last - failed
    );
    // Nothing waits any more: no VM keeps polling shared data (each logs its timer changes).
    let timers = || {
        let mut timers = std::collections::BTreeMap::new();
        for line in setup.envoy.log().lines() {
            if !line.contains("jwt-authn-wasm: timer ") {
                continue;
            }
            if let (Some(thread), Some(period)) = (line.split(']').nth(1), line.rsplit(' ').next())
            {
                timers.insert(thread.to_owned(), period.to_owned());
            }
        }
        timers
    };
    let done = eventually(Duration::from_secs(3), || {
        let timers = timers();
        !timers.is_empty() && timers.values().all(|period| period != "50ms")
    });
    let timers = timers();
    assert!(!timers.is_empty(), "no timer lines logged");
    assert!(done, "still polling: {timers:?}");
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

// ---- Callout faults: every way a response can break after it started ----------------------

/// The protocol Envoy speaks to the identity provider of a fault row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http1,
    H2c,
}

/// One row of the fault table: a provider whose identity provider breaks its responses `how`,
/// over `proto`, either the JWKS itself or (`discovery`) the OpenID configuration too.
struct FaultRow {
    /// Provider name, cluster name and path prefix: `[discovery_]<proto>_<break>`.
    name: String,
    how: Break,
    proto: Proto,
    discovery: bool,
    idp: Idp,
    token: String,
}

impl FaultRow {
    fn issuer(&self) -> String {
        format!("https://idp.example/{}", self.name)
    }

    /// Breaks every response (the JWKS and, for a discovery row, the OpenID configuration).
    fn break_responses(&self) {
        self.idp.set_mode(Mode::Broken(self.how));
        if self.discovery {
            self.idp.set_discovery_mode(Some(Mode::Broken(self.how)));
        }
    }

    /// Answers again: the key set with rsa-a, and the OpenID configuration naming it.
    fn recover(&self) {
        self.idp.rotate(&jwks_only(&["rsa-a"]));
        if self.discovery {
            let document = json!({
                "issuer": self.issuer(),
                "jwks_uri": format!("http://idp.example/{}/jwks", self.name),
            });
            self.idp.set_discovery(Some(document.to_string()));
        }
    }

    /// Fetches of the document that breaks first: the OpenID configuration for a discovery
    /// row (the JWKS is never reached while it breaks), else the JWKS.
    fn broken_fetches(&self) -> usize {
        if self.discovery {
            self.idp.discovery_requests()
        } else {
            self.idp.requests()
        }
    }

    /// `jwks_fetch_failed.reset` of this provider (both listeners' plugins count there).
    fn resets(&self, envoy: &Envoy) -> u64 {
        envoy
            .stat(&format!(
                "wasmcustom.jwt_authn_wasm.{}.jwks_fetch_failed.reset",
                self.name
            ))
            .unwrap_or(0)
    }

    fn get(&self, envoy: &Envoy, listener: &str) -> common::http::Response {
        Request::get(format!("/{}/api", self.name))
            .bearer(&self.token)
            .send(envoy.port(listener))
    }
}

/// Every break over both protocols, for the JWKS and for the OpenID configuration.
fn fault_rows() -> Vec<FaultRow> {
    let mut rows = Vec::new();
    for discovery in [false, true] {
        for proto in [Proto::Http1, Proto::H2c] {
            for how in Break::ALL {
                let name = format!(
                    "{}{}_{}",
                    if discovery { "discovery_" } else { "" },
                    match proto {
                        Proto::Http1 => "http1",
                        Proto::H2c => "h2c",
                    },
                    how.name()
                );
                let claims = json!({
                    "iss": format!("https://idp.example/{name}"),
                    "sub": "alice",
                    "exp": common::now() + 3600,
                });
                let token = mint::sign(
                    &json!({ "alg": "RS256", "kid": "rsa-a" }),
                    &claims,
                    "RS256",
                    Key::RsaA,
                );
                rows.push(FaultRow {
                    idp: Idp::serving(&jwks_only(&["rsa-a"])),
                    name,
                    how,
                    proto,
                    discovery,
                    token,
                });
            }
        }
    }
    rows
}

/// One provider and one rule (`/<name>/`) per row; refresh every 0.8 s, retry after 0.1 s,
/// back off at most 0.3 s, give up on a response after 1 s. `keys_unavailable` as given.
fn fault_config(rows: &[FaultRow], keys_unavailable: &str) -> Value {
    let mut providers = serde_json::Map::new();
    let mut rules = Vec::new();
    for row in rows {
        let mut http_uri = json!({ "cluster": row.name, "timeout": "1s" });
        if !row.discovery {
            http_uri["uri"] = json!(format!("http://idp.example/{}/jwks", row.name));
        }
        providers.insert(
            row.name.clone(),
            json!({
                "issuer": row.issuer(),
                "remote_jwks": {
                    "http_uri": http_uri,
                    "oidc_discovery": row.discovery,
                    "cache_duration": "1s", "min_cache_duration": "1s",
                    "async_fetch": { "failed_refetch_duration": "0.1s" }, "max_backoff": "0.3s",
                },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            }),
        );
        rules.push(json!({
            "match": { "prefix": format!("/{}/", row.name) },
            "requires": { "provider_name": row.name },
        }));
    }
    json!({
        "providers": providers,
        "rules": rules,
        "failure_policy": { "keys_unavailable": keys_unavailable },
    })
}

/// Sends each row's token on both listeners at once; returns a line per answer that `expect`
/// (listener, response) refuses.
fn check_rows(
    rows: &[FaultRow],
    envoy: &Envoy,
    expect: impl Fn(&str, &common::http::Response) -> bool + Sync,
) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .iter()
            .flat_map(|row| ["wasm", "wasm503"].map(|listener| (row, listener)))
            .map(|(row, listener)| {
                let expect = &expect;
                s.spawn(move || {
                    let resp = row.get(envoy, listener);
                    (!expect(listener, &resp)).then(|| {
                        format!(
                            "{} on {listener}: {} {:?}",
                            row.name,
                            resp.status,
                            resp.body_str()
                        )
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Regression, then the class: a JWKS response reset after its headers (the IdP closing
/// mid-body) reached the filter with no response attached, and reading its `:status` through
/// the SDK panicked: the VM aborted, the next VM took the lease and aborted too. Now every way
/// a JWKS or OpenID configuration response can break after it started ([`Break`]: headers
/// then close, headers then a stall past `http_uri.timeout`, a truncated `content-length`
/// body, a chunked body cut mid-chunk, a reset), over HTTP/1.1 and HTTP/2 (h2c: `RST_STREAM`,
/// a connection dying under a stream), is a failed fetch counted as `reset`:
/// - cold start: no keys, so 401 (503 with `keys_unavailable: deny_503`), and the keys once
///   the identity provider answers again;
/// - refresh: the last good keys keep serving;
/// - no VM ever fails.
///
/// One Envoy for all rows: a provider, a cluster and an identity provider per row, and two
/// listeners with the same providers (`wasm`: default policy; `wasm503`: `deny_503`).
#[test]
fn every_broken_response_is_a_failed_fetch_at_cold_start_and_at_refresh() {
    let rows = fault_rows();
    for row in &rows {
        row.break_responses();
    }
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(
        &[
            Listener::new("wasm", Side::Wasm, &fault_config(&rows, "deny_401")),
            Listener::new("wasm503", Side::Wasm, &fault_config(&rows, "deny_503")),
        ],
        upstream.port(),
    );
    let boot = rows.iter().fold(boot, |boot, row| match row.proto {
        Proto::Http1 => bootstrap::with_cluster(&boot, &row.name, row.idp.port()),
        Proto::H2c => bootstrap::with_h2c_cluster(&boot, &row.name, row.idp.port()),
    });
    let envoy = Envoy::start(&boot);

    // Cold start: every fetch breaks, so there are no keys; the filter keeps retrying.
    let retried = eventually(Duration::from_secs(15), || {
        rows.iter().all(|row| row.resets(&envoy) >= 2)
    });
    assert_no_vm_failure(&envoy, "at cold start");
    let counts: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}: {} fetches, {} resets",
                r.name,
                r.broken_fetches(),
                r.resets(&envoy)
            )
        })
        .collect();
    assert!(
        retried,
        "cold start, not two resets each:\n{}",
        counts.join("\n")
    );
    // 401 with a `WWW-Authenticate` challenge; `deny_503`: 503 without one.
    let wrong = check_rows(&rows, &envoy, |listener, resp| {
        let (status, challenge) = if listener == "wasm" {
            (401, true)
        } else {
            (503, false)
        };
        resp.status == status
            && resp.body_str() == "Jwks remote fetch is failed"
            && resp.header("www-authenticate").is_some() == challenge
    });
    assert_eq!(wrong, Vec::<String>::new(), "cold start without keys");
    for row in &rows {
        if row.discovery {
            assert_eq!(
                row.idp.requests(),
                0,
                "{}: JWKS fetched without discovery",
                row.name
            );
        }
    }

    // The identity providers answer again: every provider learns its keys.
    for row in &rows {
        row.recover();
    }
    let mut wrong = Vec::new();
    let recovered = eventually(Duration::from_secs(15), || {
        wrong = check_rows(&rows, &envoy, |_, resp| {
            resp.status == 200
                && resp
                    .echo()
                    .and_then(|e| e.header("x-jwt-sub").map(str::to_owned))
                    == Some("alice".to_owned())
        });
        wrong.is_empty()
    });
    assert_no_vm_failure(&envoy, "while recovering");
    assert!(recovered, "no recovery after the cold start: {wrong:#?}");

    // Refreshes break again: the last good keys keep serving, all along.
    let before: Vec<(usize, u64)> = rows
        .iter()
        .map(|r| (r.broken_fetches(), r.resets(&envoy)))
        .collect();
    for row in &rows {
        row.break_responses();
    }
    let mut denied = Vec::new();
    let refreshes_failed = eventually(Duration::from_secs(15), || {
        denied.extend(check_rows(&rows, &envoy, |_, resp| resp.status == 200));
        rows.iter().zip(&before).all(|(row, (fetches, resets))| {
            row.broken_fetches() > *fetches && row.resets(&envoy) >= resets + 2
        })
    });
    assert_no_vm_failure(&envoy, "at refresh");
    assert!(refreshes_failed, "refresh: not every row broke twice");
    denied.extend(check_rows(&rows, &envoy, |_, resp| resp.status == 200));
    assert_eq!(
        denied,
        Vec::<String>::new(),
        "refresh faults: the last good keys must serve"
    );

    for row in &rows {
        let h2 = row.idp.h2_connections();
        match row.proto {
            Proto::H2c => assert!(h2 > 0, "{}: Envoy never spoke h2c", row.name),
            Proto::Http1 => assert_eq!(h2, 0, "{}: Envoy spoke h2c", row.name),
        }
    }
    assert_no_vm_failure(&envoy, "at the end");
    let resets: u64 = rows.iter().map(|r| r.resets(&envoy)).sum();
    eprintln!(
        "faults: {} rows (5 breaks x HTTP/1.1, h2c x JWKS, discovery), {resets} resets counted, \
         every cold start 401/503 then 200, every refresh on the last good keys",
        rows.len()
    );
}

/// No panic, trap or failed callback in the log, and no `wasm.*` failure stat.
fn assert_no_vm_failure(envoy: &Envoy, when: &str) {
    let mut lines = envoy.wasm_failures();
    lines.extend(
        envoy
            .wasm_failure_stats()
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}")),
    );
    assert!(
        lines.is_empty(),
        "the wasm VM failed {when}:\n{}",
        lines.join("\n")
    );
}
