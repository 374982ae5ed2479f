//! The `token_exchanges` section (issue 16): its serde shape and its compile step into
//! [`TokenExchange`], and the rule's `token_exchange` reference. Every reference is resolved at
//! load: a rule naming an exchange that is not configured, an exchange whose `verify_with`
//! names no provider, refuse the configuration with the JSON path of the field. What an
//! exchange does per request is the `exchange` module's.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

use super::oauth_client::{compile_oauth_client, EndpointRules, OAuthServer, RawOAuthClient};
use super::raw::{duration, RawHttpUri, RawJwtHeader};
use super::secret::RawSecretSource;
use super::ProviderId;
use crate::error::ConfigError;
use crate::oauth::token_type;

/// Index of an exchange in `Config::token_exchanges` (sorted by name).
pub type ExchangeId = usize;

/// `refresh_before` when not set.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(30);
/// `max_cache_entries` when not set.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;
/// The largest `max_cache_entries` accepted.
pub const MAX_CACHE_ENTRIES_LIMIT: usize = 1_000_000;

/// One token exchange (RFC 8693): where the token endpoint is, how the filter authenticates to
/// it, what it asks for, and what is done with the token issued.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenExchange {
    /// The token endpoint: `{uri, cluster, timeout}`; `uri` is required here. Required.
    pub(crate) http_uri: RawHttpUri,
    /// The filter's client id at the authorization server (printable ASCII). Required.
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
    /// RFC 8693 `audience`: the logical name of the service the issued token is for. Default:
    /// not sent.
    #[serde(default)]
    pub(crate) audience: Option<String>,
    /// RFC 8693 `resource`: an absolute URI of the service the issued token is for. Default:
    /// not sent.
    #[serde(default)]
    pub(crate) resource: Option<String>,
    /// RFC 8693 `scope`: the space-delimited scopes asked for the issued token (to narrow the
    /// user's). Default: not sent.
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// RFC 8693 `requested_token_type`, a token type URI. Default: not sent (the server
    /// chooses, usually an access token).
    #[serde(default)]
    pub(crate) requested_token_type: Option<String>,
    /// What the subject token is: `access_token`, `id_token` or `jwt` (sent as the RFC 8693
    /// token type URI). Default `access_token`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "access_token")))]
    pub(crate) subject_token_type: Option<RawSubjectTokenType>,
    /// `none`, or `client_credentials`: the filter first obtains a token of its own (client
    /// credentials grant, cached until `refresh_before` its expiry) and sends it as
    /// `actor_token`, so the issued token names the gateway in `act`. Default `none`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "none")))]
    pub(crate) actor: Option<RawActor>,
    /// A provider that must verify the issued token (signature, issuer, audiences, time) before
    /// it is forwarded; a token it refuses fails the exchange (`exchange_unavailable`). Absent:
    /// the token is forwarded as the server returned it, trusting the server and the path to it.
    /// Default: none.
    #[serde(default)]
    pub(crate) verify_with: Option<String>,
    /// Where the issued token goes, `{name, value_prefix}`. Default `{"name": "authorization",
    /// "value_prefix": "Bearer "}`.
    #[serde(default)]
    pub(crate) forward_header: Option<RawJwtHeader>,
    /// An issued (or actor) token is used until this long before it expires. Default `30s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "30s")))]
    pub(crate) refresh_before: Option<Duration>,
    /// Most issued tokens each VM keeps for this exchange, 1 to 1000000. Default `10000`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 10000)))]
    pub(crate) max_cache_entries: Option<usize>,
}

/// `subject_token_type`.
#[derive(Deserialize, Clone, Copy)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSubjectTokenType {
    /// `urn:ietf:params:oauth:token-type:access_token`.
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:id_token`.
    IdToken,
    /// `urn:ietf:params:oauth:token-type:jwt`.
    Jwt,
}

/// `actor`.
#[derive(Deserialize, Clone, Copy)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawActor {
    /// No `actor_token`.
    None,
    /// The filter's own token (client credentials grant) as `actor_token`.
    ClientCredentials,
}

/// Whose token is sent as `actor_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    None,
    /// The filter's own, from the client credentials grant with the exchange's client.
    ClientCredentials,
}

/// A token exchange, compiled.
#[derive(Debug)]
pub struct TokenExchange {
    /// Its name in `token_exchanges`: part of the cache key and of the stat names.
    pub name: String,
    /// The token endpoint and the filter's client there.
    pub server: OAuthServer,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    pub requested_token_type: Option<String>,
    /// The RFC 8693 URI sent as `subject_token_type`.
    pub subject_token_type: &'static str,
    pub actor: Actor,
    /// The provider that verifies the issued token; `None`: forwarded as issued.
    pub verify_with: Option<ProviderId>,
    /// Lower-cased header that receives the issued token.
    pub forward_header: String,
    pub forward_prefix: String,
    pub refresh_before: Duration,
    pub max_cache_entries: usize,
}

