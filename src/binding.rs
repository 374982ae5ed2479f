//! RFC 8705 certificate binding: a provider's `certificate_bound`, and a verified token's
//! `cnf["x5t#S256"]` (the unpadded base64url SHA-256 of the DER certificate, §3.1) checked
//! against the peer certificate's thumbprint (`peer::Thumbprint`), in constant time. Pure: the
//! glue reads the thumbprint (`peer::PeerFacts`). Its own module, not `peer`'s, so that `peer`
//! (which `request` needs) does not depend on `verify`.

use serde_json::Value;

use crate::peer::Thumbprint;
use crate::verify::Verified;

/// A provider's `certificate_bound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// No check (the default).
    #[default]
    Off,
    /// A token with `cnf["x5t#S256"]` must match the peer certificate.
    IfPresent,
    /// Every token must carry `cnf["x5t#S256"]`, and match.
    Required,
}

impl Binding {
    pub fn from_name(name: &str) -> Option<Binding> {
        match name {
            "off" => Some(Binding::Off),
            "if_present" => Some(Binding::IfPresent),
            "required" => Some(Binding::Required),
            _ => None,
        }
    }
}

/// Why a token fails its binding: 401 `invalid_token`, reason `binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingError {
    /// `required`, and the token has no `cnf["x5t#S256"]`.
    Unbound,
    /// `cnf` is not an object, or `x5t#S256` is not the base64url of 32 bytes.
    Malformed,
    /// Bound, but the connection has no (readable) client certificate.
    NoPeerCertificate,
    /// Bound to another certificate.
    Mismatch,
}

/// Checks a verified token's `cnf` claim against the peer certificate's thumbprint.
pub fn check_binding(
    mode: Binding,
    token: &Verified,
    peer: Option<Thumbprint>,
) -> Result<(), BindingError> {
    if mode == Binding::Off {
        return Ok(());
    }
    let bound = match token.payload().get("cnf") {
        None => None,
        Some(Value::Object(cnf)) => match cnf.get("x5t#S256") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(BindingError::Malformed),
        },
        Some(_) => return Err(BindingError::Malformed),
    };
    let Some(bound) = bound else {
        return match mode {
            Binding::Required => Err(BindingError::Unbound),
            _ => Ok(()),
        };
    };
    let bound = Thumbprint::from_b64url(bound).ok_or(BindingError::Malformed)?;
    let peer = peer.ok_or(BindingError::NoPeerCertificate)?;
    if peer.ct_eq(&bound) {
        Ok(())
    } else {
        Err(BindingError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
