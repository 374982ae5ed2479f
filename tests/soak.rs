//! Soak under faults (`make soak`): many requests through a real Envoy (`--concurrency 2`, so
//! two worker VMs share one fetch through the lease) while the stand-in identity provider
//! rotates keys, fails in every way it can (every mode of `common::idp`, every [`Break`] of a
//! response after its headers), and recovers.
//!
//! Two providers fetch from that one identity provider: `idp` over HTTP/1.1 (cluster `jwks`)
//! and `idp_h2` over h2c (cluster `jwks_h2`), each with its issuer; the rule accepts either
//! (`requires_any`), and tokens of both issuers are sent, so every fault is met over both
//! protocols.
//!
//! Requests mix valid tokens (rsa-a, in every key set the IdP ever serves), rotation tokens
//! (rsa-b / ec256, only in some sets), invalid tokens (tampered, expired, wrong issuer,
//! `alg: none`, random base64 segments, random text) and no token, over keep-alive
//! connections from several threads. It fails on:
//! - any valid token denied once the first key set is in (last-good keys are kept through
//!   outages, so the outage policy never denies a key that was fetched);
//! - any invalid token or missing token accepted;
//! - any wasm VM failure (log, `wasm.*` failure stats, live VM gauge);
//! - Envoy's RSS growing by more than `SOAK_MAX_RSS_GROWTH_MB` (default 64) from the warm-up
//!   to the end.
//!
//! Bounded: `SOAK_REQUESTS` (default 1,000,000) or `SOAK_SECONDS` (default 3600), whichever
//! comes first; `SOAK_THREADS` clients (default 8). Loopback only. Ignored by `cargo test`;
//! run `make soak` (or `cargo test --release --test soak -- --ignored --nocapture`).

// Tests fail by panicking, and index into values they have just built.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::idp::{jwks_only, Break, Idp, Mode};
use common::mint::{self, Key};
use common::upstream::Upstream;

const ISS: &str = "https://soak.example";
/// The issuer of `idp_h2`, the provider whose keys come over h2c.
const ISS_H2: &str = "https://h2.soak.example";
const VM_GAUGE: &str = "wasm.envoy.wasm.runtime.v8.active";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Short lifetimes and retries, so a soak of minutes sees many refreshes, failures and
/// recoveries.
fn config() -> Value {
    let provider = |issuer: &str, cluster: &str| {
        json!({
            "issuer": issuer,
            "remote_jwks": {
                "http_uri": { "uri": "http://soak.example/jwks", "cluster": cluster, "timeout": "1s" },
                "cache_duration": "1s",
                "min_cache_duration": "1s",
                "max_backoff": "2s",
                "unknown_kid_refetch_interval": "1s",
                "async_fetch": { "failed_refetch_duration": "1s" },
            },
            "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
        })
    };
    json!({
        "providers": {
            "idp": provider(ISS, "jwks"),
            "idp_h2": provider(ISS_H2, "jwks_h2"),
        },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "idp" },
            { "provider_name": "idp_h2" },
        ] } } }],
    })
}

/// What the IdP does, one step every `STEP`: rotations (rsa-a always in), and faults.
fn schedule() -> Vec<(&'static str, Mode)> {
    let serve = |kids: &[&str]| Mode::Serve {
        body: jwks_only(kids),
        max_age: None,
    };
    // Every break of a response after its headers comes within the first ten steps, so that a
    // short soak (SOAK_REQUESTS=100000 runs about ten steps here) meets them all.
    let broken = |how: Break| Mode::Broken(how);
    vec![
        ("serve rsa-a", serve(&["rsa-a"])),
        (
            "broken: headers then close",
            broken(Break::HeadersThenClose),
        ),
        ("rotate: + rsa-b", serve(&["rsa-a", "rsa-b"])),
        ("broken: reset (RST_STREAM, TCP RST)", broken(Break::Reset)),
        ("500", Mode::Status(500)),
        ("broken: truncated body", broken(Break::TruncatedBody)),
        ("rotate: + ec256", serve(&["rsa-a", "ec256"])),
        ("broken: chunked body cut", broken(Break::ChunkedCut)),
        ("garbage", Mode::Garbage),
        (
            "broken: headers then stall",
            broken(Break::HeadersThenStall),
        ),
        ("serve all three", serve(&["rsa-a", "rsa-b", "ec256"])),
        ("hang up", Mode::Close),
        ("too large", Mode::Huge(2 * 1024 * 1024)),
        ("rotate: rsa-a only", serve(&["rsa-a"])),
        ("hang (timeout)", Mode::Hang),
        (
            "slow, then + rsa-b",
            Mode::Slow {
                delay: Duration::from_millis(700),
                then: Box::new(serve(&["rsa-a", "rsa-b"])),
            },
        ),
        ("503", Mode::Status(503)),
    ]
}

