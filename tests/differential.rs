//! Differential suite: one `jwt_authn` config JSON runs in our wasm filter (listener `wasm`) and
//! in Envoy's native `envoy.filters.http.jwt_authn` (listener `native`) of one Envoy; every case
//! goes to both and must get the same status, the same `WWW-Authenticate`, and, for 200s, the
//! same headers at the upstream (identity headers, forwarded tokens, the request target).
//!
//! - `native_answers_as_the_table_says` pins native's answers (the `status` and `want` columns),
//!   so the table is validated even before the module exists.
//! - `wasm_matches_native` is the differential run itself.
//! - `differs_*` tests cover where we deliberately do not follow native; each asserts both sides.
//!
//! The table (`config`, `cases`) is in `tests/common/table.rs`, shared with tests/explain.rs.
//!
//! Run: `cargo test --test differential` (needs `make build` for the wasm side).

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::{Request, Response};
use common::idp::Idp;
use common::mint::{self, Key};
use common::table::*;
use common::upstream::{Echo, Upstream};
use common::Proxy;

// ---------------------------------------------------------------------------------------------
// Fixtures: one Envoy per kind, started on first use and shared by the tests of this file.

static NATIVE: OnceLock<Result<Proxy, String>> = OnceLock::new();
static BOTH: OnceLock<Result<Proxy, String>> = OnceLock::new();

/// An Envoy with only the `native` listener: works without the wasm module.
fn native() -> &'static Proxy {
    let proxy = NATIVE
        .get_or_init(|| Proxy::try_start(&[Listener::new("native", Side::Native, &config())]));
    match proxy {
        Ok(p) => p,
        Err(e) => panic!("native-only Envoy did not start: {e}"),
    }
}

