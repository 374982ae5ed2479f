//! `make bench`: jwt-authn-wasm against Envoy's native `jwt_authn`, side by side in ONE Envoy
//! (1.40, one worker, `--concurrency 1`), each listener answering with a direct response, load
//! from `wrk -t1 -c16`. Prints req/s, p50, p99 and the ratio to the native row each of ours is
//! compared with, writes the table to `target/bench/bench.md`, and puts it into README.md
//! between the `bench-table` markers.
//!
//! `make bench-memory` (`-- --memory`): Envoy's RSS before and after one million requests, each
//! with a token never seen before, through our filter with `jwt_cache_config` (the cache and key
//! sets are bounded, so RSS must level off). Writes `target/bench/memory.md` and the README's
//! `bench-memory` block.
//!
//! Never run by `cargo test` (`test = false` in Cargo.toml): speed is measured here, never
//! asserted. A setup whose answers are not what it claims (a 401 where every token is good)
//! stops the bench, so a broken setup cannot pass for a fast one.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

#[path = "../common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::mint;

const ISSUER: &str = "https://issuer.bench";
/// Distinct tokens per set.
const DISTINCT: usize = 2000;
/// Load per setup: warm-up, then the measured run.
const WARMUP: &str = "1s";
const DURATION: &str = "5s";
const CONNECTIONS: &str = "16";
/// Requests of the memory run, all with distinct tokens.
const MEMORY_REQUESTS: usize = 1_000_000;

/// The `jwt_authn` config every JWT listener runs: one provider, every path requires it.
fn config(cache: bool) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": ["bench"],
        "local_jwks": { "inline_string": mint::JWKS },
        "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
    });
    if cache {
        provider["jwt_cache_config"] = json!({});
    }
    json!({
        "providers": { "bench": provider },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "bench" } }],
    })
}

/// A bootstrap with `listeners`; every route answers 200 itself, and a listener whose config is
/// `null` has no JWT filter at all.
fn bootstrap(listeners: &[Listener]) -> String {
    let mut boot: Value = serde_json::from_str(&bootstrap::bootstrap(listeners, 9)).unwrap();
    for (listener, spec) in boot["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(listeners)
    {
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["route_config"]["virtual_hosts"][0]["routes"] = json!([{
            "match": { "prefix": "/" },
            "direct_response": { "status": 200, "body": { "inline_string": "ok" } },
        }]);
        if spec.config.is_null() {
            hcm["http_filters"].as_array_mut().unwrap().remove(0);
        }
        if spec.name == EMPTY_LISTENER {
            let vm = &mut hcm["http_filters"][0]["typed_config"]["config"]["vm_config"];
            vm["vm_id"] = json!("empty");
            vm["code"]["local"]["filename"] = json!(empty_filter_path().to_string_lossy());
        }
    }
    boot.to_string()
}

fn claims(n: usize) -> Value {
    json!({ "iss": ISSUER, "aud": "bench", "sub": format!("user-{n}"),
            "exp": common::now() + 86_400, "jti": format!("bench-{n}") })
}

/// The listener that runs `tests/bench/empty-filter` (a Rust filter that does nothing).
const EMPTY_LISTENER: &str = "wasm_empty";

fn empty_filter_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/empty-filter/wasm32-wasip1/release/empty_filter.wasm")
}

/// `token` with a signature character changed: well-formed, signature invalid.
fn tampered(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 5;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn write_tokens(dir: &Path, name: &str, tokens: &[String]) -> PathBuf {
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, tokens.join("\n") + "\n").unwrap();
    path
}

const WRK_SCRIPT: &str = r#"
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[i] })
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
end
"#;

/// One wrk run's numbers.
struct Run {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    non_2xx: f64,
}

