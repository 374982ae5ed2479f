//! Plugin configuration: Envoy `jwt_authn` JSON → a validated, compiled, immutable `Config`.
//!
//! The JSON is `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication` in proto JSON
//! (snake_case names, durations as `"600s"`), so a native config moves over unchanged. Parsing
//! is two steps, as in Envoy's `filter_config.cc`: serde structs that refuse unknown fields,
//! then `compile`, which resolves provider names, compiles regexes and parses key sets. Any
//! error refuses the whole configuration, with the JSON path of the offending value; nothing
//! here runs per request.
//!
//! Fields of `jwt_authn` that a wasm filter cannot honour (`filename` data sources, metadata
//! outputs, `requirement_map`) are refused by name rather than ignored.
//!
//! Layout: `raw` (the serde shape, `jwt_authn`'s names) → `compile` (validated, immutable
//! `Config`, the types below); our extensions' blocks each in their own file, shape and compile
//! step together (`introspection`, `exchange`), sharing `oauth_client` (the endpoint and the
//! filter's client at an authorization server) and `secret` (where a client secret comes from,
//! one rule for all); `schema` (feature `schema`) derives the JSON Schema.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::binding::Binding;
use crate::claims::ClaimRule;
use crate::error::ConfigError;
use crate::jwks::KeySet;
use crate::jwks_cache::{FetchPolicy, Target};
use crate::matcher::{RouteMatcher, StringMatcher};
use crate::peer::PrincipalPattern;
use crate::scopes::ScopeRule;
use crate::token_kind::{AllowedTyp, ServiceTest, TokenKind};

mod compile;
mod exchange;
mod introspection;
mod oauth_client;
mod raw;
pub(crate) mod secret;

pub use self::exchange::{
    Actor, ExchangeId, TokenExchange, DEFAULT_MAX_CACHE_ENTRIES, DEFAULT_REFRESH_BEFORE,
};
pub use self::introspection::Introspection;
pub use self::oauth_client::OAuthServer;

use compile::compile;
#[cfg(test)]
use raw::parse_duration;
use raw::RawConfig;

/// Envoy's default `clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 60;

/// The header that tells the upstream what enforcement would have done, in `report_only`;
/// removed from every incoming request, in enforcement too.
pub const OUTCOME_HEADER: &str = "x-jwt-authn-outcome";

/// Every filter-state key of this filter starts with this (`wasm.` is Envoy's prefix for what a
/// wasm filter sets; the glue sets the rest as the property path).
pub const STATE_PREFIX: &str = "wasm.jwt_authn_wasm.";
/// The provider (its name in the configuration) whose token verified.
pub const STATE_PROVIDER: &str = "wasm.jwt_authn_wasm.provider";
/// The verified token's `iss`.
pub const STATE_ISSUER: &str = "wasm.jwt_authn_wasm.issuer";
/// The verified token's `sub`.
pub const STATE_SUBJECT: &str = "wasm.jwt_authn_wasm.subject";

/// The filter-state key of identity-header field `name`, when a key can carry it: letters,
/// digits, `_`, `-` and `.` only (a key is a property path, where NUL separates segments).
/// Computed once, at load (`IdentityField::state_key`); `propagate::filter_state` sets them.
pub fn state_key(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    plain.then(|| format!("{STATE_PREFIX}identity.{name}"))
}

/// The compiled configuration of one plugin instance.
#[derive(Debug)]
pub struct Config {
    /// Providers sorted by name; a `ProviderId` indexes this list.
    pub providers: Vec<Provider>,
    /// First match wins; no match means no token is needed.
    pub rules: Vec<Rule>,
    pub bypass_cors_preflight: bool,
    pub strip_failure_response: bool,
    /// What a failed requirement leads to, per class (our `failure_policy`).
    pub failure_policy: FailurePolicy,
    /// Evaluate and count everything, tell the upstream the outcome, never deny (ours).
    pub report_only: bool,
    /// Every header the filter can emit (claim targets, payload and identity headers, the
    /// outcome header), lower-cased and deduplicated: removed from every request before
    /// anything else.
    pub emitted_headers: Vec<String>,
    /// Our extension `host_signatures` (default true): check RS* and ES* signatures with the
    /// host's native crypto where it has it. False: always with the module's own code.
    pub host_signatures: bool,
    /// Our extension `share_key_sets` (default true): the VMs of one Envoy share remote key
    /// sets, their fetch lease and backoff through shared data. False: each VM fetches for
    /// itself and never touches shared data (no trust in the `vm_id` namespace needed).
    pub share_key_sets: bool,
    /// Which connection properties the glue must read for each request (issue 17).
    pub peer_reads: PeerReads,
    /// `token_exchanges` (ours, issue 16), sorted by name; an `ExchangeId` indexes this list.
    pub token_exchanges: Vec<TokenExchange>,
}

