//! Header mutations for an allowed request: identity headers from verified claims, and
//! removal of consumed tokens. Nothing here decides whether a request is allowed.
//!
//! Every value is *set* (never appended), after `Config::emitted_headers` were removed from
//! the request, so a client can never add its own copy. Claims render as Envoy renders them
//! (strings as-is, non-negative integers without `.0`, other numbers as `%f`, booleans as
//! `true`/`false`,
//! empty strings and nulls not at all); arrays and objects as
//! compact JSON, which is our extension (Envoy sends base64 of the JSON). A value that would
//! contain a control character, or start or end with a space or tab, is not sent at all: a
//! changed identity is worse than none.
//!
//! The `identity_header` (ours) carries standard base64 (padded) of a compact JSON object:
//! each configured field with its claim's JSON value as in the token (missing and null claims
//! left out), except that `scope` / `scp` become arrays of scopes, plus, under its
//! `peer_field`, the downstream peer's SPIFFE ID when the connection has one.
//!
//! The same verified identity goes into Envoy filter state (`filter_state`), where access logs
//! (`%FILTER_STATE(wasm.jwt_authn_wasm.subject:PLAIN)%`), RBAC and other filters read it:
//! `STATE_PROVIDER`, `STATE_ISSUER`, `STATE_SUBJECT`, and `wasm.jwt_authn_wasm.identity.<field>`
//! for each identity-header field (`IdentityField::state_key`). Values follow the header rules
//! (`render`): text as is, nothing with a control character or surrounding spaces; a scope
//! field is its scopes joined by one space.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Value};

pub use crate::claim_path::claim;
pub use crate::config::{state_key, STATE_ISSUER, STATE_PREFIX, STATE_PROVIDER, STATE_SUBJECT};
use crate::config::{IdentityHeader, Provider};
use crate::extract::remove_query_param;
use crate::extract::Location;
use crate::request::RequestHeaders;
use crate::scopes::scope_values;
use crate::verify::Verified;

/// One change to the request: a header, or an Envoy filter-state value. Names are borrowed
/// from the configuration (or static): nothing of the configuration is copied per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp<'c> {
    Remove(&'c str),
    Set(&'c str, String),
    /// The filter-state key as Envoy names it (`wasm.jwt_authn_wasm.subject`) and its value.
    FilterState(&'c str, String),
}

/// The filter state of a verified `token` of `provider`: provider, issuer, subject, and each
/// identity-header field (`peer` for its `peer_field`). Values that would not be sent as a
/// header (`render`) are not set.
pub fn filter_state<'c>(
    provider: &'c Provider,
    token: &Verified,
    peer: Option<&str>,
    ops: &mut Vec<HeaderOp<'c>>,
) {
    let text = render_text;
    if let Some(name) = text(&provider.name) {
        ops.push(HeaderOp::FilterState(STATE_PROVIDER, name));
    }
    if let Some(iss) = token.claims().iss.as_deref().and_then(text) {
        ops.push(HeaderOp::FilterState(STATE_ISSUER, iss));
    }
    if let Some(sub) = token.claims().sub.as_deref().and_then(text) {
        ops.push(HeaderOp::FilterState(STATE_SUBJECT, sub));
    }
    let Some(identity) = &provider.identity_header else {
        return;
    };
    for field in &identity.fields {
        let Some(key) = &field.state_key else {
            continue;
        };
        let value = match claim(token.payload(), &field.claim_path) {
            Some(v) if field.scopes => text(&scope_values(v).join(" ")),
            Some(v) => render(v),
            None => None,
        };
        if let Some(value) = value {
            ops.push(HeaderOp::FilterState(key, value));
        }
    }
    if let (Some(key), Some(peer)) = (&identity.peer_state_key, peer.and_then(text)) {
        ops.push(HeaderOp::FilterState(key, peer));
    }
}

/// The identity headers `provider` emits for a verified `token`; `peer` is the connection's
/// SPIFFE ID, for the identity header's `peer_field`.
pub fn identity<'c>(
    provider: &'c Provider,
    token: &Verified,
    peer: Option<&str>,
    ops: &mut Vec<HeaderOp<'c>>,
) {
    if let Some(header) = &provider.forward_payload_header {
        let value = if provider.pad_forward_payload_header {
            // Re-encode with padding; the payload decoded once already, so this cannot fail
            // in practice, and if it did the header is simply not sent.
            URL_SAFE_NO_PAD
                .decode(token.payload_b64())
                .ok()
                .map(|bytes| URL_SAFE.encode(bytes))
        } else {
            Some(token.payload_b64().to_owned())
        };
        if let Some(value) = value {
            ops.push(HeaderOp::Set(header, value));
        }
    }
    for c in &provider.claim_to_headers {
        if let Some(value) = claim(token.payload(), &c.claim_path).and_then(render) {
            ops.push(HeaderOp::Set(&c.header, value));
        }
    }
    if let Some(identity) = &provider.identity_header {
        ops.push(HeaderOp::Set(
            &identity.header,
            identity_value(identity, token.payload(), peer),
        ));
    }
}

