//! Test-only token signer: mints compact JWS tokens with the fixture keys in
//! `tests/fixtures/keys` (their public halves are `tests/fixtures/jwks.json`).
//!
//! Shared by the unit tests (`src/lib.rs` includes this file) and the end-to-end tests
//! (`tests/common/mod.rs`), so it names only external crates. Headers are signed exactly as
//! given: tests may lie about `alg` and `kid`.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// A fixture signing key. Kids in `JWKS`: rsa-a, rsa-b (alg RS256), ec256, ec384, ec521, ed,
/// hmac; `RsaWeak` (1024 bits) is only in `JWKS_WEAK` (kid rsa-weak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    RsaA,
    RsaB,
    RsaWeak,
    Ec256,
    Ec384,
    Ec521,
    Ed,
    Hmac,
}

pub const JWKS: &str = include_str!("../fixtures/jwks.json");
pub const JWKS_WEAK: &str = include_str!("../fixtures/jwks-weak.json");
pub const HMAC_SECRET: &[u8] = include_bytes!("../fixtures/hmac-secret.txt");

/// `JWKS` plus the 1024-bit RSA key (kid `rsa-weak`), which jwt-authn-wasm never loads.
pub fn jwks_with_weak_key() -> String {
    let weak: Value = serde_json::from_str(JWKS_WEAK).unwrap();
    let mut keys: Value = serde_json::from_str(JWKS).unwrap();
    keys["keys"]
        .as_array_mut()
        .unwrap()
        .push(weak["keys"][0].clone());
    keys.to_string()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header` and `payload`, serialised as compact JSON, with `alg` using `key`.
pub fn sign(header: &Value, payload: &Value, alg: &str, key: Key) -> String {
    sign_bytes(
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
        alg,
        key,
    )
}

/// Signs arbitrary header and payload bytes (duplicate members, non-JSON, ...).
pub fn sign_bytes(header: &[u8], payload: &[u8], alg: &str, key: Key) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = signature(input.as_bytes(), alg, key);
    format!("{input}.{}", b64(&signature))
}

/// A normal token: `{"alg", "typ": "JWT", "kid"}` with the default key of `alg`'s family.
pub fn token(alg: &str, payload: &Value) -> String {
    let (key, kid) = default_key(alg);
    sign(
        &json!({ "alg": alg, "typ": "JWT", "kid": kid }),
        payload,
        alg,
        key,
    )
}

/// The same without a `kid`.
pub fn token_without_kid(alg: &str, payload: &Value) -> String {
    let (key, _) = default_key(alg);
    sign(&json!({ "alg": alg, "typ": "JWT" }), payload, alg, key)
}

/// HMAC-SHA256 keyed with arbitrary bytes (the algorithm-confusion attack uses the RSA public
/// key as the secret).
pub fn sign_hs256_with_secret(header: &Value, payload: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&hmac(input.as_bytes(), "HS256", secret)))
}

/// `token` with a character in the middle of its signature changed: well-formed, forged.
pub fn tampered(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{input}.{}", String::from_utf8(sig).unwrap())
}

fn default_key(alg: &str) -> (Key, &'static str) {
    match alg {
        a if a.starts_with("RS") || a.starts_with("PS") => (Key::RsaA, "rsa-a"),
        "ES256" => (Key::Ec256, "ec256"),
        "ES384" => (Key::Ec384, "ec384"),
        "ES512" => (Key::Ec521, "ec521"),
        "EdDSA" => (Key::Ed, "ed"),
        a if a.starts_with("HS") => (Key::Hmac, "hmac"),
        _ => panic!("no fixture key for alg {alg}"),
    }
}

/// Each fixture PEM is parsed once per test binary: tests mint hundreds of tokens.
fn rsa_key(key: Key) -> &'static rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    static A: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    static B: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    static WEAK: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    let (cell, pem) = match key {
        Key::RsaA => (&A, include_str!("../fixtures/keys/rsa2048-a.pem")),
        Key::RsaB => (&B, include_str!("../fixtures/keys/rsa2048-b.pem")),
        Key::RsaWeak => (&WEAK, include_str!("../fixtures/keys/rsa1024.pem")),
        _ => panic!("{key:?} is not an RSA key"),
    };
    cell.get_or_init(|| rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap())
}

fn ec256_key() -> &'static p256::ecdsa::SigningKey {
    use p256::pkcs8::DecodePrivateKey;
    static KEY: OnceLock<p256::ecdsa::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        p256::ecdsa::SigningKey::from_pkcs8_pem(include_str!("../fixtures/keys/ec-p256.pem"))
            .unwrap()
    })
}

fn ec384_key() -> &'static p384::ecdsa::SigningKey {
    use p384::pkcs8::DecodePrivateKey;
    static KEY: OnceLock<p384::ecdsa::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        p384::ecdsa::SigningKey::from_pkcs8_pem(include_str!("../fixtures/keys/ec-p384.pem"))
            .unwrap()
    })
}

fn ec521_key() -> &'static p521::ecdsa::SigningKey {
    use p521::pkcs8::DecodePrivateKey;
    static KEY: OnceLock<p521::ecdsa::SigningKey> = OnceLock::new();
    // p521 0.13's `SigningKey` has no PKCS#8 decoding; its `SecretKey` does.
    KEY.get_or_init(|| {
        let secret =
            p521::SecretKey::from_pkcs8_pem(include_str!("../fixtures/keys/ec-p521.pem")).unwrap();
        p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap()
    })
}

fn ed_key() -> &'static ed25519_dalek::SigningKey {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    static KEY: OnceLock<ed25519_dalek::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        ed25519_dalek::SigningKey::from_pkcs8_pem(include_str!("../fixtures/keys/ed25519.pem"))
            .unwrap()
    })
}

/// The raw JWS signature of `msg`: RSA PKCS#1 v1.5 or PSS (salt = hash length, RFC 7518
/// §3.5), ECDSA as JOSE `r || s` (deterministic, RFC 6979), pure Ed25519, or HMAC.
fn signature(msg: &[u8], alg: &str, key: Key) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    use rsa::{Pkcs1v15Sign, Pss};
    use sha2::{Digest, Sha256, Sha384, Sha512};
    match key {
        Key::RsaA | Key::RsaB | Key::RsaWeak => {
            let k = rsa_key(key);
            let mut rng = rsa::rand_core::OsRng;
            match alg {
                "RS256" => k.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg)),
                "RS384" => k.sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg)),
                "RS512" => k.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg)),
                "PS256" => k.sign_with_rng(&mut rng, Pss::new::<Sha256>(), &Sha256::digest(msg)),
                "PS384" => k.sign_with_rng(&mut rng, Pss::new::<Sha384>(), &Sha384::digest(msg)),
                "PS512" => k.sign_with_rng(&mut rng, Pss::new::<Sha512>(), &Sha512::digest(msg)),
                _ => panic!("{alg} cannot sign with an RSA key"),
            }
            .unwrap()
        }
        Key::Ec256 => {
            let s: p256::ecdsa::Signature = ec256_key().sign(msg);
            s.to_bytes().to_vec()
        }
        Key::Ec384 => {
            let s: p384::ecdsa::Signature = ec384_key().sign(msg);
            s.to_bytes().to_vec()
        }
        Key::Ec521 => {
            let s: p521::ecdsa::Signature = ec521_key().sign(msg);
            s.to_bytes().to_vec()
        }
        Key::Ed => ed_key().sign(msg).to_bytes().to_vec(),
        Key::Hmac => hmac(msg, alg, HMAC_SECRET),
    }
}

fn hmac(msg: &[u8], alg: &str, secret: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(secret).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        "HS256" => run::<Hmac<sha2::Sha256>>(secret, msg),
        "HS384" => run::<Hmac<sha2::Sha384>>(secret, msg),
        "HS512" => run::<Hmac<sha2::Sha512>>(secret, msg),
        _ => panic!("{alg} cannot sign with an HMAC key"),
    }
}