/// The connection properties a configuration needs; the glue reads only these, and a needed
/// one it cannot read refuses the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerReads {
    /// `connection.uri_san_peer_certificate`: a `peer` requirement or an identity header's
    /// `peer_field`.
    pub uri_san: bool,
    /// `connection.sha256_peer_certificate_digest`: a provider's `certificate_bound`.
    pub digest: bool,
}

/// `failure_policy` (our extension): what each class of failure leads to. 403s (audience,
/// scope, claim) are always 403: the token is good, the caller is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FailurePolicy {
    /// No token where the requirement needs one. Default `deny_401`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_401")))]
    pub token_missing: OnFailure,
    /// A token that is malformed, badly signed, expired, not yet valid, of an unknown issuer...
    /// Default `deny_401`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_401")))]
    pub token_invalid: OnFailure,
    /// The provider's remote key set could not be fetched (and no last good one is left).
    /// Default `deny_401`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_401")))]
    pub keys_unavailable: OnFailure,
    /// A token exchange that could not be done: the authorization server unreachable, a 5xx,
    /// a timeout, an answer that is not a token, an issued token that fails `verify_with`, or
    /// the filter's own credentials refused. `deny_503` or `deny_401`; never `allow` (the
    /// original token must not be forwarded instead). Default `deny_503`.
    #[serde(default = "deny_503")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_503")))]
    pub exchange_unavailable: OnFailure,
    /// The provider's revocation list could not be had: none yet after the wait, or the last
    /// successful fetch is older than its `max_staleness`. Default `deny_503`.
    #[serde(default = "deny_503")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_503")))]
    pub revocation_unavailable: OnFailure,
    /// An introspection provider could not say whether an opaque token is active (server down,
    /// 5xx, timeout, not an RFC 7662 answer, the filter's own credentials refused), and no
    /// cached answer may serve (`stale_if_error`). Default `deny_503`: the client is not at
    /// fault, and nothing the server did not call active is let through unless this says
    /// `allow`.
    #[serde(default = "deny_503")]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "deny_503")))]
    pub introspection_unavailable: OnFailure,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            token_missing: OnFailure::Deny401,
            token_invalid: OnFailure::Deny401,
            keys_unavailable: OnFailure::Deny401,
            revocation_unavailable: OnFailure::Deny503,
            exchange_unavailable: OnFailure::Deny503,
            introspection_unavailable: OnFailure::Deny503,
        }
    }
}

fn deny_503() -> OnFailure {
    OnFailure::Deny503
}

/// One class's outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum OnFailure {
    /// 401 with `WWW-Authenticate`, as `jwt_authn` answers.
    #[default]
    #[serde(rename = "deny_401")]
    Deny401,
    /// 503 with the reason as the body and no challenge: the client is not at fault.
    #[serde(rename = "deny_503")]
    Deny503,
    /// Let the request through without identity: emitted headers are stripped, the token is
    /// left where it was.
    #[serde(rename = "allow")]
    Allow,
}

