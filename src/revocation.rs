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
//! - Memory and time: a listed value is kept as a 64-bit keyed fingerprint (one SipHash-1-3
//!   over the kind's tag and the value, under a random key drawn per list and per VM), never as
//!   text, all kinds in one hash table and the `issued_before` cutoffs in another: 100,000
//!   entries take about 1.3 MiB whatever the values' lengths, and a check is one hash per
//!   claim of a listed kind plus a constant-time lookup (`tests/revocation_memory.rs` measures
//!   both). A collision can only revoke a token that was not listed, never let a listed one
//!   through.
//! - Why 64 bits suffice: a claim that is not listed is taken for a listed one with chance
//!   n / 2^64 per lookup, 5.4e-15 at 100,000 entries: with four claims per request, one wrong
//!   401 in about 4.6e13 requests (146 years at 10,000 requests a second). Nobody can aim at
//!   it: the key is secret and random per VM and per list, so a value found to collide on one
//!   VM (only by being refused) collides nowhere else, and no longer after the next list. The
//!   128 bits before cost a second hash per claim and twice the table for a chance that was
//!   already negligible.
//! - Reading: [`RevocationList::parse`] reads the document as a stream (serde visitors over
//!   `serde_json::Deserializer`), each value hashed and inserted as it arrives, so the heap
//!   peaks near what the tables keep (1.8 MiB for 100,000 entries, where a `Value` tree of the
//!   document peaked at 12 MiB; a wasm VM's memory never shrinks below its peak). The tables
//!   grow by doubling (the array lengths are not known before the end); the last growth is
//!   the peak, and the final table has the size a reservation would have given. The stream
//!   takes only a document the strict read below would take; on anything else (a refusal of
//!   any kind) it gives up and the strict read of a `Value` tree decides, so every refusal and
//!   its order are those of `RevocationList::from_document`, at the old cost, for refused
//!   documents only.
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
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
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

    /// This kind's bit in `RevocationList::listed_kinds` / `cutoff_kinds`.
    fn bit(self) -> u8 {
        1 << (self.tag() - 1)
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

/// Hashes a fingerprint (already a keyed PRF output) as itself.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; this keeps any other input well spread anyway.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Fingerprints = HashSet<u64, BuildHasherDefault<Prehashed>>;
type Cutoffs = HashMap<u64, i64, BuildHasherDefault<Prehashed>>;

/// A list in force: fingerprints of the listed values and the `issued_before` cutoffs.
pub struct RevocationList {
    issued_at: i64,
    /// Every listed value of every kind (the kind is hashed with the value).
    listed: Fingerprints,
    /// `issued_before.sub` and `issued_before.client_id`, keyed like `listed`.
    cutoffs: Cutoffs,
    /// The kinds with a listed value, and those with an `issued_before` table (`Kind::bit`):
    /// a claim of any other kind is not even hashed.
    listed_kinds: u8,
    cutoff_kinds: u8,
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
        if let Some(list) = Self::stream(body) {
            return Ok(list);
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

    /// An empty list under a fresh key, before its document is read.
    fn empty() -> RevocationList {
        RevocationList {
            issued_at: 0,
            listed: Fingerprints::default(),
            cutoffs: Cutoffs::default(),
            listed_kinds: 0,
            cutoff_kinds: 0,
            everyone_before: 0,
            entries: 0,
            key: RandomState::new(),
        }
    }

    /// The streaming read (see the `//!`): the document straight into the tables, no tree.
    /// `None` for anything it does not take; `RevocationList::from_document` then decides.
    fn stream(body: &[u8]) -> Option<RevocationList> {
        let mut list = RevocationList::empty();
        let mut de = serde_json::Deserializer::from_slice(body);
        let issued_at = Document(&mut list).deserialize(&mut de).ok()??;
        de.end().ok()?;
        list.issued_at = issued_at;
        list.cutoffs.retain(|_, time| *time > 0);
        Some(list)
    }

    /// The strict read of a whole `Value` tree: what decides every refusal, and the order in
    /// which refusals are reported.
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
            ..RevocationList::empty()
        };
        for kind in Kind::ALL {
            let Some(values) = doc.get(kind.name()) else {
                continue;
            };
            let Value::Array(values) = values else {
                return Err(ListError::BadMember(kind.name()));
            };
            list.count(values.len())?;
            list.listed.reserve(values.len());
            for value in values {
                let value = listed_value(value).ok_or(ListError::BadMember(kind.name()))?;
                list.list(kind, value);
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
                    self.cutoffs.reserve(times.len());
                    for (who, time) in times {
                        let time = seconds(time).ok_or(ListError::BadMember(path))?;
                        if !valid_value(who) {
                            return Err(ListError::BadMember(path));
                        }
                        if time > 0 {
                            let fp = self.fingerprint(kind, who);
                            self.cutoffs.insert(fp, time);
                            self.cutoff_kinds |= kind.bit();
                        }
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

    fn list(&mut self, kind: Kind, value: &str) {
        let fp = self.fingerprint(kind, value);
        self.listed.insert(fp);
        self.listed_kinds |= kind.bit();
    }

    /// One SipHash-1-3 under the list's random key over the kind's tag and the value (`str`
    /// hashes its bytes and a 0xff terminator, so no two (kind, value) pairs share an input).
    fn fingerprint(&self, kind: Kind, value: &str) -> u64 {
        self.key.hash_one((kind.tag(), value))
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
        let mut cutoff = self.everyone_before;
        for kind in Kind::ALL {
            let listed = self.listed_kinds & kind.bit() != 0;
            let cut = self.cutoff_kinds & kind.bit() != 0;
            if !listed && !cut {
                continue;
            }
            let Some(Value::String(value)) = payload.get(kind.name()) else {
                continue;
            };
            let fp = self.fingerprint(kind, value);
            if listed && self.listed.contains(&fp) {
                return Err(Revoked::Listed(kind));
            }
            if !cut {
                continue;
            }
            if let Some(time) = self.cutoffs.get(&fp) {
                cutoff = cutoff.max(*time);
            }
        }
        match token.claims().iat {
            _ if cutoff == 0 => Ok(()),
            Some(iat) if iat >= cutoff => Ok(()),
            _ => Err(Revoked::IssuedBefore),
        }
    }
}

/// The streaming read's error: it only says "not taken" (`from_document` says why).
fn not_taken<E: de::Error>() -> E {
    E::custom("not taken by the streaming read")
}

/// The top level of the document: members in any order, each at most once; the tables are
/// filled as the values arrive. Yields `issued_at`, `None` when it is missing.
struct Document<'a>(&'a mut RevocationList);

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a revocation list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<i64>, A::Error> {
        let list = self.0;
        let mut seen = 0u8;
        let mut issued_at = None;
        while let Some(member) = map.next_key::<Member>()? {
            let bit = member.bit();
            if seen & bit != 0 {
                return Err(not_taken());
            }
            seen |= bit;
            match member {
                Member::IssuedAt => issued_at = Some(map.next_value::<Seconds>()?.0),
                Member::Listed(kind) => map.next_value_seed(Values {
                    list: &mut *list,
                    kind,
                })?,
                Member::IssuedBefore => map.next_value_seed(Before(&mut *list))?,
            }
        }
        Ok(issued_at)
    }
}

/// A member name, top level.
enum Member {
    IssuedAt,
    IssuedBefore,
    Listed(Kind),
}

impl Member {
    fn bit(&self) -> u8 {
        match self {
            Member::IssuedAt => 1 << 4,
            Member::IssuedBefore => 1 << 5,
            Member::Listed(kind) => kind.bit(),
        }
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Member, D::Error> {
        d.deserialize_str(MemberName)
    }
}

struct MemberName;

impl Visitor<'_> for MemberName {
    type Value = Member;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member of a revocation list")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
        match name {
            "issued_at" => Ok(Member::IssuedAt),
            "issued_before" => Ok(Member::IssuedBefore),
            _ => Kind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .map(Member::Listed)
                .ok_or_else(not_taken),
        }
    }
}

/// A whole-second NumericDate (`seconds`): a JSON integer in range.
struct Seconds(i64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
        d.deserialize_any(SecondsVisitor)
    }
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = Seconds;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whole seconds")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
        (0..=jwt::MAX_NUMERIC_DATE)
            .contains(&v)
            .then_some(Seconds(v))
            .ok_or_else(not_taken)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
        i64::try_from(v)
            .map_err(|_| not_taken())
            .and_then(|v| self.visit_i64(v))
    }
}

