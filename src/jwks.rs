//! Key set documents → key set; which keys fit a token (kid, alg, kty); signature checks.
//!
//! Two document forms load, the two native `jwt_authn` reads:
//! - a JWKS (RFC 7517 §5), `{"keys": [...]}`;
//! - Google's X.509 form, an object of PEM certificates by kid (`x509`), when the document has
//!   no `keys` and every member is a certificate: each certificate's public key under its kid.
//!
//! The JSON is strict (duplicate member names at any depth, nesting beyond 128 levels and
//! anything after the document are refused) except for one leniency native has too: a comma
//! right after a value and before `]` or `}` (`{"keys": [{...},]}`, as in Envoy's own test
//! key sets). Every error names the line and column where the document went wrong.
//!
//! Keys are parsed once, when the key set is loaded, into typed verifying keys; a request only
//! selects and verifies. A key that cannot be used (unknown `kty`, RSA under 2048 or over 4096
//! bits, an exponent that is even or 1, an EC point off its curve or coordinates longer than
//! the curve's, a small-order Ed25519 key, an HMAC secret under 256 bits, a JWK `alg` that is
//! unknown or that its type cannot do, `use` other than `sig`, a certificate that cannot be
//! read) is skipped with a reason, so one bad key in a provider's set does not take down the
//! others; a set with no usable key at all is an error. What loads although RFC 7518 says
//! otherwise, as native loads it (EC coordinates shorter than the curve's, left-padded; an EC
//! key without `crv`), is noted (`KeySet::notes`) for a warning in the log. Members we do not
//! need (`x5c`, `x5u`, `key_ops`, ...) are ignored: nothing here fetches or trusts anything a
//! key points to.
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
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::AuthError;
use crate::jwt::Alg;

mod x509;
use crate::rsa_pkcs1::{Hash, RsaVerifier};
use crate::signature::{ec_spki, jose_to_der, SignatureBackend};

/// Base64url for JWK members (RFC 7518 §6): padding is optional, as Envoy accepts it, so an
/// identity provider that pads its keys does not lose them.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The smallest RSA modulus we load, in bits (RFC 7518 §3.3 requires 2048).
pub const MIN_RSA_BITS: usize = 2048;

/// A provider's usable keys, in document order, why the others were skipped, and what loaded
/// although it is not conformant.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<Jwk>,
    skipped: Vec<String>,
    notes: Vec<String>,
    version: u64,
}

/// Hands out key-set versions: each parsed key set gets its own, in this VM.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// One usable key.
#[derive(Debug, Clone)]
pub struct Jwk {
    /// The JWK's `kid`. A key without one fits a token with any `kid`.
    pub kid: Option<String>,
    /// The JWK's own `alg`: when set, the only algorithm this key verifies.
    pub alg: Option<Alg>,
    key: PublicKey,
    /// DER SubjectPublicKeyInfo of RSA and EC keys, for a host's native crypto; encoded once,
    /// when the key set is loaded.
    spki: Option<Vec<u8>>,
}

/// A verifying key, typed by what it can do.
#[derive(Clone)]
enum PublicKey {
    /// With its Montgomery constants for our own RS* checks (`rsa_pkcs1`), when it has them.
    Rsa(rsa::RsaPublicKey, Option<RsaVerifier>),
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
            PublicKey::Rsa(..) => "Rsa",
            PublicKey::P256(_) => "P256",
            PublicKey::P384(_) => "P384",
            PublicKey::P521(_) => "P521",
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::Oct(_) => "Oct",
        })
    }
}