/// Index of a provider in `Config::providers`.
pub type ProviderId = usize;

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    /// `iss` must equal this when set; an empty issuer accepts any `iss`.
    pub issuer: Option<String>,
    /// Empty: any audience (or none) is accepted.
    pub audiences: Vec<String>,
    pub subjects: Option<StringMatcher>,
    pub require_expiration: bool,
    pub max_lifetime: Option<Duration>,
    pub jwks: JwksSource,
    pub forward: bool,
    pub locations: Vec<Location>,
    pub forward_payload_header: Option<String>,
    pub pad_forward_payload_header: bool,
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// `identity_header` (ours): one header with base64 of a JSON object of chosen claims.
    pub identity_header: Option<IdentityHeader>,
    /// `filter_state` (ours): whether a verified identity is set as filter state.
    pub filter_state: bool,
    pub clock_skew_seconds: u64,
    /// `jwt_cache_config.jwt_cache_size`: how many verified tokens this provider keeps per VM;
    /// `None` without `jwt_cache_config` (no cache, as in Envoy).
    pub jwt_cache_size: Option<usize>,
    /// `allowed_typ` (ours): the JOSE `typ` values accepted; `None`: no check.
    pub allowed_typ: Option<AllowedTyp>,
    /// `service_token` / `resource_owner_claims` (ours): what makes a token a service's.
    pub service_test: ServiceTest,
    /// `certificate_bound` (ours, RFC 8705).
    pub certificate_bound: Binding,
    /// `revocation` (ours, issue 15): the provider's revocation list; `None`: no check.
    pub revocation: Option<Revocation>,
    /// `introspection` (ours, issue 14): this provider's tokens are opaque and introspected;
    /// its `jwks` is then an empty local set, which verifies nothing (the JWT path never
    /// accepts a token for it: `authorize` routes its tokens to introspection).
    pub introspection: Option<Box<Introspection>>,
}

impl Provider {
    /// What `verify` checks of this provider's tokens, borrowed.
    pub fn policy(&self) -> crate::verify::Policy<'_> {
        crate::verify::Policy {
            issuer: self.issuer.as_deref(),
            audiences: &self.audiences,
            subjects: self.subjects.as_ref(),
            require_expiration: self.require_expiration,
            max_lifetime: self.max_lifetime,
            clock_skew_seconds: self.clock_skew_seconds,
        }
    }
}

/// `identity_header`, compiled: the header and, in configuration order, each field's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// Lower-cased header name.
    pub header: String,
    pub fields: Vec<IdentityField>,
    /// `peer_field`: the field that carries the peer's SPIFFE ID.
    pub peer_field: Option<String>,
    /// `peer_field`'s filter-state key (`propagate::state_key`).
    pub peer_state_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityField {
    pub name: String,
    pub claim_path: Vec<String>,
    /// The claim is `scope` or `scp`: its value becomes an array of scopes.
    pub scopes: bool,
    /// Its filter-state key, `wasm.jwt_authn_wasm.identity.<name>`; `None` when the name has
    /// characters a key cannot carry (`propagate::state_key`).
    pub state_key: Option<String>,
}

/// Where a provider's keys come from. The engine only ever asks a `KeyStore` for the current
/// key set of a provider; for `Remote`, the glue's store fetches and caches it.
#[derive(Debug)]
pub enum JwksSource {
    Local(Arc<KeySet>),
    Remote(Box<RemoteJwks>),
}

/// `remote_jwks`, resolved: where to fetch (through which Envoy cluster) and the timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The Envoy cluster the callout goes to (in Istio, e.g. `outbound|443||idp.example.com`).
    pub cluster: String,
    /// What is fetched: the JWKS (`http_uri.uri`), or with `oidc_discovery` the issuer's
    /// OpenID configuration, whose `jwks_uri` is fetched next through the same cluster.
    pub target: Target,
    pub oidc_discovery: bool,
    pub timeout: Duration,
    pub policy: FetchPolicy,
}

/// An introspection provider's cache lifetimes (`introspection` reads answers with them).
/// In seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Longest life of a positive answer; 0 disables the cache (positive and negative).
    pub cache_duration: u64,
    /// Life of a negative answer; 0: negative answers are not cached.
    pub negative_cache_duration: u64,
    /// How long past its life a positive answer may serve while the server fails.
    pub stale_if_error: u64,
}

/// Envoy's default `jwt_cache_size`.
pub const DEFAULT_JWT_CACHE_SIZE: usize = 100;

/// `revocation`, resolved: where the list is fetched and how fresh it must be
/// (`ListPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The Envoy cluster the callout goes to.
    pub cluster: String,
    /// `http_uri.uri`.
    pub target: Target,
    pub timeout: Duration,
    pub policy: ListPolicy,
}

/// The shortest `cache_duration` (and the floor of a `max-age`): fetching more than once a
/// second per Envoy buys nothing.
pub const MIN_LIST_CACHE_DURATION: Duration = Duration::from_secs(1);

