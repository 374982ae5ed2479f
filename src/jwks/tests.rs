//! Key-set loading, key selection and signature checks, table-driven. Tokens come from the
//! shared test signer (`tests/common/mint.rs`), plus a few minted by an independent
//! implementation so that signer and verifier cannot share a bug unnoticed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::mint::{self, Key};
use crate::signature::PureRust;

/// A stand-in for Envoy's `verify_signature`: RustCrypto reading the DER key and signature the
/// host gets, as BoringSSL does. It proves the encodings; the e2e suite runs the real one.
struct DerHost;

impl SignatureBackend for DerHost {
    fn verify(&self, hash: &str, spki: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
        use p256::ecdsa::signature::Verifier as _;
        use rsa::pkcs8::DecodePublicKey as _;
        use sha2::Digest as _;
        if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(spki) {
            let scheme = match hash {
                "sha256" => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                "sha384" => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                "sha512" => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                _ => return Some(false),
            };
            let digest = match hash {
                "sha256" => sha2::Sha256::digest(message).to_vec(),
                "sha384" => sha2::Sha384::digest(message).to_vec(),
                _ => sha2::Sha512::digest(message).to_vec(),
            };
            return Some(key.verify(scheme, &digest, signature).is_ok());
        }
        let ok = match hash {
            "sha256" => p256::ecdsa::VerifyingKey::from_public_key_der(spki)
                .ok()
                .zip(p256::ecdsa::Signature::from_der(signature).ok())
                .map(|(k, sig)| k.verify(message, &sig).is_ok()),
            "sha384" => p384::ecdsa::VerifyingKey::from_public_key_der(spki)
                .ok()
                .zip(p384::ecdsa::Signature::from_der(signature).ok())
                .map(|(k, sig)| k.verify(message, &sig).is_ok()),
            _ => p521::PublicKey::from_public_key_der(spki)
                .ok()
                .and_then(|k| p521::ecdsa::VerifyingKey::from_affine(*k.as_affine()).ok())
                .zip(p521::ecdsa::Signature::from_der(signature).ok())
                .map(|(k, sig)| k.verify(message, &sig).is_ok()),
        };
        Some(ok.unwrap_or(false))
    }
}

/// A host that answers "valid" to everything, and counts its calls.
struct Credulous(std::cell::Cell<usize>);

impl SignatureBackend for Credulous {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        self.0.set(self.0.get() + 1);
        Some(true)
    }
}

/// Both ways of checking a signature: our own code, and a host's (through the DER encodings).
fn backends() -> [(&'static str, &'static dyn SignatureBackend); 2] {
    [("pure", &PureRust), ("host", &DerHost)]
}

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

