//! `jwt-authn-explain`, the binary: its exit statuses, its JSON, `check-config`, and its
//! answers against the filter's in a real Envoy on the differential table
//! (`tests/common/table.rs`): for every row, the status explain predicts is the status the
//! filter answers, and so is the `WWW-Authenticate`.
//!
//! Run: `cargo test --test explain` (the table needs `make build` for the wasm side).

// Tests fail by panicking, and index into what they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use common::bootstrap::{Listener, Side};
use common::http::{Request, DEFAULT_HOST};
use common::idp::Idp;
use common::mint;
use common::table::{self, Case, Want};
use common::Proxy;

const BIN: &str = env!("CARGO_BIN_EXE_jwt-authn-explain");

/// A fresh directory for one test's files.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "jwt-authn-explain-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

/// One run: exit status, stdout, stderr.
fn run(args: &[OsString]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

const ISS: &str = "https://auth.example.com";

/// One provider with a remote key set, so `--jwks` must bring its keys; `/public` needs none.
fn remote_config() -> Value {
    json!({
        "providers": {
            "idp": {
                "issuer": ISS,
                "audiences": ["orders"],
                "forward": true,
                "remote_jwks": { "http_uri": { "uri": "https://auth.example.com/jwks",
                    "cluster": "idp", "timeout": "2s" } },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            },
        },
        "rules": [
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "idp",
                "required_scopes": { "all_of": ["orders:read"] } } },
        ],
    })
}

/// 2026-12-02T13:35:31Z.
const T: i64 = 1_796_218_531;

fn token(patch: Value) -> String {
    let mut claims = json!({ "iss": ISS, "sub": "alice", "aud": "orders", "exp": T + 300,
        "scope": "orders:read" });
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    mint::token("RS256", &claims)
}

/// `--config`, `--jwks` and `--now T` for the remote configuration, then `rest`.
fn explain(dir: &Path, rest: &[&str]) -> (i32, String, String) {
    let config = write(dir, "config.json", remote_config().to_string());
    let jwks = write(dir, "jwks.json", mint::JWKS);
    let t = T.to_string();
    let mut args = os(&["--config", &config, "--jwks", &jwks, "--now", &t]);
    args.extend(os(rest));
    run(&args)
}

