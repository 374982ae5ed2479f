//! Revocation lists (issue 15): the document an identity team publishes, read strictly, and the
//! check of a verified token against it. Pure: the host module fetches the list (as a
//! resource, like a key set), and the request path calls [`RevocationList::check`] after the
//! signature, issuer, time and audience checks.
//!
//! The document (README, "Revocation"):
//! ```json
//! { "issued_at": 1764601234,
//!   "jti": ["8f14e45f"], "sub": ["mallory"], "client_id": ["retired-service"], "sid": ["s-1"],
//!   "issued_before": { "*": 0, "sub": { "alice": 1764600000 }, "client_id": { "batch": 1764500000 } } }
//! ```
//! - `issued_at` is required (a NumericDate, whole seconds); every other member is optional;
//!   any member not named here is refused, at the top and inside `issued_before`: a misspelt
//!   `"jtis"` must fail the fetch, not silently revoke nothing.
//! - Values are non-empty strings of at most [`MAX_VALUE_BYTES`]; cutoffs are whole seconds,
//!   0 meaning no cutoff. At most [`MAX_ENTRIES`] values and cutoffs in all, in a body of at
//!   most [`MAX_BODY_BYTES`]; repeated members are refused at any depth.
//! - Memory and time: a listed value is kept as a 128-bit keyed fingerprint (SipHash-1-3 under
//!   the VM's random key, twice with domain separation), never as text, in one hash table per
//!   kind: 100,000 entries take about 2.2 MiB whatever the values' lengths, and a check is a
//!   few hashes of the token's own claims plus constant-time lookups (`tests/revocation_memory.rs`
//!   measures both). A fingerprint collision can only revoke a token that was not listed
//!   (chance about n / 2^128), never let a listed one through.
//! - [`RevocationList::may_replace`]: a list never replaces a newer one (no rollback, signed or
//!   not) and an `issued_at` more than [`MAX_FUTURE_SECONDS`] ahead of the host clock is
//!   refused (it would block every later list).
//! - Signed lists ([`RevocationList::parse_signed`]): a compact JWS over the document, checked by
//!   a caller-supplied function (the provider's key set); `crit` is refused as in `jwt`.
//! - [`fetch`]: when the list is fetched, what a response means, which list is in force.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::jwt::{self, Alg};
use crate::verify::Verified;

/// The largest list body fetched (JSON or JWS).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Values and cutoffs in all, per list.
pub const MAX_ENTRIES: usize = 100_000;

/// The longest listed value (a `jti`, `sub`, `client_id` or `sid`).
pub const MAX_VALUE_BYTES: usize = 1024;

/// How far ahead of the host clock a list's `issued_at` may be.
pub const MAX_FUTURE_SECONDS: i64 = 300;

/// The claims a list names, each a separate space of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Jti,
    Sub,
    ClientId,
    Sid,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Jti, Kind::Sub, Kind::ClientId, Kind::Sid];

    /// The member of the list, and the claim of the token.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Jti => "jti",
            Kind::Sub => "sub",
            Kind::ClientId => "client_id",
            Kind::Sid => "sid",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Kind::Jti => 1,
            Kind::Sub => 2,
            Kind::ClientId => 3,
            Kind::Sid => 4,
        }
    }

    fn index(self) -> usize {
        usize::from(self.tag() - 1)
    }
}

/// Why a token is revoked: what the log line and the stats may say (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its `jti`, `sub`, `client_id` or `sid` is listed.
    Listed(Kind),
    /// Its `iat` is before a cutoff for its `sub`, its `client_id` or everyone, or it has no
    /// `iat` while such a cutoff applies (fail closed).
    IssuedBefore,
}

