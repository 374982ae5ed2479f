//! The attack suite, end to end in a real Envoy: one named test per attack on a JWT filter
//! (RFC 8725 and the usual JOSE pitfalls). Each forged token is signed validly wherever that
//! makes the attack stronger, so only the defence under test can stop it. Every test checks
//! what a client sees (status, and that nothing reached the upstream), then that the wasm VM
//! is still the one that started (`assert_vm_healthy`).
//!
//! One shared Envoy (`--concurrency 1`, FAIL_CLOSED) runs listener `main` with two providers:
//! - `p` (`/`): inline keys = the fixture set without `rsa-b`, plus keys that must never be
//!   used: 1024-bit RSA (`rsa-weak`), `e` = 1 (`e1`), `e` = 2 (`e2`), a P-256 point off the
//!   curve (`ec-bad`), a 6-byte HMAC secret (`hmac-short`);
//! - `big` (`/big`): remote keys from a stand-in IdP serving 10,000 keys.
//!
//! A second stand-in IdP, `evil`, is reachable as cluster `evil`: tokens point `jku`/`x5u` at
//! it, and it must never see a request.
//!
//! Listener `report` runs provider `p` alone in `report_only` (for the log-flood test).
//!
//! Run: `make build && cargo test --test attacks`.

// Tests fail by panicking, and index into values they have just built.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::{Request, Response};
use common::idp::{jwks_only, Idp};
use common::mint::{self, Key};
use common::upstream::Upstream;

const ISS: &str = "https://issuer.attacks";
const ISS_BIG: &str = "https://big.attacks";
/// 2100-01-01.
const FAR: i64 = 4_102_444_800;
/// A guessable HMAC secret (6 bytes): its key must not be loaded.
const SHORT_SECRET: &[u8] = b"secret";
const VM_GAUGE: &str = "wasm.envoy.wasm.runtime.v8.active";

struct Fixture {
    envoy: Envoy,
    evil: Idp,
    _big: Idp,
    _upstream: Upstream,
    vms_at_start: Option<u64>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let big = Idp::serving(&big_jwks());
        let evil = Idp::serving(&jwks_only(&["rsa-b"]));
        let upstream = Upstream::start();
        let boot = bootstrap::bootstrap(
            &[
                Listener::new("main", Side::Wasm, &config()),
                Listener::new("report", Side::Wasm, &report_config()),
            ],
            upstream.port(),
        );
        let boot = bootstrap::with_cluster(&boot, "big", big.port());
        let boot = bootstrap::with_cluster(&boot, "evil", evil.port());
        let envoy = Envoy::start(&boot);
        let vms_at_start = envoy.stat(VM_GAUGE);
        Fixture {
            envoy,
            evil,
            _big: big,
            _upstream: upstream,
            vms_at_start,
        }
    })
}

fn config() -> Value {
    let mut keys: Value =
        serde_json::from_str(&jwks_only(&["rsa-a", "ec256", "ed", "hmac"])).unwrap();
    let weak: Value = serde_json::from_str(mint::JWKS_WEAK).unwrap();
    let rsa_a = fixture_jwk("rsa-a");
    let ec = fixture_jwk("ec256");
    let extra = [
        weak["keys"][0].clone(),
        json!({ "kty": "RSA", "kid": "e1", "n": rsa_a["n"], "e": "AQ" }),
        json!({ "kty": "RSA", "kid": "e2", "n": rsa_a["n"], "e": "Ag" }),
        json!({ "kty": "EC", "kid": "ec-bad", "crv": "P-256", "x": ec["x"], "y": off_curve_y(&ec) }),
        json!({ "kty": "oct", "kid": "hmac-short", "k": b64(SHORT_SECRET) }),
    ];
    keys["keys"].as_array_mut().unwrap().extend(extra);
    json!({
        "providers": {
            "p": {
                "issuer": ISS,
                "audiences": ["api"],
                "local_jwks": { "inline_string": keys.to_string() },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            },
            "big": {
                "issuer": ISS_BIG,
                "remote_jwks": { "http_uri": {
                    "uri": "http://big.attacks/jwks", "cluster": "big", "timeout": "5s" } },
                "claim_to_headers": [{ "header_name": "x-jwt-sub", "claim_name": "sub" }],
            },
        },
        "rules": [
            { "match": { "prefix": "/big" }, "requires": { "provider_name": "big" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "p" } },
        ],
    })
}

