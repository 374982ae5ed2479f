//! Key-set loading, key selection and signature checks, table-driven. Tokens come from the
//! shared test signer (`tests/common/mint.rs`), plus a few minted by an independent
//! implementation so that signer and verifier cannot share a bug unnoticed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::mint::{self, Key};

fn jwks() -> KeySet {
    KeySet::from_json(mint::JWKS).unwrap()
}

/// The fixture JWK with `kid`, as JSON.
fn fixture(kid: &str) -> Value {
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    keys.iter().find(|k| k["kid"] == kid).unwrap().clone()
}

/// `key` with member `name` set to `value` (`Value::Null` removes it).
fn with(mut key: Value, name: &str, value: Value) -> Value {
    let map = key.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), value);
    }
    key
}

fn set_of(keys: Vec<Value>) -> Result<KeySet, JwksError> {
    KeySet::from_json(&json!({ "keys": keys }).to_string())
}

/// (signing input, signature) of a compact token.
fn parts(token: &str) -> (String, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input.to_owned(), URL_SAFE_NO_PAD.decode(sig).unwrap())
}

fn check(set: &KeySet, alg: Alg, kid: Option<&str>, token: &str) -> Result<(), AuthError> {
    let (input, sig) = parts(token);
    set.verify(alg, kid, input.as_bytes(), &sig)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn claims() -> Value {
    json!({ "sub": "s" })
}

/// The fixture kid `mint::token` uses for `alg`.
fn default_kid(alg: Alg) -> &'static str {
    match alg {
        Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => "rsa-a",
        Alg::ES256 => "ec256",
        Alg::ES384 => "ec384",
        Alg::ES512 => "ec521",
        Alg::EdDSA => "ed",
        Alg::HS256 | Alg::HS384 | Alg::HS512 => "hmac",
    }
}

#[test]
fn fixture_set_loads_every_key_in_order() {
    let set = jwks();
    assert_eq!(set.len(), 7);
    assert!(!set.is_empty());
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    let kids: Vec<_> = set.keys().iter().map(|k| k.kid.as_deref()).collect();
    let want = ["rsa-a", "rsa-b", "ec256", "ec384", "ec521", "ed", "hmac"];
    assert_eq!(kids, want.map(Some));
    let algs: Vec<_> = set.keys().iter().map(|k| k.alg).collect();
    assert_eq!(algs, [None, Some(Alg::RS256), None, None, None, None, None]);
}

#[test]
fn every_algorithm_verifies_with_its_fixture_key() {
    let set = jwks();
    for alg in Alg::ALL {
        let kid = default_kid(alg);
        let token = mint::token(alg.name(), &claims());
        assert_eq!(
            check(&set, alg, Some(kid), &token),
            Ok(()),
            "{alg} kid {kid}"
        );
        assert_eq!(check(&set, alg, None, &token), Ok(()), "{alg} without kid");
        let token = mint::token_without_kid(alg.name(), &claims());
        assert_eq!(
            check(&set, alg, None, &token),
            Ok(()),
            "{alg} token without kid"
        );
    }
}