/// The side-by-side Envoy: listeners `wasm` and `native`.
fn both() -> &'static Proxy {
    let proxy = BOTH.get_or_init(|| {
        let cfg = config();
        Proxy::try_start(&[
            Listener::new("wasm", Side::Wasm, &cfg),
            Listener::new("native", Side::Native, &cfg),
        ])
    });
    match proxy {
        Ok(p) => p,
        Err(e) => panic!("side-by-side Envoy (wasm + native) did not start: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing answers.

/// Headers that legitimately differ between two requests.
const VOLATILE: &[&str] = &["x-request-id"];

/// What the upstream saw, normalised for comparison: target and sorted headers.
fn upstream_view(echo: &Echo) -> (String, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = echo
        .headers
        .iter()
        .filter(|(n, _)| !VOLATILE.contains(&n.as_str()))
        .cloned()
        .collect();
    headers.sort();
    (echo.target.clone(), headers)
}

/// Differences between two responses that matter, or `None`.
fn compare(wasm: &Response, native: &Response) -> Option<String> {
    let mut diffs = Vec::new();
    if wasm.status != native.status {
        diffs.push(format!(
            "status: wasm {} vs native {}",
            wasm.status, native.status
        ));
    }
    if wasm.header("www-authenticate") != native.header("www-authenticate") {
        diffs.push(format!(
            "www-authenticate: wasm {:?} vs native {:?}",
            wasm.header("www-authenticate"),
            native.header("www-authenticate")
        ));
    }
    match (wasm.echo(), native.echo()) {
        (Some(w), Some(n)) => {
            let (wt, wh) = upstream_view(&w);
            let (nt, nh) = upstream_view(&n);
            if wt != nt {
                diffs.push(format!("upstream target: wasm {wt:?} vs native {nt:?}"));
            }
            // Multisets: both lists are sorted, so a header sent twice must be twice in both.
            if wh != nh {
                diffs.push(format!(
                    "upstream headers differ:\n      wasm   {wh:?}\n      native {nh:?}"
                ));
            }
        }
        (None, None) => {}
        (w, _) => diffs.push(format!(
            "only {} reached the upstream",
            if w.is_some() { "wasm" } else { "native" }
        )),
    }
    if diffs.is_empty() {
        None
    } else {
        // Local replies: show their bodies (jwt_authn's reason strings); echo bodies are noise.
        let body = |r: &Response| match r.echo() {
            Some(_) => "(from upstream)".to_string(),
            None => format!("{:?}", r.body_str().chars().take(200).collect::<String>()),
        };
        diffs.push(format!(
            "bodies: wasm {} vs native {}",
            body(wasm),
            body(native)
        ));
        Some(diffs.join("\n    "))
    }
}

/// Problems with `resp` against the table's `status` and `want`, or `None`.
fn check_expected(case: &Case, resp: &Response) -> Option<String> {
    let mut problems = Vec::new();
    if resp.status != case.status {
        problems.push(format!(
            "status {} (table says {}), body {:?}",
            resp.status,
            case.status,
            resp.body_str()
        ));
    }
    if resp.status == 200 {
        match resp.echo() {
            None => problems.push("200 did not come from the upstream".to_string()),
            Some(echo) => {
                for want in &case.want {
                    match *want {
                        Is(h, v) if echo.header(h) != Some(v) => {
                            problems.push(format!("upstream {h}: {:?}, want {v:?}", echo.header(h)))
                        }
                        Present(h) if !echo.has(h) => problems.push(format!("upstream lacks {h}")),
                        Count(h, n) if echo.header_all(h).len() != n => problems.push(format!(
                            "upstream has {h} {} times, want {n}: {:?}",
                            echo.header_all(h).len(),
                            echo.header_all(h)
                        )),
                        Absent(h) if echo.has(h) => {
                            problems.push(format!("upstream has {h}: {:?}", echo.header(h)))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn table_has_unique_names_and_enough_cases() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
}

/// Pins native `jwt_authn`'s answers, so the table (and the harness) is right before our filter
/// is compared with it.
#[test]
fn native_answers_as_the_table_says() {
    let proxy = native();
    let failures: Vec<String> = cases()
        .iter()
        .filter_map(|c| {
            let resp = proxy.send("native", &c.req);
            check_expected(c, &resp).map(|p| format!("{}: {p}", c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "native jwt_authn differs from the table:\n  {}",
        failures.join("\n  ")
    );
}

/// The differential run: every case to both listeners of one Envoy. RS* and ES* signatures
/// are checked by Envoy's BoringSSL through `verify_signature` (the log says so).
#[test]
fn wasm_matches_native() {
    assert_same_answers(both());
    assert_signatures(both(), "RS* and ES* by the host (verify_signature)");
}

/// The same with `host_signatures: false`: every algorithm checked by the module's own code.
#[test]
fn wasm_matches_native_with_pure_rust_signatures() {
    let mut wasm = config();
    wasm["host_signatures"] = json!(false);
    let proxy = Proxy::try_start(&[
        Listener::new("wasm", Side::Wasm, &wasm),
        Listener::new("native", Side::Native, &config()),
    ])
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    assert_same_answers(&proxy);
    assert_signatures(&proxy, "all in wasm (host_signatures: false)");
}

/// The table twice with `jwt_cache_config` on every provider of both filters: the second round
/// is answered from the caches, and must still be the same (time and audience checks too).
#[test]
fn wasm_matches_native_with_jwt_cache() {
    let mut cfg = config();
    for provider in cfg["providers"].as_object_mut().unwrap().values_mut() {
        provider["jwt_cache_config"] = json!({ "jwt_cache_size": 1000 });
    }
    let proxy = Proxy::try_start(&[
        Listener::new("wasm", Side::Wasm, &cfg),
        Listener::new("native", Side::Native, &cfg),
    ])
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    assert_same_answers(&proxy);
    assert_same_answers(&proxy);
}

/// The filter logged how it checks signatures, once per VM, in these words.
fn assert_signatures(proxy: &Proxy, how: &str) {
    let log = proxy.envoy.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("signatures:")).collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains(how)),
        "want every `signatures:` line to say {how:?}; got {lines:#?}"
    );
}

/// The same table with every provider's keys fetched from an identity provider (`remote_jwks`
/// through cluster `jwks`) by both filters.
#[test]
fn wasm_matches_native_with_remote_jwks() {
    let idp = Idp::serving(&mint::jwks_with_weak_key());
    let mut cfg = config();
    for provider in cfg["providers"].as_object_mut().unwrap().values_mut() {
        let provider = provider.as_object_mut().unwrap();
        provider.remove("local_jwks");
        provider.insert(
            "remote_jwks".into(),
            json!({
                "http_uri": { "uri": "http://idp.example/jwks", "cluster": "jwks", "timeout": "2s" },
                "cache_duration": "600s",
            }),
        );
    }
    let upstream = Upstream::start();
    let listeners = [
        Listener::new("wasm", Side::Wasm, &cfg),
        Listener::new("native", Side::Native, &cfg),
    ];
    let boot = bootstrap::bootstrap(&listeners, upstream.port());
    let envoy = Envoy::start(&bootstrap::with_cluster(&boot, "jwks", idp.port()));
    assert_same_answers(&Proxy { upstream, envoy });
    assert!(
        idp.requests() >= 2,
        "both filters fetched: {}",
        idp.requests()
    );
}

/// Every case to `wasm` and `native` of `proxy`: the answers must be the same.
fn assert_same_answers(proxy: &Proxy) {
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let wasm = proxy.send("wasm", &c.req);
            let native = proxy.send("native", &c.req);
            compare(&wasm, &native).map(|d| format!("{}:\n    {d}", c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ between our filter and native jwt_authn:\n  {}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n  "),
        vm_trouble(proxy)
    );
}

/// Error lines of the wasm VM in the Envoy log (a crash turns into 503s), and the log's path.
fn vm_trouble(proxy: &Proxy) -> String {
    let log = proxy.envoy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("panicked") || l.contains("][critical][") || l.contains("][error][wasm]")
        })
        .take(20)
        .collect();
    let path = proxy.envoy.dir().join("envoy.log");
    if lines.is_empty() {
        format!("(no wasm errors in {})", path.display())
    } else {
        format!("wasm errors in {}:\n{}", path.display(), lines.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Deliberate differences. Each asserts what native does (on the native-only Envoy, so it holds
// without the module) and then what we do.

/// Arrays and objects in `claim_to_headers`: we send compact JSON; native sends the JSON
/// base64-encoded (standard alphabet, padded).
#[test]
fn differs_claim_to_headers_array_and_object() {
    let req = get("/p1").bearer(&t1p(
        json!({ "groups": ["admin", "dev"], "org": { "id": 7 } }),
    ));
    let native_resp = native().send("native", &req);
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    let n = native_resp.upstream();
    let (native_groups, native_org) = (n.header("x-jwt-groups"), n.header("x-jwt-org"));
    assert_eq!(
        (native_groups, native_org),
        NATIVE_ARRAY_OBJECT_RENDERING,
        "native: {native_resp}"
    );
    let ours = both().send("wasm", &req);
    assert_eq!(ours.status, 200, "ours: {ours}");
    let o = ours.upstream();
    assert_eq!(
        o.header("x-jwt-groups"),
        Some(r#"["admin","dev"]"#),
        "ours: {ours}"
    );
    assert_eq!(o.header("x-jwt-org"), Some(r#"{"id":7}"#), "ours: {ours}");
}

/// What native puts in `x-jwt-groups` / `x-jwt-org` for `["admin","dev"]` / `{"id":7}`.
const NATIVE_ARRAY_OBJECT_RENDERING: (Option<&str>, Option<&str>) =
    (Some("WyJhZG1pbiIsImRldiJd"), Some("eyJpZCI6N30="));

/// Native checks `aud` before the signature, so a forged token (bad signature) with a wrong
/// audience gets 403; we check claims only once the signature holds, so it gets 401.
#[test]
fn differs_forged_token_with_wrong_audience() {
    let req = get("/p1").bearer(&mint::tampered(&t1p(json!({"aud": "api-two"}))));
    let native_resp = native().send("native", &req);
    assert_eq!(native_resp.status, 403, "native: {native_resp}");
    let ours = both().send("wasm", &req);
    assert_eq!(ours.status, 401, "ours: {ours}");
}

/// Two good tokens for one provider: native appends each identity header once per token; we
/// set it (the request carries one `x-jwt-sub`, never a list a client could have started).
#[test]
fn differs_two_good_tokens_set_identity_once() {
    let good = t1();
    let req = get(&format!("/p1?access_token={}", t1a("ES256"))).bearer(&good);
    let native_resp = native().send("native", &req);
    let native_echo = native_resp.echo().expect("native reached the upstream");
    assert_eq!(native_echo.header_all("x-jwt-sub"), vec!["alice", "alice"]);
    let ours = both().send("wasm", &req);
    let echo = ours.echo().expect("ours reached the upstream");
    assert_eq!(echo.header_all("x-jwt-sub"), vec!["alice"]);
    assert_eq!(echo.header_all("x-jwt-payload").len(), 1);
}

/// (native, ours) answers to `req` on the p1 routes.
fn both_sides(req: &Request) -> (Response, Response) {
    (native().send("native", req), both().send("wasm", req))
}

/// A 1024-bit RSA key: native verifies with it; we never load it (RFC 7518 §3.3).
#[test]
fn differs_rsa_key_under_2048_bits() {
    let token = mint::sign(
        &json!({ "alg": "RS256", "kid": "rsa-weak" }),
        &c1(json!({})),
        "RS256",
        Key::RsaWeak,
    );
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&token));
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    assert_eq!(ours.status, 401, "ours: {ours}");
}

/// `crit` and `b64: false`: native ignores them; we refuse (RFC 7515 §4.1.11, RFC 7797).
#[test]
fn differs_critical_header_extensions() {
    for header in [
        json!({ "alg": "RS256", "kid": "rsa-a", "crit": ["exp-ext"], "exp-ext": 1 }),
        json!({ "alg": "RS256", "kid": "rsa-a", "b64": false }),
    ] {
        let token = mint::sign(&header, &c1(json!({})), "RS256", Key::RsaA);
        let (native_resp, ours) = both_sides(&get("/p1").bearer(&token));
        assert_eq!(native_resp.status, 200, "native {header}: {native_resp}");
        assert_eq!(ours.status, 401, "ours {header}: {ours}");
    }
}

/// A claim with CR/LF bound for a header: native fails the request (503); we forward it
/// without that header. A tab: native sends it; we do not.
#[test]
fn differs_control_characters_in_claims() {
    let crlf = t1p(json!({ "sub": "alice\r\nx-admin: true" }));
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&crlf));
    assert_eq!(native_resp.status, 503, "native: {native_resp}");
    assert_eq!(ours.status, 200, "ours: {ours}");
    let echo = ours.echo().expect("ours reached the upstream");
    assert!(!echo.has("x-jwt-sub") && !echo.has("x-admin"), "{ours}");

    let tab = t1p(json!({ "sub": "alice\tbob" }));
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&tab));
    let native_echo = native_resp.echo().expect("native reached the upstream");
    assert_eq!(native_echo.header("x-jwt-sub"), Some("alice\tbob"));
    assert!(
        !ours
            .echo()
            .expect("ours reached the upstream")
            .has("x-jwt-sub"),
        "{ours}"
    );
}

/// Over 16 KiB: native verifies; we refuse before parsing.
#[test]
fn differs_token_over_16_kib() {
    let big = t1p(json!({ "padding": "x".repeat(20_000) }));
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&big));
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    assert_eq!(ours.status, 401, "ours: {ours}");
    assert_eq!(ours.body_str(), "Jwt is too large");
}

// ---------------------------------------------------------------------------------------------
// Hardening, round 2 (issue 11): the same bytes over HTTP/2, and the stricter choices.

/// Regression (issue 11, item 1): `GET /admin/users?x=\xff` over h2c. Envoy's HTTP/2 codec
/// forwards the byte (HTTP/1 answers 400 itself); native asks for a token, and so do we (we
/// used to read the `:path` as "", match no rule, and let it through).
#[test]
fn non_utf8_query_over_h2c_needs_a_token_as_in_native() {
    let proxy = both();
    let bare = Request::get(b"/admin/users?x=\xff".as_slice());
    for listener in ["native", "wasm"] {
        let resp = proxy.send_h2(listener, &bare);
        assert_eq!(resp.status, 401, "{listener}: {resp}");
        assert!(
            resp.echo().is_none(),
            "{listener}: reached the upstream: {resp}"
        );
    }
    let with_token = Request::get(b"/admin/users?x=\xff".as_slice()).bearer(&t1());
    let native_resp = proxy.send_h2("native", &with_token);
    let ours = proxy.send_h2("wasm", &with_token);
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    assert_eq!(ours.status, 200, "ours: {ours}");
    assert_eq!(compare(&ours, &native_resp), None);
    // Over HTTP/1 the codec refuses the byte before any filter.
    assert_eq!(proxy.send("wasm", &bare).status, 400);
}

/// The h2c client sends what HTTP/1 would: the whole table agrees over HTTP/2 too.
#[test]
fn wasm_matches_native_over_h2c() {
    let proxy = both();
    let cases = cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let wasm = proxy.send_h2("wasm", &c.req);
            let native = proxy.send_h2("native", &c.req);
            compare(&wasm, &native).map(|d| format!("{}:\n    {d}", c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ over h2c:\n  {}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n  "),
        vm_trouble(proxy)
    );
}

/// `exp`/`nbf` out of range (issue 11, item 14). Both refuse negative ones and ones at or past
/// 2^64 (native's bound); native accepts the rest of `[0, 2^64)` (`exp` in the year 10000, or
/// at `i64::MAX`: a token that never expires); we refuse anything after 9999-12-31.
#[test]
fn differs_numeric_dates_past_year_9999() {
    let cases: [(&str, Value, u16); 7] = [
        ("exp 1e300", json!({"exp": 1e300}), 401),
        ("exp u64::MAX", json!({"exp": u64::MAX}), 401),
        ("exp -1", json!({"exp": -1}), 401),
        ("nbf -5", json!({"nbf": -5}), 401),
        ("exp 1e19", json!({"exp": 1e19}), 200),
        ("exp i64::MAX", json!({"exp": i64::MAX}), 200),
        ("exp year 10000", json!({"exp": 253_402_300_800i64}), 200),
    ];
    for (what, patch, native_status) in cases {
        let (native_resp, ours) = both_sides(&get("/p1").bearer(&t1p(patch)));
        assert_eq!(
            native_resp.status, native_status,
            "native, {what}: {native_resp}"
        );
        assert_eq!(ours.status, 401, "ours, {what}: {ours}");
    }
}

/// `"kid": ""`: native treats it as no kid and tries every key; we look for a key whose kid
/// is "", find none, and refuse.
#[test]
fn differs_empty_kid() {
    let token = mint::sign(
        &json!({"alg": "RS256", "kid": ""}),
        &c1(json!({})),
        "RS256",
        Key::RsaA,
    );
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&token));
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    assert_eq!(ours.status, 401, "ours: {ours}");
}

/// `=` padding after the signature segment: native decodes it; we refuse (RFC 7515 §2:
/// base64url without padding), as for the header and payload segments.
#[test]
fn differs_padded_signature() {
    let good = t1();
    let (head, sig) = good.rsplit_once('.').unwrap();
    let padded = format!("{head}.{sig}{}", "=".repeat((4 - sig.len() % 4) % 4));
    assert_ne!(padded, good, "the fixture signature needs padding");
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&padded));
    assert_eq!(native_resp.status, 200, "native: {native_resp}");
    assert_eq!(ours.status, 401, "ours: {ours}");
}

/// A token parameter or cookie sent twice (issue 11, item 4): native verifies the first copy
/// and forwards both; we refuse, whichever copy is good (a framework may read the last).
#[test]
fn differs_repeated_token_param_or_cookie() {
    let good = t1();
    let forged = mint::tampered(&good);
    let good_first = get(&format!("/p1?access_token={good}&access_token={forged}"));
    let forged_first = get(&format!("/p1?access_token={forged}&access_token={good}"));
    let cookies = get("/p3").header(
        "cookie",
        format!("session={}; session={}", t3(), mint::tampered(&t3())),
    );
    for (what, req, native_status) in [
        ("param, good first", good_first, 200),
        ("param, forged first", forged_first, 401),
        ("cookie, good first", cookies, 200),
    ] {
        let (native_resp, ours) = both_sides(&req);
        assert_eq!(
            native_resp.status, native_status,
            "native, {what}: {native_resp}"
        );
        assert_eq!(ours.status, 401, "ours, {what}: {ours}");
        assert_eq!(
            ours.body_str(),
            "Jwt cookie or query parameter occurs more than once",
            "{what}"
        );
    }
}

/// A claim with leading or trailing spaces (issue 11, item 11): native sends it, and the
/// HTTP/1 upstream reads `" alice"` as `alice`; we do not send it.
#[test]
fn differs_claim_with_outer_spaces() {
    let (native_resp, ours) = both_sides(&get("/p1").bearer(&t1p(json!({"sub": " alice"}))));
    let native_echo = native_resp.echo().expect("native reached the upstream");
    assert_eq!(
        native_echo.header("x-jwt-sub"),
        Some("alice"),
        "{native_resp}"
    );
    let echo = ours.echo().expect("ours reached the upstream");
    assert!(!echo.has("x-jwt-sub"), "{ours}");
}

/// Found by `tests/fuzz_envoy.rs`: when native removes a consumed `access_token` from the
/// query it rebuilds `:path` from the decoded parameters, so `%0d` elsewhere becomes a raw CR
/// and its own rewrite fails with 503; we remove the token's pair and keep the rest as sent.
#[test]
fn differs_consumed_query_token_with_an_encoded_control_character_elsewhere() {
    let req = get(&format!("/p2?x=%0d&jwt={}", t2()));
    let (native_resp, ours) = both_sides(&req);
    assert_eq!(native_resp.status, 503, "native: {native_resp}");
    assert_eq!(native_resp.body_str(), "invalid header value for: :path");
    assert_eq!(ours.status, 200, "ours: {ours}");
    assert_eq!(ours.upstream().target, "/p2?x=%0d");
    assert_eq!(ours.upstream().header("x-jwt-two-sub"), Some("bob"));
}