const STEP: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Valid,
    Rotation,
    Invalid,
    Missing,
}

/// Token pools, each value an `Authorization` header (or none).
struct Pools {
    valid: Vec<String>,
    rotation: Vec<String>,
    invalid: Vec<String>,
}

fn pools() -> Pools {
    let claims_of = |iss: &str, sub: &str, exp: i64| json!({ "iss": iss, "sub": sub, "exp": exp });
    let claims = |sub: &str, exp: i64| claims_of(ISS, sub, exp);
    let far = common::now() + 24 * 3600;
    let sign = |kid: &str, alg: &str, key: Key, c: &Value| {
        mint::sign(&json!({ "alg": alg, "kid": kid }), c, alg, key)
    };
    // Half for each provider: even users from `idp` (HTTP/1.1), odd ones from `idp_h2` (h2c).
    let issuer = |i: usize| if i % 2 == 0 { ISS } else { ISS_H2 };
    let valid: Vec<String> = (0..8)
        .map(|i| {
            sign(
                "rsa-a",
                "RS256",
                Key::RsaA,
                &claims_of(issuer(i), &format!("user{i}"), far),
            )
        })
        .collect();
    let rotation = [ISS, ISS_H2]
        .iter()
        .flat_map(|iss| {
            [
                sign(
                    "rsa-b",
                    "RS256",
                    Key::RsaB,
                    &claims_of(iss, "rotated-b", far),
                ),
                sign(
                    "ec256",
                    "ES256",
                    Key::Ec256,
                    &claims_of(iss, "rotated-ec", far),
                ),
            ]
        })
        .collect();
    let mut invalid = vec![
        mint::tampered(&valid[0]),
        mint::tampered(&valid[1]),
        sign(
            "rsa-a",
            "RS256",
            Key::RsaA,
            &claims_of(ISS_H2, "expired", common::now() - 3600),
        ),
        sign(
            "rsa-a",
            "RS256",
            Key::RsaA,
            &claims("expired", common::now() - 3600),
        ),
        sign(
            "rsa-a",
            "RS256",
            Key::RsaA,
            &json!({ "iss": "https://other", "sub": "x", "exp": far }),
        ),
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(claims("none", far).to_string().as_bytes())
        ),
        sign(
            "rsa-unknown",
            "RS256",
            Key::RsaB,
            &claims("unknown-kid", far),
        ),
    ];
    let mut rng = Rng(0x5eed);
    for _ in 0..200 {
        let segment = |rng: &mut Rng| {
            let len = 1 + rng.below(60) as usize;
            (0..len)
                .map(|_| {
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        [rng.below(64) as usize] as char
                })
                .collect::<String>()
        };
        invalid.push(format!(
            "{}.{}.{}",
            segment(&mut rng),
            segment(&mut rng),
            segment(&mut rng)
        ));
        let len = rng.below(200) as usize;
        invalid.push(
            (0..len)
                .map(|_| (0x21 + rng.below(94) as u8) as char)
                .collect(),
        );
    }
    Pools {
        valid,
        rotation,
        invalid,
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// xorshift64: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Counters shared by the client threads.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    valid_ok: AtomicU64,
    valid_denied: AtomicU64,
    rotation_ok: AtomicU64,
    rotation_denied: AtomicU64,
    invalid_denied: AtomicU64,
    invalid_accepted: AtomicU64,
    missing_denied: AtomicU64,
    missing_accepted: AtomicU64,
    server_errors: AtomicU64,
    reconnects: AtomicU64,
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    port: u16,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Sends GET /api with `authorization` (if any); returns the status, reconnecting once if
    /// the connection was closed.
    fn get(&mut self, authorization: Option<&str>, totals: &Totals) -> u16 {
        for _ in 0..3 {
            if self.reader.is_none() {
                let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                stream.set_nodelay(true).unwrap();
                self.reader = Some(BufReader::new(stream));
                totals.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            match self.exchange(authorization) {
                Ok(status) => return status,
                Err(_) => self.reader = None,
            }
        }
        panic!("three connections in a row failed");
    }

    fn exchange(&mut self, authorization: Option<&str>) -> std::io::Result<u16> {
        let reader = self.reader.as_mut().unwrap();
        let auth = authorization
            .map(|a| format!("authorization: Bearer {a}\r\n"))
            .unwrap_or_default();
        let req = format!("GET /api HTTP/1.1\r\nhost: soak.test\r\n{auth}\r\n");
        reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            close |= l == "connection: close";
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if close {
            self.reader = None;
        }
        Ok(status)
    }
}

/// `reason n, ...`: failed fetches by reason, summed over the providers.
fn failure_reasons(stats: &std::collections::BTreeMap<String, String>) -> String {
    let mut by_reason = std::collections::BTreeMap::<&str, u64>::new();
    for (name, value) in stats {
        if let (Some((_, reason)), Ok(n)) =
            (name.split_once(".jwks_fetch_failed."), value.parse::<u64>())
        {
            *by_reason.entry(reason).or_default() += n;
        }
    }
    by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rss_kb(envoy: &Envoy) -> u64 {
    let pid = std::fs::read_to_string(envoy.dir().join("envoy.pid")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
#[ignore = "long: run with `make soak`"]
fn soak_under_jwks_faults() {
    let requests = env_u64("SOAK_REQUESTS", 1_000_000);
    let seconds = env_u64("SOAK_SECONDS", 3600);
    let threads = env_u64("SOAK_THREADS", 8);
    let max_growth_mb = env_u64("SOAK_MAX_RSS_GROWTH_MB", 64);

    let idp = Arc::new(Idp::serving(&jwks_only(&["rsa-a"])));
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(
        &[Listener::new("soak", Side::Wasm, &config())],
        upstream.port(),
    );
    let boot = bootstrap::with_cluster(&boot, "jwks", idp.port());
    let boot = bootstrap::with_h2c_cluster(&boot, "jwks_h2", idp.port());
    let envoy = Envoy::start_with_concurrency(&boot, 2);
    let port = envoy.port("soak");
    let vms_at_start = envoy.stat(VM_GAUGE);
    let pools = Arc::new(pools());

    // Warm-up: keys fetched, both workers' VMs and connection pools exercised.
    let totals = Totals::default();
    let mut warm = Conn { port, reader: None };
    for token in pools.valid.iter().cycle().take(200) {
        assert_eq!(
            warm.get(Some(token), &totals),
            200,
            "warm-up with a valid token"
        );
    }
    drop(warm);
    let rss_before = rss_kb(&envoy);

    let stop = Arc::new(AtomicBool::new(false));
    let faults = {
        let (idp, stop) = (Arc::clone(&idp), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut steps = 0u64;
            for (name, mode) in schedule().into_iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                eprintln!("soak: IdP step {steps}: {name}");
                idp.set_mode(mode);
                steps += 1;
                let until = Instant::now() + STEP;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            steps
        })
    };

    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let (pools, totals) = (Arc::clone(&pools), Arc::clone(&totals));
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut conn = Conn { port, reader: None };
                loop {
                    let n = totals.sent.fetch_add(1, Ordering::Relaxed);
                    if n >= requests || (n % 1000 == 0 && Instant::now() > deadline) {
                        break;
                    }
                    let (kind, token) = match rng.below(100) {
                        0..=49 => (Kind::Valid, Some(&pools.valid[rng.below(8) as usize])),
                        50..=59 => {
                            let i = rng.below(pools.rotation.len() as u64) as usize;
                            (Kind::Rotation, Some(&pools.rotation[i]))
                        }
                        60..=94 => {
                            let i = rng.below(pools.invalid.len() as u64) as usize;
                            (Kind::Invalid, Some(&pools.invalid[i]))
                        }
                        _ => (Kind::Missing, None),
                    };
                    let status = conn.get(token.map(String::as_str), &totals);
                    let ok = status == 200;
                    if status >= 500 {
                        totals.server_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let counter = match (kind, ok) {
                        (Kind::Valid, true) => &totals.valid_ok,
                        (Kind::Valid, false) => {
                            eprintln!("soak: valid token denied with {status}");
                            &totals.valid_denied
                        }
                        (Kind::Rotation, true) => &totals.rotation_ok,
                        (Kind::Rotation, false) => &totals.rotation_denied,
                        (Kind::Invalid, true) => {
                            eprintln!("soak: invalid token accepted: {:?}", token);
                            &totals.invalid_accepted
                        }
                        (Kind::Invalid, false) => &totals.invalid_denied,
                        (Kind::Missing, true) => &totals.missing_accepted,
                        (Kind::Missing, false) => &totals.missing_denied,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let steps = faults.join().unwrap();
    idp.rotate(&jwks_only(&["rsa-a"])); // release any hanging fetch before reading stats
    let rss_after = rss_kb(&envoy);

    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let done = get(&totals.valid_ok)
        + get(&totals.valid_denied)
        + get(&totals.rotation_ok)
        + get(&totals.rotation_denied)
        + get(&totals.invalid_denied)
        + get(&totals.invalid_accepted)
        + get(&totals.missing_denied)
        + get(&totals.missing_accepted);
    let stats = envoy.stats();
    let stat = |suffix: &str| -> u64 {
        stats
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum()
    };
    println!(
        "soak: {done} requests in {:.1}s ({:.0}/s), {threads} client threads, {steps} IdP steps, \
         {} JWKS requests ({} h2c connections)\n\
         soak: valid {} ok / {} denied; rotation {} ok / {} denied; invalid {} denied / {} accepted; \
         no token {} denied / {} accepted; 5xx {}; connections {}\n\
         soak: JWKS fetches ok {}, failed {} ({}); Envoy RSS {} kB after warm-up, {} kB at the end ({:+} kB)",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        idp.requests(),
        idp.h2_connections(),
        get(&totals.valid_ok),
        get(&totals.valid_denied),
        get(&totals.rotation_ok),
        get(&totals.rotation_denied),
        get(&totals.invalid_denied),
        get(&totals.invalid_accepted),
        get(&totals.missing_denied),
        get(&totals.missing_accepted),
        get(&totals.server_errors),
        get(&totals.reconnects),
        stat(".jwks_fetch_success"),
        stats
            .iter()
            .filter(|(k, _)| k.contains(".jwks_fetch_failed."))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum::<u64>(),
        failure_reasons(&stats),
        rss_before,
        rss_after,
        rss_after as i64 - rss_before as i64,
    );

    let failures = envoy.wasm_failures();
    assert!(
        failures.is_empty(),
        "the wasm VM failed:\n{}",
        failures.join("\n")
    );
    let failure_stats = envoy.wasm_failure_stats();
    assert!(
        failure_stats.is_empty(),
        "wasm failure stats: {failure_stats:?}"
    );
    assert_eq!(envoy.stat(VM_GAUGE), vms_at_start, "{VM_GAUGE}");
    assert_eq!(get(&totals.valid_denied), 0, "valid tokens denied");
    assert_eq!(get(&totals.invalid_accepted), 0, "invalid tokens accepted");
    assert_eq!(
        get(&totals.missing_accepted),
        0,
        "requests without a token accepted"
    );
    assert!(
        get(&totals.valid_ok) > 0 && steps > 1,
        "the soak did not run"
    );
    assert!(idp.h2_connections() > 0, "Envoy never spoke h2c to the IdP");
    assert!(
        rss_after <= rss_before + max_growth_mb * 1024,
        "Envoy RSS grew from {rss_before} kB to {rss_after} kB"
    );
}
