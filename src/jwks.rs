//! JWKS JSON → key set; which keys fit a token (kid, alg, kty); signature checks.
//!
//! Keys are parsed once, when the key set is loaded, into typed verifying keys; a request only
//! selects and verifies. A key that cannot be used (unknown `kty`, RSA under 2048 or over 4096
//! bits, an exponent that is even or 1, an EC point off its curve or coordinates of the wrong
//! length, a small-order Ed25519 key, an empty HMAC secret, a JWK `alg` that is unknown or that
//! its type cannot do, `use` other than `sig`) is skipped with a reason, so one bad key in a
//! provider's set does not take down the others; a set with no usable key at all is an error.
//! Members we do not need (`x5c`, `x5u`, `key_ops`, ...) are ignored: nothing here fetches or
//! trusts anything a key points to.
//!
//! The token's `alg` chooses nothing on its own: a key fits only if its type can do that
//! algorithm and its own `alg`, when present, is the same. HMAC keys are `oct` only, so a
//! token "signed" with an RSA public key as HMAC secret finds no key (algorithm confusion).
//!
//! This module must not read the token (that is `jwt`), judge claims (`verify`), or fetch
//! anything. Nothing here panics on any JWKS or signature bytes: every length is checked
//! before a crate that would panic on it is called.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{Map, Value};
use std::fmt;

use crate::error::AuthError;
use crate::jwt::Alg;

/// Base64url for JWK members (RFC 7518 §6): padding is optional, as Envoy accepts it, so an
/// identity provider that pads its keys does not lose them.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The smallest RSA modulus we load, in bits (RFC 7518 §3.3 requires 2048).
pub const MIN_RSA_BITS: usize = 2048;

/// A provider's usable keys, in document order, and why the others were skipped.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Jwk>,
    skipped: Vec<String>,
}

/// One usable key.
#[derive(Debug, Clone)]
pub struct Jwk {
    /// The JWK's `kid`. A key without one fits a token with any `kid`.
    pub kid: Option<String>,
    /// The JWK's own `alg`: when set, the only algorithm this key verifies.
    pub alg: Option<Alg>,
    key: PublicKey,
}

/// A verifying key, typed by what it can do.
#[derive(Clone)]
enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(Box<p521::ecdsa::VerifyingKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HMAC secret (`oct`), at least `MIN_OCT_BYTES` long.
    Oct(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, least of all HMAC secrets.
        f.write_str(match self {
            PublicKey::Rsa(_) => "Rsa",
            PublicKey::P256(_) => "P256",
            PublicKey::P384(_) => "P384",
            PublicKey::P521(_) => "P521",
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::Oct(_) => "Oct",
        })
    }
}

/// Why a JWKS document cannot be used at all. Produced by [`KeySet::from_json`]; `config`
/// reports it, naming the provider, when the plugin configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not JSON, not a JSON object, or an object that repeats a member name at any depth.
    NotJson,
    /// The document has no `keys` member, or it is not an array.
    NoKeysArray,
    /// No key is usable: `keys` is empty, or every key was skipped. One line per skipped key,
    /// in the format of [`KeySet::skipped`].
    NoUsableKey { skipped: Vec<String> },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::NotJson => f.write_str("the JWKS is not a JSON object"),
            JwksError::NoKeysArray => f.write_str("the JWKS has no `keys` array"),
            JwksError::NoUsableKey { skipped } if skipped.is_empty() => {
                f.write_str("the JWKS `keys` array is empty")
            }
            JwksError::NoUsableKey { skipped } => {
                write!(f, "the JWKS has no usable key: {}", skipped.join("; "))
            }
        }
    }
}

impl std::error::Error for JwksError {}

/// At most this many entries of a JWKS `keys` array are read; the rest are ignored (one
/// `skipped` line says so). Bounds the work of a load and, for a token without `kid`, the
/// number of signature checks per request (every fitting key is tried). Identity providers
/// publish a handful of keys; 100 leaves room for rotation and several algorithms.
pub const MAX_KEYS: usize = 100;

/// The shortest HMAC secret loaded: 256 bits, the output of SHA-256 (RFC 7518 §3.2).
pub const MIN_OCT_BYTES: usize = 32;