/// Why a key set document cannot be used at all. Produced by [`KeySet::from_json`]; `config`
/// reports it, naming the provider, when the plugin configuration is loaded, and `jwks_cache`
/// when a fetched one is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not JSON (a syntax error, a member name repeated at any depth, too deep, not UTF-8,
    /// something after the document), or JSON that is not an object. `line` and `column`
    /// (1-based; column counts bytes) are where it went wrong.
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    /// The document has no `keys` member (and is not an object of PEM certificates either),
    /// or `keys` is not an array.
    NoKeysArray,
    /// No key is usable: `keys` is empty, or every key was skipped. One line per skipped key,
    /// in the format of [`KeySet::skipped`].
    NoUsableKey { skipped: Vec<String> },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::NotJson {
                line,
                column,
                reason,
            } => write!(
                f,
                "the JWKS is not a JSON object: {reason} at line {line}, column {column}"
            ),
            JwksError::NoKeysArray => f.write_str(
                "the JWKS has no `keys` array, and is not an object of PEM certificates by kid",
            ),
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
    /// Parses a key set document (a JWKS, or Google's X.509 form). Keys that cannot be used
    /// are skipped (see `skipped()`), and so is every entry past the first `MAX_KEYS`; a
    /// document with no usable key is an error.
    pub fn from_json(text: &str) -> Result<KeySet, JwksError> {
        KeySet::from_slice(text.as_bytes())
    }

    /// [`KeySet::from_json`] on bytes as they arrived: bytes that are not UTF-8 are a
    /// `NotJson` error with their place, like any other.
    pub fn from_slice(bytes: &[u8]) -> Result<KeySet, JwksError> {
        let doc = parse_document(bytes)?;
        let mut loaded = Loaded::default();
        match doc.get("keys") {
            Some(Value::Array(items)) => {
                let entries = items.iter().enumerate().map(|(i, item)| {
                    let kid = item
                        .get("kid")
                        .and_then(Value::as_str)
                        .map(|kid| format!(" (kid {})", quoted(kid)))
                        .unwrap_or_default();
                    let parsed = item
                        .as_object()
                        .ok_or_else(|| "not a JSON object".to_owned())
                        .and_then(parse_jwk);
                    (format!("key {i}{kid}"), parsed)
                });
                loaded.take(items.len(), "keys", entries);
            }
            Some(_) => return Err(JwksError::NoKeysArray),
            None => {
                let certificates = x509_form(&doc).ok_or(JwksError::NoKeysArray)?;
                let entries = certificates.iter().map(|(kid, pem)| {
                    let name = format!("certificate (kid {})", quoted(kid));
                    (name, from_certificate(kid, pem))
                });
                loaded.take(certificates.len(), "certificates", entries);
            }
        }
        let Loaded {
            keys,
            skipped,
            notes,
        } = loaded;
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(KeySet {
            keys,
            skipped,
            notes,
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The set of no keys, which verifies nothing: the key set of a provider whose tokens are
    /// introspected (`config::Introspection`), never parsed from a document.
    pub fn none() -> KeySet {
        KeySet {
            keys: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Identifies this key set among all those parsed in this VM: a provider whose version
    /// changed has new keys, and what the old ones verified no longer counts.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The number of usable keys (never 0 for a set `from_json` returned; 0 for `none`).
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

    /// One line per key that loaded although it is not RFC 7518 conformant, in the format of
    /// `skipped()`, e.g. ``key 0 (kid "x"): `y` is 65 bytes, left-padded to the 66 of P-521
    /// (RFC 7518 §6.2.1.3 wants exactly 66)``. For a warning in the log, once per load.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What to log once when this set is loaded: each skipped key, then each note, as
    /// `JWKS <line>; key skipped` and `JWKS <line>; loaded, but not RFC 7518 conformant`.
    pub fn log_lines(&self) -> Vec<String> {
        let skipped = self
            .skipped
            .iter()
            .map(|line| format!("JWKS {line}; key skipped"));
        let notes = self
            .notes
            .iter()
            .map(|line| format!("JWKS {line}; loaded, but not RFC 7518 conformant"));
        skipped.chain(notes).collect()
    }

    /// Verifies `signature` over `signing_input` with the keys that fit (see [`Jwk::fits`]),
    /// in document order, until one verifies. With `kid` Some, only keys whose kid equals it or
    /// that have no kid are tried; without, every key. No fitting key:
    /// `Err(AuthError::NoMatchingKey)`; fitting keys but none verifies (including a signature of
    /// the wrong length for the algorithm): `Err(AuthError::SignatureInvalid)`. RS* and ES* go to
    /// `backend` first (the host's native crypto); what it cannot check, our own code does.
    pub fn verify(
        &self,
        alg: Alg,
        kid: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
        backend: &dyn SignatureBackend,
    ) -> Result<(), AuthError> {
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg, kid)).peekable();
        if fitting.peek().is_none() {
            return Err(AuthError::NoMatchingKey);
        }
        if fitting.any(|k| k.verify(alg, signing_input, signature, backend)) {
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

    /// One signature with this key: the backend's answer when it gives one, else our own.
    fn verify(
        &self,
        alg: Alg,
        message: &[u8],
        signature: &[u8],
        backend: &dyn SignatureBackend,
    ) -> bool {
        let native = self
            .spki
            .as_deref()
            .zip(self.key.host_form(alg, signature))
            .and_then(|(spki, (hash, sig))| backend.verify(hash, spki, message, &sig));
        native.unwrap_or_else(|| self.key.verify(alg, message, signature))
    }
}

impl PublicKey {
    fn can_do(&self, alg: Alg) -> bool {
        use Alg::*;
        matches!(
            (self, alg),
            (
                PublicKey::Rsa(..),
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::P521(_), ES512)
                | (PublicKey::Ed25519(_), EdDSA)
                | (PublicKey::Oct(_), HS256 | HS384 | HS512)
        )
    }

    /// The digest a host checks `alg` with, and `signature` as the host reads it (RSA PKCS#1
    /// v1.5 as is, ECDSA `r || s` as DER). `None` for what hosts do not do (PS*, EdDSA, HS*) and
    /// for a signature of the wrong length, which our own check refuses at once.
    fn host_form<'s>(
        &self,
        alg: Alg,
        signature: &'s [u8],
    ) -> Option<(&'static str, Cow<'s, [u8]>)> {
        let rsa = |hash| match self {
            PublicKey::Rsa(key, _) if signature.len() == key_size(key) => {
                Some((hash, Cow::Borrowed(signature)))
            }
            _ => None,
        };
        let ec = |hash, size| jose_to_der(signature, size).map(|der| (hash, Cow::Owned(der)));
        match alg {
            Alg::RS256 => rsa("sha256"),
            Alg::RS384 => rsa("sha384"),
            Alg::RS512 => rsa("sha512"),
            Alg::ES256 => ec("sha256", 32),
            Alg::ES384 => ec("sha384", 48),
            Alg::ES512 => ec("sha512", 66),
            _ => None,
        }
    }

    /// Checks one signature; any malformed signature is simply invalid. ECDSA signatures are
    /// JOSE `r || s` of fixed length (64, 96, 132 bytes), never DER (RFC 7518 §3.4).
    fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        use p384::ecdsa::signature::Verifier as _;
        match (self, alg) {
            (PublicKey::Rsa(_, Some(fast)), Alg::RS256) => {
                fast.verify(Hash::Sha256, message, signature)
            }
            (PublicKey::Rsa(_, Some(fast)), Alg::RS384) => {
                fast.verify(Hash::Sha384, message, signature)
            }
            (PublicKey::Rsa(_, Some(fast)), Alg::RS512) => {
                fast.verify(Hash::Sha512, message, signature)
            }
            (PublicKey::Rsa(_, Some(fast)), Alg::PS256) => {
                fast.verify_pss(Hash::Sha256, message, signature)
            }
            (PublicKey::Rsa(_, Some(fast)), Alg::PS384) => {
                fast.verify_pss(Hash::Sha384, message, signature)
            }
            (PublicKey::Rsa(_, Some(fast)), Alg::PS512) => {
                fast.verify_pss(Hash::Sha512, message, signature)
            }
            (PublicKey::Rsa(key, _), _) => {
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

/// What loading a document's entries gives: the usable keys, and a line for each skipped key
/// and each note.
#[derive(Default)]
struct Loaded {
    keys: Vec<Jwk>,
    skipped: Vec<String>,
    notes: Vec<String>,
}

impl Loaded {
    /// Takes the first `MAX_KEYS` of `total` entries, each a name for the log (`key 3 (kid
    /// "x")`) and the key or why not; says so when more were there (`what`: "keys").
    fn take(
        &mut self,
        total: usize,
        what: &str,
        entries: impl Iterator<Item = (String, Result<Parsed, String>)>,
    ) {
        if total > MAX_KEYS {
            self.skipped.push(format!(
                "{what} {MAX_KEYS}..{}: ignored, at most {MAX_KEYS} keys are read",
                total - 1
            ));
        }
        for (name, parsed) in entries.take(MAX_KEYS) {
            match parsed {
                Ok(Parsed { jwk, notes }) => {
                    self.keys.push(jwk);
                    self.notes
                        .extend(notes.into_iter().map(|note| format!("{name}: {note}")));
                }
                Err(reason) => self.skipped.push(format!("{name}: {reason}")),
            }
        }
    }
}

/// One usable key, and what about it is not conformant.
struct Parsed {
    jwk: Jwk,
    notes: Vec<String>,
}

/// The document as a JSON object, or where and why not. A comma right after a value and
/// before `]` or `}` is read as if it were not there (native's leniency); it is blanked, not
/// removed, so every error still points into the document as it arrived.
fn parse_document(bytes: &[u8]) -> Result<Map<String, Value>, JwksError> {
    let text = without_trailing_commas(bytes);
    match crate::jwt::parse_value(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => {
            let at = text
                .iter()
                .position(|b| !is_json_space(*b))
                .unwrap_or_default();
            let (line, column) = line_column(&text, at);
            let kind = match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            Err(JwksError::NotJson {
                line,
                column,
                reason: format!("the document is {kind}"),
            })
        }
        Err(error) => {
            let message = error.to_string();
            let suffix = format!(" at line {} column {}", error.line(), error.column());
            let reason = message.strip_suffix(&suffix).unwrap_or(&message);
            Err(JwksError::NotJson {
                line: error.line().max(1),
                column: error.column().max(1),
                reason: reason.to_owned(),
            })
        }
    }
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// 1-based line and column (in bytes) of offset `at`.
fn line_column(text: &[u8], at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or_default();
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
    (line, column)
}

/// `bytes` with every comma that follows a value and precedes `]` or `}` (whitespace between
/// allowed) replaced by a space. Commas inside strings, and commas after `[`, `{`, `:` or
/// another comma (`[,]`, `[1,,]`) stay, for the parser to refuse.
fn without_trailing_commas(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    // The last byte outside strings that was not whitespace (a closing quote counts).
    let mut last = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    last = Some(b'"');
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => {
                let next = bytes
                    .get(i + 1..)
                    .and_then(|rest| rest.iter().find(|b| !is_json_space(**b)));
                let after_value = last.is_some_and(|l| !matches!(l, b'[' | b'{' | b',' | b':'));
                if after_value && matches!(next, Some(b']' | b'}')) {
                    let buffer = out.get_or_insert_with(|| bytes.to_vec());
                    if let Some(comma) = buffer.get_mut(i) {
                        *comma = b' ';
                    }
                    continue;
                }
                last = Some(b',');
            }
            b if is_json_space(b) => {}
            b => last = Some(b),
        }
    }
    match out {
        Some(fixed) => Cow::Owned(fixed),
        None => Cow::Borrowed(bytes),
    }
}

/// The members of an object in Google's X.509 form, or `None` when it is not in that form:
/// at least one member, every name non-empty and every value a string with the shape of a
/// PEM certificate (native's test). Sorted by kid (object members have no order).
fn x509_form(doc: &Map<String, Value>) -> Option<Vec<(&str, &str)>> {
    let certificates: Option<Vec<(&str, &str)>> = doc
        .iter()
        .map(|(kid, value)| match value {
            Value::String(pem) if !kid.is_empty() && x509::looks_like_pem_certificate(pem) => {
                Some((kid.as_str(), pem.as_str()))
            }
            _ => None,
        })
        .collect();
    certificates.filter(|c| !c.is_empty())
}

/// The key of one certificate of the X.509 form, under `kid`. Its `alg` is left open, so the
/// key's type decides what it verifies (RSA: RS* and PS*; EC: its curve's ES*), as native does.
fn from_certificate(kid: &str, pem: &str) -> Result<Parsed, String> {
    let (key, spki) = match x509::public_key(pem)? {
        x509::CertKey::Rsa { n, e } => rsa_public(&n, &e)?,
        x509::CertKey::Ec { crv, point } => ec_public(crv, &point)?,
    };
    Ok(Parsed {
        jwk: Jwk {
            kid: Some(kid.to_owned()),
            alg: None,
            key,
            spki,
        },
        notes: Vec::new(),
    })
}

/// One JWK → a usable key, or why not.
fn parse_jwk(jwk: &Map<String, Value>) -> Result<Parsed, String> {
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
    let mut notes = Vec::new();
    let (key, spki) = match kty {
        "RSA" => rsa_public(&bytes("n")?, &bytes("e")?)?,
        // The curve first, so a key on a curve we lack says so rather than "`x` is missing".
        "EC" => {
            let crv = match (text("crv")?, alg) {
                (Some(crv), _) => crv,
                // RFC 7518 §6.2.1.1 requires `crv`; native takes it from `alg`, else P-256.
                (None, Some(alg)) => {
                    let crv = match alg {
                        Alg::ES256 => "P-256",
                        Alg::ES384 => "P-384",
                        Alg::ES512 => "P-521",
                        _ => return Err("`crv` is missing".into()),
                    };
                    notes.push(format!("`crv` is missing: {crv}, from `alg` {alg}"));
                    crv
                }
                (None, None) => {
                    notes.push("`crv` and `alg` are missing: P-256 (as native assumes)".into());
                    "P-256"
                }
            };
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                "P-521" => 66,
                other => return Err(format!("EC curve {} is not supported", quoted(other))),
            };
            let x = coordinate("x", bytes("x")?, size, crv, &mut notes)?;
            let y = coordinate("y", bytes("y")?, size, crv, &mut notes)?;
            ec_public(crv, &[&[4u8][..], &x, &y].concat())?
        }
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
                (PublicKey::Ed25519(key), None)
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
            (PublicKey::Oct(k), None)
        }
        other => return Err(format!("`kty` {} is not supported", quoted(other))),
    };
    if let Some(alg) = alg {
        if !key.can_do(alg) {
            return Err(format!("`alg` {alg} does not fit `kty` {kty}"));
        }
    }
    Ok(Parsed {
        jwk: Jwk {
            kid,
            alg,
            key,
            spki,
        },
        notes,
    })
}

/// An RSA key (checked by `rsa_key`), with its Montgomery constants and DER
/// SubjectPublicKeyInfo for the host.
fn rsa_public(n: &[u8], e: &[u8]) -> Result<(PublicKey, Option<Vec<u8>>), String> {
    let key = rsa_key(n, e)?;
    let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key)
        .ok()
        .map(|der| der.into_vec());
    let fast = RsaVerifier::new(&key);
    Ok((PublicKey::Rsa(key, fast), spki))
}

/// An EC key on `crv` from its SEC1 uncompressed point (`from_sec1_bytes` refuses points off
/// the curve and the identity), with its DER SubjectPublicKeyInfo for the host.
fn ec_public(crv: &str, point: &[u8]) -> Result<(PublicKey, Option<Vec<u8>>), String> {
    let off_curve = |_| format!("the point is not on {crv}");
    Ok(match crv {
        "P-256" => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(off_curve)?;
            let spki = ec_spki(32, point);
            (PublicKey::P256(key), spki)
        }
        "P-384" => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(off_curve)?;
            let spki = ec_spki(48, point);
            (PublicKey::P384(key), spki)
        }
        "P-521" => {
            let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(off_curve)?;
            let spki = ec_spki(66, point);
            (PublicKey::P521(Box::new(key)), spki)
        }
        other => return Err(format!("EC curve {} is not supported", quoted(other))),
    })
}

/// An EC coordinate of exactly `size` bytes. A shorter one (an encoder that dropped leading
/// zero bytes, as some do for P-521) is left-padded with zeros, as native reads it, and noted:
/// RFC 7518 §6.2.1.2 wants the full size. A longer one is refused.
fn coordinate(
    name: &str,
    bytes: Vec<u8>,
    size: usize,
    crv: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    if bytes.len() > size {
        return Err(format!(
            "`{name}` is {} bytes, more than the {size} of {crv}",
            bytes.len()
        ));
    }
    if bytes.len() < size {
        notes.push(format!(
            "`{name}` is {} bytes, left-padded to the {size} of {crv} (RFC 7518 wants exactly {size})",
            bytes.len()
        ));
        let mut padded = vec![0u8; size - bytes.len()];
        padded.extend_from_slice(&bytes);
        return Ok(padded);
    }
    Ok(bytes)
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<rsa::RsaPublicKey, String> {
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
    rsa::RsaPublicKey::new(n, e).map_err(|err| format!("RSA key refused: {err}"))
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

#[cfg(test)]
mod tests;
