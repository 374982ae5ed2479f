//! A provider's `introspection` block (issue 14): opaque access tokens checked with the
//! authorization server (RFC 7662) instead of a key set. The serde shape and its compilation
//! into `Introspection`; the answers and their cache live in the `introspection` module.
//!
//! Refused at load, naming the field: a bad endpoint or client (`oauth_client`: `http_uri`,
//! `client_id`, the secret, `auth_method`), `max_cache_entries` 0, and
//! provider fields that mean nothing without a JWT (`forward_payload_header`, `allowed_typ`,
//! `jwt_cache_config`: `cache_duration` is the cache here).

use serde::Deserialize;
use std::time::Duration;

use super::oauth_client::{compile_oauth_client, EndpointRules, OAuthServer, RawOAuthClient};
use super::raw::{duration, RawHttpUri};
use super::secret::{vm_env, RawSecretSource};
use super::CachePolicy;
use crate::error::ConfigError;

/// Default `cache_duration`.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(60);
/// Default `negative_cache_duration`.
pub const DEFAULT_NEGATIVE_CACHE_DURATION: Duration = Duration::from_secs(5);
/// Default `max_cache_entries`.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;

/// `introspection`: ask the authorization server whether a token is active (RFC 7662).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntrospection {
    /// The introspection endpoint: `{uri, cluster, timeout}`; `uri` is required here. Required.
    pub(crate) http_uri: RawHttpUri,
    /// The filter's OAuth client id at the authorization server (printable ASCII). Required.
    pub(crate) client_id: String,
    /// The filter's client secret, a `DataSource`: `{"environment_variable": "NAME"}` (read
    /// from the VM's environment at load) or `{"inline_string": "..."}` (only with
    /// `allow_inline_secret: true`). Never logged. Required.
    pub(crate) client_secret: RawSecretSource,
    /// Accept a `client_secret.inline_string` (the configuration is visible in xDS and
    /// `config_dump`). Default `false`.
    #[serde(default)]
    pub(crate) allow_inline_secret: bool,
    /// How the filter authenticates (RFC 6749 §2.3.1): `client_secret_basic` or
    /// `client_secret_post`. Default `client_secret_basic`.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<super::oauth_client::RawAuthMethod>")
    )]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "client_secret_basic")))]
    pub(crate) auth_method: Option<String>,
    /// Longest life of an active answer in the cache; never past the token's `exp`. `0s`
    /// disables the cache (every request asks). Default `60s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "60s")))]
    pub(crate) cache_duration: Option<Duration>,
    /// Life of an inactive answer in the cache; `0s`: not cached. Default `5s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "5s")))]
    pub(crate) negative_cache_duration: Option<Duration>,
    /// How long past its life a cached active answer may still serve while the server cannot
    /// be asked (never past `exp`). Default `0s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "0s")))]
    pub(crate) stale_if_error: Option<Duration>,
    /// Most answers (and introspections in flight) each VM keeps for this provider, at least
    /// 1. Default `10000`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 10000)))]
    pub(crate) max_cache_entries: Option<u64>,
}

/// `introspection`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The introspection endpoint and the filter's client there.
    pub server: OAuthServer,
    /// The cache lifetimes, in seconds.
    pub cache: CachePolicy,
    /// Most entries per VM, at least 1.
    pub max_cache_entries: usize,
}

/// Compiles `raw`, the `introspection` at JSON path `field`.
pub(crate) fn compile_introspection(
    field: &str,
    raw: RawIntrospection,
) -> Result<Introspection, ConfigError> {
    let server = compile_oauth_client(
        field,
        RawOAuthClient {
            http_uri: raw.http_uri,
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            allow_inline_secret: raw.allow_inline_secret,
            auth_method: raw.auth_method,
        },
        &EndpointRules {
            what: "the introspection endpoint",
            max_timeout: Duration::from_secs(3600),
        },
        &vm_env,
    )?;
    let max_cache_entries = match raw.max_cache_entries {
        None => DEFAULT_MAX_CACHE_ENTRIES,
        Some(0) => {
            return Err(ConfigError::new(
                format!("{field}.max_cache_entries"),
                "must be at least 1 (use cache_duration: 0s to disable the cache)",
            ))
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    Ok(Introspection {
        server,
        cache: CachePolicy {
            cache_duration: raw
                .cache_duration
                .unwrap_or(DEFAULT_CACHE_DURATION)
                .as_secs(),
            negative_cache_duration: raw
                .negative_cache_duration
                .unwrap_or(DEFAULT_NEGATIVE_CACHE_DURATION)
                .as_secs(),
            stale_if_error: raw.stale_if_error.unwrap_or_default().as_secs(),
        },
        max_cache_entries,
    })
}

#[cfg(test)]
mod tests;
