//! What kind of token it is (issue 17 §2, §3): a service's own token or a user's, and whether
//! its JOSE `typ` is one the provider allows. Pure, and only ever given a verified token
//! (`verify::Verified`).
//!
//! - Service vs user ([`ServiceTest`]): by default a token is a service's when its `sub`
//!   equals its `client_id` (RFC 9068 §2.2: a client-credentials token's subject is the
//!   client), or when the provider names resource-owner claims and the token carries none of
//!   them. A provider may replace the test with `service_token`, a list of
//!   `required_claims`-style rules that must all hold. Every other token is a user's.
//! - `allowed_typ` ([`AllowedTyp`]): RFC 8725 §3.11 explicit typing, RFC 9068 §4 `at+jwt`.
//!   Compared case-insensitively, with or without the `application/` prefix (RFC 7515
//!   §4.1.9: a `typ` without `/` means `application/<typ>`). A token without `typ`, or with a
//!   `typ` that is not a string, is refused.

use serde_json::{Map, Value};

use crate::claims::ClaimRule;
use crate::verify::Verified;

/// Which subjects a requirement accepts (`token_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A service acting for itself (client credentials).
    Service,
    /// A user, or a service acting for one.
    User,
}

impl TokenKind {
    pub fn from_name(name: &str) -> Option<TokenKind> {
        match name {
            "service" => Some(TokenKind::Service),
            "user" => Some(TokenKind::User),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Service => "service",
            TokenKind::User => "user",
        }
    }
}

/// A provider's test for service tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServiceTest {
    /// `sub == client_id`, or none of `resource_owner_claims` present (when any are named).
    #[default]
    Default,
    /// Like [`ServiceTest::Default`], with resource-owner claims named by the provider
    /// (`username`, `email`, ...): a token with none of them is a service's.
    ResourceOwnerClaims(Vec<String>),
    /// `service_token`: every rule holds.
    Rules(Vec<ClaimRule>),
}

impl ServiceTest {
    /// The kind of the verified `token`.
    pub fn kind(&self, token: &Verified) -> TokenKind {
        let payload = token.payload();
        let service = match self {
            ServiceTest::Rules(rules) => {
                !rules.is_empty() && rules.iter().all(|r| r.matches(token))
            }
            ServiceTest::Default => client_is_subject(payload),
            ServiceTest::ResourceOwnerClaims(names) => {
                client_is_subject(payload)
                    || (!names.is_empty() && names.iter().all(|n| !payload.contains_key(n)))
            }
        };
        if service {
            TokenKind::Service
        } else {
            TokenKind::User
        }
    }
}

/// `sub` and `client_id` both strings, and equal.
fn client_is_subject(payload: &Map<String, Value>) -> bool {
    match (payload.get("sub"), payload.get("client_id")) {
        (Some(Value::String(sub)), Some(Value::String(client))) => sub == client,
        _ => false,
    }
}

/// A provider's `allowed_typ`, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTyp(Vec<String>);

/// Why a token's `typ` is refused: 401 `invalid_token`, reason `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypError {
    /// The header has no `typ`.
    Missing,
    /// `typ` is not a string.
    NotAString,
    /// Another type.
    NotAllowed,
}

impl AllowedTyp {
    /// The configured list; the error names the bad entry (for the config error).
    pub fn new(types: &[String]) -> Result<AllowedTyp, String> {
        if types.is_empty() {
            return Err("must list at least one type (leave it out for no check)".to_owned());
        }
        types
            .iter()
            .map(|t| {
                let valid = !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic());
                if valid {
                    Ok(normalise(t))
                } else {
                    Err(format!("`{}` is not a media type", t.escape_default()))
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedTyp)
    }

    /// Checks the `typ` member of a verified token's JOSE header.
    pub fn check(&self, token: &Verified) -> Result<(), TypError> {
        match token.typ() {
            None => Err(TypError::Missing),
            Some(Value::String(typ)) => {
                let typ = normalise(typ);
                if self.0.contains(&typ) {
                    Ok(())
                } else {
                    Err(TypError::NotAllowed)
                }
            }
            Some(_) => Err(TypError::NotAString),
        }
    }
}

/// Lower case, without an `application/` prefix (RFC 7515 §4.1.9).
fn normalise(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        // `application/` alone, or `application/a/b`, stays as is and matches only itself.
        Some(rest) if !rest.is_empty() && !rest.contains('/') => rest.to_owned(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests;