/// Guards against the test signer and the verifier sharing a bug (DER instead of JOSE ECDSA,
/// a PSS salt other than the hash length, ...): these tokens were minted once with Python's
/// `cryptography` (OpenSSL), header `{"alg":…,"kid":…}`, payload `{"sub":"python"}`.
#[test]
#[rustfmt::skip]
fn tokens_from_an_independent_implementation_verify() {
    let set = jwks();
    let vectors: [(Alg, &str); 13] = [
        (Alg::RS256, "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.YHrHBZdT2xMlDQeVVNj-NFZnwKBeEM3zcvKyBVCmqUyPl4vEh9GEbg8puG8VvkQyM1qA8-5JxDWOL2MaghuzZP9Mdy-So1a2KhbQ4gHl9UVuzHsx3dziBao-a6CyloLQqixfln-FjPGUaUJU6jw9ycn1Mkn60D0FGJeAhbKApq4PN4OtWo1aZxpblz88Gu0j1726vEwgeN_2wmaf4aIcRvVjDqYvPwYUxIh8GTu_mgN8JrjolV7d6YiPskmkT8Z4TQk2qFCWFc2_nh8CWNNgnYKb2t3oqQsZiFyDvqGyoU3wxTRQHCMBud8RwAbPMN4LPMK1oyOAfmEPvUurgcguIQ"),
        (Alg::RS384, "eyJhbGciOiJSUzM4NCIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.eCHoeQJjdJp-YO2Ws397kM7Yeu5sY0yyGYBKlnKSy8ASkgh2feQS_buHj-wTAVvGUGZpAoYpozhhRTqXrn9mtamBTiQIeJuuBzX892SAXVll3p_r4icVBJrTSbzy55EfejdcvMVcQGbY-5EHtmu4waVHsu9dAAVoDQbfnyyrzWVjqcYBk0WQ7N3XUPza59c0KZXNPV2slSrYC-6h5rK6FBZuCLLNz6SjwINJuOqSCF9e8P9EEju8OB8l1mlbzF6xtGayOyYpheIbaOKrin9TKBEoiAAmgO_x2nHOjlQgGUaqcLH3dUcNE0YfeYr7DEIMX_J67tBpTSxT0P_JY4UNDQ"),
        (Alg::RS512, "eyJhbGciOiJSUzUxMiIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.zOkyq-Q21iDS37hLyIQ6-ZHlyOjl8q5HpA1Mngh63iWeowmDdhb9UO6oed6hE2TaKqZD7tFp4qNtSuZUdmnb5OwF9qOrQPSiqqGUXrGZQTdfYPFdbvUsZjYtlznw-zu4yOlJSB7XKUdzGefZ5NS57G7fJHGDG9aBRisjkWxsxzItWIehbuhMpi-EI07NnTLGoLXBnvHuUC4A89lqmEJ73BFN4GI7eiCr7qnbI_1d3M-VEwxbwHZkTTMF_taf1alhIc1pUH6sPg55m_LXNcgRgDm56GNylvIZHskOFS4FcgVKUAbbDwQLEnVbuYwRBRIHU8aispoXiTUSZwKGd9pieA"),
        (Alg::PS256, "eyJhbGciOiJQUzI1NiIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.tg9AOYObs41HOEp0WXM8W5z4xQTJApTOdVkt7eC1nVauCByg7ey0g0iv4R1h3JZzHkKlIIxeYxmqjnwhKyOMee5J5XhsSRlfOVGgyLNAZbyKHvSZ7ocOt-ZolMRwAAuRSi3J7tzOJzjYcwGZVyKJ6TAHEifpJpcokFTyUjzekh-Rf9gsCDk8Ur7Mvqi2-4ppMpdF_bBBm9VdNeRnttMSoLp83g7LyzYp4_1LTYKxAXZXH68eKNSQKRe8uUuF0yhLyZqkMUuID-2KV8PfaZRFs8TtvsL31adrgWWm--hhdLzT8mL132UEImf1U27NV-URaD1jFbRVdmw-kwATiUhxYA"),
        (Alg::PS384, "eyJhbGciOiJQUzM4NCIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.LW7qFXv0EXVw54ifPxHga6O9v422Wx4OVN8cWCvdJUDoIATqDrKs8d3COznRKx-wA1SxOyhzeDER2KGhLI89rGir0dDOCtpLZgdAPgWzoi851w1F30oUQRmIJYU7_tpRXnMCZKQpZcdPe94_AMdrah4XPU7G30XLtY-7MtettuUTdvCQW5hrLZc4Op0ogrdf-zA1LFipiOFG_l99KoSoBShspQ4jvknnfuktIP25IBgcd6oCEVAst3iXfSd2lppvBkuZ1WPF-WYuzpqlhSHAxB3GCDdJ0fCPUPSFrR5mx9__2_5Cq-gwJOKV9EswoOAoUzTTGKmpFRjUdId0Pgc2Vg"),
        (Alg::PS512, "eyJhbGciOiJQUzUxMiIsImtpZCI6InJzYS1hIn0.eyJzdWIiOiJweXRob24ifQ.YQf3xjGWXhWcQxyCCCxWTDacWaX46yla-s_S7iziH1gSTx1AmsfS89F7cXKiG5nualfnpGllASR67yYUdJQ-LyeYg7-yqIbFbLC4z2PXmWcRZ-CTaW0RRLtYIsZ8s-WZa1BztMfd6Nsi4bl7MqgtflL0Qh0GvlOJbN8Tm-aT3UiI7fawuUBrTseSwDn84e3z5AVcDMuvlGDJBN14HaKBVDD8Peri1CVlc5_3tTGIPo8r5Jc-fE1ijuJGshlZmnDKSBMKVlIETwLEpfg0HuTYgy5kQ_wqqXCg77BT0ZSM5yDII_EwyJI54WOkzAI5UleeEPGHKwHatlB8rKRttnOQTw"),
        (Alg::ES256, "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjMjU2In0.eyJzdWIiOiJweXRob24ifQ.TQcSW9arFGm1QSnrST6X37D0KDej11BzY0NblI2BOBlJhYS_hRqCNWmX7PxdhQStsXLiQ3b_Uoe7lEkYV30aLQ"),
        (Alg::ES384, "eyJhbGciOiJFUzM4NCIsImtpZCI6ImVjMzg0In0.eyJzdWIiOiJweXRob24ifQ.XPHjppvL9hNfCkAqaNkB7NdfNxEv8yGYvYN0L5NS5ckqm1_nyf0uxqfQ_ZB5G2f3mnKfwzC5-v5MnYevc27f0hbQx10ch97IatzbwDtYO-AKHqU21ve8RxMyPOFAEqjD"),
        (Alg::ES512, "eyJhbGciOiJFUzUxMiIsImtpZCI6ImVjNTIxIn0.eyJzdWIiOiJweXRob24ifQ.AdnGuvVnzHkIG0HgGfHM-OZ3h1IVNY4I8SgK_RrKdlcthg8jbCMJb6WIcSoSf5vN9du-gdZGvBAVwUFgEDVsnfK3AI758QCwYL4Tn367RZ65VneejDl6fqZ89hGAUCkfJyw8EMY55KR0XtlLoG_pvO_GlOIcW5YLK4yqxlVSkrvsqezm"),
        (Alg::EdDSA, "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkIn0.eyJzdWIiOiJweXRob24ifQ.oxf2G-VyghgZmCeQVy45DEAqnZHaXslr98KK5GvyRaB-whJ_Uq6WzrClqC4fOA01elIxQ3nbxRxd3riUihWjDA"),
        (Alg::HS256, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhtYWMifQ.eyJzdWIiOiJweXRob24ifQ.o-t1nSUpS172_6KipC3KIxamh2gOmH3ygpP239B2ihs"),
        (Alg::HS384, "eyJhbGciOiJIUzM4NCIsImtpZCI6ImhtYWMifQ.eyJzdWIiOiJweXRob24ifQ.k-0kfImky3XKW-AhkXAi7ks2L0SmjwcyI1Sw26F-HIfmHrL5gegkuJKtXPV4ZY3g"),
        (Alg::HS512, "eyJhbGciOiJIUzUxMiIsImtpZCI6ImhtYWMifQ.eyJzdWIiOiJweXRob24ifQ.4BwTnhFu_tX2-vEJncr0WVHeyobaPnj2hi2WIdDruXdf-t2Sgvuid9tFGzu5TQlKHfaLn5G_OE7iaUdp9EAgnA"),
    ];
    for (alg, token) in vectors {
        assert_eq!(check(&set, alg, Some(default_kid(alg)), token), Ok(()), "{alg}");
        assert_eq!(check(&set, alg, None, token), Ok(()), "{alg} without kid");
    }
}

/// Which algorithms each fixture key fits. Regression guard for algorithm confusion: no
/// asymmetric key ever fits HS*, and a curve fits only its own ES*.
#[test]
#[rustfmt::skip]
fn each_key_fits_exactly_its_algorithms() {
    use Alg::*;
    let rsa = [RS256, RS384, RS512, PS256, PS384, PS512];
    let cases: [(&str, &[Alg]); 7] = [
        ("rsa-a", &rsa),
        ("rsa-b", &[RS256]),
        ("ec256", &[ES256]),
        ("ec384", &[ES384]),
        ("ec521", &[ES512]),
        ("ed", &[EdDSA]),
        ("hmac", &[HS256, HS384, HS512]),
    ];
    let set = jwks();
    for (kid, fits) in cases {
        let key = set.keys().iter().find(|k| k.kid.as_deref() == Some(kid)).unwrap();
        for alg in Alg::ALL {
            let want = fits.contains(&alg);
            assert_eq!(key.fits(alg, None), want, "{kid} {alg} without kid");
            assert_eq!(key.fits(alg, Some(kid)), want, "{kid} {alg} with its kid");
            assert!(!key.fits(alg, Some("other")), "{kid} {alg} with another kid");
        }
    }
}

#[test]
#[rustfmt::skip]
fn selection_by_kid_and_alg() {
    use AuthError::{NoMatchingKey, SignatureInvalid};
    let set = jwks();
    let a_rs256 = mint::sign(&json!({ "alg": "RS256" }), &claims(), "RS256", Key::RsaA);
    let b_rs256 = mint::sign(&json!({ "alg": "RS256" }), &claims(), "RS256", Key::RsaB);
    let b_ps256 = mint::sign(&json!({ "alg": "PS256" }), &claims(), "PS256", Key::RsaB);
    let es256 = mint::token("ES256", &claims());
    let hs256 = mint::token("HS256", &claims());
    let cases: Vec<(&str, &str, Alg, Option<&str>, Result<(), AuthError>)> = vec![
        ("its kid", &a_rs256, Alg::RS256, Some("rsa-a"), Ok(())),
        ("no kid tries every key", &a_rs256, Alg::RS256, None, Ok(())),
        ("no kid finds a later key", &b_rs256, Alg::RS256, None, Ok(())),
        ("unknown kid", &a_rs256, Alg::RS256, Some("nope"), Err(NoMatchingKey)),
        ("kid is case-sensitive", &a_rs256, Alg::RS256, Some("RSA-A"), Err(NoMatchingKey)),
        ("kid of another key type", &a_rs256, Alg::RS256, Some("ec256"), Err(NoMatchingKey)),
        ("kid of the oct key", &a_rs256, Alg::RS256, Some("hmac"), Err(NoMatchingKey)),
        ("kid of another RSA key", &a_rs256, Alg::RS256, Some("rsa-b"), Err(SignatureInvalid)),
        ("signed by b, kid a", &b_rs256, Alg::RS256, Some("rsa-a"), Err(SignatureInvalid)),
        ("JWK alg matches", &b_rs256, Alg::RS256, Some("rsa-b"), Ok(())),
        ("JWK alg mismatch", &b_ps256, Alg::PS256, Some("rsa-b"), Err(NoMatchingKey)),
        ("JWK alg mismatch, no kid: only rsa-a fits", &b_ps256, Alg::PS256, None, Err(SignatureInvalid)),
        ("P-256 key for ES384", &es256, Alg::ES384, Some("ec256"), Err(NoMatchingKey)),
        ("P-256 token checked as ES512", &es256, Alg::ES512, None, Err(SignatureInvalid)),
        ("oct key for RS256", &hs256, Alg::RS256, Some("hmac"), Err(NoMatchingKey)),
    ];
    for (name, token, alg, kid, want) in cases {
        assert_eq!(check(&set, alg, kid, token), want, "{name}");
    }
}

#[test]
fn a_key_without_kid_fits_any_kid_and_same_kids_are_all_tried() {
    let token = |kid: &str, key| mint::sign(&json!({ "kid": kid }), &claims(), "RS256", key);
    let anonymous = set_of(vec![with(fixture("rsa-a"), "kid", Value::Null)]).unwrap();
    assert_eq!(anonymous.keys()[0].kid, None);
    for kid in [Some("whatever"), Some(""), None] {
        let t = token(kid.unwrap_or("x"), Key::RsaA);
        assert_eq!(check(&anonymous, Alg::RS256, kid, &t), Ok(()), "{kid:?}");
    }
    // Two keys share a kid (a rotation gone sloppy): the second one still gets its chance.
    let dup = set_of(vec![
        with(
            with(fixture("rsa-b"), "kid", json!("dup")),
            "alg",
            Value::Null,
        ),
        with(fixture("rsa-a"), "kid", json!("dup")),
    ])
    .unwrap();
    let t = token("dup", Key::RsaA);
    assert_eq!(check(&dup, Alg::RS256, Some("dup"), &t), Ok(()));
    let t = token("dup", Key::RsaB);
    assert_eq!(check(&dup, Alg::RS256, Some("dup"), &t), Ok(()));
}

#[test]
#[rustfmt::skip]
fn a_jwk_alg_restricts_the_key_to_that_algorithm() {
    use AuthError::NoMatchingKey;
    let rsa = set_of(vec![with(fixture("rsa-a"), "alg", json!("PS384"))]).unwrap();
    let oct = set_of(vec![with(fixture("hmac"), "alg", json!("HS256"))]).unwrap();
    let cases: Vec<(&KeySet, &str, Result<(), AuthError>)> = vec![
        (&rsa, "PS384", Ok(())),
        (&rsa, "PS256", Err(NoMatchingKey)),
        (&rsa, "RS384", Err(NoMatchingKey)),
        (&oct, "HS256", Ok(())),
        (&oct, "HS384", Err(NoMatchingKey)),
        (&oct, "HS512", Err(NoMatchingKey)),
    ];
    for (set, alg, want) in cases {
        let token = mint::token(alg, &claims());
        let alg = Alg::from_name(alg).unwrap();
        assert_eq!(check(set, alg, None, &token), want, "{alg}");
        assert_eq!(check(set, alg, Some(default_kid(alg)), &token), want, "{alg} with kid");
    }
}

/// Algorithm confusion (CVE-2015-9235 and kin): an HS256 token whose HMAC secret is the RSA
/// public key, in every form an attacker might guess, must never verify. An RSA key never
/// fits HS*, so with the RSA kid no key fits; without a kid only the real `oct` key fits,
/// and it does not verify.
#[test]
fn hs256_keyed_with_the_rsa_public_key_is_rejected() {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    let jwk = fixture("rsa-a");
    let n = jwk["n"].as_str().unwrap();
    let public = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&unb64(n)),
        rsa::BigUint::from_bytes_be(&unb64(jwk["e"].as_str().unwrap())),
    )
    .unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("n as base64url", n.as_bytes().to_vec()),
        ("n as bytes", unb64(n)),
        (
            "SPKI DER",
            public.to_public_key_der().unwrap().as_bytes().to_vec(),
        ),
        (
            "SPKI PEM",
            public
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
                .into_bytes(),
        ),
        (
            "PKCS#1 PEM",
            public.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
        ),
        ("JWK JSON", jwk.to_string().into_bytes()),
    ];
    let full = jwks();
    let rsa_only = set_of(vec![fixture("rsa-a"), fixture("rsa-b")]).unwrap();
    for (name, secret) in secrets {
        let header = json!({ "alg": "HS256", "kid": "rsa-a" });
        let token = mint::sign_hs256_with_secret(&header, &claims(), &secret);
        let cases = [
            (&full, Some("rsa-a"), AuthError::NoMatchingKey),
            (&full, None, AuthError::SignatureInvalid),
            (&rsa_only, None, AuthError::NoMatchingKey),
        ];
        for (set, kid, want) in cases {
            assert_eq!(
                check(set, Alg::HS256, kid, &token),
                Err(want),
                "{name} {kid:?}"
            );
        }
    }
}

