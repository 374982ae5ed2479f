//! Who is on the other end of the mTLS connection (issue 17 §1, §4): principal patterns as
//! Istio writes them, and RFC 8705 certificate binding. Pure: the host module reads the Envoy
//! properties (`connection.uri_san_peer_certificate`,
//! `connection.sha256_peer_certificate_digest`) and gives their bytes here.
//!
//! - A peer's principal is its certificate's URI SAN when that is a SPIFFE ID
//!   (`spiffe://<trust domain>/<path>`, the SPIFFE ID spec: lower-case trust domain of
//!   `a-z 0-9 . - _`, non-empty path segments of `A-Z a-z 0-9 . - _`, no `.` or `..`, no
//!   percent-encoding, query or fragment). Anything else is no principal: a `*/sa/frontend`
//!   pattern must never match `https://evil.example/sa/frontend`.
//! - Patterns ([`PrincipalPattern`]) are Istio's `principals`: exact, `prefix*`, `*suffix`,
//!   or `*` (any principal, but there must be one). Both `spiffe://cluster.local/ns/x/sa/y`
//!   and Istio's `cluster.local/ns/x/sa/y` are accepted and mean the same.
//! - Thumbprints ([`Thumbprint`]): the SHA-256 of the DER certificate (RFC 8705 §3.1), as
//!   Envoy's lower-case hex ([`Thumbprint::from_hex`]), from the certificate's DER or PEM, or
//!   as a token's `cnf["x5t#S256"]` names it; compared in constant time. A verified token's
//!   binding check is `binding`.
//! - The connection facts ([`PeerFacts`]) are an input of every decision: what the host said
//!   about the peer's URI SAN and certificate digest, where "absent" (no certificate, plain
//!   text) and "could not be read" stay apart. Unread is unreadable: a configuration that
//!   needs a fact the glue did not read refuses the request, it never sees "no peer".

use base64::alphabet::{STANDARD, URL_SAFE};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// `spiffe://`, the scheme of a SPIFFE ID.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// The longest SPIFFE ID (the spec: 2048 bytes).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;

/// A SPIFFE ID without its scheme (`cluster.local/ns/shop/sa/frontend`), as Istio writes
/// principals; `None` when `uri` is not a SPIFFE ID.
pub fn principal(uri: &[u8]) -> Option<&str> {
    let uri = std::str::from_utf8(uri).ok()?;
    if uri.len() > MAX_SPIFFE_ID_BYTES {
        return None;
    }
    let rest = uri.strip_prefix(SPIFFE_SCHEME)?;
    valid_spiffe_rest(rest).then_some(rest)
}

/// `<trust domain>` or `<trust domain>/<segment>/...` of a SPIFFE ID.
fn valid_spiffe_rest(rest: &str) -> bool {
    let mut parts = rest.split('/');
    let domain = parts.next().unwrap_or("");
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'));
    domain_ok
        && parts.all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// The host could not give a connection property (a failed host call, or it was not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// One connection property as the host gave it: `Ok(None)` when the connection has none (no
/// client certificate, plain text), `Err` when it could not be read.
pub type Fact = Result<Option<Vec<u8>>, Unreadable>;

/// What the host says about the downstream peer of one request. Both facts default to
/// `Err(Unreadable)`: the glue reads those the configuration needs (`Config::peer_reads`),
/// and a fact that was needed but not read refuses the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    /// `connection.uri_san_peer_certificate`: the first URI SAN of the verified client
    /// certificate.
    pub uri_san: Fact,
    /// `connection.sha256_peer_certificate_digest`: lower-case hex of the SHA-256 of the
    /// client certificate's DER.
    pub digest: Fact,
}

impl Default for PeerFacts {
    fn default() -> Self {
        PeerFacts {
            uri_san: Err(Unreadable),
            digest: Err(Unreadable),
        }
    }
}

/// Envoy's property for [`PeerFacts::uri_san`]: a string, the first URI SAN of the peer
/// certificate; NotFound on a plain-text connection, without a client certificate, or when the
/// certificate has no URI SAN (Envoy 1.40, `filters/common/expr/context.cc`).
pub const URI_SAN_PROPERTY: [&str; 2] = ["connection", "uri_san_peer_certificate"];

/// Envoy's property for [`PeerFacts::digest`]: a string, the lower-case hex SHA-256 of the
/// peer certificate's DER; NotFound when there is no client certificate.
pub const DIGEST_PROPERTY: [&str; 2] = ["connection", "sha256_peer_certificate_digest"];

impl PeerFacts {
    /// Reads the facts a configuration needs (`uri_san`, `digest`: `Config::peer_reads`)
    /// through `get`, one host property read: `Ok(Some(value))`, `Ok(None)` when the host
    /// says the property is absent (NotFound), `Err` for any other host status. Absent is "no
    /// certificate"; a failed read is unreadable, and so is a fact not needed (never read).
    pub fn read<E>(
        uri_san: bool,
        digest: bool,
        mut get: impl FnMut(&[&str]) -> Result<Option<Vec<u8>>, E>,
    ) -> PeerFacts {
        let mut fact = |needed: bool, path: &[&str]| -> Fact {
            if needed {
                get(path).map_err(|_| Unreadable)
            } else {
                Err(Unreadable)
            }
        };
        PeerFacts {
            uri_san: fact(uri_san, &URI_SAN_PROPERTY),
            digest: fact(digest, &DIGEST_PROPERTY),
        }
    }

    /// A connection without a client certificate (or in plain text): both facts absent.
    pub fn none() -> PeerFacts {
        PeerFacts {
            uri_san: Ok(None),
            digest: Ok(None),
        }
    }

