//! One token against one provider: issuer, signature, then the time and audience claims.
//! The only way to get a [`Verified`] token: its fields are private and nothing outside this
//! module can make one, so whatever takes a `&Verified` (the token cache, required scopes and
//! claims, token kinds, identity headers and filter state) never sees an unchecked token.
//!
//! Order: the issuer first, because it only routes (a token naming another issuer is "not this
//! provider's token", which requirement trees treat like a missing one, as Envoy does); then the
//! signature with keys the *provider* chose, never the header; then every claim check, so no
//! claim of an unverified token decides anything else. Time comes from the host, in whole
//! seconds since the epoch.
//!
//! A token the verified-token cache holds skips the signature (it verified under the same key
//! set) and nothing else: [`recheck`] runs the claim checks again, at the new time and with
//! the new requirement's audiences. The issuer check is public alone, so a token of another
//! issuer never waits for this provider's keys.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::jwks::KeySet;
use crate::jwt::{Claims, UntrustedJwt};
use crate::matcher::StringMatcher;
use crate::signature::SignatureBackend;

/// What a provider asks of its tokens' claims, borrowed from its configuration
/// (`config::Provider::policy`; `verify` does not depend on `config`).
#[derive(Debug, Clone, Copy)]
pub struct Policy<'p> {
    /// `iss` must equal this when set (`None`: any).
    pub issuer: Option<&'p str>,
    /// Empty: any audience (or none).
    pub audiences: &'p [String],
    pub subjects: Option<&'p StringMatcher>,
    pub require_expiration: bool,
    pub max_lifetime: Option<Duration>,
    pub clock_skew_seconds: u64,
}

/// A token whose signature verified with keys its provider chose and whose claims passed
/// (`verify`, or `recheck` of a cached one). Only this module makes one. Cheap to clone: the
/// parsed parts are shared.
#[derive(Debug, Clone)]
pub struct Verified {
    jwt: Rc<UntrustedJwt>,
}

impl Verified {
    /// The registered claims.
    pub fn claims(&self) -> &Claims {
        &self.jwt.claims
    }

    /// Every payload member.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.jwt.payload
    }

    /// The payload as sent (base64url), for `forward_payload_header`.
    pub fn payload_b64(&self) -> &str {
        self.jwt.payload_b64()
    }

    /// The JOSE header's `typ` as sent (`None`: absent).
    pub fn typ(&self) -> Option<&Value> {
        self.jwt.typ.as_ref()
    }

    /// The parsed parts, shared (for the parse cache and the trace). Going back to an
    /// untrusted token is always allowed; the other way only through `verify`.
    pub fn jwt(&self) -> &Rc<UntrustedJwt> {
        &self.jwt
    }

    /// A token taken as verified without any check, for the tests of what takes a `Verified`:
    /// `header` and `payload` are JSON objects, the signature is a placeholder.
    #[cfg(test)]
    pub(crate) fn for_test(header: Value, payload: Value) -> Verified {
        use base64::Engine as _;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let text = format!("{}.{}.AAAA", b64(&header), b64(&payload));
        let jwt = crate::jwt::parse(&text).expect("a test token parses");
        Verified { jwt: Rc::new(jwt) }
    }
}

/// Checks `jwt` against `provider` (`Provider::policy`) at time `now` (seconds since the
/// epoch). `keys` is the provider's current key set, `None` when it has none yet. `audiences`
/// overrides the provider's audiences (`provider_and_audiences`). `backend` checks what it can
/// of the signature natively (see `signature`).
pub fn verify(
    jwt: &Rc<UntrustedJwt>,
    provider: Policy<'_>,
    keys: Option<&KeySet>,
    audiences: Option<&[String]>,
    now: i64,
    backend: &dyn SignatureBackend,
) -> Result<Verified, AuthError> {
    check_issuer(jwt, provider)?;
    check_signature(jwt, keys, backend)?;
    check_claims(jwt, provider, audiences, now)?;
    Ok(Verified {
        jwt: Rc::clone(jwt),
    })
}

/// A token verified before (the verified-token cache holds it, under `provider`'s current
/// key set) checked again at `now`: issuer and claims, not the signature.
pub fn recheck(
    token: &Verified,
    provider: Policy<'_>,
    audiences: Option<&[String]>,
    now: i64,
) -> Result<Verified, AuthError> {
    check_issuer(&token.jwt, provider)?;
    check_claims(&token.jwt, provider, audiences, now)?;
    Ok(token.clone())
}