#[test]
fn tampering_breaks_every_algorithm() {
    let set = jwks();
    for alg in Alg::ALL {
        let (input, sig) = parts(&mint::token(alg.name(), &claims()));
        let invalid = |input: &str, sig: &[u8], what: &str| {
            for kid in [Some(default_kid(alg)), None] {
                let got = set.verify(alg, kid, input.as_bytes(), sig);
                assert_eq!(
                    got,
                    Err(AuthError::SignatureInvalid),
                    "{alg} {what} {kid:?}"
                );
            }
        };
        for at in [0, sig.len() / 2, sig.len() - 1] {
            let mut bad = sig.clone();
            bad[at] ^= 0x01;
            invalid(&input, &bad, &format!("signature bit flipped at {at}"));
        }
        invalid(&input, &sig[..sig.len() - 1], "signature truncated");
        invalid(&input, &[&sig[..], &[0]].concat(), "signature extended");
        invalid(
            &input,
            &[&[0], &sig[..]].concat(),
            "signature zero-prefixed",
        );
        let other_payload = format!("{}.{}", input.split('.').next().unwrap(), b64(b"{}"));
        invalid(&other_payload, &sig, "payload replaced");
        invalid(&format!("{input}x"), &sig, "signing input extended");
    }
    // A signature by the right key under a sibling algorithm of the same key type.
    let pairs = [
        ("RS256", Alg::RS384),
        ("RS256", Alg::PS256),
        ("PS512", Alg::RS512),
    ];
    for (signed, checked) in pairs.into_iter().chain([("HS256", Alg::HS384)]) {
        let token = mint::token(signed, &claims());
        let got = check(&set, checked, None, &token);
        assert_eq!(
            got,
            Err(AuthError::SignatureInvalid),
            "{signed} as {checked}"
        );
    }
}

