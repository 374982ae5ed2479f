//! The filter as an OAuth client of an authorization server: the endpoint (`http_uri`), the
//! client (`client_id`, `client_secret`, `allow_inline_secret`, `auth_method`), checked and
//! compiled once for every block that calls a server with the filter's credentials
//! (`introspection`, `token_exchanges`), into [`OAuthServer`]. The secret's own rules (where it
//! may come from, the consent an inline one needs) are `secret`'s.
//!
//! The serde shape of each block keeps these five fields itself (serde cannot `flatten` under
//! `deny_unknown_fields`) and hands them here as a [`RawOAuthClient`]; their documentation in
//! the JSON schema comes from the per-block fields, which say which endpoint `http_uri` is.

use std::time::Duration;

#[cfg(feature = "schema")]
use serde::Deserialize;

use super::raw::RawHttpUri;
use super::secret::{compile_secret, RawSecretSource};
use crate::error::ConfigError;
use crate::jwks_cache::Target;
use crate::oauth::{AuthMethod, Client, Endpoint};

// For the JSON schema only: the field itself is read as a string, so a bad value is refused
// naming the field (`AuthMethod::from_name`), not by serde.
/// How the filter authenticates to the authorization server (RFC 6749 §2.3.1).
#[cfg(feature = "schema")]
#[derive(Deserialize, Clone, Copy, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// The OAuth client fields of one block, as the JSON gave them.
pub(crate) struct RawOAuthClient {
    pub(crate) http_uri: RawHttpUri,
    pub(crate) client_id: String,
    pub(crate) client_secret: RawSecretSource,
    pub(crate) allow_inline_secret: bool,
    pub(crate) auth_method: Option<String>,
}

/// What a block asks of its endpoint beyond the common rules.
pub(crate) struct EndpointRules {
    /// What the endpoint is, for messages ("the introspection endpoint").
    pub(crate) what: &'static str,
    /// The longest `http_uri.timeout` accepted.
    pub(crate) max_timeout: Duration,
}

/// An authorization server endpoint and the filter's client there, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthServer {
    /// The Envoy cluster the callouts go to.
    pub cluster: String,
    /// `:authority` and `:path` of the endpoint.
    pub endpoint: Endpoint,
    /// How long one call may take.
    pub timeout: Duration,
    /// The filter as an OAuth client (its secret is redacted in `Debug`).
    pub client: Client,
}

/// Compiles the client fields of the block at JSON path `field`; `env` reads the VM's
/// environment (an `environment_variable` secret). Errors name the field, never the secret.
pub(crate) fn compile_oauth_client(
    field: &str,
    raw: RawOAuthClient,
    rules: &EndpointRules,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OAuthServer, ConfigError> {
    let at = |sub: &str| format!("{field}.{sub}");
    let target = Target::parse(&raw.http_uri.uri).ok_or_else(|| {
        ConfigError::new(
            at("http_uri.uri"),
            format!(
                "must be {}'s http:// or https:// URL, with a host",
                rules.what
            ),
        )
    })?;
    if raw.http_uri.cluster.is_empty() {
        return Err(ConfigError::new(
            at("http_uri.cluster"),
            "must name the Envoy cluster of the authorization server",
        ));
    }
    let timeout = raw.http_uri.timeout.unwrap_or_default();
    if timeout.is_zero() || timeout > rules.max_timeout {
        return Err(ConfigError::new(
            at("http_uri.timeout"),
            format!(
                "must be set, above 0s and at most {}s (the request waits for the call)",
                rules.max_timeout.as_secs()
            ),
        ));
    }
    if raw.client_id.is_empty() || !crate::oauth::is_vschar(&raw.client_id) {
        return Err(ConfigError::new(
            at("client_id"),
            "must be a non-empty printable ASCII client id (RFC 6749 Appendix A: VSCHAR)",
        ));
    }
    let secret = compile_secret(
        &at("client_secret"),
        raw.client_secret,
        raw.allow_inline_secret,
        env,
    )?;
    let method = match raw.auth_method.as_deref() {
        None => AuthMethod::default(),
        Some(m) => AuthMethod::from_name(m).ok_or_else(|| {
            ConfigError::new(
                at("auth_method"),
                format!("{m:?} is not `client_secret_basic` or `client_secret_post`"),
            )
        })?,
    };
    Ok(OAuthServer {
        cluster: raw.http_uri.cluster,
        endpoint: Endpoint {
            authority: target.authority,
            path: target.path,
        },
        timeout,
        client: Client {
            id: raw.client_id,
            secret,
            method,
        },
    })
}