/// Provider `p` alone on every path, in `report_only`: every failure is let through and logged.
fn report_config() -> Value {
    let mut report = config();
    report["providers"].as_object_mut().unwrap().remove("big");
    report["rules"] = json!([{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }]);
    report["report_only"] = json!(true);
    report
}

/// 10,000 copies of the fixture HMAC key, kids `k0` … `k9999` (about 800 kB).
fn big_jwks() -> String {
    let hmac = fixture_jwk("hmac");
    let keys: Vec<Value> = (0..10_000)
        .map(|i| json!({ "kty": "oct", "kid": format!("k{i}"), "k": hmac["k"] }))
        .collect();
    json!({ "keys": keys }).to_string()
}

fn fixture_jwk(kid: &str) -> Value {
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone()
}

/// The P-256 fixture key's `y` with its lowest bit flipped: for a given x only y and p - y are
/// on the curve, and p - y is far from y.
fn off_curve_y(ec: &Value) -> String {
    let mut y = URL_SAFE_NO_PAD.decode(ec["y"].as_str().unwrap()).unwrap();
    let last = y.len() - 1;
    y[last] ^= 1;
    URL_SAFE_NO_PAD.encode(y)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Good claims for provider `p`, with `patch` merged (a `null` stays a JSON null).
fn claims(patch: Value) -> Value {
    let mut c = json!({ "iss": ISS, "sub": "alice", "aud": "api", "exp": FAR });
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Signs `header` and `payload` with rsa-a (RS256), whatever the header says.
fn signed(header: Value, payload: &Value) -> String {
    mint::sign(&header, payload, "RS256", Key::RsaA)
}

fn send(req: &Request) -> Response {
    req.send(fixture().envoy.port("main"))
}

fn get(token: &str) -> Response {
    send(&Request::get("/api").bearer(token))
}

/// 401 from the filter: the request never reached the upstream.
fn assert_refused(resp: &Response, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {resp}");
    assert!(resp.echo().is_none(), "{what} reached the upstream: {resp}");
}

fn assert_refused_token(token: &str, what: &str) {
    assert_refused(&get(token), what);
}

fn assert_accepted(resp: &Response, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {resp}");
    assert_eq!(
        resp.upstream().header("x-jwt-sub"),
        Some("alice"),
        "{what}: {resp}"
    );
}

/// No wasm VM failed (log and stats), and as many VMs live as at start.
fn assert_vm_healthy() {
    let fx = fixture();
    let bad = fx.envoy.wasm_failures();
    assert!(bad.is_empty(), "the wasm VM failed:\n{}", bad.join("\n"));
    let stats = fx.envoy.wasm_failure_stats();
    assert!(stats.is_empty(), "wasm failure stats: {stats:?}");
    let vms = fx.envoy.stat(VM_GAUGE);
    assert!(
        vms.is_some() && vms == fx.vms_at_start,
        "{VM_GAUGE}: {vms:?}, at start {:?}",
        fx.vms_at_start
    );
}

#[test]
fn control_a_good_token_is_accepted() {
    assert_accepted(
        &get(&signed(
            json!({ "alg": "RS256", "kid": "rsa-a" }),
            &claims(json!({})),
        )),
        "good",
    );
    assert_vm_healthy();
}

#[test]
fn alg_none_in_every_spelling() {
    let payload = b64(claims(json!({})).to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE", "none ", "", "HS0"] {
        for kid in [None, Some("rsa-a"), Some("hmac")] {
            let header = match kid {
                Some(kid) => json!({ "alg": alg, "kid": kid }),
                None => json!({ "alg": alg }),
            };
            let input = format!("{}.{payload}", b64(header.to_string().as_bytes()));
            for token in [format!("{input}."), format!("{input}.AA"), input.clone()] {
                assert_refused_token(&token, &format!("alg {alg:?} kid {kid:?}: {token}"));
            }
        }
    }
    for header in [
        json!({ "alg": null }),
        json!({ "alg": ["RS256"] }),
        json!({}),
    ] {
        let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        assert_refused_token(&token, &format!("{header}"));
    }
    assert_vm_healthy();
}

/// HS256 keyed with rsa-a's public key (PEM, DER, JWK `n`, the JWK JSON): the classic
/// confusion where a verifier obeys `alg` and uses the RSA key as an HMAC secret. The key set
/// also holds a genuine HMAC key, so HS256 itself is an algorithm the provider accepts.
#[test]
fn hs256_signed_with_the_rsa_public_key() {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let private =
        rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("fixtures/keys/rsa2048-a.pem")).unwrap();
    let public = rsa::RsaPublicKey::from(&private);
    let pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let der = public.to_public_key_der().unwrap();
    let jwk = fixture_jwk("rsa-a");
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM", pem.into_bytes()),
        ("DER", der.as_bytes().to_vec()),
        ("n", n),
        ("JWK", jwk.to_string().into_bytes()),
    ];
    for (what, secret) in secrets {
        for header in [
            json!({ "alg": "HS256", "kid": "rsa-a" }),
            json!({ "alg": "HS256" }),
        ] {
            let token = mint::sign_hs256_with_secret(&header, &claims(json!({})), &secret);
            assert_refused_token(
                &token,
                &format!("HS256 keyed with the RSA key as {what}, {header}"),
            );
        }
    }
    assert_vm_healthy();
}

