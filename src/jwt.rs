//! Compact JWS → untrusted parts. No crypto and no trust: nothing here says a token is valid,
//! only that it is well formed. `verify` turns an `UntrustedJwt` into a `verify::Verified`.
//!
//! Strict where the RFCs are: unpadded base64url (RFC 7515 §2), JSON objects with unique member
//! names (RFC 7515 §5.2 lets us reject duplicates, and we do: two `exp` members must never mean
//! two different things to two parsers), `crit` honoured (we understand no extension, so any
//! `crit` is refused), registered claims of the registered types (RFC 7519 §4.1).

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::fmt;

use crate::error::AuthError;

/// The longest token we parse. Real tokens are far below (headers over 60 KiB are refused by
/// Envoy by default); anything longer is refused before any decoding work.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Unpadded base64url (RFC 7515 §2). Like Envoy (and most JOSE libraries), it accepts non-zero
/// bits after the last full byte: they carry no data, and the signature covers the text as sent.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// A JWS algorithm we implement. `none` and anything else is not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    pub const ALL: [Alg; 13] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The algorithm for a JOSE `alg` name; exact and case-sensitive (RFC 7518 §3.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The registered claims, typed. Times are whole seconds since the epoch; fractional
/// NumericDates are truncated toward negative infinity; negative ones and ones after
/// `MAX_NUMERIC_DATE` make the token malformed (`PayloadBadClaim`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
}

/// A syntactically valid compact JWS whose signature has not been checked. It owns its parts,
/// so a verified token can be kept (`token_cache`) and used again without parsing.
#[derive(Debug, Clone)]
pub struct UntrustedJwt {
    pub alg: Alg,
    pub kid: Option<String>,
    /// The JOSE header's `typ` member as sent (`None`: absent), for a provider's
    /// `allowed_typ` (`token_kind::AllowedTyp`).
    pub typ: Option<Value>,
    pub claims: Claims,
    /// Every payload member, for `claim_to_headers` and claim rules.
    pub payload: Map<String, Value>,
    /// `header.payload` as sent.
    signing_input: String,
    /// Where the payload starts in `signing_input`.
    payload_start: usize,
    pub signature: Vec<u8>,
}

impl UntrustedJwt {
    /// `header.payload`: the bytes the signature covers.
    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }

    /// The payload segment as sent (base64url, no padding): `forward_payload_header`'s value.
    pub fn payload_b64(&self) -> &str {
        self.signing_input.get(self.payload_start..).unwrap_or("")
    }
}

/// Splits and decodes a compact JWS. The checks run in Envoy's order, so the first failure is
/// the one `jwt_authn` would report.
pub fn parse(token: &str) -> Result<UntrustedJwt, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(AuthError::BadFormat);
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(AuthError::BadFormat);
    }
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(AuthError::BadFormat)?;

    let header_bytes = B64
        .decode(header_b64)
        .map_err(|_| AuthError::HeaderBadBase64)?;
    let header = parse_object(&header_bytes).ok_or(AuthError::HeaderBadJson)?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::from_name(name).ok_or(AuthError::HeaderUnsupportedAlg)?,
        _ => return Err(AuthError::HeaderBadAlg),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::HeaderBadKid),
    };
    let typ = header.get("typ").cloned();
    if header.contains_key("crit")
        || header
            .get("b64")
            .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err(AuthError::HeaderCritical);
    }

    let payload_bytes = B64
        .decode(payload_b64)
        .map_err(|_| AuthError::PayloadBadBase64)?;
    let payload = parse_object(&payload_bytes).ok_or(AuthError::PayloadBadJson)?;
    let claims = registered_claims(&payload).ok_or(AuthError::PayloadBadClaim)?;

    let signature = B64
        .decode(signature_b64)
        .map_err(|_| AuthError::SignatureBadBase64)?;
    if signature.is_empty() {
        return Err(AuthError::BadFormat);
    }

    Ok(UntrustedJwt {
        alg,
        kid,
        typ,
        claims,
        payload,
        signing_input: signing_input.to_owned(),
        payload_start: header_b64.len() + 1,
        signature,
    })
}

impl UntrustedJwt {
    /// The claims an authorization server gave for an opaque token (`verify::introspected`
    /// is the only caller), in the shape the claim checks and identity headers read. It has no
    /// JOSE header, no signature and no `payload_b64` (empty: `forward_payload_header` is
    /// refused at load for introspection providers); `alg` is a placeholder nothing reads, as
    /// no signature check ever runs on it and the verified-token cache never holds it.
    pub(crate) fn introspected(claims: Claims, payload: Map<String, Value>) -> UntrustedJwt {
        UntrustedJwt {
            alg: Alg::RS256,
            kid: None,
            typ: None,
            claims,
            payload,
            signing_input: String::new(),
            payload_start: 0,
            signature: Vec::new(),
        }
    }
}

/// The registered claims of a JSON object (a JWT payload, or an RFC 7662 introspection answer,
/// whose members are the same claims): `None` when one has the wrong type or a time is out of
/// range.
pub fn registered_claims(payload: &Map<String, Value>) -> Option<Claims> {
    let string = |name: &str| match payload.get(name) {
        None => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    let time = |name: &str| match payload.get(name) {
        None => Some(None),
        Some(Value::Number(n)) => numeric_date(n).map(Some),
        Some(_) => None,
    };
    let aud = match payload.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?,
        Some(_) => return None,
    };
    Some(Claims {
        iss: string("iss")?,
        sub: string("sub")?,
        aud,
        exp: time("exp")?,
        nbf: time("nbf")?,
        iat: time("iat")?,
    })
}

/// The latest NumericDate we accept: 9999-12-31T23:59:59Z. Beyond it a time claim is not a
/// date but a way to never expire (`exp: 1e300` would saturate).
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A NumericDate (RFC 7519 §2) as whole seconds, truncated toward negative infinity; `None`
/// (the claim is malformed) when it is negative (native `jwt_authn` refuses those too) or
/// after `MAX_NUMERIC_DATE`. JSON has no NaN or infinity, and serde_json refuses a number
/// that overflows an f64 (`1e400`), so every number here is finite.
fn numeric_date(n: &Number) -> Option<i64> {
    let seconds = match n.as_i64() {
        Some(i) => i,
        None if n.as_u64().is_some() => return None,
        None => {
            let f = n.as_f64()?.floor();
            if !(0.0..=MAX_NUMERIC_DATE as f64).contains(&f) {
                return None;
            }
            f as i64
        }
    };
    (0..=MAX_NUMERIC_DATE).contains(&seconds).then_some(seconds)
}

/// Parses a JSON object, refusing duplicate member names at any depth. serde_json's own
/// recursion limit (128) bounds nesting, so deep input is an error, never a stack overflow.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match parse_value(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Parses one JSON value under the same rules as [`parse_object`]; the error says what is
/// wrong and where (`line()`, `column()`).
pub fn parse_value(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unique>(bytes).map(|Unique(value)| value)
}

/// A `serde_json::Value` that fails to deserialize when an object repeats a key.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // One lookup per member: the entry both tells a repeated name and takes the value.
        while let Some(key) = access.next_key::<String>()? {
            match map.entry(key) {
                Entry::Occupied(member) => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate member `{}`",
                        member.key()
                    )));
                }
                Entry::Vacant(member) => {
                    let Unique(value) = access.next_value()?;
                    member.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests;