/// Why a list body was not taken: a failed fetch (the last good list stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    TooLarge,
    /// Not a JSON object, or a repeated member.
    NotJson,
    /// No `issued_at`.
    MissingIssuedAt,
    /// A member not in the format (its name, sanitised and shortened).
    UnknownMember(String),
    /// A member of the wrong type or out of range: its path (`jti`, `issued_before.sub`).
    BadMember(&'static str),
    TooManyEntries,
    /// `require_signed` and the body is not a compact JWS, or its header is unusable.
    NotSigned,
    /// The signature does not verify with the provider's keys.
    BadSignature,
    /// Older than the list in use.
    Older {
        current: i64,
        candidate: i64,
    },
    /// `issued_at` more than `MAX_FUTURE_SECONDS` ahead of now.
    FromTheFuture {
        issued_at: i64,
        now: i64,
    },
}

impl ListError {
    /// The stat-name segment (`revocation_fetch_failed.<reason>`).
    pub fn reason(&self) -> &'static str {
        match self {
            ListError::TooLarge => "too_large",
            ListError::NotJson => "not_json",
            ListError::MissingIssuedAt | ListError::UnknownMember(_) | ListError::BadMember(_) => {
                "bad_list"
            }
            ListError::TooManyEntries => "too_many_entries",
            ListError::NotSigned => "not_signed",
            ListError::BadSignature => "bad_signature",
            ListError::Older { .. } => "older",
            ListError::FromTheFuture { .. } => "future",
        }
    }
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::TooLarge => write!(f, "list is larger than {MAX_BODY_BYTES} bytes"),
            ListError::NotJson => f.write_str("list is not a JSON object (or repeats a member)"),
            ListError::MissingIssuedAt => f.write_str("list has no `issued_at`"),
            ListError::UnknownMember(name) => write!(f, "list has an unknown member `{name}`"),
            ListError::BadMember(path) => write!(f, "list member `{path}` is not valid"),
            ListError::TooManyEntries => write!(f, "list has more than {MAX_ENTRIES} entries"),
            ListError::NotSigned => f.write_str("list is not a compact JWS we can check"),
            ListError::BadSignature => f.write_str("list signature does not verify"),
            ListError::Older { current, candidate } => write!(
                f,
                "list issued_at {candidate} is older than the list in use ({current})"
            ),
            ListError::FromTheFuture { issued_at, now } => write!(
                f,
                "list issued_at {issued_at} is more than {MAX_FUTURE_SECONDS}s after now ({now})"
            ),
        }
    }
}

/// Hashes a fingerprint (already a keyed PRF output) by taking its low 64 bits.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; this keeps any other input well spread anyway.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Fingerprints = HashSet<u128, BuildHasherDefault<Prehashed>>;
type Cutoffs = HashMap<u128, i64, BuildHasherDefault<Prehashed>>;