/// The verdict on `token`, the same with our own code and through a host.
fn check(set: &KeySet, alg: Alg, kid: Option<&str>, token: &str) -> Result<(), AuthError> {
    let (input, sig) = parts(token);
    let pure = set.verify(alg, kid, input.as_bytes(), &sig, &PureRust);
    let host = set.verify(alg, kid, input.as_bytes(), &sig, &DerHost);
    assert_eq!(pure, host, "{alg} {kid:?}: pure and host differ");
    pure
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
            for (backend_name, backend) in backends() {
                for kid in [Some(default_kid(alg)), None] {
                    let got = set.verify(alg, kid, input.as_bytes(), sig, backend);
                    assert_eq!(
                        got,
                        Err(AuthError::SignatureInvalid),
                        "{alg} {what} {kid:?} {backend_name}"
                    );
                }
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
                let got = set.verify(alg, None, b"x.y", &sig, &DerHost);
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
        // A short coordinate is left-padded, and the point must still be on the curve.
        ("P-256 x short, padded off the curve", with(ec256.clone(), "x", json!(b64(&[7; 31]))), "not on P-256"),
        ("P-521 x of 65 bytes, padded off the curve", with(ec521.clone(), "x", json!(b64(&[1; 65]))), "not on P-521"),
        ("P-256 coordinates on P-384", with(ec256.clone(), "crv", json!("P-384")), "not on P-384"),
        ("P-256 y long", with(ec256.clone(), "y", json!(b64(&[7; 33]))), "`y` is 33 bytes, more than the 32 of P-256"),
        ("P-384 coordinates on P-256", with(ec384.clone(), "crv", json!("P-256")), "`x` is 48 bytes, more than the 32 of P-256"),
        ("P-521 y with a leading zero byte", with(ec521.clone(), "y", json!(b64(&[&[0u8][..], &unb64(ec521["y"].as_str().unwrap())].concat()))), "`y` is 67 bytes, more than the 66 of P-521"),
        ("EC no y", with(ec256.clone(), "y", Value::Null), "`y` is missing"),
        ("EC unknown curve", with(ec256.clone(), "crv", json!("P-192")), r#"EC curve "P-192" is not supported"#),
        ("EC secp256k1", with(ec256.clone(), "crv", json!("secp256k1")), "not supported"),
        ("EC no curve, alg RS256", with(with(ec256.clone(), "crv", Value::Null), "alg", json!("RS256")), "`crv` is missing"),
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

/// `NotJson` at `line`, `column` with `reason`.
fn not_json(line: usize, column: usize, reason: &str) -> JwksError {
    JwksError::NotJson {
        line,
        column,
        reason: reason.into(),
    }
}

#[test]
#[rustfmt::skip]
fn documents_that_are_not_key_sets() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let after = mint::JWKS.trim_end().lines().count();
    let cases: Vec<(String, JwksError)> = vec![
        ("".into(), not_json(1, 1, "EOF while parsing a value")),
        ("nope".into(), not_json(1, 2, "expected ident")),
        ("null".into(), not_json(1, 1, "the document is null")),
        ("  []".into(), not_json(1, 3, "the document is an array")),
        ("\n\n  7".into(), not_json(3, 3, "the document is a number")),
        (r#""keys""#.into(), not_json(1, 1, "the document is a string")),
        (format!("{} x", mint::JWKS.trim_end()), not_json(after, 3, "trailing characters")),
        (r#"{"keys":[],"keys":[]}"#.into(), not_json(1, 17, "duplicate member `keys`")),
        ("{\"keys\":[\n  {\"kty\":\"oct\",\"k\":\"AQ\",\"k\":\"Ag\"}]}".into(), not_json(2, 27, "duplicate member `k`")),
        (format!(r#"{{"keys":{deep}}}"#), not_json(1, 135, "recursion limit exceeded")),
        (r#"{"keys":[{"kty":"RSA","n":1e999}]}"#.into(), not_json(1, 31, "number out of range")),
        ("{\"keys\":[\n{\"kty\":'RSA'}]}".into(), not_json(2, 8, "expected value")),
        ("{keys:[]}".into(), not_json(1, 2, "key must be a string")),
        // The one leniency is a comma after a value: not a comma alone, nor two.
        (r#"{"keys":[,]}"#.into(), not_json(1, 10, "expected value")),
        (r#"{"keys":[{},,]}"#.into(), not_json(1, 13, "expected value")),
        (r#"{,"keys":[]}"#.into(), not_json(1, 2, "key must be a string")),
        (r#"{"keys":,}"#.into(), not_json(1, 9, "expected value")),
        ("{}".into(), JwksError::NoKeysArray),
        (r#"{"Keys":[]}"#.into(), JwksError::NoKeysArray),
        (r#"{"keys":{}}"#.into(), JwksError::NoKeysArray),
        (r#"{"keys":null}"#.into(), JwksError::NoKeysArray),
        (r#"{"keys":"[]"}"#.into(), JwksError::NoKeysArray),
        (r#"{"keys":[]}"#.into(), JwksError::NoUsableKey { skipped: vec![] }),
        (r#"{"keys":[1,{}]}"#.into(), JwksError::NoUsableKey {
            skipped: vec!["key 0: not a JSON object".into(), "key 1: `kty` is missing".into()],
        }),
    ];
    for (text, want) in cases {
        let got = KeySet::from_json(&text).err();
        assert_eq!(got.as_ref(), Some(&want), "{}", text.chars().take(80).collect::<String>());
    }
    // Bytes that are not UTF-8, where they are.
    assert_eq!(
        KeySet::from_slice(b"{\"keys\":[{\"kid\":\"\xff\"}]}").err(),
        Some(not_json(1, 18, "invalid unicode code point"))
    );
}

#[test]
fn errors_say_what_and_where() {
    let displays = [
        (
            not_json(3, 7, "trailing comma"),
            "the JWKS is not a JSON object: trailing comma at line 3, column 7",
        ),
        (
            JwksError::NoKeysArray,
            "the JWKS has no `keys` array, and is not an object of PEM certificates by kid",
        ),
        (
            JwksError::NoUsableKey { skipped: vec![] },
            "the JWKS `keys` array is empty",
        ),
        (
            JwksError::NoUsableKey {
                skipped: vec![
                    "key 0: not a JSON object".into(),
                    "key 1: `kty` is missing".into(),
                ],
            },
            "the JWKS has no usable key: key 0: not a JSON object; key 1: `kty` is missing",
        ),
    ];
    for (error, want) in displays {
        assert_eq!(error.to_string(), want);
    }
}

/// Native's one leniency: a comma after the last value of an array or object, in any place
/// and with any whitespace around it. Commas inside strings are data, and stay.
#[test]
fn trailing_commas_before_a_closing_bracket_are_accepted() {
    let rsa = fixture("rsa-a").to_string();
    let body = rsa.strip_suffix('}').unwrap();
    let docs = [
        format!(r#"{{"keys":[{rsa},]}}"#),
        format!("{{\"keys\": [\n  {rsa},\n  ]\n}}"),
        format!(r#"{{"keys":[{rsa}],}}"#),
        format!(r#"{{"keys":[{body},}}]}}"#),
        format!("{{\"keys\":[{body},\t\r\n}},],}}"),
    ];
    for doc in docs {
        let set = KeySet::from_json(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(set.len(), 1, "{doc}");
    }
    // A comma in a string before "]" is the string's: the kid keeps it.
    let kid = with(fixture("rsa-a"), "kid", json!("a,]"));
    let set = KeySet::from_json(&format!(r#"{{"keys":[{kid},]}}"#)).unwrap();
    assert_eq!(set.keys()[0].kid.as_deref(), Some("a,]"));
    // An escaped quote does not end the string.
    let kid = with(fixture("rsa-a"), "kid", json!("q\",}"));
    let set = KeySet::from_json(&format!(r#"{{"keys":[{kid}]}}"#)).unwrap();
    assert_eq!(set.keys()[0].kid.as_deref(), Some("q\",}"));
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
                        assert_ne!(set.verify(alg, None, b"a.b", sig, &DerHost), Ok(()));
                        assert_ne!(set.verify(alg, None, b"a.b", sig, &PureRust), Ok(()));
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

#[test]
fn the_host_decides_rs_and_es_and_never_the_rest() {
    let set = jwks();
    for alg in Alg::ALL {
        let (input, sig) = parts(&mint::token(alg.name(), &claims()));
        let mut garbage = sig.clone();
        garbage[sig.len() / 2] ^= 0x01;
        let host = Credulous(std::cell::Cell::new(0));
        let got = set.verify(alg, None, input.as_bytes(), &garbage, &host);
        let native = matches!(
            alg,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::ES256 | Alg::ES384 | Alg::ES512
        );
        // A host's "valid" is taken for what it can do; PS*, EdDSA and HS* are ours alone.
        let want = if native {
            Ok(())
        } else {
            Err(AuthError::SignatureInvalid)
        };
        assert_eq!(got, want, "{alg}");
        assert_eq!(host.0.get() > 0, native, "{alg}: host called");
    }
}

#[test]
fn a_signature_of_the_wrong_length_never_reaches_the_host() {
    let set = jwks();
    for alg in [Alg::RS256, Alg::ES256, Alg::ES384, Alg::ES512] {
        let (input, sig) = parts(&mint::token(alg.name(), &claims()));
        let host = Credulous(std::cell::Cell::new(0));
        let got = set.verify(alg, None, input.as_bytes(), &sig[1..], &host);
        assert_eq!(got, Err(AuthError::SignatureInvalid), "{alg}");
        assert_eq!(host.0.get(), 0, "{alg}");
    }
}

#[test]
fn each_parsed_key_set_has_its_own_version() {
    let (a, b) = (jwks(), jwks());
    assert_ne!(a.version(), b.version());
    assert_eq!(a.clone().version(), a.version());
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

/// Other projects' test key sets and ours (`tests/common/vectors.rs`): each loads (or is
/// refused) as the table says, and each token's signature verifies with it or finds no key.
#[test]
fn every_vector_loads_as_the_table_says() {
    use vectors::{Load, VECTORS};
    for vector in VECTORS {
        let name = vector.name;
        let set = KeySet::from_json(vector.jwks);
        match (vector.load, &set) {
            (
                Load::Keys {
                    keys,
                    skipped,
                    notes,
                },
                Ok(set),
            ) => {
                let got = (set.len(), set.skipped().len(), set.notes().len());
                assert_eq!(
                    got,
                    (keys, skipped, notes),
                    "{name}: (keys, skipped, notes); skipped {:?}, notes {:?}",
                    set.skipped(),
                    set.notes()
                );
            }
            (Load::Refused(want), Err(error)) => {
                assert!(error.to_string().contains(want), "{name}: {error}");
            }
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
        for check in vector.tokens {
            let token = check.token.text();
            for (how, backend) in backends() {
                let verdict = crate::jwt::parse(&token).and_then(|jwt| match &set {
                    Ok(set) => set.verify(
                        jwt.alg,
                        jwt.kid.as_deref(),
                        jwt.signing_input().as_bytes(),
                        &jwt.signature,
                        backend,
                    ),
                    Err(_) => Err(AuthError::NoMatchingKey),
                });
                let head = token.get(..40).unwrap_or_default();
                assert_eq!(
                    verdict.is_ok(),
                    check.verifies,
                    "{name} {head}… ({how}): {verdict:?}"
                );
            }
        }
    }
}

#[path = "../../tests/common/vectors.rs"]
mod vectors;

/// The PEM certificate of `kid` in the `ours-x509-rsa` vector.
fn rsa_certificate(kid: &str) -> String {
    let doc: Value =
        serde_json::from_str(vectors::VECTORS[vector_index("ours-x509-rsa")].jwks).unwrap();
    doc[kid].as_str().unwrap().to_owned()
}

fn vector_index(name: &str) -> usize {
    vectors::VECTORS
        .iter()
        .position(|v| v.name == name)
        .unwrap()
}

/// Google's form: each certificate's key under its member name, with no `alg` of its own, so
/// its type decides (RSA: RS* and PS*), as native does; a kid picks exactly its certificate.
#[test]
fn x509_keys_carry_their_kid_and_the_algorithms_of_their_type() {
    let doc = json!({ "rsa-a": rsa_certificate("rsa-a"), "rsa-b": rsa_certificate("rsa-b") });
    let set = KeySet::from_json(&doc.to_string()).unwrap();
    let kids: Vec<_> = set
        .keys()
        .iter()
        .map(|k| (k.kid.as_deref(), k.alg))
        .collect();
    assert_eq!(kids, [(Some("rsa-a"), None), (Some("rsa-b"), None)]);
    for alg in [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
    ] {
        let token = mint::sign(
            &json!({ "alg": alg.name(), "kid": "rsa-a" }),
            &claims(),
            alg.name(),
            Key::RsaA,
        );
        assert_eq!(check(&set, alg, Some("rsa-a"), &token), Ok(()), "{alg}");
        assert_eq!(
            check(&set, alg, Some("rsa-b"), &token),
            Err(AuthError::SignatureInvalid),
            "{alg}"
        );
        assert_eq!(check(&set, alg, None, &token), Ok(()), "{alg} without kid");
    }
    let es256 = mint::token("ES256", &claims());
    assert_eq!(
        check(&set, Alg::ES256, Some("rsa-a"), &es256),
        Err(AuthError::NoMatchingKey)
    );
    // EC certificates (ours; native refuses them): the curve's algorithm only.
    let ec: Value =
        serde_json::from_str(vectors::VECTORS[vector_index("ours-x509-ec")].jwks).unwrap();
    let set = KeySet::from_json(&ec.to_string()).unwrap();
    for (alg, kid) in [
        (Alg::ES256, "ec256"),
        (Alg::ES384, "ec384"),
        (Alg::ES512, "ec521"),
    ] {
        let token = mint::token(alg.name(), &claims());
        assert_eq!(check(&set, alg, Some(kid), &token), Ok(()), "{alg}");
        assert_eq!(
            set.keys().iter().filter(|k| k.fits(alg, None)).count(),
            1,
            "{alg}"
        );
    }
}

/// A certificate that cannot be read is skipped, the kid named, and the reason given; the
/// others still load. Only a document whose every member is a certificate is in this form.
#[test]
#[rustfmt::skip]
fn unreadable_certificates_are_skipped_with_their_kid() {
    let good = rsa_certificate("rsa-b");
    let pem = |body: &str| format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
    let der = |text: &str| {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    };
    let reencode = |bytes: &[u8]| pem(&base64::engine::general_purpose::STANDARD.encode(bytes));
    let a = der(&rsa_certificate("rsa-a"));
    let truncated = reencode(&a[..a.len() - 1]);
    let trailing = reencode(&[&a[..], &[0]].concat());
    // The Ed25519 SubjectPublicKeyInfo algorithm (1.3.101.112) in place of rsaEncryption:
    // the certificate's outline still holds, its key type is not one we read.
    let rsa_oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let at = a.windows(rsa_oid.len()).position(|w| w == rsa_oid).unwrap();
    let mut other = a.clone();
    other.splice(at..at + rsa_oid.len(), [0x06, 0x09, 0x2b, 0x65, 0x70, 0, 0, 0, 0, 0, 0]);
    let cases = [
        (pem("bm90IGEgY2VydGlmaWNhdGU="), "the certificate is not DER X.509"),
        (pem("!!!!"), "the PEM body is not base64"),
        (pem(""), "the certificate is not DER X.509"),
        (truncated, "the certificate is not DER X.509"),
        (trailing, "the certificate is not DER X.509"),
        (reencode(&other), "the certificate's key is neither RSA nor EC"),
        (format!("{}{good}", rsa_certificate("rsa-a")), "one certificate per kid"),
    ];
    for (bad, reason) in cases {
        let set = KeySet::from_json(&json!({ "bad": bad, "good": good }).to_string()).unwrap();
        assert_eq!(set.len(), 1, "{reason}");
        assert_eq!(set.keys()[0].kid.as_deref(), Some("good"));
        assert_eq!(set.skipped().len(), 1);
        let line = &set.skipped()[0];
        assert!(line.starts_with(r#"certificate (kid "bad"): "#) && line.contains(reason), "{line}");
    }
    // Not the X.509 form: a member that is not a certificate, an empty kid, nothing at all.
    for doc in [
        json!({ "kid1": "pubkey1", "kid2": good }),
        json!({ "": good }),
        json!({ "kid1": [good] }),
        json!({ "kid1": good.replace("CERTIFICATE", "PUBLIC KEY") }),
        json!({}),
    ] {
        assert_eq!(KeySet::from_json(&doc.to_string()).err(), Some(JwksError::NoKeysArray), "{doc}");
    }
    // `keys` wins: a JWKS with certificates beside it is read as a JWKS.
    let both = json!({ "keys": [fixture("ed")], "rsa-a": good });
    assert_eq!(KeySet::from_json(&both.to_string()).unwrap().len(), 1);
}

/// Byte edits of a certificate never panic the reader: the key loads or is skipped.
#[test]
fn mutated_certificates_never_panic() {
    use base64::engine::general_purpose::STANDARD;
    let pem = rsa_certificate("rsa-a");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    let wrap = |bytes: &[u8]| {
        let doc = json!({ "k": format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", STANDARD.encode(bytes)) });
        KeySet::from_json(&doc.to_string())
    };
    let mut loaded = 0;
    for len in 0..der.len() {
        assert!(
            wrap(&der[..len]).is_err(),
            "a certificate cut at {len} loaded"
        );
    }
    for i in 0..der.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = der.clone();
            bytes[i] ^= flip;
            loaded += usize::from(wrap(&bytes).is_ok());
        }
    }
    // Most edits land in parts nobody reads (names, dates, the signature).
    assert!(
        loaded > der.len(),
        "{loaded} of {} edits loaded",
        3 * der.len()
    );
}

/// A coordinate shorter than its curve's is left-padded and noted, once, with its key, and
/// the point must still be on the curve; a longer one is refused.
#[test]
fn short_ec_coordinates_are_padded_noted_and_still_checked() {
    let y = unb64(fixture("ec521")["y"].as_str().unwrap());
    assert_eq!(
        (y.len(), y[0]),
        (66, 0),
        "the fixture's y has a leading zero byte"
    );
    let short = with(fixture("ec521"), "y", json!(b64(&y[1..])));
    let set = set_of(vec![fixture("ed"), short]).unwrap();
    assert_eq!(set.len(), 2);
    let note = r#"key 1 (kid "ec521"): `y` is 65 bytes, left-padded to the 66 of P-521 (RFC 7518 wants exactly 66)"#;
    assert_eq!(set.notes(), [note]);
    assert_eq!(
        set.log_lines(),
        [format!("JWKS {note}; loaded, but not RFC 7518 conformant")]
    );
    let token = mint::token("ES512", &claims());
    assert_eq!(check(&set, Alg::ES512, Some("ec521"), &token), Ok(()));
    // Padding never moves a point onto the curve: a y cut short of a real byte is off it.
    let cut = with(fixture("ec521"), "y", json!(b64(&y[2..])));
    assert!(skipped_reason(cut).contains("the point is not on P-521"));
}

/// An EC key without `crv` takes it from `alg`, or is P-256 without either, as native reads
/// it; noted either way.
#[test]
fn ec_keys_without_crv_take_it_from_alg() {
    let p256 = with(fixture("ec256"), "crv", Value::Null);
    let p384 = with(
        with(fixture("ec384"), "crv", Value::Null),
        "alg",
        json!("ES384"),
    );
    let set = set_of(vec![p256, p384]).unwrap();
    assert_eq!(
        set.notes(),
        [
            r#"key 0 (kid "ec256"): `crv` and `alg` are missing: P-256 (as native assumes)"#,
            r#"key 1 (kid "ec384"): `crv` is missing: P-384, from `alg` ES384"#,
        ]
    );
    for (alg, kid) in [(Alg::ES256, "ec256"), (Alg::ES384, "ec384")] {
        assert_eq!(
            check(&set, alg, Some(kid), &mint::token(alg.name(), &claims())),
            Ok(())
        );
    }
    // A P-384 key without `crv` or `alg` is not a P-256 point.
    let guessed = with(fixture("ec384"), "crv", Value::Null);
    assert!(skipped_reason(guessed).contains("`x` is 48 bytes, more than the 32 of P-256"));
}

/// The log lines of a load: skipped keys first, then notes, each saying which.
#[test]
fn log_lines_say_skipped_or_not_conformant() {
    let short = with(
        fixture("ec521"),
        "y",
        json!(b64(&unb64(fixture("ec521")["y"].as_str().unwrap())[1..])),
    );
    let set = set_of(vec![json!(7), short]).unwrap();
    assert_eq!(
        set.log_lines(),
        [
            "JWKS key 0: not a JSON object; key skipped".to_owned(),
            r#"JWKS key 1 (kid "ec521"): `y` is 65 bytes, left-padded to the 66 of P-521 (RFC 7518 wants exactly 66); loaded, but not RFC 7518 conformant"#.to_owned(),
        ]
    );
}
