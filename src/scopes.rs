//! Required scopes of a requirement: which scopes a verified token grants, and whether they
//! satisfy the rule. Pure, and only ever given a verified token (`verify::Verified`).
//!
//! A token's scopes come from `scope` (a space-delimited string, RFC 8693 §4.2 / RFC 9068),
//! `scp` (a string or an array of strings, as Azure AD and Okta send), or a configured claim
//! (a dotted path; a string is split at spaces, an array's string members are taken).
//! Membership is exact: `read` never matches `read:all` or `Read`.

use serde_json::Value;

use crate::claim_path::claim;
use crate::verify::Verified;

/// `required_scopes` of a provider requirement (our extension to `requires`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// Every one of these.
    pub all_of: Vec<String>,
    /// At least one of these (when not empty).
    pub any_of: Vec<String>,
    /// Where the scopes are; `None`: `scope`, then `scp`.
    pub claim: Option<Vec<String>>,
}

impl ScopeRule {
    /// `Ok` when `token` grants what the rule requires; else the scopes to name in
    /// `WWW-Authenticate: … scope="…"` (RFC 6750 §3): the missing `all_of` ones, then the
    /// `any_of` alternatives if none of them is granted.
    pub fn check(&self, token: &Verified) -> Result<(), String> {
        let granted = self.granted(token);
        let has = |s: &String| granted.contains(&s.as_str());
        let mut needed: Vec<&str> = self
            .all_of
            .iter()
            .filter(|s| !has(s))
            .map(String::as_str)
            .collect();
        if !self.any_of.is_empty() && !self.any_of.iter().any(has) {
            needed.extend(self.any_of.iter().map(String::as_str));
        }
        if needed.is_empty() {
            Ok(())
        } else {
            Err(needed.join(" "))
        }
    }

    /// The scopes the token grants.
    pub fn granted<'t>(&self, token: &'t Verified) -> Vec<&'t str> {
        let payload = token.payload();
        let values: Vec<&Value> = match &self.claim {
            Some(path) => claim(payload, path).into_iter().collect(),
            None => ["scope", "scp"]
                .iter()
                .filter_map(|name| payload.get(*name))
                .collect(),
        };
        values.into_iter().flat_map(scope_values).collect()
    }
}

/// A string's space-separated scopes, or an array's string members (also how the identity
/// header normalises `scope` / `scp`).
pub fn scope_values(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// RFC 6749 §3.3 `scope-token`: printable ASCII except space, `"` and `\`. Required scopes go
/// into a response header, so configured ones must be such tokens.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests;
