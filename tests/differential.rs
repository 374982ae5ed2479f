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

use base64::Engine;
use serde_json::{json, Value};

use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::{Request, Response};
use common::idp::Idp;
use common::mint::{self, Key};
use common::upstream::{Echo, Upstream};
use common::Proxy;

const ISS1: &str = "https://issuer-one.example";
const ISS2: &str = "https://issuer-two.example";
const ISS3: &str = "https://issuer-three.example";
const ISS4: &str = "https://issuer-four.example";
/// 2100-01-01: "never" expires.
const FAR: i64 = 4_102_444_800;

/// Four providers, each reading tokens from different places, and rules covering every kind
/// of requirement.
///
/// - `p1`: default locations (`Authorization: Bearer`, `?access_token=`), audience `api-one`,
///   a JWKS that also holds a 1024-bit key (native loads it, we do not),
///   `forward: true`, claims `sub`, `profile.email` (nested), `groups` and `org` (array and
///   object, only in the `differs_*` tokens) to headers, payload in `x-jwt-payload`.
/// - `p2`: `x-api-token: Token <jwt>` or `?jwt=`, audience `api-two`, `forward: false`.
/// - `p3`: `Authorization: Bearer` or cookie `session`, any audience, `forward: false`, payload
///   in `x-jwt-three-payload`.
/// - `p4`: `x-four-token` (no prefix), `clock_skew_seconds: 0` (the default, 60),
///   `max_lifetime: 100s`, number and empty-string claims to headers.
fn config() -> Value {
    json!({
        "providers": {
            "p1": {
                "issuer": ISS1,
                "audiences": ["api-one"],
                "local_jwks": { "inline_string": mint::jwks_with_weak_key() },
                "forward": true,
                "forward_payload_header": "x-jwt-payload",
                "claim_to_headers": [
                    { "header_name": "x-jwt-sub", "claim_name": "sub" },
                    { "header_name": "x-jwt-email", "claim_name": "profile.email" },
                    { "header_name": "x-jwt-groups", "claim_name": "groups" },
                    { "header_name": "x-jwt-org", "claim_name": "org" },
                ],
            },
            "p2": {
                "issuer": ISS2,
                "audiences": ["api-two"],
                "local_jwks": { "inline_string": mint::JWKS },
                "from_headers": [{ "name": "x-api-token", "value_prefix": "Token " }],
                "from_params": ["jwt"],
                "claim_to_headers": [{ "header_name": "x-jwt-two-sub", "claim_name": "sub" }],
            },
            "p3": {
                "issuer": ISS3,
                "local_jwks": { "inline_string": mint::JWKS },
                "from_headers": [{ "name": "authorization", "value_prefix": "Bearer " }],
                "from_cookies": ["session"],
                "forward_payload_header": "x-jwt-three-payload",
                "claim_to_headers": [{ "header_name": "x-jwt-three-sub", "claim_name": "sub" }],
            },
            "p4": {
                "issuer": ISS4,
                "local_jwks": { "inline_string": mint::JWKS },
                "from_headers": [{ "name": "x-four-token" }],
                "clock_skew_seconds": 0,
                "max_lifetime": "100s",
                "claim_to_headers": [
                    { "header_name": "x-jwt-four-num", "claim_name": "num" },
                    { "header_name": "x-jwt-four-empty", "claim_name": "empty" },
                ],
            },
        },
        "rules": [
            { "match": { "prefix": "/p1" }, "requires": { "provider_name": "p1" } },
            { "match": { "prefix": "/p2" }, "requires": { "provider_name": "p2" } },
            { "match": { "path": "/exact" }, "requires": { "provider_name": "p2" } },
            { "match": { "prefix": "/p3" }, "requires": { "provider_name": "p3" } },
            { "match": { "prefix": "/p4" }, "requires": { "provider_name": "p4" } },
            { "match": { "prefix": "/any" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "p1" }, { "provider_name": "p2" } ] } } },
            { "match": { "prefix": "/all" }, "requires": { "requires_all": { "requirements": [
                { "provider_name": "p1" }, { "provider_name": "p2" } ] } } },
            { "match": { "prefix": "/optional" }, "requires": { "requires_any": { "requirements": [
                { "provider_name": "p1" }, { "allow_missing": {} } ] } } },
            { "match": { "prefix": "/lenient" }, "requires": { "allow_missing_or_failed": {} } },
            { "match": { "prefix": "/admin" }, "requires": { "provider_name": "p1" } },
            { "match": { "prefix": "/public" } },
        ],
        "bypass_cors_preflight": true,
    })
}

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
// Tokens.

