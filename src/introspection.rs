//! Opaque access tokens (issue 14): what an RFC 7662 introspection answer says, how long the
//! filter may remember it, and the key it is remembered under. Pure: the host module sends the
//! request (`oauth::introspection_request`) and gives the answer's status and body here.
//!
//! - Decide on the bytes ([`read_response`]): the answer must be `200`, at most
//!   `oauth::MAX_RESPONSE_BYTES`, a JSON object without repeated members, and `active` must be
//!   the JSON boolean. `"active": "true"`, a missing `active`, HTML, an empty body: errors
//!   (`introspection_unavailable`), never "inactive" and never "active".
//! - An active answer's members are the token's claims, typed as RFC 7662 §2.2 says: `scope`,
//!   `client_id`, `username`, `token_type`, `jti` strings; `iss`, `sub` strings; `aud` a
//!   string or an array of strings; `exp`, `iat`, `nbf` NumericDates with `jwt`'s bounds. A
//!   member of the wrong type makes the answer unusable, as a JWT claim of the wrong type
//!   makes the token malformed.
//! - [`CachePolicy`]: a positive answer lives `min(cache_duration, exp − now)` and never past
//!   `exp` (RFC 7662 §4), may serve `stale_if_error` longer while the server fails (still never
//!   past `exp`); a negative one lives `negative_cache_duration`; `cache_duration` 0 disables
//!   the cache; errors are never cached.
//! - [`TokenKeyer`]: the cache key is HMAC-SHA-256 of (provider, token) under a key the VM
//!   draws at start, so the cache holds no token text, and its keys say nothing about the
//!   tokens to whoever sees them.
//! - What a decision needs ([`Answers`]): the answers known for this request, by key. A token
//!   with none is a [`Needed`] lookup (key and ready callout), which the engine hands back
//!   for the instance core to ask, as it hands back a `Wait` for keys (in the decide loop,
//!   `parked::Deciding::needed`; outside it, `engine::decide_introspecting`); the per-VM table
//!   is [`cache::IntrospectionCache`].
//! - [`is_b64token`]: the syntax (RFC 6750 §2.1) and size a token must have before any callout.

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::config::ProviderId;
use crate::jwt::{self, Claims};
use crate::oauth::{self, CalloutRequest, Unavailable};

pub mod cache;

/// Whether `token` may be sent to an authorization server: an RFC 6750 §2.1 `b64token`
/// (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`) of at most
/// `jwt::MAX_TOKEN_BYTES`. Anything else is refused before a callout.
pub fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    token.len() <= jwt::MAX_TOKEN_BYTES
        && !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// What is known, for one request, about one token at one introspection provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known<'a> {
    /// The server's answer (from the cache, or just received).
    Answer(&'a Answer),
    /// Asking failed for this request and nothing cached may serve: `introspection_unavailable`.
    Failed,
    /// Nobody has asked: the request needs a lookup ([`Needed`]).
    Unknown,
}

/// What the engine needs from whoever holds the introspection answers, as of the moment of
/// the request (as `KeyStore` for keys).
pub trait Answers {
    /// The cache key of `token` at `provider` (`TokenKeyer::key`).
    fn key(&self, provider: &str, token: &str) -> CacheKey;
    /// What is known under `key` at `provider`.
    fn answer(&self, provider: ProviderId, key: &CacheKey) -> Known<'_>;
}

/// No introspection wired in (a glue that does not ask): every opaque token is
/// `introspection_unavailable`, so nothing the server did not call active is let through.
pub struct Unwired;

impl Answers for Unwired {
    fn key(&self, provider: &str, token: &str) -> CacheKey {
        TokenKeyer::new(&[0; 32]).key(provider, token)
    }

    fn answer(&self, _provider: ProviderId, _key: &CacheKey) -> Known<'_> {
        Known::Failed
    }
}

/// One introspection a request waits for: the key its answer is kept under and the callout
/// that asks (sent to the provider's `introspection.http_uri.cluster` with its timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub provider: ProviderId,
    pub key: CacheKey,
    pub request: CalloutRequest,
}

/// An active token, as the authorization server described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    /// `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`: what the provider's issuer, audience and
    /// time checks read.
    pub claims: Claims,
    /// Every member, `active` included: `required_claims`, `required_scopes` (its `scope`
    /// string), `claim_to_headers` and the identity header read them as a JWT's payload.
    pub payload: Map<String, Value>,
}

