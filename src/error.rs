//! Every way a request or a configuration can fail, and the one function that turns a request
//! failure into an HTTP answer.
//!
//! `AuthError` is a flat list, as Envoy's `jwt_verify_lib::Status` is: one variant per failure,
//! each with the short reason `jwt_authn` answers with (its message strings, so clients and
//! dashboards that know Envoy's reasons keep working). Producers: `jwt` (token syntax), `verify`
//! (keys, signature, claims), `extract` (where tokens are found), `authorize` (requirements).

use std::fmt;

/// Why a request is not authenticated. Ordered roughly by the phase that produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    /// No token at any configured location, and the requirement needs one.
    Missing,
    /// A header carried more than one token (Envoy joins repeated `Authorization` headers with a
    /// comma; RFC 6750 allows one method per request).
    MultipleTokensInHeader,
    /// A token cookie or query parameter occurs more than once: the upstream (or a framework
    /// that takes the last value) might read another copy than the one verified.
    RepeatedTokenLocation,
    /// A token cookie or query parameter that does not decode (bad percent-encoding, not
    /// UTF-8): never skipped as if it were absent.
    UndecodableToken,
    /// The token is longer than `MAX_TOKEN_BYTES`: refused before any parsing.
    TooLarge,
    /// Not `header.payload.signature` (wrong segment count, a JWE, empty segments).
    BadFormat,
    /// The header segment is not base64url.
    HeaderBadBase64,
    /// The header is not a JSON object, or repeats a member name.
    HeaderBadJson,
    /// `alg` is missing or not a string.
    HeaderBadAlg,
    /// `alg` names an algorithm we do not implement (including `none`).
    HeaderUnsupportedAlg,
    /// `kid` is present but not a string.
    HeaderBadKid,
    /// The header lists `crit` extensions (we understand none, RFC 7515 §4.1.11) or sets
    /// `b64: false` (RFC 7797).
    HeaderCritical,
    /// The payload segment is not base64url.
    PayloadBadBase64,
    /// The payload is not a JSON object, or repeats a member name.
    PayloadBadJson,
    /// A registered claim has the wrong JSON type (`iss`/`sub` not a string, `exp`/`nbf`/`iat`
    /// not a number, `aud` neither a string nor an array of strings), or a time claim that is
    /// negative or past `jwt::MAX_NUMERIC_DATE`.
    PayloadBadClaim,
    /// The signature segment is not base64url.
    SignatureBadBase64,
    /// A token for an introspection provider that is not an RFC 6750 `b64token`: refused
    /// before any callout.
    NotB64Token,
    /// `iss` does not name the provider's issuer (or, when choosing by issuer, any provider).
    UnknownIssuer,
    /// No key in the provider's JWKS fits the token's `kid` and `alg`.
    NoMatchingKey,
    /// Keys fit, but none verifies the signature.
    SignatureInvalid,
    /// `exp` (plus clock skew) has passed.
    Expired,
    /// `nbf` (minus clock skew) is still in the future.
    NotYetValid,
    /// `require_expiration` is set and the token has no `exp`.
    ExpirationRequired,
    /// `exp - now` exceeds the provider's `max_lifetime`.
    LifetimeTooLong,
    /// `sub` does not match the provider's `subjects` matcher.
    SubjectNotAllowed,
    /// None of the token's audiences is configured.
    AudienceNotAllowed,
    /// The token is good but does not grant the requirement's `required_scopes` (403,
    /// RFC 6750 `insufficient_scope`).
    InsufficientScope,
    /// The token is good but a claim fails the requirement's `required_claims` (403).
    ClaimMismatch,
    /// The token's JOSE `typ` is absent or not one of the provider's `allowed_typ` (RFC 8725
    /// §3.11, RFC 9068 §4; `token_kind`).
    TypNotAllowed,
    /// The provider's `certificate_bound` check failed (RFC 8705 §3): the token is bound to
    /// another certificate, is bound but the connection has no client certificate, carries a
    /// malformed `cnf`, or is unbound where binding is `required` (`binding::check_binding`).
    CertificateBinding,
    /// The token is good but of the wrong kind for the requirement's `token_kind` (a user's
    /// token where only services may call, or the reverse): 403 `insufficient_scope`.
    TokenKindNotAllowed,
    /// The `peer` requirement failed: no client certificate, a plain-text connection, a URI
    /// SAN that is not a SPIFFE ID, or another principal (403, no challenge: no token would
    /// help).
    PeerNotAllowed,
    /// The host could not give a connection property the configuration needs (the peer's URI
    /// SAN or certificate digest): refused with 503, never taken as "no peer".
    PeerUnreadable,
    /// The provider has no key set to verify with.
    KeysUnavailable,
    /// The verified token is on its provider's revocation list (`revocation::Revoked`: a
    /// listed `jti`, `sub`, `client_id` or `sid`, or an `iat` before an `issued_before`
    /// cutoff). Checked after signature, issuer, time and audience, cached tokens included.
    Revoked,
    /// The provider's revocation list could not be had: none yet after the wait, or the last
    /// good one is older than `max_staleness`. Never "nothing is revoked".
    RevocationUnavailable,
    /// The authorization server said the opaque token is not active (RFC 7662 `"active":
    /// false`): 401 `invalid_token`.
    Inactive,
    /// The token could not be introspected: the server failed, refused the filter's own
    /// credentials, answered something that is not an RFC 7662 answer, or too many
    /// introspections were in flight (`introspection_unavailable` policy, default 503).
    IntrospectionUnavailable,
    /// The request itself cannot be read (`request::Unreadable`: headers the host could not
    /// give, no `:path` or `:method`, an `:authority` a `hosts` rule cannot parse). Refused
    /// with 400 before any failure policy or `report_only`: nothing can be decided on it.
    UnreadableRequest,
}