/// `jti`, `sub`, `client_id` or `sid`: an array of values, each counted and listed as read.
struct Values<'a> {
    list: &'a mut RevocationList,
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for Values<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Values<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let kind = self.kind;
        while let Some(value) = seq.next_element_seed(Fingerprint(self.list, kind))? {
            self.list.count(1).map_err(|_| not_taken())?;
            self.list.listed.insert(value);
            self.list.listed_kinds |= kind.bit();
        }
        Ok(())
    }
}

/// One value (a listed string, or a name under `issued_before.sub`): its fingerprint.
struct Fingerprint<'a>(&'a RevocationList, Kind);

impl<'de> DeserializeSeed<'de> for Fingerprint<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Fingerprint<'_> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a listed value")
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        if !valid_value(value) {
            return Err(not_taken());
        }
        Ok(self.0.fingerprint(self.1, value))
    }
}

/// `issued_before`: `"*"`, `sub` and `client_id`, each at most once.
struct Before<'a>(&'a mut RevocationList);

impl<'de> DeserializeSeed<'de> for Before<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Before<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("issued_before")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let list = self.0;
        let mut everyone = false;
        while let Some(member) = map.next_key::<BeforeMember>()? {
            match member {
                BeforeMember::Everyone if !everyone => {
                    everyone = true;
                    list.count(1).map_err(|_| not_taken())?;
                    list.everyone_before = map.next_value::<Seconds>()?.0;
                }
                BeforeMember::Of(kind) if list.cutoff_kinds & kind.bit() == 0 => {
                    // Marked before reading, so a repeated member is seen even when empty.
                    list.cutoff_kinds |= kind.bit();
                    map.next_value_seed(Times {
                        list: &mut *list,
                        kind,
                    })?;
                }
                _ => return Err(not_taken()),
            }
        }
        Ok(())
    }
}