    /// The peer's SPIFFE ID as sent (`spiffe://cluster.local/ns/shop/sa/frontend`): `Ok(None)`
    /// when there is no URI SAN or it is not a SPIFFE ID.
    pub fn spiffe_id(&self) -> Result<Option<&str>, Unreadable> {
        let uri = self.uri_san.as_ref().map_err(|e| *e)?;
        Ok(uri
            .as_deref()
            .filter(|u| principal(u).is_some())
            .and_then(|u| std::str::from_utf8(u).ok()))
    }

    /// The certificate's thumbprint: `Ok(None)` without a certificate; a digest that is not
    /// 64 hex digits is unreadable, never "no certificate".
    pub fn thumbprint(&self) -> Result<Option<Thumbprint>, Unreadable> {
        match &self.digest {
            Err(e) => Err(*e),
            Ok(None) => Ok(None),
            Ok(Some(hex)) => Thumbprint::from_hex(hex).map(Some).ok_or(Unreadable),
        }
    }
}

/// One entry of a `peer.principals` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// `*`: any peer with a principal.
    Any,
}

impl PrincipalPattern {
    /// Reads a configured pattern; the error says why (for the config error naming the field).
    pub fn parse(pattern: &str) -> Result<PrincipalPattern, String> {
        let stars = pattern.matches('*').count();
        let body = |s: &str| s.strip_prefix(SPIFFE_SCHEME).unwrap_or(s).to_owned();
        let parsed = match stars {
            0 => PrincipalPattern::Exact(body(pattern)),
            1 if pattern == "*" => PrincipalPattern::Any,
            1 => match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
                (Some(suffix), _) => PrincipalPattern::Suffix(suffix.to_owned()),
                (None, Some(prefix)) => PrincipalPattern::Prefix(body(prefix)),
                (None, None) => {
                    return Err(format!(
                        "`{pattern}`: `*` may only start or end a principal pattern"
                    ))
                }
            },
            _ => {
                return Err(format!(
                    "`{pattern}`: at most one `*` in a principal pattern"
                ))
            }
        };
        let text = match &parsed {
            PrincipalPattern::Exact(s) | PrincipalPattern::Prefix(s) => s,
            PrincipalPattern::Suffix(s) => s,
            PrincipalPattern::Any => return Ok(parsed),
        };
        if text.is_empty() {
            return Err(format!("`{pattern}`: empty principal pattern"));
        }
        if let PrincipalPattern::Exact(s) = &parsed {
            if !valid_spiffe_rest(s) {
                return Err(format!(
                    "`{pattern}`: not a SPIFFE ID (`spiffe://<trust domain>/<path>` or \
                     `<trust domain>/<path>`)"
                ));
            }
        }
        Ok(parsed)
    }

    /// Whether `principal` (from [`principal`]) fits.
    pub fn matches(&self, principal: &str) -> bool {
        match self {
            PrincipalPattern::Exact(s) => principal == s,
            PrincipalPattern::Prefix(s) => principal.starts_with(s.as_str()),
            PrincipalPattern::Suffix(s) => principal.ends_with(s.as_str()),
            PrincipalPattern::Any => true,
        }
    }
}

/// Whether the peer whose URI SAN is `uri_san` (`None`: no certificate, or plain text) fits
/// any of `patterns`.
pub fn peer_allowed(patterns: &[PrincipalPattern], uri_san: Option<&[u8]>) -> bool {
    uri_san
        .and_then(principal)
        .is_some_and(|p| patterns.iter().any(|pattern| pattern.matches(p)))
}

/// The SHA-256 of a DER certificate (RFC 8705 §3.1 `x5t#S256`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Thumbprint([u8; 32]);

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "Thumbprint({hex})")
    }
}

/// Unpadded base64url. Non-zero bits after the last byte are accepted, as `jwt` accepts them:
/// RFC 8705's own example thumbprint (`...jdN-dg2`) has them, and the token's signature covers
/// the text as sent.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);
const B64STD: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

impl Thumbprint {
    /// Envoy's `connection.sha256_peer_certificate_digest`: 64 hex digits (lower-case as
    /// Envoy writes them; upper-case taken too). Anything else is no thumbprint.
    pub fn from_hex(hex: &[u8]) -> Option<Thumbprint> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
                return None;
            };
            *byte = u8::try_from(digit(hi)? * 16 + digit(lo)?).ok()?;
        }
        Some(Thumbprint(out))
    }

    pub fn of_der(der: &[u8]) -> Thumbprint {
        Thumbprint(Sha256::digest(der).into())
    }

    /// The first `CERTIFICATE` block of a PEM text (Envoy's URL-decoded
    /// `%DOWNSTREAM_PEER_CERT%`); `None` when there is none or it does not decode.
    pub fn of_pem(pem: &[u8]) -> Option<Thumbprint> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let text = std::str::from_utf8(pem).ok()?;
        let start = text.find(BEGIN)? + BEGIN.len();
        let rest = text.get(start..)?;
        let body = rest.get(..rest.find(END)?)?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = B64STD.decode(b64).ok()?;
        (!der.is_empty()).then(|| Thumbprint::of_der(&der))
    }

    /// The unpadded base64url form a token's `cnf["x5t#S256"]` carries.
    pub fn to_b64url(self) -> String {
        B64URL.encode(self.0)
    }

    /// The thumbprint a token's `cnf["x5t#S256"]` names: the unpadded base64url of 32 bytes,
    /// else `None`.
    pub fn from_b64url(text: &str) -> Option<Thumbprint> {
        let bytes: [u8; 32] = B64URL.decode(text).ok()?.try_into().ok()?;
        Some(Thumbprint(bytes))
    }

    /// Equality in time independent of where the bytes differ.
    pub fn ct_eq(&self, other: &Thumbprint) -> bool {
        let other = &other.0;
        let diff = self
            .0
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests;