impl KeySet {
    /// Parses a JWKS document. Keys that cannot be used are skipped (see `skipped()`), and so
    /// is every entry past the first `MAX_KEYS`; a document with no usable key is an error.
    pub fn from_json(text: &str) -> Result<KeySet, JwksError> {
        let doc = crate::jwt::parse_object(text.as_bytes()).ok_or(JwksError::NotJson)?;
        let Some(Value::Array(items)) = doc.get("keys") else {
            return Err(JwksError::NoKeysArray);
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        if items.len() > MAX_KEYS {
            skipped.push(format!(
                "keys {MAX_KEYS}..{}: ignored, at most {MAX_KEYS} keys are read",
                items.len() - 1
            ));
        }
        for (i, item) in items.iter().enumerate().take(MAX_KEYS) {
            let parsed = item
                .as_object()
                .ok_or_else(|| "not a JSON object".to_owned())
                .and_then(parse_jwk);
            match parsed {
                Ok(jwk) => keys.push(jwk),
                Err(reason) => {
                    let kid = item
                        .get("kid")
                        .and_then(Value::as_str)
                        .map(|kid| format!(" (kid {})", quoted(kid)))
                        .unwrap_or_default();
                    skipped.push(format!("key {i}{kid}: {reason}"));
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(KeySet { keys, skipped })
    }

    /// The number of usable keys (never 0 for a set `from_json` returned).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key (never, for a set `from_json` returned).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// One line per skipped key, for the log: the key's 0-based index in `keys`, its `kid` if it
    /// has a string one, and the reason, e.g.
    /// `key 2 (kid "x"): RSA modulus is 1024 bits, at least 2048 required`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Verifies `signature` over `signing_input` with the keys that fit (see [`Jwk::fits`]),
    /// in document order, until one verifies. With `kid` Some, only keys whose kid equals it or
    /// that have no kid are tried; without, every key. No fitting key:
    /// `Err(AuthError::NoMatchingKey)`; fitting keys but none verifies (including a signature of
    /// the wrong length for the algorithm): `Err(AuthError::SignatureInvalid)`.
    pub fn verify(
        &self,
        alg: Alg,
        kid: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg, kid)).peekable();
        if fitting.peek().is_none() {
            return Err(AuthError::NoMatchingKey);
        }
        if fitting.any(|k| k.key.verify(alg, signing_input, signature)) {
            Ok(())
        } else {
            Err(AuthError::SignatureInvalid)
        }
    }
}

impl Jwk {
    /// Whether this key may check a token with `alg` and `kid`: the kids are equal or one is
    /// absent, the key's type can do `alg` (RSA: RS*/PS*, P-256: ES256, P-384: ES384, P-521:
    /// ES512, Ed25519: EdDSA, oct: HS*), and the key's own `alg`, if any, is `alg`.
    pub fn fits(&self, alg: Alg, kid: Option<&str>) -> bool {
        let kid_ok = match (kid, &self.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        kid_ok && self.alg.is_none_or(|own| own == alg) && self.key.can_do(alg)
    }
}

impl PublicKey {
    fn can_do(&self, alg: Alg) -> bool {
        use Alg::*;
        matches!(
            (self, alg),
            (
                PublicKey::Rsa(_),
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::P521(_), ES512)
                | (PublicKey::Ed25519(_), EdDSA)
                | (PublicKey::Oct(_), HS256 | HS384 | HS512)
        )
    }

    /// Checks one signature; any malformed signature is simply invalid. ECDSA signatures are
    /// JOSE `r || s` of fixed length (64, 96, 132 bytes), never DER (RFC 7518 §3.4).
    fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        use p384::ecdsa::signature::Verifier as _;
        match (self, alg) {
            (PublicKey::Rsa(key), _) => {
                let rsa = match alg {
                    Alg::RS256 => Rsa::rs256(),
                    Alg::RS384 => Rsa::rs384(),
                    Alg::RS512 => Rsa::rs512(),
                    Alg::PS256 => Rsa::ps256(),
                    Alg::PS384 => Rsa::ps384(),
                    Alg::PS512 => Rsa::ps512(),
                    _ => return false,
                };
                // The modulus length is the signature length (RFC 8017 §8.2.2 step 1).
                signature.len() == key_size(key) && check(&rsa, key, message, signature)
            }
            (PublicKey::P256(key), Alg::ES256) => check(&Es256, key, message, signature),
            // `from_slice` accepts exactly 2 × the field size and refuses r or s of 0 or ≥ n.
            (PublicKey::P384(key), Alg::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (PublicKey::P521(key), Alg::ES512) => p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (PublicKey::Ed25519(key), Alg::EdDSA) => check(&Ed25519, key, message, signature),
            (PublicKey::Oct(secret), Alg::HS256) => {
                check(&Hs256, &Hs256Key::new(secret), message, signature)
            }
            (PublicKey::Oct(secret), Alg::HS384) => {
                check(&Hs384, &Hs384Key::new(secret), message, signature)
            }
            (PublicKey::Oct(secret), Alg::HS512) => {
                check(&Hs512, &Hs512Key::new(secret), message, signature)
            }
            _ => false,
        }
    }
}

/// A jwt-compact verification: the signature must parse for the algorithm, then verify.
///
/// The length is checked first: jwt-compact 0.8's HMAC `try_from_slice` panics (instead of
/// failing) on a slice of the wrong length (`GenericArray::clone_from_slice`), and a panic
/// would kill the VM. Its HMAC comparison is constant-time (`CtOutput`'s `PartialEq`).
fn check<A: Algorithm>(alg: &A, key: &A::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    if A::Signature::LENGTH.is_some_and(|len| len.get() != signature.len()) {
        return false;
    }
    A::Signature::try_from_slice(signature)
        .is_ok_and(|sig| alg.verify_signature(&sig, key, message))
}

fn key_size(key: &rsa::RsaPublicKey) -> usize {
    use rsa::traits::PublicKeyParts as _;
    key.size()
}

/// One JWK → a usable key, or why not.
fn parse_jwk(jwk: &Map<String, Value>) -> Result<Jwk, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let value = text(name)?.ok_or_else(|| format!("`{name}` is missing"))?;
        JWK_B64
            .decode(value)
            .map_err(|_| format!("`{name}` is not base64url"))
    };
    if let Some(usage) = text("use")? {
        if usage != "sig" {
            return Err(format!("`use` is {}, not \"sig\"", quoted(usage)));
        }
    }
    let kid = text("kid")?.map(str::to_owned);
    let alg = match text("alg")? {
        None => None,
        Some(name) => Some(
            Alg::from_name(name)
                .ok_or_else(|| format!("`alg` {} is not supported", quoted(name)))?,
        ),
    };
    let kty = text("kty")?.ok_or("`kty` is missing")?;
    let key = match kty {
        "RSA" => rsa_key(&bytes("n")?, &bytes("e")?)?,
        // The curve first, so a key on a curve we lack says so rather than "`x` is missing".
        // `from_sec1_bytes` refuses points off the curve and the identity.
        "EC" => match text("crv")?.ok_or("`crv` is missing")? {
            "P-256" => PublicKey::P256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1(&bytes("x")?, &bytes("y")?, 32)?)
                    .map_err(|_| "the point is not on P-256")?,
            ),
            "P-384" => PublicKey::P384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1(&bytes("x")?, &bytes("y")?, 48)?)
                    .map_err(|_| "the point is not on P-384")?,
            ),
            "P-521" => PublicKey::P521(Box::new(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1(&bytes("x")?, &bytes("y")?, 66)?)
                    .map_err(|_| "the point is not on P-521")?,
            )),
            other => return Err(format!("EC curve {} is not supported", quoted(other))),
        },
        "OKP" => match text("crv")?.ok_or("`crv` is missing")? {
            "Ed25519" => {
                let x: [u8; 32] = bytes("x")?
                    .try_into()
                    .map_err(|_| "an Ed25519 `x` is 32 bytes")?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| "`x` is not an Ed25519 point")?;
                // A small-order key lets anyone forge a signature for 1 message in 8.
                if key.is_weak() {
                    return Err("`x` is a small-order (weak) Ed25519 point".into());
                }
                PublicKey::Ed25519(key)
            }
            other => return Err(format!("OKP curve {} is not supported", quoted(other))),
        },
        "oct" => {
            let k = bytes("k")?;
            // RFC 7518 §3.2 / RFC 8725 §3.5: an HMAC key at least as long as the hash.
            if k.len() < MIN_OCT_BYTES {
                return Err(format!(
                    "`k` is {} bytes, at least {MIN_OCT_BYTES} (256 bits) required",
                    k.len()
                ));
            }
            PublicKey::Oct(k)
        }
        other => return Err(format!("`kty` {} is not supported", quoted(other))),
    };
    if let Some(alg) = alg {
        if !key.can_do(alg) {
            return Err(format!("`alg` {alg} does not fit `kty` {kty}"));
        }
    }
    Ok(Jwk { kid, alg, key })
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<PublicKey, String> {
    // Big-endian: the last byte holds the parity.
    let odd = |be: &[u8]| be.last().is_some_and(|low| low & 1 == 1);
    let (n_odd, e_odd) = (odd(n), odd(e));
    let n = rsa::BigUint::from_bytes_be(n);
    let e = rsa::BigUint::from_bytes_be(e);
    let bits = n.bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits, at least {MIN_RSA_BITS} required"
        ));
    }
    if !n_odd {
        return Err("RSA modulus is even".into());
    }
    if !e_odd || e <= rsa::BigUint::from(1u8) {
        return Err("RSA exponent must be odd and greater than 1".into());
    }
    // `new` also caps the modulus at 4096 bits and the exponent at 2^33 - 1.
    rsa::RsaPublicKey::new(n, e)
        .map(PublicKey::Rsa)
        .map_err(|err| format!("RSA key refused: {err}"))
}

/// A JWKS string for a log line: quoted, control characters escaped, cut after 64 characters.
/// A remote JWKS is not ours, so its strings must not forge or flood log lines.
fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{:?}…", s.get(..end).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// The SEC1 uncompressed encoding of (x, y), each exactly `size` bytes.
fn sec1(x: &[u8], y: &[u8], size: usize) -> Result<Vec<u8>, String> {
    if x.len() != size || y.len() != size {
        return Err(format!("EC coordinates must be {size} bytes each"));
    }
    Ok([&[4u8][..], x, y].concat())
}

#[cfg(test)]
mod tests;