/// The identity header's value: base64 of the JSON object of the configured fields (and of
/// `peer_field` when there is a `peer`).
pub fn identity_value(
    identity: &IdentityHeader,
    payload: &Map<String, Value>,
    peer: Option<&str>,
) -> String {
    let mut object = Map::with_capacity(identity.fields.len());
    for field in &identity.fields {
        let value = match claim(payload, &field.claim_path) {
            None | Some(Value::Null) => continue,
            Some(v) if field.scopes => {
                Value::Array(scope_values(v).into_iter().map(Value::from).collect())
            }
            Some(v) => v.clone(),
        };
        object.insert(field.name.clone(), value);
    }
    if let (Some(field), Some(peer)) = (&identity.peer_field, peer) {
        object.insert(field.clone(), Value::from(peer));
    }
    STANDARD.encode(Value::Object(object).to_string())
}

/// Removes the token from where it was found, unless the provider forwards it.
pub fn consume_token<'c>(
    provider: &Provider,
    location: &'c Location,
    headers: &RequestHeaders,
    ops: &mut Vec<HeaderOp<'c>>,
) {
    if provider.forward {
        return;
    }
    match location {
        Location::Header { name, .. } => ops.push(HeaderOp::Remove(name)),
        Location::Param(name) => {
            let path = headers.path_bytes().unwrap_or_default();
            let stripped = remove_query_param(path, name);
            if stripped.as_bytes() != path {
                ops.push(HeaderOp::Set(":path", stripped));
            }
        }
        // Cookies are left alone: the cookie header carries the client's other cookies too.
        Location::Cookie(_) => {}
    }
}

/// Text as a header value, as `render` renders a JSON string (one copy, no `Value` built).
fn render_text(text: &str) -> Option<String> {
    let padded = text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']);
    (!text.is_empty() && !padded && !text.chars().any(char::is_control)).then(|| text.to_owned())
}

/// A claim as a header value; `None` for null, an empty string (as Envoy), text with control
/// characters, or text with leading or trailing spaces or tabs (an HTTP/1 upstream would see
/// the value trimmed, `" admin"` as `admin`: a changed identity).
pub fn render(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => return render_text(s),
        Value::Bool(b) => b.to_string(),
        // Envoy: integral values in [0, 2^64) as integers, anything else (negatives too) as
        // C's `%f`. Unlike Envoy, a large integer is kept exact instead of going through f64.
        Value::Number(n) => match n.as_u64() {
            Some(u) => u.to_string(),
            None => {
                let f = n.as_f64().unwrap_or(0.0);
                if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.6}")
                }
            }
        },
        Value::Array(_) | Value::Object(_) => value.to_string(),
    };
    let padded = text.starts_with([' ', '\t']) || text.ends_with([' ', '\t']);
    (!padded && !text.chars().any(char::is_control)).then_some(text)
}

#[cfg(test)]
mod tests;
