//! One token against one provider: issuer, signature, then the time and audience claims.
//! The only way to get a `Verified` token.
//!
//! Order: the issuer first, because it only routes (a token naming another issuer is "not this
//! provider's token", which requirement trees treat like a missing one, as Envoy does); then the
//! signature with keys the *provider* chose, never the header; then every claim check, so no
//! claim of an unverified token decides anything else. Time comes from the host, in whole
//! seconds since the epoch.
//!
//! The steps are public one by one for the verified-token cache: a cached token skips
//! `check_signature` (its signature verified under the same key set) and nothing else.

use crate::config::Provider;
use crate::error::AuthError;
use crate::jwks::KeySet;
use crate::jwt::UntrustedJwt;
use crate::signature::SignatureBackend;

/// Checks `jwt` against `provider` at time `now` (seconds since the epoch). `keys` is the
/// provider's current key set, `None` when it has none yet. `audiences` overrides the
/// provider's audiences (`provider_and_audiences`). `backend` checks what it can of the
/// signature natively (see `signature`).
pub fn verify(
    jwt: &UntrustedJwt,
    provider: &Provider,
    keys: Option<&KeySet>,
    audiences: Option<&[String]>,
    now: i64,
    backend: &dyn SignatureBackend,
) -> Result<(), AuthError> {
    check_issuer(jwt, provider)?;
    check_signature(jwt, keys, backend)?;
    check_claims(jwt, provider, audiences, now)
}

/// The signature, with the keys the provider chose (`None`: it has none yet).
pub fn check_signature(
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
pub fn check_claims(
    jwt: &UntrustedJwt,
    provider: &Provider,
    audiences: Option<&[String]>,
    now: i64,
) -> Result<(), AuthError> {
    check_time(jwt, provider, now)?;
    if let Some(subjects) = &provider.subjects {
        let sub = jwt.claims.sub.as_deref().unwrap_or("");
        if !subjects.matches(sub) {
            return Err(AuthError::SubjectNotAllowed);
        }
    }
    check_audience(&jwt.claims.aud, audiences.unwrap_or(&provider.audiences))
}

/// The issuer check alone: does this token name `provider`'s issuer? A provider without an
/// issuer accepts any.
pub fn check_issuer(jwt: &UntrustedJwt, provider: &Provider) -> Result<(), AuthError> {
    match &provider.issuer {
        Some(issuer) if jwt.claims.iss.as_deref() != Some(issuer.as_str()) => {
            Err(AuthError::UnknownIssuer)
        }
        _ => Ok(()),
    }
}

fn check_time(jwt: &UntrustedJwt, provider: &Provider, now: i64) -> Result<(), AuthError> {
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