/// A `kid` is only ever compared, never used as a path, a query or a format string.
#[test]
fn kid_with_path_traversal_quotes_and_10_kb() {
    let long = "k".repeat(10 * 1024);
    let kids = [
        "../../../../etc/passwd",
        "..\\..\\jwks.json",
        "/dev/null",
        "\"; DROP TABLE keys; --",
        "' OR '1'='1",
        "rsa-a\"",
        "rsa-a\u{0}",
        "%s%n%x",
        long.as_str(),
    ];
    for kid in kids {
        let header = json!({ "alg": "RS256", "kid": kid });
        // Signed by the key a lax matcher might pick (rsa-a), and by one not in the set.
        for key in [Key::RsaA, Key::RsaB] {
            let token = mint::sign(&header, &claims(json!({})), "RS256", key);
            let what = format!("kid {:?} with {key:?}", kid.get(..40).unwrap_or(kid));
            assert_refused_token(&token, &what);
        }
    }
    assert_vm_healthy();
}

/// RFC 7515 §4.1.11: a `crit` extension the recipient does not understand must be refused,
/// even when the signature is good.
#[test]
fn crit_with_an_unknown_extension_is_refused() {
    let headers = [
        json!({ "alg": "RS256", "kid": "rsa-a", "crit": ["https://attacks/ext"], "https://attacks/ext": 1 }),
        json!({ "alg": "RS256", "kid": "rsa-a", "crit": ["exp"] }),
        json!({ "alg": "RS256", "kid": "rsa-a", "crit": [] }),
    ];
    for header in headers {
        assert_refused_token(
            &signed(header.clone(), &claims(json!({}))),
            &header.to_string(),
        );
    }
    assert_vm_healthy();
}