/// An opaque token the authorization server called active (the `claims` and every member,
/// `payload`, of an `introspection::ActiveToken`), checked against `provider` at `now`: `issuer`, when set, must equal the answer's `iss` if
/// it has one (many servers send none); then every claim check a JWT gets, unchanged (time
/// with skew, subject, audiences: an answer without `aud` fails configured `audiences`).
pub fn introspected(
    claims: &Claims,
    payload: &Map<String, Value>,
    provider: Policy<'_>,
    audiences: Option<&[String]>,
    now: i64,
) -> Result<Verified, AuthError> {
    if let (Some(issuer), Some(iss)) = (provider.issuer, claims.iss.as_deref()) {
        if issuer != iss {
            return Err(AuthError::UnknownIssuer);
        }
    }
    let jwt = UntrustedJwt::introspected(claims.clone(), payload.clone());
    check_claims(&jwt, provider, audiences, now)?;
    Ok(Verified { jwt: Rc::new(jwt) })
}

/// The signature, with the keys the provider chose (`None`: it has none yet).
fn check_signature(
    jwt: &UntrustedJwt,
    keys: Option<&KeySet>,
    backend: &dyn SignatureBackend,
) -> Result<(), AuthError> {
    let keys = keys.ok_or(AuthError::KeysUnavailable)?;
    keys.verify(
        jwt.alg,
        jwt.kid.as_deref(),
        jwt.signing_input().as_bytes(),
        &jwt.signature,
        backend,
    )
}

/// Every claim check after the signature: time, subject, audience.
fn check_claims(
    jwt: &UntrustedJwt,
    provider: Policy<'_>,
    audiences: Option<&[String]>,
    now: i64,
) -> Result<(), AuthError> {
    check_time(jwt, provider, now)?;
    if let Some(subjects) = provider.subjects {
        let sub = jwt.claims.sub.as_deref().unwrap_or("");
        if !subjects.matches(sub) {
            return Err(AuthError::SubjectNotAllowed);
        }
    }
    check_audience(&jwt.claims.aud, audiences.unwrap_or(provider.audiences))
}

/// The issuer check alone: does this token name `provider`'s issuer? A provider without an
/// issuer accepts any.
pub fn check_issuer(jwt: &UntrustedJwt, provider: Policy<'_>) -> Result<(), AuthError> {
    match provider.issuer {
        Some(issuer) if jwt.claims.iss.as_deref() != Some(issuer) => Err(AuthError::UnknownIssuer),
        _ => Ok(()),
    }
}

fn check_time(jwt: &UntrustedJwt, provider: Policy<'_>, now: i64) -> Result<(), AuthError> {
    let skew = i64::try_from(provider.clock_skew_seconds).unwrap_or(i64::MAX);
    let claims = &jwt.claims;
    if let Some(nbf) = claims.nbf {
        if now.saturating_add(skew) < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    if let Some(exp) = claims.exp {
        if now > exp.saturating_add(skew) {
            return Err(AuthError::Expired);
        }
    }
    if claims.exp.is_none() && (provider.require_expiration || provider.max_lifetime.is_some()) {
        return Err(AuthError::ExpirationRequired);
    }
    if let (Some(max), Some(exp)) = (provider.max_lifetime, claims.exp) {
        // As Envoy: the lifetime left (`exp - now`, no skew), whatever `iat` says.
        let max = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
        if exp.saturating_sub(now) > max {
            return Err(AuthError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// Any of the token's audiences is allowed; an empty allow-list allows anything. Audiences are
/// compared as Envoy does: without an `http://` / `https://` scheme and trailing slashes.
fn check_audience(token_aud: &[String], allowed: &[String]) -> Result<(), AuthError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let found = token_aud.iter().any(|aud| {
        let aud = normalize_audience(aud);
        allowed.iter().any(|a| normalize_audience(a) == aud)
    });
    if found {
        Ok(())
    } else {
        Err(AuthError::AudienceNotAllowed)
    }
}

fn normalize_audience(aud: &str) -> &str {
    let aud = aud
        .strip_prefix("https://")
        .or_else(|| aud.strip_prefix("http://"))
        .unwrap_or(aud);
    aud.trim_end_matches('/')
}

#[cfg(test)]
mod tests;
