use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::mint::{self, Key};

fn jwks() -> KeySet {
    KeySet::from_json(mint::JWKS).unwrap()
}

/// (signing input, signature) of a token.
fn parts(token: &str) -> (String, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input.to_owned(), URL_SAFE_NO_PAD.decode(sig).unwrap())
}

fn check(set: &KeySet, alg: Alg, kid: Option<&str>, token: &str) -> Result<(), AuthError> {
    let (input, sig) = parts(token);
    set.verify(alg, kid, input.as_bytes(), &sig)
}

#[test]
fn fixture_set_loads_every_key() {
    let set = jwks();
    assert_eq!(set.len(), 7);
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
}

#[test]
fn every_algorithm_verifies_with_its_key_and_kid() {
    let set = jwks();
    let claims = json!({ "sub": "s" });
    for alg in Alg::ALL {
        let token = mint::token(alg.name(), &claims);
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        let kid = header["kid"].as_str();
        assert_eq!(check(&set, alg, kid, &token), Ok(()), "{alg} with kid");
        assert_eq!(check(&set, alg, None, &token), Ok(()), "{alg} without kid");
    }
}

#[test]
#[rustfmt::skip]
fn selection_and_failures() {
    let set = jwks();
    let claims = json!({ "sub": "s" });
    let rs256 = mint::token("RS256", &claims);
    let ps256 = mint::sign(&json!({ "alg": "PS256" }), &claims, "PS256", Key::RsaB);
    let rs256_b = mint::sign(&json!({ "alg": "RS256" }), &claims, "RS256", Key::RsaB);
    let mut tampered = parts(&rs256);
    tampered.1[10] ^= 1;
    let cases: Vec<(&str, Alg, Option<&str>, Result<(), AuthError>)> = vec![
        ("unknown kid", Alg::RS256, Some("nope"), Err(AuthError::NoMatchingKey)),
        ("kid of another key type", Alg::RS256, Some("ec256"), Err(AuthError::NoMatchingKey)),
        ("kid of another RSA key", Alg::RS256, Some("rsa-b"), Err(AuthError::SignatureInvalid)),
        ("no kid tries all", Alg::RS256, None, Ok(())),
    ];
    for (name, alg, kid, want) in cases {
        assert_eq!(check(&set, alg, kid, &rs256), want, "{name}");
    }
    // rsa-b declares alg RS256: a PS256 token finds no key with that kid.
    assert_eq!(
        check(&set, Alg::PS256, Some("rsa-b"), &ps256),
        Err(AuthError::NoMatchingKey)
    );
    assert_eq!(check(&set, Alg::RS256, Some("rsa-b"), &rs256_b), Ok(()));
    assert_eq!(
        set.verify(Alg::RS256, None, tampered.0.as_bytes(), &tampered.1),
        Err(AuthError::SignatureInvalid)
    );
}

#[test]
fn malformed_signatures_are_invalid_not_panics() {
    let set = jwks();
    for alg in Alg::ALL {
        for len in [0, 1, 31, 32, 63, 64, 65, 96, 132, 255, 256, 257, 1000] {
            let sig = vec![0xA5; len];
            let got = set.verify(alg, None, b"x.y", &sig);
            assert_eq!(got, Err(AuthError::SignatureInvalid), "{alg} len {len}");
        }
    }
}

#[test]
fn rsa_public_key_as_hmac_secret_finds_no_key() {
    // Algorithm confusion: HS256 "signed" with the RSA key's public modulus.
    let set = jwks();
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let n = doc["keys"][0]["n"].as_str().unwrap();
    let token = mint::sign_hs256_with_secret(
        &json!({ "alg": "HS256", "kid": "rsa-a" }),
        &json!({ "sub": "s" }),
        n.as_bytes(),
    );
    assert_eq!(
        check(&set, Alg::HS256, Some("rsa-a"), &token),
        Err(AuthError::NoMatchingKey)
    );
}

fn skipped_reason(key: Value) -> String {
    match KeySet::from_json(&json!({ "keys": [key] }).to_string()) {
        Err(JwksError::NoUsableKey { skipped }) => skipped.join(";"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn unusable_keys_are_skipped_with_a_reason() {
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let rsa = doc["keys"][0].clone();
    let ec = doc["keys"][2].clone();
    let with = |mut k: Value, f: &str, v: Value| {
        k[f] = v;
        k
    };
    let mut off_curve = ec.clone();
    let mut y = URL_SAFE_NO_PAD.decode(ec["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    off_curve["y"] = json!(URL_SAFE_NO_PAD.encode(&y));
    let weak: Value = serde_json::from_str(mint::JWKS_WEAK).unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("1024-bit RSA", weak["keys"][0].clone(), "1024 bits"),
        ("e = 1", with(rsa.clone(), "e", json!("AQ")), "exponent"),
        ("even e", with(rsa.clone(), "e", json!("AQAA")), "exponent"),
        ("no n", with(rsa.clone(), "n", Value::Null), "`n` is not a string"),
        ("n not base64", with(rsa.clone(), "n", json!("!!")), "base64url"),
        ("EC point off the curve", off_curve, "not on P-256"),
        ("EC short x", with(ec.clone(), "x", json!("AAAA")), "32 bytes"),
        ("EC unknown curve", with(ec.clone(), "crv", json!("P-192")), "not supported"),
        ("alg unfit for kty", with(rsa.clone(), "alg", json!("ES256")), "does not fit"),
        ("unknown alg", with(rsa.clone(), "alg", json!("RS1")), "not supported"),
        ("use enc", with(rsa.clone(), "use", json!("enc")), "`use`"),
        ("unknown kty", json!({ "kty": "XYZ" }), "not supported"),
        ("no kty", json!({}), "`kty` is missing"),
        ("not an object", json!(7), "not a JSON object"),
        ("empty oct", json!({ "kty": "oct", "k": "" }), "empty"),
        ("Ed25519 wrong size", json!({ "kty": "OKP", "crv": "Ed25519", "x": "AAAA" }), "32 bytes"),
        ("X25519", json!({ "kty": "OKP", "crv": "X25519", "x": "AAAA" }), "not supported"),
    ];
    for (name, key, want) in cases {
        let reason = skipped_reason(key);
        assert!(reason.contains(want), "{name}: {reason}");
    }
}

#[test]
fn a_bad_key_does_not_hide_the_good_ones() {
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let keys = json!({ "keys": [ { "kty": "RSA", "kid": "bad" }, doc["keys"][0] ] });
    let set = KeySet::from_json(&keys.to_string()).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.skipped().len(), 1);
    assert!(
        set.skipped()[0].contains("kid \"bad\""),
        "{:?}",
        set.skipped()
    );
}

#[test]
#[rustfmt::skip]
fn documents_that_are_not_key_sets() {
    let cases: Vec<(&str, JwksError)> = vec![
        ("nope", JwksError::NotJson),
        ("[]", JwksError::NotJson),
        (r#"{"keys":[],"keys":[]}"#, JwksError::NotJson),
        ("{}", JwksError::NoKeysArray),
        (r#"{"keys":{}}"#, JwksError::NoKeysArray),
        (r#"{"keys":[]}"#, JwksError::NoUsableKey { skipped: vec![] }),
    ];
    for (text, want) in cases {
        assert_eq!(KeySet::from_json(text).err(), Some(want), "{text}");
    }
}
