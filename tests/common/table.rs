//! The differential table: one `jwt_authn` configuration (`config`) and the requests sent to
//! it (`cases`), each with native `jwt_authn`'s answer (`status`, `want`). tests/differential.rs
//! sends every case to our filter and to native in one Envoy; tests/explain.rs gives every case
//! to `jwt-authn-explain` and compares its answer with the filter's.

use base64::Engine;
use serde_json::{json, Value};

use super::http::Request;
use super::mint::{self, Key};

pub const ISS1: &str = "https://issuer-one.example";
pub const ISS2: &str = "https://issuer-two.example";
pub const ISS3: &str = "https://issuer-three.example";
pub const ISS4: &str = "https://issuer-four.example";
/// 2100-01-01: "never" expires.
pub const FAR: i64 = 4_102_444_800;

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
pub fn config() -> Value {
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
// Tokens.

/// Claims with `patch` merged in; a `null` in `patch` removes the claim.
pub fn claims(base: Value, patch: Value) -> Value {
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
pub fn c1(patch: Value) -> Value {
    claims(
        json!({ "iss": ISS1, "sub": "alice", "aud": "api-one", "exp": FAR,
                "profile": { "email": "alice@example.com" } }),
        patch,
    )
}

/// p2's standard claims: `{"iss":ISS2,"sub":"bob","aud":"api-two","exp":FAR}`.
pub fn c2(patch: Value) -> Value {
    claims(
        json!({ "iss": ISS2, "sub": "bob", "aud": "api-two", "exp": FAR }),
        patch,
    )
}

/// p3's standard claims: `{"iss":ISS3,"sub":"carol","exp":FAR}`.
pub fn c3(patch: Value) -> Value {
    claims(json!({ "iss": ISS3, "sub": "carol", "exp": FAR }), patch)
}

/// A p4 token (RS256) with `claims` (issuer added) in `x-four-token`, to `/p4`.
pub fn p4(claims: Value) -> Request {
    let mut claims = claims;
    claims["iss"] = json!(ISS4);
    get("/p4").header("x-four-token", mint::token("RS256", &claims))
}

/// A good p1 token (RS256, kid rsa-a).
pub fn t1() -> String {
    mint::token("RS256", &c1(json!({})))
}
/// A good p1 token signed with `alg`.
pub fn t1a(alg: &str) -> String {
    mint::token(alg, &c1(json!({})))
}
/// A p1 token (RS256) with `patch` applied to the claims.
pub fn t1p(patch: Value) -> String {
    mint::token("RS256", &c1(patch))
}
/// A good p2 token (ES256).
pub fn t2() -> String {
    mint::token("ES256", &c2(json!({})))
}
/// A good p3 token (EdDSA).
pub fn t3() -> String {
    mint::token("EdDSA", &c3(json!({})))
}

pub fn now() -> i64 {
    super::now()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with segment `i` replaced.
pub fn with_segment(token: &str, i: usize, seg: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = seg;
    parts.join(".")
}

/// `token` with the unused low bits of the signature's last base64url character set: the
/// decoded bytes are the same (non-canonical base64url).
pub fn set_signature_padding_bits(token: &str) -> String {
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

pub fn get(target: &str) -> Request {
    Request::get(target)
}

// ---------------------------------------------------------------------------------------------
// The table.

/// An expectation about what reached the upstream.
#[derive(Clone, Debug)]
pub enum Want {
    /// Header has exactly this (first) value.
    Is(&'static str, &'static str),
    /// Header is present.
    Present(&'static str),
    /// Header is absent.
    Absent(&'static str),
    /// Header appears this many times.
    Count(&'static str, usize),
}
pub use Want::{Absent, Count, Is, Present};

/// One request. `status` and `want` are what native `jwt_authn` does (pinned by
/// `native_answers_as_the_table_says`); the differential test compares our filter to native.
pub struct Case {
    pub name: &'static str,
    pub status: u16,
    pub want: Vec<Want>,
    pub req: Request,
}

pub fn case(name: &'static str, status: u16, want: Vec<Want>, req: Request) -> Case {
    Case {
        name,
        status,
        want,
        req,
    }
}

/// The identity of a p1 request that got through.
pub fn alice() -> Vec<Want> {
    vec![
        Is("x-jwt-sub", "alice"),
        Is("x-jwt-email", "alice@example.com"),
        Present("x-jwt-payload"),
        Present("authorization"),
    ]
}

/// Nothing verified reached the upstream.
pub fn anonymous() -> Vec<Want> {
    SPOOFED.iter().map(|(h, _)| Absent(h)).collect()
}

/// Every header any provider emits, with a forged value.
pub const SPOOFED: &[(&str, &str)] = &[
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
pub fn spoof(req: Request) -> Request {
    SPOOFED.iter().fold(req, |r, (h, v)| r.header(h, v))
}

#[rustfmt::skip]
pub fn cases() -> Vec<Case> {
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
pub fn rsa_a_modulus() -> String {
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
