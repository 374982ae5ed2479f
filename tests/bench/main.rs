//! `make bench`: jwt-authn-wasm against Envoy's native `jwt_authn`, side by side in ONE Envoy
//! (1.40, one worker, `--concurrency 1`), each listener answering with a direct response, load
//! from `wrk -t1 -c16`. The primary figure is **Envoy's CPU time per request**: the time all of
//! Envoy's threads spent on a CPU (`/proc/<pid>/task/*/schedstat`, nanoseconds) over a run,
//! divided by the requests served. On a shared machine it is far steadier than req/s (wrk and
//! other processes take their own CPU, not Envoy's). `schedstat` rather than utime + stime of
//! `/proc/<pid>/stat`: the scheduler's run time is kept in nanoseconds for every switch, where
//! utime and stime are sampled at each 10 ms tick and split between the two by sampling, so a
//! 3 s round (about 2 s of Envoy CPU) would carry ±0.5% from the tick alone. Every row gets a
//! warm-up, then the rows run round-robin `ROUNDS` (or `BENCH_ROUNDS`) times (round r of every
//! row before round r + 1 of any, so load from other processes that comes and goes falls on
//! every row alike), and each row keeps its best round (least CPU per request); req/s, p50 and
//! p99 of that round are secondary columns. Prints the table, writes it to
//! `target/bench/bench.md`, and puts it into README.md between the `bench-table` markers.
//!
//! The opaque-token row runs a provider with `introspection` against a stand-in endpoint on
//! loopback (the echo upstream's fixed answer `{"active":true,...}`, cluster `introspection`):
//! one repeated token, asked once in the pre-flight and then served from the cache, so the row
//! measures the cache-hit path (the endpoint must not be asked again while it is measured).
//!
//! `BENCH_BASELINE_MODULE=/path/to/other.wasm` runs every row of ours a second time with that
//! module (an earlier build, say) in the same Envoy, labelled `[baseline]`, so a change is
//! measured side by side in one run. `BENCH_ONLY=word,word` runs only the rows whose names
//! contain one of the words (the table then goes to `target/bench` only).
//!
//! `make bench-memory` (`-- --memory`): Envoy's RSS before and after one million requests, each
//! with a token never seen before, through our filter with `jwt_cache_config` (the cache and key
//! sets are bounded, so RSS must level off), then another million through a provider without
//! it. Writes `target/bench/memory.md` and the README's
//! `bench-memory` block.
//!
//! Never run by `cargo test` (`test = false` in Cargo.toml): speed is measured here, never
//! asserted. A setup whose answers are not what it claims (a 401 where every token is good)
//! stops the bench, so a broken setup cannot pass for a fast one.

// `string_slice`: the bench slices only at ASCII positions it found (HTTP status line, README
// markers), and a panic stops the bench, as the other allowed lints do.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
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
use common::upstream::Upstream;

const ISSUER: &str = "https://issuer.bench";
/// Distinct tokens per set.
const DISTINCT: usize = 2000;
/// Load per setup: warm-up, then `rounds()` measured runs of `DURATION` (round-robin over the
/// setups); the best one counts.
const WARMUP: &str = "1s";
const DURATION: &str = "3s";
const ROUNDS: usize = 3;
const CONNECTIONS: &str = "16";

/// `BENCH_ROUNDS` (a positive count), else `ROUNDS`: more rounds give a row more chances to
/// fall in a quiet moment on a shared machine.
fn rounds() -> usize {
    match std::env::var("BENCH_ROUNDS") {
        Ok(text) => match text.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("BENCH_ROUNDS must be a positive count, not {text:?}"),
        },
        Err(_) => ROUNDS,
    }
}

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

/// The opaque token of the introspection row: an RFC 6750 `b64token`, not a JWT.
const OPAQUE_TOKEN: &str = "bench-opaque-4f9c2a7e1d3b8c6a0e5f2d9b7a1c3e8f";
/// Provider name and endpoint path of the introspection row.
const OPAQUE_PROVIDER: &str = "opaque";
const INTROSPECTION_PATH: &str = "/introspect";
const INTROSPECTION_CLUSTER: &str = "introspection";

