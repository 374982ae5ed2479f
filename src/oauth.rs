//! The OAuth 2.0 client side of the filter: client authentication, the requests it sends to an
//! authorization server (token introspection, client credentials, token exchange, a revocation
//! list), and what the answers of the token endpoint mean. Pure: it builds bytes and reads
//! bytes; the host module sends them (`dispatch_http_call`) and hands back what came.
//!
//! - [`Secret`] holds a client secret. It has no `Display`, its `Debug` prints
//!   `Secret(<redacted>)`, and [`CalloutRequest`]'s `Debug` prints neither the body nor the
//!   `Authorization` value, so a secret (or a subject token) cannot reach a log line by a
//!   `{:?}`.
//! - Client authentication (RFC 6749 §2.3.1): `client_secret_basic` form-urlencodes the id and
//!   the secret *before* base64 (Appendix B; a secret with `:` or `%` otherwise breaks), and
//!   `client_secret_post` puts both in the form body.
//! - Token endpoint answers ([`read_token_response`]) are *issued* (200 with a token),
//!   *refused* (RFC 6749 §5.2 errors about the grant the user's token stands for: the user's
//!   answer, 401) or *unavailable* (5xx, timeouts, garbage, our own credentials refused: not the
//!   user's fault, 503 by the failure policy). Nothing is let through on an answer that is not
//!   plainly a token.
//!
//! Nothing here reads a clock, logs, or keeps state.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::jwt;

/// The largest token endpoint or introspection answer read (RFC 7662 answers and token
/// responses are a few hundred bytes; an issued JWT a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The longest issued `access_token` accepted: the same bound as a token the filter verifies.
pub const MAX_ISSUED_TOKEN_BYTES: usize = jwt::MAX_TOKEN_BYTES;

/// RFC 8693 §2.1 `grant_type` of a token exchange.
pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3 token type identifiers.
pub mod token_type {
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
}

/// A credential the filter holds: a client secret, or a token it obtained. The value leaves
/// only through [`Secret::expose`], at the one place that puts it on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the request that carries it. Never for a log, a stat or an error.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// RFC 6749 Appendix A.1/A.2: a `client_id` or `client_secret` is `*VSCHAR` (printable ASCII
/// and space). The configuration refuses others: servers refuse them (oidc-provider answers
/// `invalid_request`), and every request would fail.
pub fn is_vschar(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// How the filter authenticates to the authorization server (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`. The default, as
    /// RFC 6749 says servers must support it.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` as form parameters.
    ClientSecretPost,
}

impl AuthMethod {
    /// The configuration (and registration) name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn from_name(name: &str) -> Option<AuthMethod> {
        match name {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            _ => None,
        }
    }
}

/// The filter as an OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: Secret,
    pub method: AuthMethod,
}

/// Where a request goes: the `:authority` and `:path` of the configured `http_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub authority: String,
    pub path: String,
}

/// A callout, ready for `dispatch_http_call`: pseudo-headers first, then headers, then body.
/// Its `Debug` shows header names and the body's length only: the body and the
/// `Authorization` value carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CalloutRequest {
    /// The value of header `name` (lower-case), if set once or more (the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for CalloutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| match n.as_str() {
                "authorization" => (n.as_str(), "<redacted>"),
                _ => (n.as_str(), v.as_str()),
            })
            .collect();
        f.debug_struct("CalloutRequest")
            .field("headers", &shown)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// `application/x-www-form-urlencoded` (RFC 6749 Appendix B, the WHATWG serializer): bytes
/// `A-Z a-z 0-9 * - . _` as is, space as `+`, every other byte of the UTF-8 as `%XX`.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_component(name, &mut out);
        out.push('=');
        form_component(value, &mut out);
    }
    out
}

fn form_component(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                let hex =
                    |nibble: u8| char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'));
                out.push('%');
                out.push(hex(b >> 4));
                out.push(hex(b & 0xF));
            }
        }
    }
}

/// The `Authorization` value of `client_secret_basic` (RFC 6749 §2.3.1).
pub fn basic_credentials(id: &str, secret: &Secret) -> String {
    let mut pair = String::new();
    form_component(id, &mut pair);
    pair.push(':');
    form_component(secret.expose(), &mut pair);
    format!("Basic {}", STANDARD.encode(pair))
}

/// A form POST to `endpoint`, authenticated as `client`.
fn form_post(endpoint: &Endpoint, client: &Client, params: &[(&str, &str)]) -> CalloutRequest {
    let mut headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), endpoint.path.clone()),
        (":authority".to_owned(), endpoint.authority.clone()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("accept".to_owned(), "application/json".to_owned()),
    ];
    let mut form: Vec<(&str, &str)> = params.to_vec();
    match client.method {
        AuthMethod::ClientSecretBasic => headers.push((
            "authorization".to_owned(),
            basic_credentials(&client.id, &client.secret),
        )),
        AuthMethod::ClientSecretPost => {
            form.push(("client_id", &client.id));
            form.push(("client_secret", client.secret.expose()));
        }
    }
    CalloutRequest {
        headers,
        body: form_encode(&form).into_bytes(),
    }
}