#[test]
fn malformed_signatures_are_invalid_not_panics() {
    let set = jwks();
    let lengths = [
        0, 1, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 97, 131, 132, 133, 255, 256, 257,
    ];
    for alg in Alg::ALL {
        for len in lengths.into_iter().chain([512, 1000, 100_000]) {
            for fill in [0x00, 0x01, 0xA5, 0xFF] {
                let sig = vec![fill; len];
                let got = set.verify(alg, None, b"x.y", &sig);
                assert_eq!(
                    got,
                    Err(AuthError::SignatureInvalid),
                    "{alg} len {len} {fill:#x}"
                );
            }
        }
    }
}

fn skipped_reason(key: Value) -> String {
    match set_of(vec![key]) {
        Err(JwksError::NoUsableKey { skipped }) => {
            assert_eq!(skipped.len(), 1, "{skipped:?}");
            skipped.join(";")
        }
        other => panic!("{other:?}"),
    }
}

/// `b64` of `bytes` with bit 0 of the last byte flipped (off the curve, even n, ...).
fn flip_last(text: &str) -> String {
    let mut bytes = unb64(text);
    *bytes.last_mut().unwrap() ^= 1;
    b64(&bytes)
}

#[test]
#[rustfmt::skip]
fn unusable_keys_are_skipped_with_a_reason() {
    let rsa = fixture("rsa-a");
    let (ec256, ec384, ec521) = (fixture("ec256"), fixture("ec384"), fixture("ec521"));
    let (ed, oct) = (fixture("ed"), fixture("hmac"));
    let weak: Value = serde_json::from_str(mint::JWKS_WEAK).unwrap();
    let off = |k: &Value| with(k.clone(), "y", json!(flip_last(k["y"].as_str().unwrap())));
    // The largest odd 8192-bit number, and 100 000 bytes of 0xFF.
    let rsa8192 = b64(&[0xFF; 1024]);
    let rsa_huge = b64(&vec![0xFF; 100_000]);
    let long_kty = format!("`kty` \"{}\"… is not supported", "é".repeat(64));
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let cases: Vec<(&str, Value, &str)> = vec![
        // RSA
        ("1024-bit RSA", weak["keys"][0].clone(), r#"key 0 (kid "rsa-weak"): RSA modulus is 1024 bits, at least 2048 required"#),
        ("8192-bit RSA", with(rsa.clone(), "n", json!(rsa8192)), "RSA key refused"),
        ("100 kB modulus", with(rsa.clone(), "n", json!(rsa_huge)), "RSA key refused"),
        ("even n", with(rsa.clone(), "n", json!(flip_last(rsa["n"].as_str().unwrap()))), "modulus is even"),
        ("e = 1", with(rsa.clone(), "e", json!("AQ")), "exponent must be odd and greater than 1"),
        ("e = 0", with(rsa.clone(), "e", json!("AA")), "exponent must be odd"),
        ("empty e", with(rsa.clone(), "e", json!("")), "exponent must be odd"),
        ("even e", with(rsa.clone(), "e", json!("AQAA")), "exponent must be odd"),
        ("e = 2^1000 + 1", with(rsa.clone(), "e", json!(b64(&[&[1u8][..], &[0; 124], &[1]].concat()))), "RSA key refused"),
        ("no n", with(rsa.clone(), "n", Value::Null), "`n` is missing"),
        ("n a number", with(rsa.clone(), "n", json!(12345678901234567890u64)), "`n` is not a string"),
        ("n not base64", with(rsa.clone(), "n", json!("!!")), "`n` is not base64url"),
        ("n standard base64", with(rsa.clone(), "n", json!(rsa["n"].as_str().unwrap().replace('-', "+"))), "`n` is not base64url"),
        ("e missing", with(rsa.clone(), "e", Value::Null), "`e` is missing"),
        // EC
        ("P-256 point off the curve", off(&ec256), "not on P-256"),
        ("P-384 point off the curve", off(&ec384), "not on P-384"),
        ("P-521 point off the curve", off(&ec521), "not on P-521"),
        ("P-256 x short", with(ec256.clone(), "x", json!(b64(&[7; 31]))), "32 bytes each"),
        ("P-256 y long", with(ec256.clone(), "y", json!(b64(&[7; 33]))), "32 bytes each"),
        ("P-521 x of 65 bytes", with(ec521.clone(), "x", json!(b64(&[1; 65]))), "66 bytes each"),
        ("P-384 coordinates on P-256", with(ec384.clone(), "crv", json!("P-256")), "32 bytes each"),
        ("P-256 coordinates on P-384", with(ec256.clone(), "crv", json!("P-384")), "48 bytes each"),
        ("EC no y", with(ec256.clone(), "y", Value::Null), "`y` is missing"),
        ("EC unknown curve", with(ec256.clone(), "crv", json!("P-192")), r#"EC curve "P-192" is not supported"#),
        ("EC secp256k1", with(ec256.clone(), "crv", json!("secp256k1")), "not supported"),
        ("EC no curve", with(ec256.clone(), "crv", Value::Null), "`crv` is missing"),
        ("EC curve a number", with(ec256.clone(), "crv", json!(256)), "`crv` is not a string"),
        ("ES384 on P-256", with(ec256.clone(), "alg", json!("ES384")), "`alg` ES384 does not fit `kty` EC"),
        // OKP
        ("Ed25519 small-order key", with(ed.clone(), "x", json!(b64(&identity))), "small-order"),
        ("Ed25519 x of 31 bytes", with(ed.clone(), "x", json!(b64(&[9; 31]))), "32 bytes"),
        ("X25519", with(ed.clone(), "crv", json!("X25519")), r#"OKP curve "X25519" is not supported"#),
        ("Ed448", with(ed.clone(), "crv", json!("Ed448")), "not supported"),
        ("EdDSA key with alg ES256", with(ed.clone(), "alg", json!("ES256")), "does not fit"),
        // oct
        ("empty oct", with(oct.clone(), "k", json!("")), "`k` is 0 bytes, at least 32 (256 bits) required"),
        ("31-byte oct", with(oct.clone(), "k", json!(b64(&[5; 31]))), "`k` is 31 bytes, at least 32"),
        ("oct without k", with(oct.clone(), "k", Value::Null), "`k` is missing"),
        ("oct k not base64", with(oct.clone(), "k", json!("a b")), "`k` is not base64url"),
        ("oct with alg RS256", with(oct.clone(), "alg", json!("RS256")), "`alg` RS256 does not fit `kty` oct"),
        // Members every key has
        ("RSA with alg ES256", with(rsa.clone(), "alg", json!("ES256")), "does not fit"),
        ("RSA with alg HS256", with(rsa.clone(), "alg", json!("HS256")), "does not fit"),
        ("unknown alg", with(rsa.clone(), "alg", json!("RS1")), r#"`alg` "RS1" is not supported"#),
        ("alg none", with(rsa.clone(), "alg", json!("none")), "is not supported"),
        ("alg is case-sensitive", with(rsa.clone(), "alg", json!("rs256")), "is not supported"),
        ("encryption alg", with(rsa.clone(), "alg", json!("RSA-OAEP")), "is not supported"),
        ("alg a list", with(rsa.clone(), "alg", json!(["RS256"])), "`alg` is not a string"),
        ("use enc", with(rsa.clone(), "use", json!("enc")), r#"`use` is "enc", not "sig""#),
        ("use a number", with(rsa.clone(), "use", json!(1)), "`use` is not a string"),
        ("kid a number", with(rsa.clone(), "kid", json!(7)), "key 0: `kid` is not a string"),
        ("unknown kty", with(rsa.clone(), "kty", json!("XYZ")), r#"key 0 (kid "rsa-a"): `kty` "XYZ" is not supported"#),
        ("kty with a newline", with(rsa.clone(), "kty", json!("R\nkey 9: forged")), r#"`kty` "R\nkey 9: forged" is not supported"#),
        ("kty of 1 MB", with(rsa.clone(), "kty", json!("é".repeat(500_000))), &long_kty),
        ("kty is case-sensitive", with(rsa.clone(), "kty", json!("rsa")), "not supported"),
        ("no kty", with(rsa.clone(), "kty", Value::Null), "`kty` is missing"),
        ("kty an object", with(rsa.clone(), "kty", json!({})), "`kty` is not a string"),
        ("not an object: number", json!(7), "key 0: not a JSON object"),
        ("not an object: string", json!("RSA"), "not a JSON object"),
        ("not an object: null", Value::Null, "not a JSON object"),
        ("not an object: array", json!([rsa.clone()]), "not a JSON object"),
    ];
    for (name, key, want) in cases {
        let reason = skipped_reason(key);
        assert!(reason.contains(want), "{name}: {reason}");
    }
}

/// Members we do not use are ignored, whatever their type; nothing is fetched from `x5u` and
/// a bogus certificate chain does not matter.
#[test]
fn extra_members_are_ignored() {
    let extras = json!({
        "use": "sig",
        "key_ops": ["verify", 7],
        "x5c": ["not a certificate", null],
        "x5u": "http://attacker.example/cert",
        "x5t": 5,
        "x5t#S256": {},
        "d": "not even a private key",
        "ext": { "deep": [[[]]] },
    });
    for alg in Alg::ALL {
        let kid = default_kid(alg);
        let mut key = fixture(kid);
        key.as_object_mut()
            .unwrap()
            .extend(extras.as_object().unwrap().clone());
        let set = set_of(vec![key]).unwrap();
        let token = mint::token(alg.name(), &claims());
        assert_eq!(check(&set, alg, Some(kid), &token), Ok(()), "{alg}");
    }
}

#[test]
fn the_weak_fixture_set_has_no_usable_key() {
    let reason = r#"key 0 (kid "rsa-weak"): RSA modulus is 1024 bits, at least 2048 required"#;
    let err = KeySet::from_json(mint::JWKS_WEAK).unwrap_err();
    assert_eq!(
        err,
        JwksError::NoUsableKey {
            skipped: vec![reason.to_owned()]
        }
    );
    assert_eq!(
        err.to_string(),
        format!("the JWKS has no usable key: {reason}")
    );
    // And a token signed by it finds no key in the good set.
    let token = mint::sign(
        &json!({ "alg": "RS256", "kid": "rsa-weak" }),
        &claims(),
        "RS256",
        Key::RsaWeak,
    );
    let set = jwks();
    assert_eq!(
        check(&set, Alg::RS256, Some("rsa-weak"), &token),
        Err(AuthError::NoMatchingKey)
    );
    assert_eq!(
        check(&set, Alg::RS256, None, &token),
        Err(AuthError::SignatureInvalid)
    );
}

#[test]
fn a_bad_key_does_not_hide_the_good_ones() {
    let weak: Value = serde_json::from_str(mint::JWKS_WEAK).unwrap();
    let keys = vec![
        json!({ "kty": "RSA", "kid": "bad" }),
        fixture("rsa-a"),
        json!(null),
        weak["keys"][0].clone(),
        fixture("ed"),
    ];
    let set = set_of(keys).unwrap();
    assert_eq!(set.len(), 2);
    let kids: Vec<_> = set.keys().iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, [Some("rsa-a"), Some("ed")]);
    assert_eq!(
        set.skipped(),
        [
            r#"key 0 (kid "bad"): `n` is missing"#,
            "key 2: not a JSON object",
            r#"key 3 (kid "rsa-weak"): RSA modulus is 1024 bits, at least 2048 required"#,
        ]
    );
    let token = mint::token("EdDSA", &claims());
    assert_eq!(check(&set, Alg::EdDSA, Some("ed"), &token), Ok(()));
}

#[test]
#[rustfmt::skip]
fn documents_that_are_not_key_sets() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(String, JwksError, &str)> = vec![
        ("".into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        ("nope".into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        ("null".into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        ("[]".into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        (r#""keys""#.into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        (format!("{} x", mint::JWKS), JwksError::NotJson, "the JWKS is not a JSON object"),
        (r#"{"keys":[],"keys":[]}"#.into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        (r#"{"keys":[{"kty":"oct","k":"AQ","k":"Ag"}]}"#.into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        (format!(r#"{{"keys":{deep}}}"#), JwksError::NotJson, "the JWKS is not a JSON object"),
        (r#"{"keys":[{"kty":"RSA","n":1e999}]}"#.into(), JwksError::NotJson, "the JWKS is not a JSON object"),
        ("{}".into(), JwksError::NoKeysArray, "the JWKS has no `keys` array"),
        (r#"{"Keys":[]}"#.into(), JwksError::NoKeysArray, "the JWKS has no `keys` array"),
        (r#"{"keys":{}}"#.into(), JwksError::NoKeysArray, "the JWKS has no `keys` array"),
        (r#"{"keys":null}"#.into(), JwksError::NoKeysArray, "the JWKS has no `keys` array"),
        (r#"{"keys":"[]"}"#.into(), JwksError::NoKeysArray, "the JWKS has no `keys` array"),
        (r#"{"keys":[]}"#.into(), JwksError::NoUsableKey { skipped: vec![] }, "the JWKS `keys` array is empty"),
        (r#"{"keys":[1,{}]}"#.into(), JwksError::NoUsableKey {
            skipped: vec!["key 0: not a JSON object".into(), "key 1: `kty` is missing".into()],
        }, "the JWKS has no usable key: key 0: not a JSON object; key 1: `kty` is missing"),
    ];
    for (text, want, display) in cases {
        let got = KeySet::from_json(&text).err();
        assert_eq!(got.as_ref(), Some(&want), "{:.80}", text);
        assert_eq!(want.to_string(), display);
    }
}

/// Garbage of every JSON type in every member of every kind of key: the key loads or is
/// skipped, and whatever loaded survives any signature.
#[test]
fn garbage_members_never_panic() {
    let weak: Value = serde_json::from_str(mint::JWKS_WEAK).unwrap();
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let mut keys = doc["keys"].as_array().unwrap().clone();
    keys.push(weak["keys"][0].clone());
    let members = [
        "kty", "kid", "alg", "use", "n", "e", "crv", "x", "y", "k", "x5c", "key_ops",
    ];
    let garbage = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(""),
        json!("A"),
        json!("AA"),
        json!("AQAB"),
        json!("!!!"),
        json!("\u{0}\u{1F600}"),
        json!("A".repeat(20_000)),
        json!("/".repeat(1000)),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({ "a": { "b": [] } }),
    ];
    let sigs = [vec![], vec![0; 64], vec![0xFF; 256]];
    for key in &keys {
        for member in members {
            for value in &garbage {
                let mut key = key.clone();
                key[member] = value.clone();
                let Ok(set) = set_of(vec![key]) else {
                    continue;
                };
                for alg in Alg::ALL {
                    for sig in &sigs {
                        assert_ne!(set.verify(alg, None, b"a.b", sig), Ok(()));
                    }
                }
            }
        }
    }
}

/// Random byte edits of the fixture document: parsing never panics (a tiny deterministic
/// fuzzer; the real one would be cargo-fuzz, which the wasm target cannot host).
#[test]
fn mutated_documents_never_panic() {
    let alphabet = br#"{}[]":,0123456789-+.eEAQ_/= \tnulltruefalseRSAECOKPoct"#;
    let original = mint::JWKS.as_bytes();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let mut loaded = 0;
    for _ in 0..3000 {
        let mut doc = original.to_vec();
        for _ in 0..=next(3) {
            let at = next(doc.len());
            match next(3) {
                0 => doc[at] = alphabet[next(alphabet.len())],
                1 => {
                    doc.remove(at);
                }
                _ => doc.insert(at, alphabet[next(alphabet.len())]),
            }
        }
        let Ok(text) = std::str::from_utf8(&doc) else {
            continue;
        };
        if let Ok(set) = KeySet::from_json(text) {
            loaded += 1;
            assert_eq!(set.len() + set.skipped().len(), 7, "{text}");
        }
    }
    assert!(loaded > 100, "the mutations were too destructive: {loaded}");
}

/// Padding in JWK members is tolerated (Envoy accepts it; some identity providers pad).
#[test]
fn padded_jwk_members_still_load() {
    let doc: Value = serde_json::from_str(mint::JWKS).unwrap();
    let mut rsa = doc["keys"][0].clone();
    let n = rsa["n"].as_str().unwrap();
    let padded = format!("{n}{}", "=".repeat((4 - n.len() % 4) % 4));
    assert_ne!(
        padded, n,
        "the fixture modulus needs padding for this test to mean anything"
    );
    rsa["n"] = json!(padded);
    let set = KeySet::from_json(&json!({ "keys": [rsa] }).to_string()).unwrap();
    assert_eq!(set.len(), 1);
}

/// Regression (attack suite, JWKS of 10,000 keys): a huge `keys` array is read up to
/// `MAX_KEYS` entries, so neither a load nor a kid-less token's key trials grow with it.
#[test]
fn only_the_first_max_keys_entries_are_read() {
    let hmac = fixture("hmac");
    let keys: Vec<Value> = (0..10_000)
        .map(|i| with(hmac.clone(), "kid", json!(format!("k{i}"))))
        .collect();
    let set = set_of(keys).unwrap();
    assert_eq!(set.len(), MAX_KEYS);
    assert_eq!(
        set.skipped(),
        [format!(
            "keys {MAX_KEYS}..9999: ignored, at most {MAX_KEYS} keys are read"
        )]
    );
    // A key past the limit is never used, even when its kid is asked for by name.
    let token = mint::sign(
        &json!({ "alg": "HS256", "kid": "k100" }),
        &claims(),
        "HS256",
        Key::Hmac,
    );
    assert_eq!(
        check(&set, Alg::HS256, Some("k100"), &token),
        Err(AuthError::NoMatchingKey)
    );
    assert_eq!(check(&set, Alg::HS256, Some("k99"), &token), Ok(()));
}