/// Our config for the opaque-token row: one provider with `introspection` at the stand-in
/// endpoint on `port`, answers cached an hour (longer than a whole run, so no answer expires
/// while measured), the `client_id` claim to a header (as the JWT rows send `sub`). No
/// `audiences`: the stand-in answers without `aud`, as many servers do.
fn opaque_config(port: u16) -> Value {
    json!({
        "providers": { OPAQUE_PROVIDER: {
            "introspection": {
                "http_uri": { "uri": format!("http://127.0.0.1:{port}{INTROSPECTION_PATH}"),
                              "cluster": INTROSPECTION_CLUSTER, "timeout": "2s" },
                "client_id": "bench",
                "client_secret": { "inline_string": "bench-secret" },
                "allow_inline_secret": true,
                "cache_duration": "3600s",
            },
            "claim_to_headers": [{ "header_name": "x-client-id", "claim_name": "client_id" }],
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": OPAQUE_PROVIDER } }],
    })
}

/// The stand-in introspection endpoint: the echo upstream answering `INTROSPECTION_PATH` with
/// an active token's answer, `exp` a day ahead.
fn introspection_endpoint() -> Upstream {
    let answer = json!({ "active": true, "client_id": "bench", "exp": common::now() + 86_400 });
    Upstream::serve([(INTROSPECTION_PATH.to_owned(), answer.to_string())].into())
}

/// Introspections the opaque provider made (answered or not), from its stats.
fn introspections(envoy: &Envoy) -> u64 {
    ["introspection_success", "introspection_cache_miss"]
        .iter()
        .map(|stat| {
            envoy
                .stat(&format!(
                    "wasmcustom.jwt_authn_wasm.{OPAQUE_PROVIDER}.{stat}"
                ))
                .unwrap_or(0)
        })
        .sum()
}

/// The common production shape: `claim_to_headers` (two claims) and, for ours, an
/// `identity_header` of four claims, with `jwt_cache_config`. Native has no `identity_header`:
/// its row runs the same `claim_to_headers`.
fn identity_config(ours: bool) -> Value {
    let mut config = config(true);
    let provider = &mut config["providers"]["bench"];
    provider["claim_to_headers"] = json!([
        { "header_name": "x-jwt-sub", "claim_name": "sub" },
        { "header_name": "x-jwt-jti", "claim_name": "jti" },
    ]);
    if ours {
        provider["identity_header"] = json!({
            "header_name": "x-verified-identity",
            "claims": { "user_id": "sub", "issuer": "iss", "audience": "aud", "token_id": "jti" },
        });
    }
    config
}

/// Identity listeners echo what the filter set, as response headers (`%REQ(...)%` reads the
/// request as the filter left it), so the pre-flight check can see it.
const IDENTITY_ECHO: [&str; 4] = [
    "x-jwt-sub",
    "x-jwt-jti",
    "x-verified-identity",
    "authorization",
];

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
        if spec.name.contains("identity") {
            let echo: Vec<Value> = IDENTITY_ECHO
                .iter()
                .map(|h| json!({ "header": { "key": format!("seen-{h}"), "value": format!("%REQ({h})%") } }))
                .collect();
            hcm["route_config"]["virtual_hosts"][0]["routes"][0]["response_headers_to_add"] =
                json!(echo);
        }
        if spec.config.is_null() {
            hcm["http_filters"].as_array_mut().unwrap().remove(0);
        }
        let other_module: Option<(&str, PathBuf)> = if spec.name.starts_with(EMPTY_LISTENER) {
            Some((spec.name.as_str(), empty_filter_path()))
        } else if spec.name.ends_with(BASELINE_SUFFIX) {
            baseline_module().map(|path| ("baseline", path))
        } else if let Some(stage) = spec.name.strip_prefix(ABLATION_PREFIX) {
            ablation_modules()
                .into_iter()
                .find(|(s, _)| s == stage)
                .map(|(_, path)| (spec.name.as_str(), path))
        } else {
            None
        };
        if let Some((vm_id, path)) = other_module {
            let vm = &mut hcm["http_filters"][0]["typed_config"]["config"]["vm_config"];
            vm["vm_id"] = json!(vm_id);
            vm["code"]["local"]["filename"] = json!(path.to_string_lossy());
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

/// The floor rows: the empty filter making, on every request and with nothing else, the host
/// calls one of our requests makes (`tests/bench/empty-filter`): listener, calls, row name.
/// What such a row costs over the empty filter is what those calls cost by themselves, the
/// least a filter that makes them can cost; our row of the same calls, minus it, is what our
/// own code adds. A row with `verify` calls Envoy's `verify_signature` with the argument our
/// filter sends for the first token of that row's set (`verify_args_hex`).
const FLOORS: [(&str, &[&str], &str); 6] = [
    (
        "wasm_empty_floor_open",
        &["headers", "clock", "metric"],
        "floor: the empty filter + the host calls of ours on a route that needs no token (header map, clock, 1 counter)",
    ),
    (
        "wasm_empty_floor_headers",
        &["headers", "metric"],
        "floor: the empty filter + the header map and 1 counter",
    ),
    (
        "wasm_empty_floor_cached",
        &["headers", "clock", "metric", "metric", "remove", "set", "property", "property", "property"],
        "floor: the empty filter + the host calls of ours with one cached token (header map, clock, 2 counters, 2 header changes, 3 filter-state values)",
    ),
    (
        "wasm_empty_floor_cached_no_state",
        &["headers", "clock", "metric", "metric", "remove", "set"],
        "floor: the empty filter + the host calls of ours with one cached token but no filter state (header map, clock, 2 counters, 2 header changes)",
    ),
    (
        "wasm_empty_floor_rs256",
        &["headers", "clock", "verify", "metric", "metric", "remove", "set", "property", "property", "property"],
        "floor: the empty filter + the host calls of ours with distinct RS256 (the cached row's and `verify_signature`)",
    ),
    (
        "wasm_empty_floor_es256",
        &["headers", "clock", "verify", "metric", "metric", "remove", "set", "property", "property", "property"],
        "floor: the empty filter + the host calls of ours with distinct ES256 (the cached row's and `verify_signature`)",
    ),
];

/// The tokens whose signature the floor listener `name` checks: none, or the first of its set.
fn floor_tokens<'s>(name: &str, sets: &'s [(&str, Vec<String>)]) -> &'s [String] {
    let set = ["rs256", "es256"]
        .into_iter()
        .find(|alg| name.ends_with(alg));
    sets.iter()
        .find(|(n, _)| Some(*n) == set)
        .map_or(&[], |(_, tokens)| &tokens[..1])
}

/// The `verify_signature` argument our filter sends for `token` (RS256 with the fixture key
/// `rsa-a` or ES256 with `ec256`, as `mint::token` signs them), in hex.
fn verify_args_hex(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let (text, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let (spki, signature) = if signature.len() == 64 {
        let key =
            p256::SecretKey::from_pkcs8_pem(include_str!("../fixtures/keys/ec-p256.pem")).unwrap();
        let der = jwt_authn_wasm::signature::jose_to_der(&signature, 32).unwrap();
        (key.public_key().to_public_key_der().unwrap(), der)
    } else {
        let key =
            rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../fixtures/keys/rsa2048-a.pem"))
                .unwrap();
        (key.to_public_key().to_public_key_der().unwrap(), signature)
    };
    jwt_authn_wasm::signature::encode_arguments(
        "sha256",
        spki.as_bytes(),
        &signature,
        text.as_bytes(),
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect()
}

/// The cached row without filter state (`filter_state: false`, new in issue 13): no
/// `[baseline]` twin, as an older module refuses the field.
const NO_STATE_LISTENER: &str = "wasm_cache_nostate";

/// Listeners of ours that run `BENCH_BASELINE_MODULE` have this suffix.
const BASELINE_SUFFIX: &str = "_baseline";

/// `BENCH_ABLATION=headers=/a.wasm,match=/b.wasm` (`make bench-ablation`): module variants
/// built with `bench-stop-after-*`, each on a listener `ablation_<stage>` with the cached
/// config, measured with one repeated token.
fn ablation_modules() -> Vec<(String, PathBuf)> {
    std::env::var("BENCH_ABLATION")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(stage, path)| (stage.trim().to_owned(), PathBuf::from(path.trim())))
        .collect()
}

const ABLATION_PREFIX: &str = "ablation_";

fn baseline_module() -> Option<PathBuf> {
    std::env::var_os("BENCH_BASELINE_MODULE").map(PathBuf::from)
}

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
  if tokens[i] == "" then return wrk.format("GET", "/") end
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[i] })
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
end
"#;