/// Every exchange, sorted by name (an `ExchangeId` indexes the result); `providers`: the
/// configured provider names in `Config::providers` order; `env` reads the VM's environment.
pub(crate) fn compile_exchanges(
    raw: BTreeMap<String, RawTokenExchange>,
    providers: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<TokenExchange>, ConfigError> {
    raw.into_iter()
        .map(|(name, raw)| compile_exchange(&name, raw, providers, env))
        .collect()
}

/// A rule's `token_exchange` at `field`, resolved against `exchanges` (the configured names,
/// sorted).
pub(crate) fn resolve_exchange(
    field: &str,
    name: Option<&str>,
    exchanges: &[&str],
) -> Result<Option<ExchangeId>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    exchanges
        .iter()
        .position(|n| *n == name)
        .map(Some)
        .ok_or_else(|| {
            ConfigError::new(
                field,
                format!("token exchange [{name:?}] is not configured in `token_exchanges`"),
            )
        })
}

pub(crate) fn compile_exchange(
    name: &str,
    raw: RawTokenExchange,
    providers: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TokenExchange, ConfigError> {
    let field = format!("token_exchanges.{name}");
    let at = |sub: &str| format!("{field}.{sub}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err(ConfigError::new(
            field,
            "an exchange's name is part of its stat names: letters, digits, `-` and `_` only",
        ));
    }
    let server = compile_oauth_client(
        &field,
        RawOAuthClient {
            http_uri: raw.http_uri,
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            allow_inline_secret: raw.allow_inline_secret,
            auth_method: raw.auth_method,
        },
        &EndpointRules {
            what: "the token endpoint",
            max_timeout: Duration::from_secs(60),
        },
        env,
    )?;
    for (sub, value) in [
        ("audience", &raw.audience),
        ("resource", &raw.resource),
        ("scope", &raw.scope),
        ("requested_token_type", &raw.requested_token_type),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.is_empty() || !crate::oauth::is_vschar(v))
        {
            return Err(ConfigError::new(
                at(sub),
                "must be non-empty printable ASCII when set",
            ));
        }
    }
    if raw
        .resource
        .as_deref()
        .is_some_and(|r| !r.contains("://") || r.contains('#'))
    {
        return Err(ConfigError::new(
            at("resource"),
            "must be an absolute URI without a fragment (RFC 8693 §2.1)",
        ));
    }
    let verify_with = match raw.verify_with.as_deref() {
        None => None,
        Some(p) => Some(providers.iter().position(|n| *n == p).ok_or_else(|| {
            ConfigError::new(
                at("verify_with"),
                format!("provider [{p:?}] is not configured in `providers`"),
            )
        })?),
    };
    let (forward_header, forward_prefix) = match raw.forward_header {
        None => ("authorization".to_owned(), "Bearer ".to_owned()),
        Some(h) => {
            let lower = h.name.to_ascii_lowercase();
            if lower.is_empty()
                || lower.starts_with(':')
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(ConfigError::new(
                    at("forward_header.name"),
                    "must be a request header name (not a pseudo-header)",
                ));
            }
            if !h.value_prefix.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
                return Err(ConfigError::new(
                    at("forward_header.value_prefix"),
                    "must be printable ASCII",
                ));
            }
            (lower, h.value_prefix)
        }
    };
    let refresh_before = raw.refresh_before.unwrap_or(DEFAULT_REFRESH_BEFORE);
    let max_cache_entries = raw.max_cache_entries.unwrap_or(DEFAULT_MAX_CACHE_ENTRIES);
    if max_cache_entries == 0 || max_cache_entries > MAX_CACHE_ENTRIES_LIMIT {
        return Err(ConfigError::new(
            at("max_cache_entries"),
            "must be 1 to 1000000",
        ));
    }
    let subject_token_type = match raw.subject_token_type {
        None | Some(RawSubjectTokenType::AccessToken) => token_type::ACCESS_TOKEN,
        Some(RawSubjectTokenType::IdToken) => token_type::ID_TOKEN,
        Some(RawSubjectTokenType::Jwt) => token_type::JWT,
    };
    let actor = match raw.actor {
        None | Some(RawActor::None) => Actor::None,
        Some(RawActor::ClientCredentials) => Actor::ClientCredentials,
    };
    Ok(TokenExchange {
        name: name.to_owned(),
        server,
        audience: raw.audience,
        resource: raw.resource,
        scope: raw.scope,
        requested_token_type: raw.requested_token_type,
        subject_token_type,
        actor,
        verify_with,
        forward_header,
        forward_prefix,
        refresh_before,
        max_cache_entries,
    })
}

#[cfg(test)]
mod tests;