fn wrk(port: u16, tokens: &Path, script: &Path, duration: &str) -> Run {
    let out = Command::new("wrk")
        .args(["-t1", "-c", CONNECTIONS, "-d", duration, "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .env("BENCH_TOKENS", tokens)
        .output()
        .expect("wrk runs (make bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .unwrap_or_else(|| {
            panic!(
                "no result from wrk:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let n: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    let (requests, micros) = (n[0], n[1]);
    Run {
        rps: requests / (micros / 1e6),
        p50_us: n[2] as u64,
        p99_us: n[3] as u64,
        non_2xx: if requests > 0.0 { n[4] / requests } else { 0.0 },
    }
}

/// One row of the table: a listener, a token file, the share of non-2xx answers it must get,
/// and the row (a native one) it is compared with.
struct Setup {
    name: &'static str,
    listener: &'static str,
    tokens: &'static str,
    want_non_2xx: f64,
    baseline: Option<&'static str>,
}

const NO_FILTER: &str = "no filter (direct response)";
const NATIVE_RS256: &str = "native `jwt_authn`, 2000 distinct RS256";
const NATIVE_ES256: &str = "native `jwt_authn`, 2000 distinct ES256";
const NATIVE_MIXED: &str = "native `jwt_authn`, RS256 with 10% invalid";
const NATIVE_CACHED: &str = "native `jwt_authn` + `jwt_cache_config`, one repeated token";

fn main() {
    if std::env::args().any(|a| a == "--memory") {
        memory();
    } else {
        throughput();
    }
}

fn throughput() {
    let dir = out_dir();
    eprintln!("bench: minting {DISTINCT} RS256 and {DISTINCT} ES256 tokens");
    let rs256: Vec<String> = (0..DISTINCT)
        .map(|n| mint::token("RS256", &claims(n)))
        .collect();
    let es256: Vec<String> = (0..DISTINCT)
        .map(|n| mint::token("ES256", &claims(n)))
        .collect();
    let mixed: Vec<String> = rs256
        .iter()
        .enumerate()
        .map(|(n, t)| if n % 10 == 9 { tampered(t) } else { t.clone() })
        .collect();
    write_tokens(&dir, "one", &rs256[..1]);
    write_tokens(&dir, "rs256", &rs256);
    write_tokens(&dir, "es256", &es256);
    write_tokens(&dir, "mixed", &mixed);
    let script = dir.join("tokens.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();

    let mut pure = config(false);
    pure["host_signatures"] = json!(false);
    // A route that needs no token: what our filter costs before any JWT work.
    let mut open = config(false);
    open["rules"] = json!([{ "match": { "prefix": "/" } }]);
    let listeners = [
        Listener::new("none", Side::Native, &Value::Null),
        Listener::new("native", Side::Native, &config(false)),
        Listener::new("native_cache", Side::Native, &config(true)),
        Listener::new("wasm", Side::Wasm, &config(false)),
        Listener::new("wasm_cache", Side::Wasm, &config(true)),
        Listener::new("wasm_pure", Side::Wasm, &pure),
        Listener::new("wasm_open", Side::Wasm, &open),
        Listener::new(EMPTY_LISTENER, Side::Wasm, &json!({})),
    ];
    let envoy = Envoy::start_quiet(&bootstrap(&listeners));
    let log = envoy.log();
    assert!(
        log.contains("signatures: RS* and ES* by the host"),
        "the host's verify_signature was not taken; log in {}",
        envoy.dir().display()
    );

    let setups = [
        Setup {
            name: NO_FILTER,
            listener: "none",
            tokens: "one",
            want_non_2xx: 0.0,
            baseline: None,
        },
        Setup {
            name: "an empty Rust proxy-wasm filter",
            listener: EMPTY_LISTENER,
            tokens: "one",
            want_non_2xx: 0.0,
            baseline: Some(NO_FILTER),
        },
        Setup {
            name: "ours on a route that needs no token",
            listener: "wasm_open",
            tokens: "one",
            want_non_2xx: 0.0,
            baseline: Some(NO_FILTER),
        },
        Setup {
            name: NATIVE_RS256,
            listener: "native",
            tokens: "rs256",
            want_non_2xx: 0.0,
            baseline: None,
        },
        Setup {
            name: NATIVE_ES256,
            listener: "native",
            tokens: "es256",
            want_non_2xx: 0.0,
            baseline: None,
        },
        Setup {
            name: NATIVE_MIXED,
            listener: "native",
            tokens: "mixed",
            want_non_2xx: 0.1,
            baseline: None,
        },
        Setup {
            name: NATIVE_CACHED,
            listener: "native_cache",
            tokens: "one",
            want_non_2xx: 0.0,
            baseline: None,
        },
        Setup {
            name: "ours + `jwt_cache_config`, one repeated token",
            listener: "wasm_cache",
            tokens: "one",
            want_non_2xx: 0.0,
            baseline: Some(NATIVE_CACHED),
        },
        Setup {
            name: "ours, 2000 distinct RS256 (host `verify_signature`)",
            listener: "wasm",
            tokens: "rs256",
            want_non_2xx: 0.0,
            baseline: Some(NATIVE_RS256),
        },
        Setup {
            name: "ours, 2000 distinct ES256 (host `verify_signature`)",
            listener: "wasm",
            tokens: "es256",
            want_non_2xx: 0.0,
            baseline: Some(NATIVE_ES256),
        },
        Setup {
            name: "ours, 2000 distinct RS256, pure Rust (`host_signatures: false`)",
            listener: "wasm_pure",
            tokens: "rs256",
            want_non_2xx: 0.0,
            baseline: Some(NATIVE_RS256),
        },
        Setup {
            name: "ours, RS256 with 10% invalid",
            listener: "wasm",
            tokens: "mixed",
            want_non_2xx: 0.1,
            baseline: Some(NATIVE_MIXED),
        },
    ];
    // `BENCH_ONLY=floor,cache`: only the setups whose names contain one of these words (the
    // table then goes to target/bench only, not into the README).
    let only = std::env::var("BENCH_ONLY").ok();
    let setups: Vec<Setup> = setups
        .into_iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|words| words.split(',').any(|w| s.name.contains(w)))
        })
        .collect();
    let mut runs: Vec<Run> = Vec::new();
    for setup in &setups {
        let port = envoy.port(setup.listener);
        let tokens = dir.join(format!("{}.txt", setup.tokens));
        wrk(port, &tokens, &script, WARMUP);
        let run = wrk(port, &tokens, &script, DURATION);
        eprintln!(
            "bench: {:<70} {:>8.0} req/s  p50 {:>6} us  p99 {:>6} us  non-2xx {:.1}%",
            setup.name,
            run.rps,
            run.p50_us,
            run.p99_us,
            run.non_2xx * 100.0
        );
        assert!(
            (run.non_2xx - setup.want_non_2xx).abs() < 0.02,
            "{}: {:.1}% non-2xx answers, expected {:.0}%; Envoy log in {}",
            setup.name,
            run.non_2xx * 100.0,
            setup.want_non_2xx * 100.0,
            envoy.dir().display()
        );
        runs.push(run);
    }

    let mut table = String::from(
        "| setup | req/s | p50 | p99 | vs native (req/s) | vs native (p99) |\n|---|---|---|---|---|---|\n",
    );
    for (setup, run) in setups.iter().zip(&runs) {
        let base = setup
            .baseline
            .and_then(|name| setups.iter().position(|s| s.name == name));
        let (ratio, p99) = match base {
            Some(b) => (
                format!("{:.2}×", run.rps / runs[b].rps),
                format!("{:.2}×", run.p99_us as f64 / runs[b].p99_us.max(1) as f64),
            ),
            None => (String::new(), String::new()),
        };
        writeln!(
            table,
            "| {} | {:.0} | {} | {} | {ratio} | {p99} |",
            setup.name,
            run.rps,
            micros(run.p50_us),
            micros(run.p99_us)
        )
        .unwrap();
    }
    let wasm_size = std::fs::metadata(bootstrap::wasm_module_path()).map_or(0, |m| m.len());
    writeln!(
        table,
        "\nEnvoy {}, `--concurrency 1`, `wrk -t1 -c{CONNECTIONS} -d{DURATION}` after a {WARMUP} \
         warm-up, {} cores; module {:.2} MB. Ratios compare each row of ours with the native row \
         of the same load.",
        envoy_version(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        wasm_size as f64 / 1e6
    )
    .unwrap();
    println!("\n{table}");
    std::fs::write(dir.join("bench.md"), &table).unwrap();
    if only.is_none() {
        update_readme("bench-table", &table);
    }
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn memory() {
    let dir = out_dir();
    let listeners = [Listener::new("wasm_cache", Side::Wasm, &config(true))];
    let envoy = Envoy::start_quiet(&bootstrap(&listeners));
    let port = envoy.port("wasm_cache");
    let pid = envoy.pid().expect("Envoy's pid");
    // HS256: a million distinct tokens mint in seconds; the cache keeps any algorithm alike.
    let batch = |from: usize, to: usize| -> Vec<String> {
        (from..to)
            .map(|n| mint::token("HS256", &claims(n)))
            .collect()
    };
    send_all(port, &batch(0, 10_000));
    let before = rss_kib(pid);
    let mut samples = vec![(10_000usize, before)];
    let step = MEMORY_REQUESTS / 4;
    for quarter in 0..4 {
        let from = 10_000 + quarter * step;
        send_all(port, &batch(from, from + step));
        let rss = rss_kib(pid);
        eprintln!("bench-memory: {:>8} requests, RSS {} KiB", from + step, rss);
        samples.push((from + step, rss));
    }
    let after = samples.last().map_or(before, |s| s.1);
    let mut table = String::from("| distinct-token requests | Envoy RSS |\n|---|---|\n");
    for (n, rss) in &samples {
        writeln!(table, "| {n} | {:.1} MB |", *rss as f64 / 1024.0).unwrap();
    }
    writeln!(
        table,
        "\nGrowth over {MEMORY_REQUESTS} requests after the first 10000: {:.1} MB (our filter, \
         `jwt_cache_config` with the default 100 entries, HS256 tokens, one worker).",
        (after as f64 - before as f64) / 1024.0
    )
    .unwrap();
    println!("\n{table}");
    std::fs::write(dir.join("memory.md"), &table).unwrap();
    update_readme("bench-memory", &table);
}

/// Sends one request per token over 4 keep-alive connections; every answer must be 200.
fn send_all(port: u16, tokens: &[String]) {
    let chunk = tokens.len().div_ceil(4);
    std::thread::scope(|scope| {
        for part in tokens.chunks(chunk) {
            scope.spawn(move || {
                let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
                conn.set_nodelay(true).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut buf = Vec::new();
                for token in part {
                    let req = format!(
                        "GET / HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\r\n"
                    );
                    conn.write_all(req.as_bytes()).unwrap();
                    let status = read_response(&mut conn, &mut buf);
                    assert_eq!(status, 200, "token {token}");
                }
            });
        }
    });
}

/// Reads one response with a `content-length` body; returns its status.
fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                buf.drain(..end + 4 + length);
                return status;
            }
        }
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "Envoy closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn envoy_version() -> String {
    let bin = std::env::var("ENVOY_BIN").unwrap_or_else(|_| "envoy".into());
    let out = Command::new(bin).arg("--version").output().unwrap();
    // "<path>  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("version:")
        .nth(1)
        .and_then(|v| v.split('/').nth(1))
        .map_or_else(|| "1.40".into(), str::to_owned)
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces what README.md holds between `<!-- {marker} -->` and `<!-- /{marker} -->`.
fn update_readme(marker: &str, table: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (open, close) = (format!("<!-- {marker} -->"), format!("<!-- /{marker} -->"));
    let (Some(start), Some(end)) = (readme.find(&open), readme.find(&close)) else {
        eprintln!("bench: README.md has no {open} … {close} block; table not copied");
        return;
    };
    let updated = format!("{}{open}\n{table}{}", &readme[..start], &readme[end..]);
    std::fs::write(&path, updated).unwrap();
    eprintln!("bench: README.md updated ({marker})");
}