/// One wrk run's numbers.
struct Run {
    /// Envoy's CPU time per request served, in microseconds.
    cpu_us: f64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    requests: u64,
    /// Answers with a status of 400 or more.
    non_2xx: u64,
}

/// Nanoseconds all threads of process `pid` have spent on a CPU (`schedstat`'s first field).
fn cpu_nanos(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("Envoy's threads");
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            let text = std::fs::read_to_string(path).ok()?;
            text.split(' ').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Runs wrk against `port` and measures Envoy's (`pid`) CPU time over the run.
fn wrk(pid: u32, port: u16, tokens: &Path, script: &Path, duration: &str) -> Run {
    let cpu_before = cpu_nanos(pid);
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
    let cpu = cpu_nanos(pid).saturating_sub(cpu_before);
    let n: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    let (requests, micros) = (n[0], n[1]);
    Run {
        cpu_us: cpu as f64 / 1000.0 / requests.max(1.0),
        rps: requests / (micros / 1e6),
        p50_us: n[2] as u64,
        p99_us: n[3] as u64,
        requests: requests as u64,
        non_2xx: n[4] as u64,
    }
}

/// One row of the table: a listener, a token file, the share of non-2xx answers it must get,
/// and the row (a native one) it is compared with.
struct Setup {
    name: String,
    listener: String,
    tokens: &'static str,
    want_non_2xx: f64,
    baseline: Option<&'static str>,
}

impl Setup {
    fn new(
        name: &str,
        listener: &str,
        tokens: &'static str,
        want_non_2xx: f64,
        baseline: Option<&'static str>,
    ) -> Setup {
        Setup {
            name: name.to_owned(),
            listener: listener.to_owned(),
            tokens,
            want_non_2xx,
            baseline,
        }
    }

    /// Ours: a listener of our filter (not native, not the empty reference filter).
    fn ours(&self) -> bool {
        self.name.starts_with("ours")
    }
}

const NO_FILTER: &str = "no filter (direct response)";
const NATIVE_RS256: &str = "native `jwt_authn`, 2000 distinct RS256";
const NATIVE_ES256: &str = "native `jwt_authn`, 2000 distinct ES256";
const NATIVE_MIXED: &str = "native `jwt_authn`, RS256 with 10% invalid";
const NATIVE_CACHED: &str = "native `jwt_authn` + `jwt_cache_config`, one repeated token";
const NATIVE_IDENTITY: &str =
    "native `jwt_authn` + `jwt_cache_config`, one repeated token, two `claim_to_headers`";
const NATIVE_MISSING: &str = "native `jwt_authn`, no token (401)";

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
    let sets: Vec<(&str, Vec<String>)> = vec![
        ("one", rs256[..1].to_vec()),
        ("rs256", rs256.clone()),
        ("es256", es256),
        ("mixed", mixed),
        // An empty line is a request without a token.
        ("missing", vec![String::new()]),
        ("opaque", vec![OPAQUE_TOKEN.to_owned()]),
    ];
    for (name, tokens) in &sets {
        write_tokens(&dir, name, tokens);
    }
    let script = dir.join("tokens.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();

    let mut no_state = config(true);
    no_state["providers"]["bench"]["filter_state"] = json!(false);
    let mut pure = config(false);
    pure["host_signatures"] = json!(false);
    // A route that needs no token: what our filter costs before any JWT work.
    let mut open = config(false);
    open["rules"] = json!([{ "match": { "prefix": "/" } }]);
    let endpoint = introspection_endpoint();
    let lists = revocation_rows::server();
    let mut listeners = vec![
        Listener::new("none", Side::Native, &Value::Null),
        Listener::new("native", Side::Native, &config(false)),
        Listener::new("native_cache", Side::Native, &config(true)),
        Listener::new("native_identity", Side::Native, &identity_config(false)),
        Listener::new("wasm", Side::Wasm, &config(false)),
        Listener::new("wasm_cache", Side::Wasm, &config(true)),
        Listener::new(NO_STATE_LISTENER, Side::Wasm, &no_state),
        Listener::new("wasm_identity", Side::Wasm, &identity_config(true)),
        Listener::new("wasm_pure", Side::Wasm, &pure),
        Listener::new("wasm_open", Side::Wasm, &open),
        Listener::new("wasm_opaque", Side::Wasm, &opaque_config(endpoint.port())),
        Listener::new(EMPTY_LISTENER, Side::Wasm, &json!({})),
    ];
    for (name, calls, _) in FLOORS {
        let mut floor = json!({ "floor": calls });
        if let Some(token) = floor_tokens(name, &sets).first() {
            floor["verify_args"] = json!(verify_args_hex(token));
        }
        listeners.push(Listener::new(name, Side::Wasm, &floor));
    }
    listeners.extend(revocation_rows::listeners(lists.port()));
    if baseline_module().is_some() {
        let ours: Vec<(String, Value)> = listeners
            .iter()
            .filter(|l| {
                l.side == Side::Wasm
                    && !l.name.starts_with(EMPTY_LISTENER)
                    && l.name != NO_STATE_LISTENER
            })
            .map(|l| (format!("{}{BASELINE_SUFFIX}", l.name), l.config.clone()))
            .collect();
        for (name, config) in &ours {
            listeners.push(Listener::new(name, Side::Wasm, config));
        }
    }
    let ablation = ablation_modules();
    for (stage, _) in &ablation {
        listeners.push(Listener::new(
            &format!("{ABLATION_PREFIX}{stage}"),
            Side::Wasm,
            &config(true),
        ));
    }
    let envoy = Envoy::start_quiet(&bootstrap::with_cluster(
        &bootstrap::with_cluster(
            &bootstrap(&listeners),
            INTROSPECTION_CLUSTER,
            endpoint.port(),
        ),
        revocation_rows::CLUSTER,
        lists.port(),
    ));
    let log = envoy.log();
    assert!(
        log.contains("signatures: RS* and ES* by the host"),
        "the host's verify_signature was not taken; log in {}",
        envoy.dir().display()
    );

    let mut setups = vec![
        Setup::new(NO_FILTER, "none", "one", 0.0, None),
        Setup::new(
            "an empty Rust proxy-wasm filter",
            EMPTY_LISTENER,
            "one",
            0.0,
            Some(NO_FILTER),
        ),
    ];
    setups.extend(FLOORS.iter().map(|(listener, _, name)| {
        let tokens = if listener.ends_with("es256") {
            "es256"
        } else if listener.ends_with("rs256") {
            "rs256"
        } else {
            "one"
        };
        Setup::new(name, listener, tokens, 0.0, Some(NO_FILTER))
    }));
    setups.extend([
        Setup::new("ours on a route that needs no token", "wasm_open", "one", 0.0, Some(NO_FILTER)),
        Setup::new(NATIVE_RS256, "native", "rs256", 0.0, None),
        Setup::new(NATIVE_ES256, "native", "es256", 0.0, None),
        Setup::new(NATIVE_MIXED, "native", "mixed", 0.1, None),
        Setup::new(NATIVE_CACHED, "native_cache", "one", 0.0, None),
        Setup::new(NATIVE_IDENTITY, "native_identity", "one", 0.0, None),
        Setup::new(NATIVE_MISSING, "native", "missing", 1.0, None),
        Setup::new(
            "ours + `jwt_cache_config`, one repeated token",
            "wasm_cache",
            "one",
            0.0,
            Some(NATIVE_CACHED),
        ),
        Setup::new(
            "ours + `jwt_cache_config`, one repeated token, `filter_state: false`",
            NO_STATE_LISTENER,
            "one",
            0.0,
            Some(NATIVE_CACHED),
        ),
        Setup::new(
            "ours + `introspection` (cached), one repeated opaque token",
            "wasm_opaque",
            "opaque",
            0.0,
            Some(NATIVE_CACHED),
        ),
        Setup::new(
            "ours + `jwt_cache_config`, one repeated token, two `claim_to_headers` + `identity_header`",
            "wasm_identity",
            "one",
            0.0,
            Some(NATIVE_IDENTITY),
        ),
        Setup::new(
            "ours, no token (401)",
            "wasm",
            "missing",
            1.0,
            Some(NATIVE_MISSING),
        ),
        Setup::new(
            "ours, 2000 distinct RS256 (host `verify_signature`)",
            "wasm",
            "rs256",
            0.0,
            Some(NATIVE_RS256),
        ),
        Setup::new(
            "ours, 2000 distinct ES256 (host `verify_signature`)",
            "wasm",
            "es256",
            0.0,
            Some(NATIVE_ES256),
        ),
        Setup::new(
            "ours, 2000 distinct RS256, pure Rust (`host_signatures: false`)",
            "wasm_pure",
            "rs256",
            0.0,
            Some(NATIVE_RS256),
        ),
        Setup::new(
            "ours, RS256 with 10% invalid",
            "wasm",
            "mixed",
            0.1,
            Some(NATIVE_MIXED),
        ),
    ]);
    setups.extend(revocation_rows::setups());
    if baseline_module().is_some() {
        let baselines: Vec<Setup> = setups
            .iter()
            .filter(|s| s.ours() && s.listener != NO_STATE_LISTENER)
            .map(|s| Setup {
                name: format!("{} [baseline]", s.name),
                listener: format!("{}{BASELINE_SUFFIX}", s.listener),
                ..*s
            })
            .collect();
        setups.extend(baselines);
    }
    for (stage, _) in &ablation {
        setups.push(Setup::new(
            &format!(
                "ablation: ours + `jwt_cache_config`, one repeated token, stops after {stage}"
            ),
            &format!("{ABLATION_PREFIX}{stage}"),
            "one",
            0.0,
            Some(NO_FILTER),
        ));
    }
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
    let pid = envoy.pid().expect("Envoy's pid");
    let mut asked = 0;
    for setup in &setups {
        let port = envoy.port(&setup.listener);
        preflight(setup, port, token_list(&sets, setup));
        revocation_rows::preflight(setup, port, &envoy);
        asked = introspections(&envoy);
        // Its pre-flight asked the endpoint (so the stat names below are the filter's).
        assert!(
            setup.tokens != "opaque" || asked > 0,
            "{}: the pre-flight made no introspection; Envoy log in {}",
            setup.name,
            envoy.dir().display()
        );
    }
    // After the pre-flights, so a cached row's request is a cache hit, as in its rounds.
    let calls = host_calls(&envoy, &setups, &sets);
    for setup in &setups {
        let tokens = dir.join(format!("{}.txt", setup.tokens));
        wrk(pid, envoy.port(&setup.listener), &tokens, &script, WARMUP);
    }
    // Round-robin: round r of every row runs before round r + 1 of any, so a load that comes
    // and goes on a shared machine falls on every row alike; each row keeps its best round.
    let mut best: Vec<Option<Run>> = setups.iter().map(|_| None).collect();
    let rounds = rounds();
    for round in 0..rounds {
        for (setup, best) in setups.iter().zip(&mut best) {
            let port = envoy.port(&setup.listener);
            let tokens = dir.join(format!("{}.txt", setup.tokens));
            let run = wrk(pid, port, &tokens, &script, DURATION);
            check_answers(setup, &run, &envoy);
            eprintln!(
                "bench: round {round} {:<80} {:>6.1} us CPU/req {:>8.0} req/s  p50 {:>6} us  p99 {:>6} us  non-2xx {:.1}%",
                setup.name,
                run.cpu_us,
                run.rps,
                run.p50_us,
                run.p99_us,
                share(&run) * 100.0
            );
            if best.as_ref().is_none_or(|b| run.cpu_us < b.cpu_us) {
                *best = Some(run);
            }
        }
    }
    // The opaque row measures the cache: its token was introspected in the pre-flight, and no
    // request of the warm-ups or the rounds may have asked again.
    assert_eq!(
        introspections(&envoy),
        asked,
        "introspected while measured (cache missed); Envoy log in {}",
        envoy.dir().display()
    );
    let runs: Vec<Run> = best.into_iter().map(Option::unwrap).collect();

    let floor = setups
        .iter()
        .position(|s| s.name == NO_FILTER)
        .map(|i| runs[i].cpu_us);
    let mut table = String::from(
        "| setup | CPU µs/req | over no filter | vs native (CPU) | req/s | p50 | p99 | vs native (p99) | host calls/req |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for ((setup, run), calls) in setups.iter().zip(&runs).zip(&calls) {
        let base = setup
            .baseline
            .and_then(|name| setups.iter().position(|s| s.name == name));
        let (cpu, p99) = match base {
            Some(b) if runs[b].cpu_us > 0.0 && setup.baseline != Some(NO_FILTER) => (
                format!("{:.2}×", run.cpu_us / runs[b].cpu_us),
                format!("{:.2}×", run.p99_us as f64 / runs[b].p99_us.max(1) as f64),
            ),
            _ => (String::new(), String::new()),
        };
        let over = floor.map_or(String::new(), |f| format!("{:+.1} µs", run.cpu_us - f));
        writeln!(
            table,
            "| {} | {:.1} | {over} | {cpu} | {:.0} | {} | {} | {p99} | {calls} |",
            setup.name,
            run.cpu_us,
            run.rps,
            micros(run.p50_us),
            micros(run.p99_us)
        )
        .unwrap();
    }
    let wasm_size = std::fs::metadata(bootstrap::wasm_module_path()).map_or(0, |m| m.len());
    writeln!(
        table,
        "\nEnvoy {}, `--concurrency 1`, `wrk -t1 -c{CONNECTIONS} -d{DURATION}`, best of {} \
         round-robin rounds after a {WARMUP} warm-up, {} cores; module {:.2} MB. CPU µs/req is the time all \
         of Envoy's threads spent on a CPU divided by the requests served; ratios compare each \
         row of ours with the native row of the same load (lower is better for both); host \
         calls/req are one request's calls from the VM into the host / from the host into the \
         VM, counted in Envoy's `wasm` trace.",
        envoy_version(),
        rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        wasm_size as f64 / 1e6
    )
    .unwrap();
    let ratios = revocation_rows::ratios(&setups, &envoy, pid, &dir, &script);
    println!("\n{table}{ratios}");
    std::fs::write(dir.join("bench.md"), format!("{table}{ratios}")).unwrap();
    if !ablation.is_empty() {
        std::fs::write(dir.join("ablation.md"), &table).unwrap();
        update_readme("bench-ablation", &table);
    } else if only.is_none() {
        update_readme("bench-table", &table);
    }
}

/// Host calls of one request, per row of ours: with Envoy's `wasm` logger at `trace` (for this
/// pass only; back at `info` before anything is measured), Envoy logs every crossing
/// (`[vm->host] env.proxy_…`); one request with the row's first token, then the lines it added.
/// Each cell is the VM's calls into the host, then (after `/`) the host's into the VM; the
/// calls of the filter itself are printed by name on stderr. Empty for rows without wasm.
fn host_calls(envoy: &Envoy, setups: &[Setup], sets: &[(&str, Vec<String>)]) -> Vec<String> {
    let level = |level: &str| {
        let path = format!("/logging?wasm={level}");
        let response = common::http::Request::new("POST", path).send(envoy.admin_port());
        assert_eq!(response.status, 200, "admin /logging?wasm={level}");
    };
    level("trace");
    let cells = setups
        .iter()
        .map(|setup| {
            if !setup.listener.starts_with("wasm") && !setup.listener.starts_with(ABLATION_PREFIX) {
                return String::new();
            }
            let before = envoy.log().len();
            let deleted = |log: &str| log.get(before..).unwrap_or("").contains("proxy_on_delete(");
            let mut request = common::http::Request::get("/");
            let token = &token_list(sets, setup)[0];
            if !token.is_empty() {
                request = request.bearer(token);
            }
            request.send(envoy.port(&setup.listener));
            // The stream's last crossing is its `proxy_on_delete`; wait for it to be logged.
            let mut log = envoy.log();
            for _ in 0..100 {
                if deleted(&log) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                log = envoy.log();
            }
            assert!(deleted(&log), "{}: no proxy_on_delete logged", setup.name);
            let lines: Vec<&str> = log[before..].lines().collect();
            let calls: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.split("[vm->host] env.").nth(1))
                .map(|call| call.split('(').next().unwrap_or(call))
                .collect();
            let into_vm = lines.iter().filter(|l| l.contains("[host->vm]")).count();
            eprintln!("bench: host calls, {}: {}", setup.name, calls.join(" "));
            format!("{} / {into_vm}", calls.len())
        })
        .collect();
    level("info");
    cells
}