/// Timing of one provider's list (config `revocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPolicy {
    /// How long a fetched (or 304-confirmed) list is good before the next fetch; at least
    /// `MIN_LIST_CACHE_DURATION`. A `Cache-Control: max-age` only shortens it.
    pub cache_duration: Duration,
    /// How long after the last 200 or 304 the list is still used while fetches fail.
    pub max_staleness: Duration,
    /// The body must be a compact JWS over the list, checked with the provider's key set.
    pub require_signed: bool,
}

impl Default for ListPolicy {
    fn default() -> Self {
        Self {
            cache_duration: Duration::from_secs(60),
            max_staleness: Duration::from_secs(300),
            require_signed: false,
        }
    }
}

/// Where a provider looks for tokens (defined beside the extraction that reads it).
pub use crate::extract::Location;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    /// Lower-cased header name.
    pub header: String,
    /// The claim path, split at dots: `realm_access.roles` → `["realm_access", "roles"]`.
    pub claim_path: Vec<String>,
}

#[derive(Debug)]
pub struct Rule {
    pub matcher: RouteMatcher,
    /// `None`: the route needs no token.
    pub requirement: Option<Requirement>,
    /// `token_exchange` (ours): the exchange run once the requirement is satisfied.
    pub token_exchange: Option<ExchangeId>,
}

/// `JwtRequirement`, with provider names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A token from this provider; `audiences` overrides the provider's own when set,
    /// `scopes` (our `required_scopes`) must be granted by it and `claims` (our
    /// `required_claims`) must all hold for it; `token_kind` (ours) says whether a service's
    /// own token or a user's is wanted.
    Provider {
        provider: ProviderId,
        audiences: Option<Vec<String>>,
        scopes: Option<ScopeRule>,
        claims: Vec<ClaimRule>,
        token_kind: Option<TokenKind>,
    },
    /// `peer` (ours): the connection's client certificate names one of these principals.
    Peer(Vec<PrincipalPattern>),
    /// Any one child is satisfied.
    Any(Vec<Requirement>),
    /// Every child is satisfied.
    All(Vec<Requirement>),
    /// No token is fine; a token that is present must verify.
    AllowMissing,
    /// Always satisfied; a token that verifies still sets identity headers.
    AllowMissingOrFailed,
}

impl Config {
    /// Parses and compiles plugin configuration bytes. Empty configuration (Istio sends none
    /// when `pluginConfig` is empty) is refused: a JWT filter with no providers protects nothing
    /// and is almost certainly a mistake.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new(
                "",
                "the plugin configuration is empty; expected jwt_authn JSON with `providers`",
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| ConfigError::new(e.path().to_string(), e.inner().to_string()))?;
        deserializer
            .end()
            .map_err(|e| ConfigError::new("", e.to_string()))?;
        compile(raw)
    }

    /// Every error that refuses `bytes`, as far as they can be found at once: the top level,
    /// each provider and each rule are checked on their own (a mistake in one does not hide
    /// another's), then, when they all pass, the whole configuration as `from_json` loads it.
    /// Empty exactly when `from_json` accepts `bytes` (`jwt-authn-explain check-config`).
    /// Within one provider or rule, the first error is the one reported.
    pub fn check(bytes: &[u8]) -> Vec<ConfigError> {
        let first = match Config::from_json(bytes) {
            Ok(_) => return Vec::new(),
            Err(e) => e,
        };
        let errors = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => compile::check_parts(value),
            Err(_) => Vec::new(),
        };
        if errors.is_empty() {
            vec![first]
        } else {
            errors
        }
    }

    pub fn provider_id(&self, name: &str) -> Option<ProviderId> {
        self.providers.iter().position(|p| p.name == name)
    }

    /// What loaded but deserves a log line: JWKS keys that were skipped, with the reason, and
    /// keys that loaded although they are not RFC 7518 conformant (`KeySet::log_lines`).
    pub fn warnings(&self) -> Vec<String> {
        self.providers
            .iter()
            .flat_map(|p| {
                let lines = match &p.jwks {
                    JwksSource::Local(keys) => keys.log_lines(),
                    JwksSource::Remote(_) => Vec::new(),
                };
                lines
                    .into_iter()
                    .map(move |line| format!("provider {:?}: {line}", p.name))
            })
            .collect()
    }
}

#[cfg(feature = "schema")]
mod schema;
#[cfg(feature = "schema")]
pub use schema::{json_schema, SCHEMA_PATH};

#[cfg(test)]
mod revocation_tests;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;