/// Claims with `patch` merged in; a `null` in `patch` removes the claim.
fn claims(base: Value, patch: Value) -> Value {
    let mut out = base;
    if let (Some(obj), Some(p)) = (out.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// p1's standard claims: `{"iss":ISS1,"sub":"alice","aud":"api-one","exp":FAR,
/// "profile":{"email":"alice@example.com"}}`.
fn c1(patch: Value) -> Value {
    claims(
        json!({ "iss": ISS1, "sub": "alice", "aud": "api-one", "exp": FAR,
                "profile": { "email": "alice@example.com" } }),
        patch,
    )
}

/// p2's standard claims: `{"iss":ISS2,"sub":"bob","aud":"api-two","exp":FAR}`.
fn c2(patch: Value) -> Value {
    claims(
        json!({ "iss": ISS2, "sub": "bob", "aud": "api-two", "exp": FAR }),
        patch,
    )
}

/// p3's standard claims: `{"iss":ISS3,"sub":"carol","exp":FAR}`.
fn c3(patch: Value) -> Value {
    claims(json!({ "iss": ISS3, "sub": "carol", "exp": FAR }), patch)
}

/// A p4 token (RS256) with `claims` (issuer added) in `x-four-token`, to `/p4`.
fn p4(claims: Value) -> Request {
    let mut claims = claims;
    claims["iss"] = json!(ISS4);
    get("/p4").header("x-four-token", mint::token("RS256", &claims))
}

/// A good p1 token (RS256, kid rsa-a).
fn t1() -> String {
    mint::token("RS256", &c1(json!({})))
}
/// A good p1 token signed with `alg`.
fn t1a(alg: &str) -> String {
    mint::token(alg, &c1(json!({})))
}
/// A p1 token (RS256) with `patch` applied to the claims.
fn t1p(patch: Value) -> String {
    mint::token("RS256", &c1(patch))
}
/// A good p2 token (ES256).
fn t2() -> String {
    mint::token("ES256", &c2(json!({})))
}
/// A good p3 token (EdDSA).
fn t3() -> String {
    mint::token("EdDSA", &c3(json!({})))
}

fn now() -> i64 {
    common::now()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with segment `i` replaced.
fn with_segment(token: &str, i: usize, seg: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = seg;
    parts.join(".")
}

/// `token` with the unused low bits of the signature's last base64url character set: the
/// decoded bytes are the same (non-canonical base64url).
fn set_signature_padding_bits(token: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = token.as_bytes().to_vec();
    let sig_len = token.len() - token.rfind('.').map_or(0, |i| i + 1);
    // 6 bits per char; the unused bits of the last char: 4 when len % 4 == 2, 2 when len % 4 == 3.
    let unused = match sig_len % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => 0,
    };
    if let Some(last) = bytes.last_mut() {
        let v = ALPHABET.iter().position(|c| c == last).unwrap_or(0) as u8;
        *last = ALPHABET[usize::from(v | unused)];
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn get(target: &str) -> Request {
    Request::get(target)
}

// ---------------------------------------------------------------------------------------------
// The table.

/// An expectation about what reached the upstream.
#[derive(Clone, Debug)]
enum Want {
    /// Header has exactly this (first) value.
    Is(&'static str, &'static str),
    /// Header is present.
    Present(&'static str),
    /// Header is absent.
    Absent(&'static str),
    /// Header appears this many times.
    Count(&'static str, usize),
}
use Want::{Absent, Count, Is, Present};

/// One request. `status` and `want` are what native `jwt_authn` does (pinned by
/// `native_answers_as_the_table_says`); the differential test compares our filter to native.
struct Case {
    name: &'static str,
    status: u16,
    want: Vec<Want>,
    req: Request,
}

fn case(name: &'static str, status: u16, want: Vec<Want>, req: Request) -> Case {
    Case {
        name,
        status,
        want,
        req,
    }
}

/// The identity of a p1 request that got through.
fn alice() -> Vec<Want> {
    vec![
        Is("x-jwt-sub", "alice"),
        Is("x-jwt-email", "alice@example.com"),
        Present("x-jwt-payload"),
        Present("authorization"),
    ]
}

/// Nothing verified reached the upstream.
fn anonymous() -> Vec<Want> {
    SPOOFED.iter().map(|(h, _)| Absent(h)).collect()
}

/// Every header any provider emits, with a forged value.
const SPOOFED: &[(&str, &str)] = &[
    ("x-jwt-sub", "mallory"),
    ("x-jwt-email", "mallory@evil.example"),
    ("x-jwt-groups", "admin"),
    ("x-jwt-org", "evil"),
    ("x-jwt-payload", "eyJzdWIiOiJtYWxsb3J5In0"),
    ("x-jwt-two-sub", "mallory"),
    ("x-jwt-three-sub", "mallory"),
    ("x-jwt-three-payload", "eyJzdWIiOiJtYWxsb3J5In0"),
    ("x-jwt-four-num", "1"),
    ("x-jwt-four-empty", "x"),
];

/// `req` carrying forged values of every identity header.
fn spoof(req: Request) -> Request {
    SPOOFED.iter().fold(req, |r, (h, v)| r.header(h, v))
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let n = now();
    let good = t1();
    vec![
        // Every algorithm, each with its fixture key (RSA kid rsa-a has no `alg`: RS* and PS*).
        case("rs256", 200, alice(), get("/p1").bearer(&t1a("RS256"))),
        case("rs384", 200, alice(), get("/p1").bearer(&t1a("RS384"))),
        case("rs512", 200, alice(), get("/p1").bearer(&t1a("RS512"))),
        case("ps256", 200, alice(), get("/p1").bearer(&t1a("PS256"))),
        case("ps384", 200, alice(), get("/p1").bearer(&t1a("PS384"))),
        case("ps512", 200, alice(), get("/p1").bearer(&t1a("PS512"))),
        case("es256", 200, alice(), get("/p1").bearer(&t1a("ES256"))),
        case("es384", 200, alice(), get("/p1").bearer(&t1a("ES384"))),
        case("es512", 200, alice(), get("/p1").bearer(&t1a("ES512"))),
        case("eddsa", 200, alice(), get("/p1").bearer(&t1a("EdDSA"))),
        case("hs256", 200, alice(), get("/p1").bearer(&t1a("HS256"))),
        case("hs384", 200, alice(), get("/p1").bearer(&t1a("HS384"))),
        case("hs512", 200, alice(), get("/p1").bearer(&t1a("HS512"))),
        // rsa-b's JWK says alg RS256: RS256 fits, PS256 does not.
        case("jwk_alg_matches", 200, alice(), get("/p1").bearer(&mint::sign(&json!({"alg":"RS256","kid":"rsa-b"}), &c1(json!({})), "RS256", Key::RsaB))),
        case("jwk_alg_mismatch", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"PS256","kid":"rsa-b"}), &c1(json!({})), "PS256", Key::RsaB))),
        // Time (default clock skew 60 s).
        case("expired", 401, vec![], get("/p1").bearer(&t1p(json!({"exp": n - 3600})))),
        case("not_yet_valid", 401, vec![], get("/p1").bearer(&t1p(json!({"nbf": n + 3600})))),
        case("exp_within_skew", 200, alice(), get("/p1").bearer(&t1p(json!({"exp": n - 30})))),
        case("nbf_within_skew", 200, alice(), get("/p1").bearer(&t1p(json!({"nbf": n + 30})))),
        case("no_exp", 200, alice(), get("/p1").bearer(&t1p(json!({"exp": null})))),
        case("exp_not_a_number", 401, vec![], get("/p1").bearer(&t1p(json!({"exp": "tomorrow"})))),
        // Issuer and audience.
        case("wrong_issuer", 401, vec![], get("/p1").bearer(&t1p(json!({"iss": "https://evil.example"})))),
        case("other_providers_token", 401, vec![], get("/p1").bearer(&t2())),
        case("wrong_audience", 403, vec![], get("/p1").bearer(&t1p(json!({"aud": "api-two"})))),
        case("audience_array_has_configured", 200, alice(), get("/p1").bearer(&t1p(json!({"aud": ["other", "api-one"]})))),
        case("audience_missing", 403, vec![], get("/p1").bearer(&t1p(json!({"aud": null})))),
        case("no_audiences_configured_any_aud", 200, vec![Is("x-jwt-three-sub", "carol")], get("/p3").bearer(&mint::token("EdDSA", &c3(json!({"aud": "whatever"}))))),
        // Signature and key selection.
        case("tampered_payload", 401, vec![], get("/p1").bearer(&with_segment(&good, 1, &b64(c1(json!({"sub": "admin"})).to_string().as_bytes())))),
        case("tampered_signature", 401, vec![], get("/p1").bearer(&mint::tampered(&good))),
        case("signature_from_other_key", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"RS256","kid":"rsa-a"}), &c1(json!({})), "RS256", Key::RsaB))),
        case("unknown_kid", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"RS256","kid":"nope"}), &c1(json!({})), "RS256", Key::RsaA))),
        case("no_kid", 200, alice(), get("/p1").bearer(&mint::token_without_kid("RS256", &c1(json!({}))))),
        case("no_kid_ec", 200, alice(), get("/p1").bearer(&mint::token_without_kid("ES384", &c1(json!({}))))),
        case("kid_of_other_key_type", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"RS256","kid":"ec256"}), &c1(json!({})), "RS256", Key::RsaA))),
        case("alg_none", 401, vec![], get("/p1").bearer(&format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(c1(json!({})).to_string().as_bytes())))),
        case("alg_header_rs256_signed_hs256", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"RS256","kid":"rsa-a"}), &c1(json!({})), "HS256", Key::Hmac))),
        case("alg_header_es256_signed_rs256", 401, vec![], get("/p1").bearer(&mint::sign(&json!({"alg":"ES256","kid":"ec256"}), &c1(json!({})), "RS256", Key::RsaA))),
        case("hs256_keyed_with_rsa_modulus", 401, vec![], get("/p1").bearer(&mint::sign_hs256_with_secret(&json!({"alg":"HS256","kid":"rsa-a"}), &c1(json!({})), rsa_a_modulus().as_bytes()))),
        case("alg_unknown", 401, vec![], get("/p1").bearer(&with_segment(&good, 0, &b64(br#"{"alg":"XS256","kid":"rsa-a"}"#)))),
        // Malformed tokens.
        case("two_segments", 401, vec![], get("/p1").bearer(&good.rsplit_once('.').map(|(a, _)| a.to_string()).unwrap_or_default())),
        case("four_segments", 401, vec![], get("/p1").bearer(&format!("{good}.AAAA"))),
        case("header_bad_base64", 401, vec![], get("/p1").bearer(&with_segment(&good, 0, "e30*"))),
        case("header_not_json", 401, vec![], get("/p1").bearer(&with_segment(&good, 0, &b64(b"not json")))),
        case("payload_not_json", 401, vec![], get("/p1").bearer(&mint::sign_bytes(br#"{"alg":"RS256","kid":"rsa-a"}"#, b"not json", "RS256", Key::RsaA))),
        case("payload_bad_base64", 401, vec![], get("/p1").bearer(&with_segment(&good, 1, "e30*"))),
        case("signature_padding_bits", 200, alice(), get("/p1").bearer(&set_signature_padding_bits(&good))),
        case("signature_bad_base64", 401, vec![], get("/p1").bearer(&with_segment(&good, 2, "AA*A"))),
        case("garbage", 401, vec![], get("/p1").bearer("garbage")),
        case("bearer_empty", 401, vec![], get("/p1").header("authorization", "Bearer ")),
        case("bearer_lowercase_scheme", 401, vec![], get("/p1").header("authorization", format!("bearer {good}"))),
        case("bearer_double_space", 200, alice(), get("/p1").header("authorization", format!("Bearer  {good}"))),
        case("bearer_trailing_junk", 401, vec![], get("/p1").header("authorization", format!("Bearer {good};x"))),
        case("basic_scheme", 401, vec![], get("/p1").header("authorization", "Basic YWxpY2U6c2VjcmV0")),
        // Envoy joins repeated Authorization headers ("Bearer A,Bearer B"): one malformed token.
        case("duplicated_authorization", 401, vec![], get("/p1").bearer(&good).bearer(&t1a("ES256"))),
        case("duplicated_custom_header_second_bad", 401, vec![], get("/p2").header("x-api-token", format!("Token {}", t2())).header("x-api-token", "Token x.y.z")),
        case("duplicated_custom_header_first_bad", 401, vec![], get("/p2").header("x-api-token", "Token x.y.z").header("x-api-token", format!("Token {}", t2()))),
        // Where tokens come from.
        case("missing_token", 401, vec![], get("/p1")),
        // The WWW-Authenticate realm is scheme://host + path (query kept, path cut at 256 bytes).
        case("realm_with_query", 401, vec![], get("/p1/x?y=1&z=2")),
        case("realm_with_port", 401, vec![], get("/p1").host("api.example:8443")),
        case("realm_scheme_from_x_forwarded_proto", 401, vec![], get("/p1").header("x-forwarded-proto", "https")),
        case("realm_long_path", 401, vec![], get(&format!("/p1/{}", "x".repeat(400)))),
        case("query_access_token", 200, vec![Is("x-jwt-sub", "alice")], get(&format!("/p1?access_token={good}"))),
        case("query_custom_param", 200, vec![Is("x-jwt-two-sub", "bob")], get(&format!("/p2?jwt={}", t2()))),
        case("query_default_param_not_for_p2", 401, vec![], get(&format!("/p2?access_token={}", t2()))),
        case("query_param_undecodable", 401, vec![], get(&format!("/p1?access_token={good}%zz"))),
        case("exp_fraction", 200, alice(), get("/p1").bearer(&t1p(json!({"exp": (n + 3600) as f64 + 0.5})))),
        case("exp_negative", 401, vec![], get("/p1").bearer(&t1p(json!({"exp": -1})))),
        case("exp_1e300", 401, vec![], get("/p1").bearer(&t1p(json!({"exp": 1e300})))),
        case("cookie", 200, vec![Is("x-jwt-three-sub", "carol"), Present("cookie")], get("/p3").cookie("session", &t3())),
        case("cookie_among_others", 200, vec![Is("x-jwt-three-sub", "carol")], get("/p3").header("cookie", format!("a=1; session={}; b=2", t3()))),
        case("cookie_wrong_name", 401, vec![], get("/p3").cookie("other", &t3())),
        case("header_with_prefix", 200, vec![Is("x-jwt-two-sub", "bob"), Absent("x-api-token")], get("/p2").header("x-api-token", format!("Token {}", t2()))),
        case("header_without_prefix", 401, vec![], get("/p2").header("x-api-token", t2())),
        case("rule_path_exact", 200, vec![Is("x-jwt-two-sub", "bob")], get("/exact").header("x-api-token", format!("Token {}", t2()))),
        case("rule_path_exact_no_token", 401, vec![], get("/exact")),
        case("rule_path_exact_longer_path", 200, anonymous(), get("/exact/more")),
        // Every token found for a provider must verify; each verified one adds its headers.
        case("two_tokens_one_bad", 401, vec![], get(&format!("/p1?access_token={}", mint::tampered(&good))).bearer(&good)),
        // Requirements.
        case("allow_missing_no_token", 200, anonymous(), get("/optional")),
        case("allow_missing_good_token", 200, alice(), get("/optional").bearer(&good)),
        case("allow_missing_bad_token", 401, vec![], get("/optional").bearer(&mint::tampered(&good))),
        case("allow_missing_or_failed_bad_token", 200, anonymous(), get("/lenient").bearer(&mint::tampered(&good))),
        case("allow_missing_or_failed_expired", 200, anonymous(), get("/lenient").bearer(&t1p(json!({"exp": n - 3600})))),
        case("allow_missing_or_failed_no_token", 200, anonymous(), get("/lenient")),
        case("allow_missing_or_failed_good_token", 200, vec![Is("x-jwt-sub", "alice")], get("/lenient").bearer(&good)),
        case("requires_any_first", 200, vec![Is("x-jwt-sub", "alice")], get("/any").bearer(&good)),
        case("requires_any_second", 200, vec![Is("x-jwt-two-sub", "bob")], get("/any").header("x-api-token", format!("Token {}", t2()))),
        case("requires_any_none", 401, vec![], get("/any")),
        case("requires_any_unlisted_provider", 401, vec![], get("/any").cookie("session", &t3())),
        case("requires_any_first_bad_second_good", 200, vec![Is("x-jwt-two-sub", "bob")], get("/any").bearer(&mint::tampered(&good)).header("x-api-token", format!("Token {}", t2()))),
        case("requires_all_both", 200, vec![Is("x-jwt-sub", "alice"), Is("x-jwt-two-sub", "bob")], get("/all").bearer(&good).header("x-api-token", format!("Token {}", t2()))),
        case("requires_all_first_only", 401, vec![], get("/all").bearer(&good)),
        case("requires_all_second_only", 401, vec![], get("/all").header("x-api-token", format!("Token {}", t2()))),
        case("rule_without_requires", 200, anonymous(), get("/public").bearer("garbage")),
        case("no_rule", 200, anonymous(), get("/elsewhere").bearer("garbage")),
        // Identity propagation.
        // Identity headers a client sends are removed wherever the filter runs (native 1.40
        // sanitizes filter-wide, envoy#46586), and replaced when a token verifies.
        case("spoofed_identity_replaced", 200, [alice(), vec![Count("x-jwt-sub", 1), Count("x-jwt-payload", 1), Absent("x-jwt-two-sub"), Absent("x-jwt-three-sub"), Absent("x-jwt-groups")]].concat(), spoof(get("/p1").bearer(&good))),
        case("spoofed_identity_no_rule", 200, anonymous(), spoof(get("/elsewhere"))),
        case("spoofed_identity_rule_without_requires", 200, anonymous(), spoof(get("/public"))),
        case("spoofed_identity_allow_missing", 200, anonymous(), spoof(get("/optional"))),
        case("spoofed_identity_allow_missing_or_failed", 200, anonymous(), spoof(get("/lenient").bearer("x.y.z"))),
        case("spoofed_identity_cors_preflight", 200, anonymous(), spoof(Request::new("OPTIONS", "/p1").header("origin", "http://app.example").header("access-control-request-method", "GET"))),
        case("spoofed_identity_requires_any", 200, vec![Is("x-jwt-two-sub", "bob"), Absent("x-jwt-sub"), Absent("x-jwt-payload")], spoof(get("/any").header("x-api-token", format!("Token {}", t2())))),
        case("forward_true_keeps_authorization", 200, vec![Present("authorization")], get("/p1").bearer(&good)),
        case("forward_false_strips_authorization", 200, vec![Absent("authorization"), Is("x-jwt-three-sub", "carol"), Present("x-jwt-three-payload")], get("/p3").bearer(&t3())),
        case("forward_false_strips_custom_header", 200, vec![Absent("x-api-token")], get("/p2").header("x-api-token", format!("Token {}", t2()))),
        case("forward_false_strips_query", 200, vec![Is("x-jwt-two-sub", "bob")], get(&format!("/p2?jwt={}&x=1", t2()))),
        case("claim_missing_no_header", 200, vec![Absent("x-jwt-email"), Is("x-jwt-sub", "alice")], get("/p1").bearer(&t1p(json!({"profile": null})))),
        case("sub_not_a_string", 401, vec![], get("/p1").bearer(&t1p(json!({"sub": 42})))),
        // Settings whose meaning native fixes: skew 0 is the default, lifetime is exp - now.
        case("optional_stranger_token", 401, vec![], get("/optional").bearer(&t3())),
        case("skew_zero_means_default", 200, vec![], p4(json!({"exp": n - 30}))),
        case("skew_default_exceeded", 401, vec![], p4(json!({"exp": n - 90}))),
        case("max_lifetime_ignores_iat", 200, vec![], p4(json!({"iat": n - 1000, "exp": n + 50}))),
        case("max_lifetime_exceeded", 401, vec![], p4(json!({"exp": n + 150}))),
        case("max_lifetime_needs_exp", 401, vec![], p4(json!({}))),
        case("number_claim_fraction", 200, vec![Is("x-jwt-four-num", "1.500000"), Absent("x-jwt-four-empty")], p4(json!({"exp": n + 50, "num": 1.5, "empty": ""}))),
        case("number_claim_integral_float", 200, vec![Is("x-jwt-four-num", "2")], p4(json!({"exp": n + 50, "num": 2.0}))),
        case("number_claim_huge_float", 200, vec![Is("x-jwt-four-num", "100000000000000000000.000000")], p4(json!({"exp": n + 50, "num": 1e20}))),
        case("number_claim_negative", 200, vec![Is("x-jwt-four-num", "-7.000000")], p4(json!({"exp": n + 50, "num": -7}))),
        // CORS preflight bypass (bypass_cors_preflight: true).
        case("cors_preflight_bypassed", 200, anonymous(), Request::new("OPTIONS", "/p1").header("origin", "http://app.example").header("access-control-request-method", "GET")),
        case("options_without_cors_headers", 401, vec![], Request::new("OPTIONS", "/p1")),
    ]
}

/// The fixture key `rsa-a`'s modulus as text (an attacker's "HMAC secret" in key confusion).
fn rsa_a_modulus() -> String {
    let jwks: Value = serde_json::from_str(mint::JWKS).unwrap_or_default();
    jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == "rsa-a")
        .and_then(|k| k["n"].as_str())
        .unwrap_or_default()
        .to_string()
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