/// The tokens `setup` sends.
fn token_list<'a>(sets: &'a [(&str, Vec<String>)], setup: &Setup) -> &'a [String] {
    &sets
        .iter()
        .find(|(name, _)| *name == setup.tokens)
        .unwrap()
        .1
}

fn share(run: &Run) -> f64 {
    run.non_2xx as f64 / run.requests.max(1) as f64
}

/// Every answer a round counted is the one its setup expects: none refused where every token
/// is good, every one refused where none is, and every tenth (give or take the requests still
/// in flight when wrk stops) where every tenth token is bad.
fn check_answers(setup: &Setup, run: &Run, envoy: &Envoy) {
    let want = setup.want_non_2xx * run.requests as f64;
    let slack = if setup.want_non_2xx == 0.0 || setup.want_non_2xx == 1.0 {
        0.0
    } else {
        CONNECTIONS.parse::<f64>().unwrap()
    };
    assert!(
        run.requests > 0 && (run.non_2xx as f64 - want).abs() <= slack,
        "{}: {} of {} answers refused, expected {want:.0}; Envoy log in {}",
        setup.name,
        run.non_2xx,
        run.requests,
        envoy.dir().display()
    );
}

/// Before a setup is measured: its first requests, one by one, get exactly the answer they
/// should (status, `WWW-Authenticate`, and on identity listeners the headers the filter set).
fn preflight(setup: &Setup, port: u16, tokens: &[String]) {
    for (n, token) in tokens.iter().enumerate().take(20) {
        let mut request = common::http::Request::get("/");
        if !token.is_empty() {
            request = request.bearer(token);
        }
        let response = request.send(port);
        let bad = token.is_empty() || (setup.want_non_2xx > 0.0 && n % 10 == 9);
        let want = if bad { 401 } else { 200 };
        assert_eq!(response.status, want, "{}: request {n}", setup.name);
        if bad {
            let challenge = response.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer realm="),
                "{}: {challenge:?}",
                setup.name
            );
            assert_eq!(
                challenge.contains("error=\"invalid_token\""),
                !token.is_empty(),
                "{}: {challenge:?}",
                setup.name
            );
        }
        if setup.listener.contains("identity") {
            let seen = |h: &str| {
                response
                    .header(&format!("seen-{h}"))
                    .filter(|v| !v.is_empty() && *v != "-")
            };
            assert_eq!(seen("x-jwt-sub"), Some("user-0"), "{}", setup.name);
            assert_eq!(seen("x-jwt-jti"), Some("bench-0"), "{}", setup.name);
            assert_eq!(
                seen("authorization"),
                None,
                "{}: token forwarded",
                setup.name
            );
            if setup.ours() {
                use base64::Engine as _;
                let identity = seen("x-verified-identity").expect("identity header");
                let json: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::STANDARD
                        .decode(identity)
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(
                    json,
                    json!({ "user_id": "user-0", "issuer": ISSUER, "audience": "bench",
                            "token_id": "bench-0" }),
                    "{}",
                    setup.name
                );
            }
        }
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
    // One provider with `jwt_cache_config`, one without (every token parsed and checked, nothing
    // kept): both must level off. Measured one after the other in one Envoy.
    let listeners = [
        Listener::new("wasm_cache", Side::Wasm, &config(true)),
        Listener::new("wasm", Side::Wasm, &config(false)),
    ];
    let envoy = Envoy::start_quiet(&bootstrap(&listeners));
    let pid = envoy.pid().expect("Envoy's pid");
    // HS256: a million distinct tokens mint in seconds; the cache keeps any algorithm alike.
    let batch = |from: usize, to: usize| -> Vec<String> {
        (from..to)
            .map(|n| mint::token("HS256", &claims(n)))
            .collect()
    };
    let step = MEMORY_REQUESTS / 4;
    let runs: Vec<Vec<(usize, u64)>> = ["wasm_cache", "wasm"]
        .iter()
        .map(|listener| {
            let port = envoy.port(listener);
            send_all(port, &batch(0, 10_000));
            let mut samples = vec![(10_000usize, rss_kib(pid))];
            for quarter in 0..4 {
                let from = 10_000 + quarter * step;
                send_all(port, &batch(from, from + step));
                let rss = rss_kib(pid);
                eprintln!(
                    "bench-memory: {listener} {:>8} requests, RSS {} KiB",
                    from + step,
                    rss
                );
                samples.push((from + step, rss));
            }
            samples
        })
        .collect();
    let growth = |samples: &[(usize, u64)]| {
        let first = samples.first().map_or(0, |s| s.1);
        let last = samples.last().map_or(first, |s| s.1);
        (last as f64 - first as f64) / 1024.0
    };
    let mut table = String::from(
        "| distinct-token requests | Envoy RSS, `jwt_cache_config` | Envoy RSS, no cache |\n|---|---|---|\n",
    );
    for ((n, cached), (_, uncached)) in runs[0].iter().zip(&runs[1]) {
        writeln!(
            table,
            "| {n} | {:.1} MB | {:.1} MB |",
            *cached as f64 / 1024.0,
            *uncached as f64 / 1024.0
        )
        .unwrap();
    }
    writeln!(
        table,
        "\nGrowth over {MEMORY_REQUESTS} requests after the first 10000: {:.1} MB with \
         `jwt_cache_config` (the default 100 entries), then {:.1} MB for a provider without it \
         (our filter, HS256 tokens, one worker, one Envoy: the second column starts where the \
         first ended).",
        growth(&runs[0]),
        growth(&runs[1])
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

/// The revocation rows (issue 15): the RS256-distinct and cached rows of ours again, each on a
/// listener whose provider has a `revocation` list of `MAX_ENTRIES` (100,000) entries served by
/// a stand-in on loopback (`common::idp`, cluster `revocations`), side by side with the same
/// rows without a list. Before a row is measured, the list must be in force on its listener (a
/// listed token gets 401 `Jwt has been revoked`, the `revocation_entries` gauge reads 100,000);
/// the measured tokens are not listed, so every answer must be a 200. `cache_duration` is the
/// default 60 s: a refresh (a full parse: the stand-in sends no `ETag`) falls into at most one
/// round of a row, and the best round counts. `ratios` then runs each pair again, interleaved,
/// and prints the CPU per request without the list divided by the CPU with it (≥ 0.97× is the
/// target).
mod revocation_rows {
    use serde_json::{json, Value};

    use super::common::bootstrap::{Listener, Side};
    use super::common::envoy::Envoy;
    use super::common::idp::Idp;
    use super::common::mint;
    use std::path::Path;

    use super::{check_answers, config, wrk, Setup, DURATION, ISSUER, NATIVE_CACHED, NATIVE_RS256};

    pub const CLUSTER: &str = "revocations";
    const ENTRIES: usize = 100_000;
    /// The listed `jti` the pre-flight sends (the list's last).
    const LISTED_JTI: &str = "revoked-069999";
    const RS256_ROW: &str = "ours, 2000 distinct RS256 + 100,000-entry revocation list";
    const CACHED_ROW: &str =
        "ours + `jwt_cache_config`, one repeated token + 100,000-entry revocation list";
    /// The rows without a list they are compared with (names in `throughput`).
    const RS256_PLAIN: &str = "ours, 2000 distinct RS256 (host `verify_signature`)";
    const CACHED_PLAIN: &str = "ours + `jwt_cache_config`, one repeated token";

    /// A list of `ENTRIES` entries shaped like a real one (`tests/revocation_memory.rs`):
    /// mostly `jti`s, then subjects, sessions and per-subject cutoffs; none names a bench
    /// token (`user-N`, `bench-N`).
    fn document() -> String {
        let jti: Vec<String> = (0..70_000).map(|n| format!("revoked-{n:06}")).collect();
        let sub: Vec<String> = (0..10_000)
            .map(|n| format!("gone-{n}@example.com"))
            .collect();
        let sid: Vec<String> = (0..15_000).map(|n| format!("session-{n}")).collect();
        let cutoffs: serde_json::Map<String, Value> = (0..5_000)
            .map(|n| (format!("reset-{n}"), json!(super::common::now() - 3600)))
            .collect();
        json!({
            "issued_at": super::common::now(),
            "jti": jti, "sub": sub, "sid": sid,
            "issued_before": { "sub": cutoffs },
        })
        .to_string()
    }

    /// The stand-in list server.
    pub fn server() -> Idp {
        Idp::serving(&document())
    }

    fn with_list(cache: bool, port: u16) -> Value {
        let mut config = config(cache);
        config["providers"]["bench"]["revocation"] = json!({
            "http_uri": { "uri": format!("http://127.0.0.1:{port}/revocations.json"),
                          "cluster": CLUSTER, "timeout": "5s" },
        });
        config
    }

    pub fn listeners(port: u16) -> Vec<Listener> {
        vec![
            Listener::new("wasm_revocation", Side::Wasm, &with_list(false, port)),
            Listener::new("wasm_cache_revocation", Side::Wasm, &with_list(true, port)),
        ]
    }

    pub fn setups() -> Vec<Setup> {
        vec![
            Setup::new(
                RS256_ROW,
                "wasm_revocation",
                "rs256",
                0.0,
                Some(NATIVE_RS256),
            ),
            Setup::new(
                CACHED_ROW,
                "wasm_cache_revocation",
                "one",
                0.0,
                Some(NATIVE_CACHED),
            ),
        ]
    }

    /// Before a revocation row: its list is in force (a listed token is refused, all entries
    /// counted). Other rows: nothing.
    pub fn preflight(setup: &Setup, port: u16, envoy: &Envoy) {
        if !setup.listener.ends_with("_revocation") {
            return;
        }
        let listed = mint::token(
            "RS256",
            &json!({ "iss": ISSUER, "aud": "bench", "sub": "user-0",
                     "exp": super::common::now() + 86_400, "jti": LISTED_JTI }),
        );
        let response = super::common::http::Request::get("/")
            .bearer(&listed)
            .send(port);
        assert_eq!(response.status, 401, "{}: listed token", setup.name);
        assert_eq!(
            response.body_str(),
            "Jwt has been revoked",
            "{}",
            setup.name
        );
        let entries = envoy.stat("wasmcustom.jwt_authn_wasm.bench.revocation_entries");
        assert_eq!(
            entries,
            Some(ENTRIES as u64),
            "{}: the list in force; Envoy log in {}",
            setup.name,
            envoy.dir().display()
        );
    }

    /// Rounds per pair in `ratios`, alternating the two rows.
    const PAIRED_ROUNDS: usize = 6;

    /// After the table: for each pair whose two rows both ran, `PAIRED_ROUNDS` rounds of each,
    /// interleaved (A B, B A, A B, ...) so that the machine's load drifts over both alike;
    /// every round's answers are checked as the table's are. One line per pair: the best round
    /// of each (CPU µs/req), their ratio, and the median of the ratios of adjacent rounds
    /// (without / with: 1.00× costs nothing, 0.97× is 3% more CPU).
    pub fn ratios(setups: &[Setup], envoy: &Envoy, pid: u32, dir: &Path, script: &Path) -> String {
        let find = |name: &str| setups.iter().find(|s| s.name == name);
        let mut out = String::new();
        for (with, without) in [(RS256_ROW, RS256_PLAIN), (CACHED_ROW, CACHED_PLAIN)] {
            let (Some(with), Some(without)) = (find(with), find(without)) else {
                continue;
            };
            let round = |setup: &Setup| {
                let tokens = dir.join(format!("{}.txt", setup.tokens));
                let run = wrk(pid, envoy.port(&setup.listener), &tokens, script, DURATION);
                check_answers(setup, &run, envoy);
                run.cpu_us
            };
            let mut pairs: Vec<(f64, f64)> = Vec::new();
            for n in 0..PAIRED_ROUNDS {
                let pair = if n % 2 == 0 {
                    let a = round(without);
                    (a, round(with))
                } else {
                    let b = round(with);
                    (round(without), b)
                };
                pairs.push(pair);
            }
            let best = |f: fn(&(f64, f64)) -> f64| {
                pairs.iter().map(f).min_by(f64::total_cmp).unwrap_or(0.0)
            };
            let (without_us, with_us) = (best(|p| p.0), best(|p| p.1));
            let mut each: Vec<f64> = pairs.iter().map(|(a, b)| a / b).collect();
            each.sort_by(f64::total_cmp);
            let median = (each[(each.len() - 1) / 2] + each[each.len() / 2]) / 2.0;
            let line = format!(
                "\nRevocation list cost, {} ({PAIRED_ROUNDS} interleaved rounds of \
                 {DURATION} each): best {without_us:.1} µs/req without the list, {with_us:.1} \
                 with it: {:.3}× (without / with); median of adjacent rounds {median:.3}× \
                 (all: {}).",
                without.name,
                without_us / with_us,
                each.iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            eprintln!("bench: {}", line.trim_start());
            out.push_str(&line);
        }
        out
    }
}