/// An introspection request (RFC 7662 §2.1): `token`, and `token_type_hint` when given.
pub fn introspection_request(
    endpoint: &Endpoint,
    client: &Client,
    token: &str,
    token_type_hint: Option<&str>,
) -> CalloutRequest {
    let mut params = vec![("token", token)];
    if let Some(hint) = token_type_hint {
        params.push(("token_type_hint", hint));
    }
    form_post(endpoint, client, &params)
}

/// A client credentials grant (RFC 6749 §4.4.2), with `scope` and an RFC 8707 `resource`
/// when given.
pub fn client_credentials_request(
    endpoint: &Endpoint,
    client: &Client,
    scope: Option<&str>,
    resource: Option<&str>,
) -> CalloutRequest {
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    if let Some(resource) = resource {
        params.push(("resource", resource));
    }
    form_post(endpoint, client, &params)
}

/// The parameters of a token exchange (RFC 8693 §2.1) besides `grant_type`.
#[derive(Clone, PartialEq, Eq)]
pub struct Exchange<'a> {
    pub subject_token: &'a str,
    /// `urn:ietf:params:oauth:token-type:access_token` unless configured otherwise.
    pub subject_token_type: &'a str,
    pub actor_token: Option<&'a str>,
    /// Sent only with `actor_token` (RFC 8693 §2.1: required with it, absent without).
    pub actor_token_type: &'a str,
    pub audience: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub requested_token_type: Option<&'a str>,
}

impl fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("subject_token_type", &self.subject_token_type)
            .field("actor_token", &self.actor_token.map(|_| "<redacted>"))
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("scope", &self.scope)
            .field("requested_token_type", &self.requested_token_type)
            .finish_non_exhaustive()
    }
}

impl<'a> Exchange<'a> {
    /// Exchange an access token, nothing else set.
    pub fn new(subject_token: &'a str) -> Exchange<'a> {
        Exchange {
            subject_token,
            subject_token_type: token_type::ACCESS_TOKEN,
            actor_token: None,
            actor_token_type: token_type::ACCESS_TOKEN,
            audience: None,
            resource: None,
            scope: None,
            requested_token_type: None,
        }
    }
}

/// A token exchange request (RFC 8693 §2.1), parameters in the RFC's order.
pub fn exchange_request(endpoint: &Endpoint, client: &Client, ex: &Exchange<'_>) -> CalloutRequest {
    let mut params = vec![("grant_type", EXCHANGE_GRANT)];
    let optional = [
        ("resource", ex.resource),
        ("audience", ex.audience),
        ("scope", ex.scope),
        ("requested_token_type", ex.requested_token_type),
    ];
    params.extend(optional.iter().filter_map(|(n, v)| v.map(|v| (*n, v))));
    params.push(("subject_token", ex.subject_token));
    params.push(("subject_token_type", ex.subject_token_type));
    if let Some(actor) = ex.actor_token {
        params.push(("actor_token", actor));
        params.push(("actor_token_type", ex.actor_token_type));
    }
    form_post(endpoint, client, &params)
}

/// A revocation list fetch: a GET that takes the JSON document or its signed form, and a 304
/// when `etag` (the last good list's `ETag`) still holds.
pub fn revocation_list_request(endpoint: &Endpoint, etag: Option<&str>) -> CalloutRequest {
    let mut headers = vec![
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), endpoint.path.clone()),
        (":authority".to_owned(), endpoint.authority.clone()),
        (
            "accept".to_owned(),
            "application/json, application/jwt".to_owned(),
        ),
    ];
    if let Some(etag) = etag {
        headers.push(("if-none-match".to_owned(), etag.to_owned()));
    }
    CalloutRequest {
        headers,
        body: Vec::new(),
    }
}

/// Why an authorization server's answer cannot be used, though it may be fine next time: the
/// `*_unavailable` failure classes (503 by default). `reason()` is the stat-name segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No answer: connect failure, reset, timeout (the host tells which; `reason` is its word).
    NoResponse,
    /// A 5xx (or 429) answer.
    ServerError,
    /// 401 / 403, or `invalid_client` / `unauthorized_client` / `unsupported_grant_type`: the
    /// server refuses the *filter* (its credentials or its registration). Logged at warn,
    /// naming the provider; the user's token is not at fault.
    ClientRejected,
    /// Any other status (3xx, 404, ...), or a 400 without a known RFC 6749 error.
    UnexpectedStatus,
    /// Larger than `MAX_RESPONSE_BYTES`.
    TooLarge,
    /// Not a JSON object (or a repeated member).
    NotJson,
    /// JSON, but not what the protocol says: no `access_token`, `active` not a boolean, a
    /// member of the wrong type, a time out of range.
    BadResponse,
}

impl Unavailable {
    pub fn reason(self) -> &'static str {
        match self {
            Unavailable::NoResponse => "no_response",
            Unavailable::ServerError => "server_error",
            Unavailable::ClientRejected => "client_rejected",
            Unavailable::UnexpectedStatus => "status",
            Unavailable::TooLarge => "too_large",
            Unavailable::NotJson => "not_json",
            Unavailable::BadResponse => "bad_response",
        }
    }
}