#[test]
fn exit_status_says_whether_the_request_would_be_let_through() {
    let dir = scratch();
    let bearer = format!("authorization: Bearer {}", token(json!({})));
    let url = "GET https://api.example.com/orders/7";
    let (code, out, err) = explain(&dir, &["--request", url, "-H", &bearer]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("result   let through (exit 0)"), "{out}");
    assert!(out.contains("x-jwt-sub: alice"), "{out}");
    let (code, out, _) = explain(&dir, &["--request", url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("result   401, answered by the filter (exit 1): missing"),
        "{out}"
    );
    let (code, out, _) = explain(&dir, &["--request", "GET https://api.example.com/public"]);
    assert_eq!(code, 0, "{out}");
    // Usage errors: 2, with the reason on stderr and nothing decided.
    for bad in [
        &["--request", "GET"][..],
        &["--request", url, "--now", "tomorrow"],
        &["--request", url, "--bogus"],
        &["--request", url, "--jwks", "nope=/dev/null"],
    ] {
        let (code, out, err) = explain(&dir, bad);
        assert_eq!((code, out.as_str()), (2, ""), "{bad:?}: {err}");
        assert!(err.starts_with("jwt-authn-explain: "), "{err}");
    }
    // A configuration the filter refuses: 2, every error named.
    let bad = write(&dir, "bad.json", r#"{"providers": {"p": {"issuer": 7}}}"#);
    let (code, _, err) = run(&os(&["--config", &bad, "--request", url]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid configuration at `providers.p.issuer`"),
        "{err}"
    );
}

#[test]
fn now_pins_the_clock_in_seconds_or_rfc3339() {
    let dir = scratch();
    let bearer = format!("authorization: Bearer {}", token(json!({})));
    let url = "GET https://api.example.com/orders";
    // exp is T + 300: good at T (the default of `explain` here), expired an hour later.
    let (code, _, _) = explain(&dir, &["--request", url, "-H", &bearer]);
    assert_eq!(code, 0);
    let config = write(&dir, "config.json", remote_config().to_string());
    let jwks = write(&dir, "jwks.json", mint::JWKS);
    for later in [
        "1796222131",
        "2026-12-02T14:35:31Z",
        "2026-12-02T15:35:31+01:00",
    ] {
        let (code, out, err) = run(&os(&[
            "--config",
            &config,
            "--jwks",
            &jwks,
            "--request",
            url,
            "-H",
            &bearer,
            "--now",
            later,
        ]));
        assert_eq!(code, 1, "{later}: {out}{err}");
        assert!(
            out.contains("clock    1796222131 (2026-12-02T14:35:31Z)"),
            "{out}"
        );
        assert!(
            out.contains("time      FAILED: Jwt is expired (expired)"),
            "{out}"
        );
    }
}

#[test]
fn json_has_status_challenge_upstream_headers_and_steps() {
    let dir = scratch();
    let url = "GET https://api.example.com/orders?page=2";
    let no_scope = format!(
        "authorization: Bearer {}",
        token(json!({ "scope": "profile" }))
    );
    let (code, out, err) = explain(&dir, &["--request", url, "-H", &no_scope, "--json"]);
    assert_eq!(code, 1, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["status"], 403);
    assert_eq!(
        j["www_authenticate"],
        "Bearer realm=\"https://api.example.com/orders?page=2\", error=\"insufficient_scope\", scope=\"orders:read\""
    );
    assert_eq!(j["upstream_headers"], Value::Null);
    assert_eq!(j["reason"], "scope");
    let steps = j["steps"].as_array().unwrap();
    let names: Vec<String> = steps
        .iter()
        .map(|s| match s["check"].as_str() {
            Some(check) => format!("check {check} {}", s["result"]["ok"]),
            None => s["step"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "rule",
            "entered",
            "token",
            "parsed",
            "check issuer true",
            "check key true",
            "check signature true",
            "check time true",
            "check audience true",
            "check scopes false",
            "left",
            "policy"
        ],
        "{out}"
    );
    assert!(steps.iter().all(|s| s["text"].is_string()));
    let good = format!("authorization: Bearer {}", token(json!({})));
    let (code, out, _) = explain(
        &dir,
        &[
            "--request",
            url,
            "-H",
            &good,
            "-H",
            "x-jwt-sub: mallory",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["status"].clone(), j["www_authenticate"].clone()),
        (json!(200), Value::Null)
    );
    let upstream = j["upstream_headers"].as_array().unwrap();
    let sub: Vec<&Value> = upstream
        .iter()
        .filter(|h| h["name"] == "x-jwt-sub")
        .collect();
    assert_eq!(
        sub,
        [&json!({ "name": "x-jwt-sub", "value": "alice" })],
        "{out}"
    );
    // The token is never printed, only its length and tail.
    assert!(!out.contains(good.strip_prefix("authorization: Bearer ").unwrap()));
    assert!(upstream
        .iter()
        .any(|h| h["name"] == "authorization"
            && h["value"].as_str().unwrap().starts_with("Bearer <")));
}

#[test]
fn check_config_names_every_error_with_its_field() {
    let dir = scratch();
    let good = write(&dir, "good.json", remote_config().to_string());
    let (code, out, _) = run(&os(&["check-config", &good]));
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with(": ok (1 providers, 2 rules)\n"), "{out}");
    let mut cfg = remote_config();
    cfg["providers"]["idp"]["remote_jwks"]["http_uri"]["uri"] = json!("ftp://x");
    cfg["providers"]["second"] = json!({ "issuer": "x", "local_jwks": { "inline_string": "{" } });
    cfg["rules"][0]["match"] = json!({ "path": "/a", "prefix": "/b" });
    cfg["rules"][1]["requires"]["provider_name"] = json!("okta");
    let bad = write(&dir, "bad.json", cfg.to_string());
    let (code, out, _) = run(&os(&["check-config", &bad]));
    assert_eq!(code, 1, "{out}");
    for field in [
        "providers.idp.remote_jwks.http_uri.uri",
        "providers.second.local_jwks.inline_string",
        "rules[0].match",
        "rules[1].requires.provider_name",
    ] {
        assert!(
            out.contains(&format!("invalid configuration at `{field}`")),
            "{field}: {out}"
        );
    }
    assert!(out.ends_with("refused, 4 errors\n"), "{out}");
    let (code, out, _) = run(&os(&["check-config", &bad, "--json"]));
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["ok"].clone(), j["errors"].as_array().unwrap().len()),
        (json!(false), 4)
    );
    let (code, _, err) = run(&os(&["check-config", "/nonexistent/config.json"]));
    assert_eq!(code, 2, "{err}");
}

/// `--fetch-jwks` fetches a remote provider's key set from its `http_uri.uri`, or through its
/// issuer's OpenID configuration, once per run; a key set the filter would refuse is a
/// configuration error.
#[test]
fn fetch_jwks_fetches_the_remote_key_set() {
    let idp = Idp::serving(mint::JWKS);
    let base = format!("http://127.0.0.1:{}", idp.port());
    let dir = scratch();
    let mut cfg = remote_config();
    cfg["providers"]["idp"]["remote_jwks"]["http_uri"]["uri"] = json!(format!("{base}/jwks"));
    let config = write(&dir, "fetch.json", cfg.to_string());
    let bearer = format!("authorization: Bearer {}", token(json!({})));
    let t = T.to_string();
    let args = |config: &str| {
        os(&[
            "--config",
            config,
            "--fetch-jwks",
            "--now",
            &t,
            "--request",
            "GET http://api.example.com/orders",
            "-H",
            &bearer,
        ])
    };
    let (code, out, err) = run(&args(&config));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "note     provider \"idp\": keys from {base}/jwks (7 usable)"
        )),
        "{out}"
    );
    assert_eq!(idp.requests(), 1);
    // Through discovery: the issuer's OpenID configuration names the JWKS.
    idp.set_discovery(Some(
        json!({ "issuer": base, "jwks_uri": format!("{base}/keys") }).to_string(),
    ));
    let mut cfg = remote_config();
    cfg["providers"]["idp"]["issuer"] = json!(base);
    cfg["providers"]["idp"]["remote_jwks"]["http_uri"]["uri"] = json!("");
    cfg["providers"]["idp"]["remote_jwks"]["oidc_discovery"] = json!(true);
    let discovery = write(&dir, "discovery.json", cfg.to_string());
    let bearer_iss = format!("authorization: Bearer {}", token(json!({ "iss": base })));
    let (code, out, err) = run(&os(&[
        "--config",
        &discovery,
        "--fetch-jwks",
        "--now",
        &t,
        "--request",
        "GET http://api.example.com/orders",
        "-H",
        &bearer_iss,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("keys from {base}/keys (7 usable)")),
        "{out}"
    );
    assert_eq!((idp.discovery_requests(), idp.requests()), (1, 2));
    // What the filter would not take: usage or configuration error, nothing decided.
    idp.rotate("<html>not a key set</html>");
    let (code, out, err) = run(&args(&config));
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains(&format!("--fetch-jwks: provider \"idp\": {base}/jwks: ")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Against the filter in Envoy.

/// `case`'s request as explain's arguments: `--request 'METHOD http://HOST/TARGET'` (the
/// scheme Envoy's HTTP/1 codec gives `:scheme`: `x-forwarded-proto` when sent, else http) and
/// every header but `host` (in the URL) and `connection` (hop-by-hop, Envoy drops it).
fn explain_args(req: &Request) -> Vec<OsString> {
    let header = |name: &[u8]| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let host = header(b"host").unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let scheme = header(b"x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
    let target = String::from_utf8_lossy(&req.target);
    let mut args = os(&[
        "--request",
        &format!("{} {scheme}://{host}{target}", req.method),
    ]);
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case(b"host") || name.eq_ignore_ascii_case(b"connection") {
            continue;
        }
        let mut arg = name.clone();
        arg.extend_from_slice(b": ");
        arg.extend_from_slice(value);
        args.push("-H".into());
        args.push(OsString::from_vec(arg));
    }
    args
}

/// What explain's upstream headers lack of the row's `want` (native's), or `None`.
fn want_problems(case: &Case, upstream: &[Value]) -> Option<String> {
    let values = |h: &str| -> Vec<&str> {
        upstream
            .iter()
            .filter(|x| x["name"] == h)
            .filter_map(|x| x["value"].as_str())
            .collect()
    };
    let problems: Vec<String> = case
        .want
        .iter()
        .filter_map(|want| match *want {
            Want::Is(h, v) if values(h).first() != Some(&v) => {
                Some(format!("{h}: {:?}, want {v:?}", values(h)))
            }
            Want::Present(h) if values(h).is_empty() => Some(format!("lacks {h}")),
            Want::Absent(h) if !values(h).is_empty() => Some(format!("has {h}")),
            Want::Count(h, n) if values(h).len() != n => {
                Some(format!("{h} {} times, want {n}", values(h).len()))
            }
            _ => None,
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Every row of the differential table to the filter in Envoy and to explain, with the same
/// configuration and clock: the same status for every row, the same `WWW-Authenticate`, and
/// for a 200 the identity headers native sends (the table's `want`) in explain's upstream
/// headers. Prints how many rows agree.
#[test]
fn explain_agrees_with_the_filter_on_the_differential_table() {
    let cfg = table::config();
    let proxy = Proxy::try_start(&[Listener::new("wasm", Side::Wasm, &cfg)])
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    let dir = scratch();
    let config = write(&dir, "differential.json", cfg.to_string());
    let cases = table::cases();
    let mut status_agree = 0;
    let mut challenge_agree = 0;
    let mut headers_agree = 0;
    let mut forwarded = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let resp = proxy.send("wasm", &case.req);
        let now = common::now().to_string();
        let mut args = os(&["--config", &config, "--now", &now, "--json"]);
        args.extend(explain_args(&case.req));
        let (code, out, err) = run(&args);
        let Ok(j) = serde_json::from_str::<Value>(&out) else {
            failures.push(format!(
                "{}: explain exit {code}, no JSON: {err}",
                case.name
            ));
            continue;
        };
        let want_code = if j["let_through"] == true { 0 } else { 1 };
        let mut problems = Vec::new();
        if j["status"] == u64::from(resp.status) && code == want_code {
            status_agree += 1;
        } else {
            problems.push(format!(
                "status: explain {} (exit {code}), filter {}",
                j["status"], resp.status
            ));
        }
        if j["www_authenticate"].as_str() == resp.header("www-authenticate") {
            challenge_agree += 1;
        } else {
            problems.push(format!(
                "www-authenticate: explain {}, filter {:?}",
                j["www_authenticate"],
                resp.header("www-authenticate")
            ));
        }
        if resp.status == 200 {
            forwarded += 1;
            match want_problems(
                case,
                j["upstream_headers"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice),
            ) {
                None => headers_agree += 1,
                Some(p) => problems.push(format!("upstream headers: {p}")),
            }
        }
        if !problems.is_empty() {
            let steps: Vec<&str> = j["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["text"].as_str())
                .collect();
            failures.push(format!(
                "{}: {}\n      steps: {}",
                case.name,
                problems.join("; "),
                steps.join(" | ")
            ));
        }
    }
    let n = cases.len();
    println!(
        "explain vs the filter in Envoy, {n} rows: status {status_agree}/{n}, \
         www-authenticate {challenge_agree}/{n}, identity headers of 200s {headers_agree}/{forwarded}"
    );
    assert!(
        failures.is_empty(),
        "explain vs the filter: status {status_agree}/{n}, www-authenticate {challenge_agree}/{n}, \
         headers {headers_agree}/{forwarded}; differing rows:\n  {}",
        failures.join("\n  ")
    );
    assert!(n >= 100, "the table has only {n} rows");
}