/// The classes a `failure_policy` (our extension) treats separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// No token where one is needed.
    Missing,
    /// A token is there but is not acceptable: malformed, unsigned by the keys, expired, of
    /// another issuer, ...
    Invalid,
    /// The provider's key set could not be had.
    KeysUnavailable,
    /// The provider's revocation list could not be had, or is older than `max_staleness`.
    RevocationUnavailable,
    /// An opaque token could not be introspected.
    IntrospectionUnavailable,
    /// A good token that does not grant access here (audience, scope, claim, token kind), or
    /// a peer that may not call: always 403 (503 when the peer cannot be read).
    Forbidden,
}

impl AuthError {
    /// The reason sent as the response body (unless `strip_failure_response`). These are Envoy
    /// `jwt_authn`'s strings where Envoy has the same failure.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "Jwt is missing",
            Self::MultipleTokensInHeader => "Jwt header carries more than one token",
            Self::RepeatedTokenLocation => "Jwt cookie or query parameter occurs more than once",
            Self::UndecodableToken => "Jwt cookie or query parameter cannot be decoded",
            Self::TooLarge => "Jwt is too large",
            Self::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            Self::HeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            Self::HeaderBadJson => "Jwt header is an invalid JSON",
            Self::HeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            Self::HeaderUnsupportedAlg => "Jwt header [alg] is not supported",
            Self::HeaderBadKid => "Jwt header [kid] field is not a string",
            Self::HeaderCritical => "Jwt header has critical extensions that are not supported",
            Self::PayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            Self::PayloadBadJson => "Jwt payload is an invalid JSON",
            Self::PayloadBadClaim => {
                "Jwt payload has a registered claim of the wrong type or out of range"
            }
            Self::SignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            Self::NotB64Token => "Token is not a valid bearer token",
            Self::UnknownIssuer => "Jwt issuer is not configured",
            Self::NoMatchingKey => "Jwks doesn't have key to match kid or alg from Jwt",
            Self::SignatureInvalid => "Jwt verification fails",
            Self::Expired => "Jwt is expired",
            Self::NotYetValid => "Jwt not yet valid",
            Self::ExpirationRequired => "Jwt is missing exp",
            Self::LifetimeTooLong => "Jwt lifetime exceeds the provider's max_lifetime",
            Self::SubjectNotAllowed => "Jwt subject is not allowed",
            Self::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Self::InsufficientScope => "Jwt lacks a required scope",
            Self::ClaimMismatch => "Jwt claims are not allowed",
            Self::TypNotAllowed => "Jwt type [typ] is not allowed",
            Self::CertificateBinding => "Jwt is not bound to the client certificate",
            Self::TokenKindNotAllowed => "Jwt is not of the kind of token this route accepts",
            Self::PeerNotAllowed => "Peer is not allowed",
            Self::PeerUnreadable => "Peer certificate cannot be read",
            Self::KeysUnavailable => "Jwks remote fetch is failed",
            Self::Revoked => "Jwt has been revoked",
            Self::RevocationUnavailable => "Jwt revocation list is unavailable",
            Self::Inactive => "Token is not active",
            Self::IntrospectionUnavailable => "Token introspection is unavailable",
            Self::UnreadableRequest => "Bad request",
        }
    }

    /// The stat-name segment of this failure (`metrics::DENY_REASONS`): one per reason a
    /// dashboard tells apart, several variants each.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MultipleTokensInHeader
            | Self::RepeatedTokenLocation
            | Self::UndecodableToken
            | Self::UnreadableRequest
            | Self::TooLarge
            | Self::BadFormat
            | Self::HeaderBadBase64
            | Self::HeaderBadJson
            | Self::HeaderBadAlg
            | Self::HeaderUnsupportedAlg
            | Self::HeaderBadKid
            | Self::HeaderCritical
            | Self::PayloadBadBase64
            | Self::PayloadBadJson
            | Self::PayloadBadClaim
            | Self::SignatureBadBase64
            | Self::NotB64Token => "malformed",
            Self::UnknownIssuer => "issuer",
            Self::NoMatchingKey | Self::SignatureInvalid => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::ExpirationRequired | Self::LifetimeTooLong => "lifetime",
            Self::SubjectNotAllowed => "subject",
            Self::AudienceNotAllowed => "audience",
            Self::InsufficientScope => "scope",
            Self::ClaimMismatch => "claim",
            Self::TypNotAllowed => "typ",
            Self::CertificateBinding => "binding",
            Self::TokenKindNotAllowed => "token_kind",
            Self::PeerNotAllowed | Self::PeerUnreadable => "peer",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Revoked => "revoked",
            Self::RevocationUnavailable => "revocation_unavailable",
            Self::Inactive => "inactive",
            Self::IntrospectionUnavailable => "introspection_unavailable",
        }
    }

    /// Which `failure_policy` class this failure belongs to.
    pub fn class(self) -> FailureClass {
        match self {
            Self::Missing => FailureClass::Missing,
            Self::KeysUnavailable => FailureClass::KeysUnavailable,
            Self::RevocationUnavailable => FailureClass::RevocationUnavailable,
            Self::IntrospectionUnavailable => FailureClass::IntrospectionUnavailable,
            Self::AudienceNotAllowed
            | Self::InsufficientScope
            | Self::ClaimMismatch
            | Self::TokenKindNotAllowed
            | Self::PeerNotAllowed
            | Self::PeerUnreadable => FailureClass::Forbidden,
            _ => FailureClass::Invalid,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A local reply: what the client gets when a request is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u32,
    /// `None` with `strip_failure_response`, as Envoy does.
    pub www_authenticate: Option<String>,
    pub body: &'static str,
}

/// The one mapping from failure to HTTP, as `jwt_authn` does it (RFC 6750 §3): 403 when the
/// token is good but not for this audience (or, ours, lacks a required scope or claim), else
/// 401; `error="invalid_token"` unless the token is simply missing, `error="insufficient_scope"`
/// with `scope="…"` (the scopes needed) for scopes, and without `scope` for claims and token
/// kinds (the token
/// needs higher privileges, RFC 6750 §3.1, but no scope would grant them; the rule's values are
/// not told). `realm` is the request URL. `strip` (`strip_failure_response`) leaves out the
/// body and the `WWW-Authenticate` header. `unavailable` (a `deny_503` failure policy) answers
/// 503 with the reason and no challenge: the client is not at fault. A request that cannot be
/// read (`UnreadableRequest`) gets 400 without a challenge. A peer that may not call
/// (`PeerNotAllowed`) gets 403 without a challenge (no token would help), and a peer the host
/// could not describe (`PeerUnreadable`) 503 without one, whatever the failure policy.
pub fn deny(
    error: AuthError,
    realm: &str,
    strip: bool,
    scope: Option<&str>,
    unavailable: bool,
) -> Denial {
    let unchallenged = match error {
        // Not an authentication challenge: no credential would make the request readable.
        AuthError::UnreadableRequest => Some(400),
        // Who is on the other end of the connection: no token changes it.
        AuthError::PeerNotAllowed => Some(403),
        AuthError::PeerUnreadable => Some(503),
        _ => None,
    };
    if let Some(status) = unchallenged {
        let body = if strip { "" } else { error.message() };
        return Denial {
            status,
            www_authenticate: None,
            body,
        };
    }
    let status = match error {
        _ if unavailable => 503,
        AuthError::AudienceNotAllowed
        | AuthError::InsufficientScope
        | AuthError::ClaimMismatch
        | AuthError::TokenKindNotAllowed => 403,
        _ => 401,
    };
    if strip || unavailable {
        let body = if strip { "" } else { error.message() };
        return Denial {
            status,
            www_authenticate: None,
            body,
        };
    }
    let realm = quoted_string_content(realm);
    let www_authenticate = match error {
        AuthError::Missing => format!("Bearer realm=\"{realm}\""),
        AuthError::InsufficientScope => format!(
            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
            quoted_string_content(scope.unwrap_or(""))
        ),
        AuthError::ClaimMismatch | AuthError::TokenKindNotAllowed => {
            format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\"")
        }
        _ => format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
    };
    Denial {
        status,
        www_authenticate: Some(www_authenticate),
        body: error.message(),
    }
}

/// Makes `s` safe inside an RFC 7230 quoted-string: drops control characters and non-ASCII,
/// escapes `"` and `\`. The realm comes from the request, so it is client bytes.
pub(crate) fn quoted_string_content(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out
}

/// Why a plugin configuration was refused. `field` is the JSON path of the offending value
/// (`providers.okta.local_jwks.inline_string`), so the single log line points at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.reason)
        } else {
            write!(
                f,
                "invalid configuration at `{}`: {}",
                self.field, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}