enum BeforeMember {
    Everyone,
    Of(Kind),
}

impl<'de> Deserialize<'de> for BeforeMember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BeforeMember, D::Error> {
        d.deserialize_str(BeforeName)
    }
}

struct BeforeName;

impl Visitor<'_> for BeforeName {
    type Value = BeforeMember;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member of issued_before")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<BeforeMember, E> {
        match name {
            "*" => Ok(BeforeMember::Everyone),
            "sub" => Ok(BeforeMember::Of(Kind::Sub)),
            "client_id" => Ok(BeforeMember::Of(Kind::ClientId)),
            _ => Err(not_taken()),
        }
    }
}

/// `issued_before.sub` or `issued_before.client_id`: names to cutoffs, each name once (a
/// repeated name finds its fingerprint taken; so would a fingerprint collision, which the
/// strict read then takes). Zero cutoffs are kept until the end, so a repeat is still seen.
struct Times<'a> {
    list: &'a mut RevocationList,
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for Times<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Times<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("names and cutoffs")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(fp) = map.next_key_seed(Fingerprint(self.list, self.kind))? {
            let Seconds(time) = map.next_value()?;
            self.list.count(1).map_err(|_| not_taken())?;
            if self.list.cutoffs.insert(fp, time).is_some() {
                return Err(not_taken());
            }
        }
        Ok(())
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