/// A list in force: fingerprints of the listed values and the `issued_before` cutoffs.
pub struct RevocationList {
    issued_at: i64,
    /// Indexed by `Kind::index`.
    listed: [Fingerprints; 4],
    /// `issued_before.sub` and `issued_before.client_id`, keyed like `listed`.
    sub_cutoffs: Cutoffs,
    client_cutoffs: Cutoffs,
    /// `issued_before["*"]`; 0: none.
    everyone_before: i64,
    entries: usize,
    key: RandomState,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("issued_at", &self.issued_at)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// Unpadded base64url, as in `jwt`.
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

impl RevocationList {
    /// Reads an unsigned list document.
    pub fn parse(body: &[u8]) -> Result<RevocationList, ListError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ListError::TooLarge);
        }
        let doc = jwt::parse_object(body).ok_or(ListError::NotJson)?;
        Self::from_document(&doc)
    }

    /// Reads a signed list: a compact JWS (`application/jwt`) whose payload is the document.
    /// `verify(alg, kid, signing_input, signature)` says whether the provider's keys accept
    /// the signature (`jwks::KeySet::verify`). One trailing newline is tolerated (a file
    /// served as is); nothing else around the JWS.
    pub fn parse_signed(
        body: &[u8],
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
    ) -> Result<RevocationList, ListError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ListError::TooLarge);
        }
        let body = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"))
            .unwrap_or(body);
        let text = std::str::from_utf8(body).map_err(|_| ListError::NotSigned)?;
        let mut parts = text.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ListError::NotSigned);
        };
        let header = B64
            .decode(header_b64)
            .ok()
            .and_then(|h| jwt::parse_object(&h))
            .ok_or(ListError::NotSigned)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Alg::from_name)
            .ok_or(ListError::NotSigned)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(ListError::NotSigned),
        };
        if header.contains_key("crit") || header.contains_key("b64") {
            return Err(ListError::NotSigned);
        }
        let signature = B64
            .decode(signature_b64)
            .map_err(|_| ListError::NotSigned)?;
        let signing_input = text
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or(ListError::NotSigned)?;
        if signature.is_empty() || !verify(alg, kid, signing_input.as_bytes(), &signature) {
            return Err(ListError::BadSignature);
        }
        // Only a verified payload is read.
        let payload = B64.decode(payload_b64).map_err(|_| ListError::NotJson)?;
        Self::parse(&payload)
    }

    fn from_document(doc: &Map<String, Value>) -> Result<RevocationList, ListError> {
        for name in doc.keys() {
            let known = name == "issued_at"
                || name == "issued_before"
                || Kind::ALL.iter().any(|k| k.name() == name);
            if !known {
                return Err(ListError::UnknownMember(shown(name)));
            }
        }
        let issued_at = match doc.get("issued_at") {
            None => return Err(ListError::MissingIssuedAt),
            Some(v) => seconds(v).ok_or(ListError::BadMember("issued_at"))?,
        };
        let mut list = RevocationList {
            issued_at,
            listed: Default::default(),
            sub_cutoffs: Cutoffs::default(),
            client_cutoffs: Cutoffs::default(),
            everyone_before: 0,
            entries: 0,
            key: RandomState::new(),
        };
        for kind in Kind::ALL {
            let Some(values) = doc.get(kind.name()) else {
                continue;
            };
            let Value::Array(values) = values else {
                return Err(ListError::BadMember(kind.name()));
            };
            list.count(values.len())?;
            let mut set = Fingerprints::with_capacity_and_hasher(values.len(), Default::default());
            for value in values {
                let value = listed_value(value).ok_or(ListError::BadMember(kind.name()))?;
                set.insert(list.fingerprint(kind, value));
            }
            if let Some(slot) = list.listed.get_mut(kind.index()) {
                *slot = set;
            }
        }
        if let Some(before) = doc.get("issued_before") {
            list.read_cutoffs(before)?;
        }
        Ok(list)
    }

    fn read_cutoffs(&mut self, before: &Value) -> Result<(), ListError> {
        let Value::Object(before) = before else {
            return Err(ListError::BadMember("issued_before"));
        };
        for (name, value) in before {
            match name.as_str() {
                "*" => {
                    self.count(1)?;
                    self.everyone_before =
                        seconds(value).ok_or(ListError::BadMember("issued_before.*"))?;
                }
                "sub" | "client_id" => {
                    let (kind, path) = if name == "sub" {
                        (Kind::Sub, "issued_before.sub")
                    } else {
                        (Kind::ClientId, "issued_before.client_id")
                    };
                    let Value::Object(times) = value else {
                        return Err(ListError::BadMember(path));
                    };
                    self.count(times.len())?;
                    let mut cutoffs =
                        Cutoffs::with_capacity_and_hasher(times.len(), Default::default());
                    for (who, time) in times {
                        let time = seconds(time).ok_or(ListError::BadMember(path))?;
                        if !valid_value(who) {
                            return Err(ListError::BadMember(path));
                        }
                        if time > 0 {
                            cutoffs.insert(self.fingerprint(kind, who), time);
                        }
                    }
                    match kind {
                        Kind::Sub => self.sub_cutoffs = cutoffs,
                        _ => self.client_cutoffs = cutoffs,
                    }
                }
                other => {
                    return Err(ListError::UnknownMember(format!(
                        "issued_before.{}",
                        shown(other)
                    )))
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, n: usize) -> Result<(), ListError> {
        self.entries = self.entries.saturating_add(n);
        if self.entries > MAX_ENTRIES {
            return Err(ListError::TooManyEntries);
        }
        Ok(())
    }

    fn fingerprint(&self, kind: Kind, value: &str) -> u128 {
        let high = self.key.hash_one((kind.tag(), 0u8, value));
        let low = self.key.hash_one((kind.tag(), 1u8, value));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// When the list was made (its `issued_at`).
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// Values and cutoffs as the document counted them (the `revocation_entries` gauge).
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Whether this list may take the place of `current` at `now`: never an older one, never
    /// one from more than `MAX_FUTURE_SECONDS` ahead. The same `issued_at` is taken (a list
    /// fetched again, or republished without a new time).
    pub fn may_replace(&self, current: Option<&RevocationList>, now: i64) -> Result<(), ListError> {
        if self.issued_at > now.saturating_add(MAX_FUTURE_SECONDS) {
            return Err(ListError::FromTheFuture {
                issued_at: self.issued_at,
                now,
            });
        }
        match current {
            Some(current) if self.issued_at < current.issued_at => Err(ListError::Older {
                current: current.issued_at,
                candidate: self.issued_at,
            }),
            _ => Ok(()),
        }
    }

    /// Checks a verified token: its payload's claims and its `iat` (`jwt::Claims::iat`,
    /// already range-checked). A claim that is not a string is never listed (it cannot equal a
    /// string); a missing `iat` under a cutoff is revoked.
    pub fn check(&self, token: &Verified) -> Result<(), Revoked> {
        let payload = token.payload();
        let iat = token.claims().iat;
        let mut sub = None;
        let mut client_id = None;
        for kind in Kind::ALL {
            let Some(Value::String(value)) = payload.get(kind.name()) else {
                continue;
            };
            let wanted = match kind {
                Kind::Sub => !self.sub_cutoffs.is_empty(),
                Kind::ClientId => !self.client_cutoffs.is_empty(),
                _ => false,
            };
            let listed = self.listed.get(kind.index()).filter(|s| !s.is_empty());
            if listed.is_none() && !wanted {
                continue;
            }
            let fp = self.fingerprint(kind, value);
            if listed.is_some_and(|set| set.contains(&fp)) {
                return Err(Revoked::Listed(kind));
            }
            match kind {
                Kind::Sub => sub = Some(fp),
                Kind::ClientId => client_id = Some(fp),
                _ => {}
            }
        }
        let cutoff = [
            sub.and_then(|fp| self.sub_cutoffs.get(&fp)),
            client_id.and_then(|fp| self.client_cutoffs.get(&fp)),
        ]
        .into_iter()
        .flatten()
        .copied()
        .fold(self.everyone_before, i64::max);
        match iat {
            _ if cutoff == 0 => Ok(()),
            Some(iat) if iat >= cutoff => Ok(()),
            _ => Err(Revoked::IssuedBefore),
        }
    }
}

/// A whole-second NumericDate in `jwt`'s range: a JSON integer, no fraction.
fn seconds(v: &Value) -> Option<i64> {
    v.as_i64()
        .filter(|s| (0..=jwt::MAX_NUMERIC_DATE).contains(s))
}

fn listed_value(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| valid_value(s))
}

fn valid_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VALUE_BYTES
}

/// A member name for an error message: printable ASCII, at most 64 characters.
fn shown(name: &str) -> String {
    name.chars()
        .filter(|c| matches!(c, ' '..='~'))
        .take(64)
        .collect()
}

pub mod fetch;

#[cfg(test)]
mod tests;