/// `jku`, `x5u`, `jwk`, `x5c`: keys or key URLs chosen by the token are never fetched or
/// trusted. Tokens are signed with rsa-b, which the provider does not have but every one of
/// these header members offers (the `evil` IdP serves it, reachable as a cluster).
#[test]
fn jku_x5u_jwk_x5c_are_never_fetched_or_trusted() {
    let fx = fixture();
    let url = format!("http://127.0.0.1:{}/jwks", fx.evil.port());
    let rsa_b = fixture_jwk("rsa-b");
    let headers = [
        json!({ "alg": "RS256", "kid": "rsa-b", "jku": url }),
        json!({ "alg": "RS256", "kid": "rsa-b", "jku": "http://evil/jwks" }),
        json!({ "alg": "RS256", "kid": "rsa-b", "x5u": url }),
        json!({ "alg": "RS256", "kid": "rsa-b", "jwk": rsa_b }),
        json!({ "alg": "RS256", "jwk": rsa_b }),
        json!({ "alg": "RS256", "kid": "rsa-b", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"] }),
    ];
    for header in headers {
        let token = mint::sign(&header, &claims(json!({})), "RS256", Key::RsaB);
        assert_refused_token(&token, &header.to_string());
    }
    assert_eq!(
        fx.evil.requests(),
        0,
        "a token-supplied key URL was fetched"
    );
    assert_vm_healthy();
}

/// RFC 7797 unencoded payloads (`b64: false`) are refused, with or without `crit`.
#[test]
fn b64_false_is_refused() {
    for header in [
        json!({ "alg": "RS256", "kid": "rsa-a", "b64": false, "crit": ["b64"] }),
        json!({ "alg": "RS256", "kid": "rsa-a", "b64": false }),
        json!({ "alg": "RS256", "kid": "rsa-a", "b64": "false" }),
    ] {
        assert_refused_token(
            &signed(header.clone(), &claims(json!({}))),
            &header.to_string(),
        );
    }
    assert_vm_healthy();
}

/// Five segments (JWE compact serialization), and other segment counts.
#[test]
fn five_segment_jwe_and_other_segment_counts() {
    let good = signed(
        json!({ "alg": "RS256", "kid": "rsa-a" }),
        &claims(json!({})),
    );
    let jwe_header = b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa-a"}"#);
    let tokens = [
        format!("{jwe_header}.AAAA.AAAA.AAAA.AAAA"),
        format!("{good}.AAAA.AAAA"),
        format!("{good}."),
        good.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
        format!(".{good}"),
        "....".to_string(),
    ];
    for token in tokens {
        assert_refused_token(&token, &token);
    }
    assert_vm_healthy();
}

/// A JSON object that repeats a member name is refused, in the header and in the payload,
/// at any depth (parsers disagree on which value wins).
#[test]
fn duplicate_json_keys_in_header_or_payload() {
    let payload = claims(json!({})).to_string();
    let header = r#"{"alg":"RS256","kid":"rsa-a"}"#;
    let cases: Vec<(String, String)> = vec![
        (
            r#"{"alg":"RS256","kid":"rsa-a","alg":"none"}"#.into(),
            payload.clone(),
        ),
        (
            r#"{"alg":"RS256","kid":"nope","kid":"rsa-a"}"#.into(),
            payload.clone(),
        ),
        (
            header.into(),
            format!(r#"{{"iss":"{ISS}","sub":"alice","aud":"api","exp":{FAR},"sub":"admin"}}"#),
        ),
        (
            header.into(),
            format!(
                r#"{{"iss":"https://other","iss":"{ISS}","sub":"alice","aud":"api","exp":{FAR}}}"#
            ),
        ),
        (
            header.into(),
            format!(
                r#"{{"iss":"{ISS}","sub":"alice","aud":"api","exp":{FAR},"x":{{"a":1,"a":2}}}}"#
            ),
        ),
    ];
    for (header, payload) in cases {
        let token = mint::sign_bytes(header.as_bytes(), payload.as_bytes(), "RS256", Key::RsaA);
        assert_refused_token(&token, &format!("{header} {payload}"));
    }
    assert_vm_healthy();
}

/// `exp`, `nbf`, `iat` as string, float, negative, huge, null. A NumericDate may be
/// fractional (RFC 7519 §2); anything that is not a number is refused, and so is a number out
/// of range (negative, or after 9999-12-31: issue 11, item 14), which used to saturate into a
/// token that never expires.
#[test]
fn time_claims_as_string_float_negative_huge_null() {
    let now = common::now();
    let cases: Vec<(Value, u16)> = vec![
        (json!({ "exp": "4102444800" }), 401),
        (json!({ "exp": null }), 401),
        (json!({ "exp": -1 }), 401),
        (json!({ "exp": (now - 3600) as f64 + 0.5 }), 401),
        (json!({ "exp": FAR as f64 + 0.5 }), 200),
        (json!({ "exp": 1e300 }), 401),
        (json!({ "exp": u64::MAX }), 401),
        (json!({ "exp": i64::MAX }), 401),
        (json!({ "exp": 253_402_300_799i64 }), 200),
        (json!({ "nbf": "0" }), 401),
        (json!({ "nbf": null }), 401),
        (json!({ "nbf": -1 }), 401),
        (json!({ "nbf": (now - 3600) as f64 + 0.5 }), 200),
        (json!({ "nbf": 1e300 }), 401),
        (json!({ "nbf": u64::MAX }), 401),
        (json!({ "iat": "now" }), 401),
        (json!({ "iat": null }), 401),
        (json!({ "iat": -1 }), 401),
        (json!({ "iat": 1.5 }), 200),
        (json!({ "iat": 1e300 }), 401),
    ];
    for (patch, want) in cases {
        let resp = get(&signed(
            json!({ "alg": "RS256", "kid": "rsa-a" }),
            &claims(patch.clone()),
        ));
        if want == 200 {
            assert_accepted(&resp, &patch.to_string());
        } else {
            assert_refused(&resp, &patch.to_string());
        }
    }
    assert_vm_healthy();
}

/// `aud` must be a string or an array of strings.
#[test]
fn aud_as_object_or_number() {
    for aud in [
        json!({ "api": true }),
        json!(42),
        json!(["api", 1]),
        json!(true),
        json!(null),
    ] {
        let token = signed(
            json!({ "alg": "RS256", "kid": "rsa-a" }),
            &claims(json!({ "aud": aud })),
        );
        assert_refused_token(&token, &aud.to_string());
    }
    assert_vm_healthy();
}

/// JSON nested 10,000 deep in the header and in the payload (arrays and objects): the
/// parser's depth limit refuses it, no stack overflow. The token stays under the 16 KiB
/// token limit, so the parser really sees it.
#[test]
fn json_nested_10000_deep() {
    let deep_array = "[".repeat(10_000);
    let deep_object = r#"{"a":"#.repeat(2_000);
    let header = r#"{"alg":"RS256","kid":"rsa-a"}"#;
    let payload = claims(json!({})).to_string();
    let cases = [
        (
            format!(r#"{{"alg":"RS256","kid":"rsa-a","x":{deep_array}"#),
            payload.clone(),
        ),
        (
            header.to_string(),
            format!(r#"{{"sub":"alice","x":{deep_array}"#),
        ),
        (
            header.to_string(),
            format!(r#"{{"sub":"alice","x":{deep_object}"#),
        ),
    ];
    for (header, payload) in cases {
        let token = mint::sign_bytes(header.as_bytes(), payload.as_bytes(), "RS256", Key::RsaA);
        assert!(token.len() < 16 * 1024, "{} bytes", token.len());
        assert_refused_token(&token, &format!("nested, {} bytes", token.len()));
    }
    assert_vm_healthy();
}

/// A 1 MB token: Envoy's own header limit (60 KiB by default) answers 431 before the filter
/// runs; in the query string too. Either way: not 2xx, and the VM lives.
#[test]
fn one_megabyte_token() {
    let token = format!(
        "{}.{}.{}",
        "a".repeat(500_000),
        "b".repeat(500_000),
        "c".repeat(48_576)
    );
    let by_header = send(&Request::get("/api").bearer(&token));
    let by_query = send(&Request::get(format!("/api?access_token={token}")));
    for resp in [by_header, by_query] {
        assert!(!(200..300).contains(&resp.status), "{resp}");
        assert!(resp.echo().is_none(), "{resp}");
    }
    assert_vm_healthy();
}

/// 100 `access_token` parameters: a repeated token parameter is malformed (issue 11, item 4),
/// whichever copy is good, so a forged copy can never ride along a good one to an upstream
/// that reads the last; the realm in `WWW-Authenticate` stays short (path cut at 256 bytes).
#[test]
fn hundred_tokens_in_query_parameters() {
    let good = mint::sign(
        &json!({ "alg": "ES256", "kid": "ec256" }),
        &claims(json!({})),
        "ES256",
        Key::Ec256,
    );
    let forged = mint::tampered(&mint::sign(
        &json!({ "alg": "ES256", "kid": "ec256" }),
        &claims(json!({ "sub": "mallory" })),
        "ES256",
        Key::Ec256,
    ));
    let query = |first: &str, rest: &str| {
        let mut q = format!("/api?access_token={first}");
        for _ in 1..100 {
            q.push_str(&format!("&access_token={rest}"));
        }
        q
    };
    let all_forged = send(&Request::get(query(&forged, &forged)));
    assert_refused(&all_forged, "100 forged tokens");
    let realm = all_forged.header("www-authenticate").unwrap_or_default();
    assert!(realm.len() < 400, "{} bytes: {realm}", realm.len());
    assert_refused(
        &send(&Request::get(query(&forged, &good))),
        "forged, then 99 good",
    );
    let good_first = send(&Request::get(query(&good, &forged)));
    assert_refused(&good_first, "good, then 99 forged");
    assert_eq!(
        good_first.body_str(),
        "Jwt cookie or query parameter occurs more than once"
    );
    assert_accepted(
        &send(&Request::get(format!("/api?access_token={good}"))),
        "the good one alone",
    );
    assert_vm_healthy();
}

/// CR, LF, NUL, DEL and other control characters in a claim never reach a header: the claim
/// header is not sent, no header is injected, and the request (signed, valid) goes on.
#[test]
fn control_characters_in_claims_never_reach_a_header() {
    for sub in [
        "alice\r\nx-injected: 1",
        "alice\nx-injected: 1",
        "a\rb",
        "a\u{0}b",
        "a\tb",
        "a\u{7f}b",
        "a\u{1b}[31m",
    ] {
        let token = signed(
            json!({ "alg": "RS256", "kid": "rsa-a" }),
            &claims(json!({ "sub": sub })),
        );
        let resp = get(&token);
        assert_eq!(resp.status, 200, "{sub:?}: {resp}");
        let echo = resp.upstream();
        assert!(!echo.has("x-jwt-sub"), "{sub:?} reached a header: {resp}");
        assert!(!echo.has("x-injected"), "{sub:?} injected a header: {resp}");
    }
    assert_vm_healthy();
}

/// Keys that must never verify anything are not loaded (and say so in the log): RSA under
/// 2048 bits, `e` = 1 (where a "signature" is just the padded digest: forged here), even `e`,
/// an EC point that is not on its curve, and an HMAC secret under 256 bits.
#[test]
fn weak_and_invalid_keys_are_never_used() {
    let payload = claims(json!({}));
    let signed_by = |kid: &str, alg: &str, key: Key| {
        mint::sign(&json!({ "alg": alg, "kid": kid }), &payload, alg, key)
    };
    let short_secret = mint::sign_hs256_with_secret(
        &json!({ "alg": "HS256", "kid": "hmac-short" }),
        &payload,
        SHORT_SECRET,
    );
    let cases = [
        ("1024-bit RSA", signed_by("rsa-weak", "RS256", Key::RsaWeak)),
        ("e = 1", forge_with_e1(&payload)),
        ("e = 2", signed_by("e2", "RS256", Key::RsaA)),
        (
            "EC point off the curve",
            signed_by("ec-bad", "ES256", Key::Ec256),
        ),
        ("6-byte HMAC secret", short_secret),
    ];
    for (what, token) in cases {
        assert_refused_token(&token, what);
    }
    let log = fixture().envoy.log();
    for kid in ["rsa-weak", "e1", "e2", "ec-bad", "hmac-short"] {
        assert!(
            log.lines().any(|l| l.contains(&format!("(kid \"{kid}\")"))),
            "no log line says key {kid} was skipped"
        );
    }
    assert_vm_healthy();
}

/// With `e` = 1, RSA "verification" is `s mod n == EMSA-PKCS1-v1_5(SHA-256(input))`: the
/// padded digest itself is a valid signature for a verifier that accepts such a key.
fn forge_with_e1(payload: &Value) -> String {
    use sha2::{Digest, Sha256};
    let input = format!(
        "{}.{}",
        b64(json!({ "alg": "RS256", "kid": "e1" })
            .to_string()
            .as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    const SHA256_PREFIX: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let mut em = vec![0x00, 0x01];
    em.resize(256 - SHA256_PREFIX.len() - 32 - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(SHA256_PREFIX);
    em.extend_from_slice(&Sha256::digest(input.as_bytes()));
    assert_eq!(em.len(), 256);
    format!("{input}.{}", b64(&em))
}

/// A remote JWKS of 10,000 keys (800 kB, under the 1 MiB body limit) is handled within
/// bounds: the first 100 keys are read, the rest ignored; a key among the first 100 verifies,
/// one past them does not, and a token without `kid` costs at most 100 trials.
#[test]
fn jwks_of_10000_keys_within_bounds() {
    let token = |kid: Option<&str>| {
        let header = match kid {
            Some(kid) => json!({ "alg": "HS256", "kid": kid }),
            None => json!({ "alg": "HS256" }),
        };
        let claims = json!({ "iss": ISS_BIG, "sub": "alice", "exp": FAR });
        mint::sign(&header, &claims, "HS256", Key::Hmac)
    };
    let big = |token: &str| send(&Request::get("/big").bearer(token));
    assert_accepted(&big(&token(Some("k7"))), "kid k7");
    assert_accepted(&big(&token(None)), "no kid");
    assert_refused(&big(&token(Some("k9999"))), "kid k9999, past the first 100");
    let forged = mint::sign_hs256_with_secret(
        &json!({ "alg": "HS256" }),
        &json!({ "iss": ISS_BIG, "sub": "alice", "exp": FAR }),
        b"not the secret",
    );
    assert_refused(&big(&forged), "kid-less forgery");
    assert_vm_healthy();
}

/// Issue 11 item 13: report-only logs every failure it lets through, with the request in it. A
/// 59 KiB `:path` (with a token in its query) must give one short line without the query, a
/// non-UTF-8 byte must arrive escaped, and a flood of 400 failures must give about `BURST`
/// lines plus one line saying how many were suppressed, with nothing unaccounted for.
#[test]
fn report_only_log_flood_and_a_60_kib_path_stay_bounded() {
    let fx = fixture();
    let port = fx.envoy.port("report");
    let ours = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| {
                l.contains("wasm log jwt_authn_wasm_report ")
                    || l.contains("jwt-authn-wasm: jwt_authn_wasm_report: ")
            })
            .map(str::to_owned)
            .collect()
    };

    let long = format!("/{}?access_token=SECRET-IN-QUERY", "a".repeat(59 * 1024));
    let resp = Request::get(&long).send(port);
    assert_eq!(resp.status, 200, "report-only lets it through: {resp}");
    let h2 = common::h2c::send(
        port,
        &Request::get(b"/h2/\xff\xfe?token=SECRET-H2".as_slice()),
    );
    assert_eq!(h2.status, 200, "{h2}");
    let lines = wait_for_lines(|| {
        let lines = ours(&fx.envoy.log());
        (lines.iter().filter(|l| l.contains("report-only")).count() >= 2).then_some(lines)
    });
    let long_line = lines.iter().find(|l| l.contains("/aaaa")).unwrap();
    eprintln!(
        "a {}-byte path gave a {}-byte log line",
        long.len(),
        long_line.len()
    );
    assert!(
        long_line.len() <= 700,
        "{} bytes: {long_line}",
        long_line.len()
    );
    assert!(
        long_line.contains("...(60417 bytes)?<query elided>"),
        "{long_line}"
    );
    let h2_line = lines.iter().find(|l| l.contains("/h2/")).unwrap();
    assert!(
        h2_line.contains("GET /h2/\\xff\\xfe?<query elided>"),
        "{h2_line}"
    );
    assert!(
        !fx.envoy.log().contains("SECRET"),
        "a query string reached the log"
    );

    let start = std::time::Instant::now();
    for i in 0..400 {
        let resp = Request::get(format!("/flood/{i}")).send(port);
        assert_eq!(resp.status, 200, "{resp}");
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Summaries come at the filter's timer ticks (1 s) even though no line follows: wait
    // until every failure is accounted for, as a line written or a line counted.
    let count = |lines: &[String]| -> (usize, usize) {
        let written = lines
            .iter()
            .filter(|l| l.contains("report-only, not enforced: GET /flood/"))
            .count();
        let suppressed = lines
            .iter()
            .filter_map(|l| {
                let (before, _) = l.split_once(" per-request log line(s) suppressed")?;
                before.rsplit(' ').next()?.parse::<usize>().ok()
            })
            .sum::<usize>();
        (written, suppressed)
    };
    let lines = wait_for_lines(|| {
        let lines = ours(&fx.envoy.log());
        let (written, suppressed) = count(&lines);
        (written + suppressed >= 400).then_some(lines)
    });
    let (written, suppressed) = count(&lines);
    let summaries = lines.iter().filter(|l| l.contains("suppressed")).count();
    eprintln!(
        "400 failures in {elapsed:.2}s: {written} lines written, {suppressed} suppressed \
         (reported in {summaries} summary line(s))"
    );
    // A summary comes with a line the refilling bucket lets through (at most 5 a second) or
    // at a tick (one a second), and only while something is left to say.
    assert!(
        summaries as f64 <= elapsed * 6.0 + 2.0,
        "{summaries} summary lines in {elapsed:.2}s"
    );
    assert_eq!(
        written + suppressed,
        400,
        "every failure is written or counted"
    );
    // 20 at once, 5 more per second (the two earlier lines took two of the 20).
    let bound = 20.0 + 5.0 * (elapsed + 1.0);
    assert!(
        (15..=bound as usize).contains(&written),
        "{written} lines in {elapsed:.2}s; at most {bound:.0}"
    );
    assert_vm_healthy();
}

/// Polls the log (every 100 ms, up to 5 s) until `found` returns something.
fn wait_for_lines(found: impl Fn() -> Option<Vec<String>>) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(lines) = found() {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such log line in 5 s:\n{}",
            fixture().envoy.log_tail(20)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