impl ActiveToken {
    /// The scopes granted: `scope` split at spaces (RFC 7662 §2.2).
    pub fn scopes(&self) -> Vec<&str> {
        match self.payload.get("scope") {
            Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).collect(),
            _ => Vec::new(),
        }
    }

    /// `client_id`, when the answer names one.
    pub fn client_id(&self) -> Option<&str> {
        self.payload.get("client_id").and_then(Value::as_str)
    }
}

/// What the authorization server said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Active(ActiveToken),
    /// `"active": false`: 401, body `Token is not active`, reason `inactive`. The other
    /// members of such an answer are ignored (RFC 7662 §2.2: it should send none).
    Inactive,
}

/// Members RFC 7662 §2.2 defines as strings (beside `iss` and `sub`, which `jwt` checks).
const STRING_MEMBERS: [&str; 5] = ["scope", "client_id", "username", "token_type", "jti"];

/// Reads an introspection answer: `status` (`None`: no response) and `body` as they arrived.
pub fn read_response(status: Option<u32>, body: &[u8]) -> Result<Answer, Unavailable> {
    oauth::check_status(status.ok_or(Unavailable::NoResponse)?)?;
    let payload = oauth::json_object(body)?;
    match payload.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Answer::Inactive),
        _ => return Err(Unavailable::BadResponse),
    }
    let typed = STRING_MEMBERS
        .iter()
        .all(|name| payload.get(*name).is_none_or(Value::is_string));
    if !typed {
        return Err(Unavailable::BadResponse);
    }
    let claims = jwt::registered_claims(&payload).ok_or(Unavailable::BadResponse)?;
    Ok(Answer::Active(ActiveToken { claims, payload }))
}

/// Defined beside the configuration that sets it.
pub use crate::config::CachePolicy;

/// How long one cached answer serves, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Used without asking the server before this.
    pub fresh_until: i64,
    /// Used when the server cannot be asked before this (`fresh_until` for negative answers).
    pub stale_until: i64,
}

impl Lifetime {
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.fresh_until
    }

    /// Whether the answer may stand in for one the server failed to give.
    pub fn serves_on_error(&self, now: i64) -> bool {
        now < self.stale_until
    }
}

impl CachePolicy {
    /// How long `answer`, received at `now`, is kept; `None`: not at all.
    pub fn lifetime(&self, answer: &Answer, now: i64) -> Option<Lifetime> {
        if self.cache_duration == 0 {
            return None;
        }
        match answer {
            Answer::Inactive => {
                let until = now.saturating_add(seconds(self.negative_cache_duration));
                (self.negative_cache_duration > 0).then_some(Lifetime {
                    fresh_until: until,
                    stale_until: until,
                })
            }
            Answer::Active(token) => {
                let exp = token.claims.exp.unwrap_or(i64::MAX);
                let fresh_until = now.saturating_add(seconds(self.cache_duration)).min(exp);
                let stale_until = fresh_until
                    .saturating_add(seconds(self.stale_if_error))
                    .min(exp);
                (fresh_until > now).then_some(Lifetime {
                    fresh_until,
                    stale_until,
                })
            }
        }
    }
}

fn seconds(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// A cache key: HMAC-SHA-256 of one provider's token. Not the token, and not reversible to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

/// Makes cache keys under one VM's secret key; the HMAC pads are hashed once, here.
#[derive(Clone)]
pub struct TokenKeyer {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for TokenKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeyer(<redacted>)")
    }
}

impl TokenKeyer {
    /// A keyer under `key`: 32 random bytes the VM draws at start (a key shared by the VMs of
    /// one Envoy when the cache is shared between them).
    pub fn new(key: &[u8; 32]) -> TokenKeyer {
        // RFC 2104 with a key shorter than SHA-256's 64-byte block: zero-padded.
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in key.iter().enumerate() {
            if let (Some(a), Some(b)) = (ipad.get_mut(i), opad.get_mut(i)) {
                *a ^= k;
                *b ^= k;
            }
        }
        TokenKeyer {
            inner: Sha256::new_with_prefix(ipad),
            outer: Sha256::new_with_prefix(opad),
        }
    }

    /// HMAC-SHA-256 of `data` under this keyer's key.
    pub fn mac(&self, data: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in data {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// The key of `token` at `provider`. The provider's name is length-prefixed, so no
    /// (provider, token) pair can collide with another by moving bytes between the two.
    pub fn key(&self, provider: &str, token: &str) -> CacheKey {
        let len = u64::try_from(provider.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes();
        CacheKey(self.mac(&[&len, provider.as_bytes(), token.as_bytes()]))
    }
}

#[cfg(test)]
mod tests;