/// The status of an introspection or revocation-list answer, before its body is read: 200 is
/// the only success.
pub fn check_status(status: u32) -> Result<(), Unavailable> {
    match status {
        200 => Ok(()),
        401 | 403 => Err(Unavailable::ClientRejected),
        429 | 500..=599 => Err(Unavailable::ServerError),
        _ => Err(Unavailable::UnexpectedStatus),
    }
}

/// A body as a JSON object, bounded, duplicate members refused.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Unavailable> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(Unavailable::TooLarge);
    }
    jwt::parse_object(body).ok_or(Unavailable::NotJson)
}

/// An RFC 6749 §5.2 error code the server answered with, for the log line (never its
/// `error_description`, which may quote what was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The subject (or actor) token is invalid, expired or revoked, or not for this exchange.
    InvalidGrant,
    /// A parameter is wrong; RFC 8693 §2.2.2 answers a bad subject token this way.
    InvalidRequest,
    /// The server will not issue for the audience or resource (RFC 8693 §2.2.2).
    InvalidTarget,
    /// The requested scope is beyond what the subject may have.
    InvalidScope,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::InvalidGrant => "invalid_grant",
            Refusal::InvalidRequest => "invalid_request",
            Refusal::InvalidTarget => "invalid_target",
            Refusal::InvalidScope => "invalid_scope",
        }
    }
}

/// A token the server issued (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: Secret,
    /// As sent (`Bearer`, or `N_A` for an exchange that issues no access token).
    pub token_type: String,
    /// Seconds; `None` when the server left it out (the caller then needs another bound: the
    /// token's own `exp`, or a configured lifetime).
    pub expires_in: Option<u64>,
    pub issued_token_type: Option<String>,
    pub scope: Option<String>,
}

/// What a token endpoint answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    Issued(IssuedToken),
    /// The server refuses the grant: the user's answer (401 `invalid_token`).
    Refused(Refusal),
    Unavailable(Unavailable),
}

/// Reads a token endpoint answer: `status` and `body` as they arrived (`None`: no response).
pub fn read_token_response(status: Option<u32>, body: &[u8]) -> TokenOutcome {
    let Some(status) = status else {
        return TokenOutcome::Unavailable(Unavailable::NoResponse);
    };
    match status {
        200 => match issued_token(body) {
            Ok(token) => TokenOutcome::Issued(token),
            Err(e) => TokenOutcome::Unavailable(e),
        },
        // RFC 6749 §5.2: errors are 400, `invalid_client` may be 401.
        400 => match json_object(body)
            .ok()
            .as_ref()
            .and_then(|m| m.get("error"))
            .and_then(Value::as_str)
        {
            Some("invalid_grant") => TokenOutcome::Refused(Refusal::InvalidGrant),
            Some("invalid_request") => TokenOutcome::Refused(Refusal::InvalidRequest),
            Some("invalid_target") => TokenOutcome::Refused(Refusal::InvalidTarget),
            Some("invalid_scope") => TokenOutcome::Refused(Refusal::InvalidScope),
            // Our own credentials or registration: nothing the user can change.
            Some("invalid_client" | "unauthorized_client" | "unsupported_grant_type") => {
                TokenOutcome::Unavailable(Unavailable::ClientRejected)
            }
            _ => TokenOutcome::Unavailable(Unavailable::UnexpectedStatus),
        },
        other => TokenOutcome::Unavailable(check_status(other).err().unwrap_or(
            // 200 is handled above; any status reaching here is not a success.
            Unavailable::UnexpectedStatus,
        )),
    }
}

fn issued_token(body: &[u8]) -> Result<IssuedToken, Unavailable> {
    let map = json_object(body)?;
    let string = |name: &str| -> Result<Option<String>, Unavailable> {
        match map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Unavailable::BadResponse),
        }
    };
    let access_token = string("access_token")?.ok_or(Unavailable::BadResponse)?;
    if access_token.is_empty()
        || access_token.len() > MAX_ISSUED_TOKEN_BYTES
        || !is_b64token(&access_token)
    {
        return Err(Unavailable::BadResponse);
    }
    let token_type = string("token_type")?.ok_or(Unavailable::BadResponse)?;
    let expires_in = match map.get("expires_in") {
        None => None,
        // RFC 6749 §5.1: "The lifetime in seconds": a non-negative integer. A string, a
        // fraction or a negative number is a bad answer, not "no expiry".
        Some(Value::Number(n)) => Some(n.as_u64().ok_or(Unavailable::BadResponse)?),
        Some(_) => return Err(Unavailable::BadResponse),
    };
    Ok(IssuedToken {
        access_token: Secret::new(access_token),
        token_type,
        expires_in,
        issued_token_type: string("issued_token_type")?,
        scope: string("scope")?,
    })
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// What a bearer token in an `Authorization` header may be; an issued token that is not one
/// could not be forwarded as one (and could smuggle header bytes).
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests;
