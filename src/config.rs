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

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::claims::{is_scalar, ClaimRule, ClaimTest};
use crate::error::ConfigError;
use crate::jwks::KeySet;
use crate::jwks_cache::{FetchPolicy, Target};
use crate::matcher::{HeaderMatcher, HostMatcher, PathMatcher, RouteMatcher, StringMatcher};
use crate::scopes::{is_scope_token, ScopeRule};

/// Envoy's default `clock_skew_seconds`.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 60;

/// The header that tells the upstream what enforcement would have done, in `report_only`.
pub const OUTCOME_HEADER: &str = "x-jwt-authn-outcome";

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
}

/// `failure_policy` (our extension): what each class of failure leads to. 403s (audience,
/// scope, claim) are always 403: the token is good, the caller is not allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FailurePolicy {
    /// No token where the requirement needs one.
    #[serde(default)]
    pub token_missing: OnFailure,
    /// A token that is malformed, badly signed, expired, not yet valid, of an unknown issuer...
    #[serde(default)]
    pub token_invalid: OnFailure,
    /// The provider's remote key set could not be fetched (and no last good one is left).
    #[serde(default)]
    pub keys_unavailable: OnFailure,
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
    pub clock_skew_seconds: u64,
    /// `jwt_cache_config.jwt_cache_size`: how many verified tokens this provider keeps per VM;
    /// `None` without `jwt_cache_config` (no cache, as in Envoy).
    pub jwt_cache_size: Option<usize>,
}

/// `identity_header`, compiled: the header and, in configuration order, each field's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// Lower-cased header name.
    pub header: String,
    pub fields: Vec<IdentityField>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityField {
    pub name: String,
    pub claim_path: Vec<String>,
    /// The claim is `scope` or `scp`: its value becomes an array of scopes.
    pub scopes: bool,
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

/// Where a provider looks for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A request header (lower-cased name); the token follows `value_prefix` when one is set.
    Header { name: String, value_prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

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
}

/// `JwtRequirement`, with provider names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A token from this provider; `audiences` overrides the provider's own when set,
    /// `scopes` (our `required_scopes`) must be granted by it and `claims` (our
    /// `required_claims`) must all hold for it.
    Provider {
        provider: ProviderId,
        audiences: Option<Vec<String>>,
        scopes: Option<ScopeRule>,
        claims: Vec<ClaimRule>,
    },
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

// ---------------------------------------------------------------------------------------------
// Raw JSON shapes (serde). Field names are jwt_authn's.

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    bypass_cors_preflight: bool,
    #[serde(default)]
    strip_failure_response: bool,
    // Extensions (documented in the README).
    #[serde(default)]
    failure_policy: FailurePolicy,
    #[serde(default)]
    report_only: bool,
    /// Check RS* and ES* signatures with the host's native crypto (Envoy's `verify_signature`)
    /// when it has it; `false`: every signature in wasm.
    #[serde(default = "yes")]
    host_signatures: bool,
    /// Accepted for compatibility; our stats have fixed names.
    #[serde(default)]
    #[allow(dead_code)]
    stat_prefix: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawProvider {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    subjects: Option<RawStringMatcher>,
    #[serde(default)]
    require_expiration: bool,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    max_lifetime: Option<Duration>,
    #[serde(default)]
    local_jwks: Option<RawDataSource>,
    #[serde(default)]
    remote_jwks: Option<RawRemoteJwks>,
    #[serde(default)]
    forward: bool,
    #[serde(default)]
    from_headers: Vec<RawJwtHeader>,
    #[serde(default)]
    from_params: Vec<String>,
    #[serde(default)]
    from_cookies: Vec<String>,
    #[serde(default)]
    forward_payload_header: String,
    #[serde(default)]
    pad_forward_payload_header: bool,
    #[serde(default)]
    claim_to_headers: Vec<RawClaimToHeader>,
    #[serde(default)]
    clock_skew_seconds: Option<u32>,
    /// Our extension.
    #[serde(default)]
    identity_header: Option<RawIdentityHeader>,
    /// Keep verified tokens (per VM) so a token seen again is neither parsed nor checked again;
    /// the claim checks still run. As in Envoy: no cache without it.
    #[serde(default)]
    jwt_cache_config: Option<RawJwtCacheConfig>,
    // Known jwt_authn fields a wasm filter cannot honour: refused by name in `compile`, and
    // left out of the JSON Schema (`schemars(skip)`) so editors never offer them.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    payload_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    header_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    failed_status_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    normalize_payload_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    clear_route_cache: Option<serde_json::Value>,
}

/// `JwtCacheConfig`. A size of 0 (proto3's unset) means Envoy's default, 100.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawJwtCacheConfig {
    /// How many verified tokens of this provider each VM keeps; 0 means 100.
    #[serde(default)]
    jwt_cache_size: u32,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    http_uri: RawHttpUri,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    cache_duration: Option<Duration>,
    #[serde(default)]
    async_fetch: Option<RawAsyncFetch>,
    // Extensions (documented in the README).
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    min_cache_duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    max_cache_duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    max_staleness: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    unknown_kid_refetch_interval: Option<Duration>,
    #[serde(default)]
    oidc_discovery: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawHttpUri {
    #[serde(default)]
    uri: String,
    cluster: String,
    #[serde(deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    timeout: Option<Duration>,
}

/// Envoy fetches at start-up when this is set; we always do. `fast_listener` is accepted and
/// means nothing here (the listener never waits for us); `failed_refetch_duration` is the
/// first retry delay.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawAsyncFetch {
    #[serde(default)]
    #[allow(dead_code)]
    fast_listener: bool,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "schema::ProtoDuration"))]
    failed_refetch_duration: Option<Duration>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawDataSource {
    #[serde(default)]
    inline_string: Option<String>,
    #[serde(default)]
    inline_bytes: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    filename: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    environment_variable: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawJwtHeader {
    name: String,
    #[serde(default)]
    value_prefix: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawClaimToHeader {
    header_name: String,
    claim_name: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawIdentityHeader {
    header_name: String,
    /// Output field → claim name or dotted path.
    claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    route_match: RawRouteMatch,
    #[serde(default)]
    requires: Option<RawRequirement>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    requirement_name: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRouteMatch {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    safe_regex: Option<RawRegex>,
    #[serde(default)]
    path_separated_prefix: Option<String>,
    #[serde(default)]
    case_sensitive: Option<bool>,
    #[serde(default)]
    headers: Vec<RawHeaderMatcher>,
    // Extensions: Envoy matches these through `headers` on `:method` / `:authority`.
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegex {
    pub(crate) regex: String,
    /// Deprecated in Envoy and without meaning for us; accepted so configs move over.
    #[serde(default)]
    #[allow(dead_code)]
    google_re2: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawHeaderMatcher {
    name: String,
    #[serde(default)]
    exact_match: Option<String>,
    #[serde(default)]
    prefix_match: Option<String>,
    #[serde(default)]
    suffix_match: Option<String>,
    #[serde(default)]
    contains_match: Option<String>,
    #[serde(default)]
    safe_regex_match: Option<RawRegex>,
    #[serde(default)]
    present_match: Option<bool>,
    #[serde(default)]
    string_match: Option<RawStringMatcher>,
    #[serde(default)]
    invert_match: bool,
    #[serde(default)]
    treat_missing_header_as_empty: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStringMatcher {
    #[serde(default)]
    pub(crate) exact: Option<String>,
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    #[serde(default)]
    pub(crate) suffix: Option<String>,
    #[serde(default)]
    pub(crate) contains: Option<String>,
    #[serde(default)]
    pub(crate) safe_regex: Option<RawRegex>,
    #[serde(default)]
    pub(crate) ignore_case: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    #[serde(default)]
    provider_name: Option<String>,
    #[serde(default)]
    provider_and_audiences: Option<RawProviderAndAudiences>,
    #[serde(default)]
    requires_any: Option<RawRequirementList>,
    #[serde(default)]
    requires_all: Option<RawRequirementList>,
    #[serde(default)]
    allow_missing_or_failed: Option<RawEmpty>,
    #[serde(default)]
    allow_missing: Option<RawEmpty>,
    /// Our extensions, with `provider_name` or `provider_and_audiences`.
    #[serde(default)]
    required_scopes: Option<RawScopes>,
    #[serde(default)]
    required_claims: Vec<RawClaimRule>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawClaimRule {
    name: String,
    #[serde(default)]
    equals: Option<serde_json::Value>,
    #[serde(default)]
    one_of: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    contains: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawScopes {
    #[serde(default)]
    all_of: Vec<String>,
    #[serde(default)]
    any_of: Vec<String>,
    #[serde(default)]
    claim: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawProviderAndAudiences {
    provider_name: String,
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawRequirementList {
    #[serde(default)]
    requirements: Vec<RawRequirement>,
}

/// `google.protobuf.Empty`: `{}`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawEmpty {}

/// Proto JSON `google.protobuf.Duration`: decimal seconds with an `s` suffix, up to nine
/// fractional digits (`"600s"`, `"1.5s"`). Negative durations mean nothing here and are refused.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if number.contains('.') && fraction.is_empty() {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    Some(Duration::new(secs, nanos))
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format_args!(
            "invalid duration {text:?}: expected seconds with an `s` suffix, e.g. \"600s\" or \"1.5s\""
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Compile: resolve, validate, build.

fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.providers.is_empty() {
        return Err(ConfigError::new(
            "providers",
            "at least one provider is required",
        ));
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, provider) in raw.providers {
        providers.push(compile_provider(&name, provider)?);
    }
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.into_iter().enumerate() {
        let field = format!("rules[{i}]");
        if rule.requirement_name.is_some() {
            return Err(ConfigError::new(
                format!("{field}.requirement_name"),
                "requirement_map / requirement_name is not supported; use `requires`",
            ));
        }
        let matcher = compile_route_match(&format!("{field}.match"), rule.route_match)?;
        let requirement = match rule.requires {
            None => None,
            Some(raw) => compile_requirement(&format!("{field}.requires"), raw, &names)?,
        };
        rules.push(Rule {
            matcher,
            requirement,
        });
    }
    let mut emitted_headers: Vec<String> = providers
        .iter()
        .flat_map(|p| {
            p.claim_to_headers
                .iter()
                .map(|c| c.header.clone())
                .chain(p.forward_payload_header.clone())
                .chain(p.identity_header.as_ref().map(|i| i.header.clone()))
        })
        .chain(raw.report_only.then(|| OUTCOME_HEADER.to_owned()))
        .collect();
    emitted_headers.sort();
    emitted_headers.dedup();
    Ok(Config {
        providers,
        rules,
        bypass_cors_preflight: raw.bypass_cors_preflight,
        strip_failure_response: raw.strip_failure_response,
        failure_policy: raw.failure_policy,
        report_only: raw.report_only,
        emitted_headers,
        host_signatures: raw.host_signatures,
    })
}

fn compile_provider(name: &str, raw: RawProvider) -> Result<Provider, ConfigError> {
    let field = |f: &str| format!("providers.{name}.{f}");
    let unsupported = [
        ("payload_in_metadata", raw.payload_in_metadata.is_some()),
        ("header_in_metadata", raw.header_in_metadata.is_some()),
        (
            "failed_status_in_metadata",
            raw.failed_status_in_metadata.is_some(),
        ),
        (
            "normalize_payload_in_metadata",
            raw.normalize_payload_in_metadata.is_some(),
        ),
        ("clear_route_cache", raw.clear_route_cache.is_some()),
    ];
    if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(ConfigError::new(
            field(f),
            "is a jwt_authn field that jwt-authn-wasm does not support yet",
        ));
    }
    let jwks = match (raw.local_jwks, raw.remote_jwks) {
        (None, None) => {
            return Err(ConfigError::new(
                field("local_jwks"),
                "a provider needs a key set: set `local_jwks` or `remote_jwks`",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("remote_jwks"),
                "set only one of `local_jwks` and `remote_jwks`",
            ))
        }
        (Some(source), None) => {
            JwksSource::Local(Arc::new(compile_local_jwks(&field("local_jwks"), source)?))
        }
        (None, Some(remote)) => JwksSource::Remote(Box::new(compile_remote_jwks(
            &field("remote_jwks"),
            &raw.issuer,
            remote,
        )?)),
    };
    let mut locations = Vec::new();
    for (i, header) in raw.from_headers.into_iter().enumerate() {
        let name = header.name.to_ascii_lowercase();
        if !is_header_name(&name) {
            return Err(ConfigError::new(
                format!("{}[{i}].name", field("from_headers")),
                format!("{:?} is not a valid header name", header.name),
            ));
        }
        locations.push(Location::Header {
            name,
            value_prefix: header.value_prefix,
        });
    }
    locations.extend(raw.from_params.into_iter().map(Location::Param));
    locations.extend(raw.from_cookies.into_iter().map(Location::Cookie));
    if locations.is_empty() {
        // jwt_authn's default: `Authorization: Bearer <token>`, then `?access_token=<token>`.
        locations.push(Location::Header {
            name: "authorization".into(),
            value_prefix: "Bearer ".into(),
        });
        locations.push(Location::Param("access_token".into()));
    }
    let mut claim_to_headers = Vec::with_capacity(raw.claim_to_headers.len());
    for (i, c) in raw.claim_to_headers.into_iter().enumerate() {
        let header = c.header_name.to_ascii_lowercase();
        if !is_header_name(&header) || header.starts_with(':') {
            return Err(ConfigError::new(
                format!("{}[{i}].header_name", field("claim_to_headers")),
                format!("{:?} is not a valid header name", c.header_name),
            ));
        }
        let claim_path = claim_path(
            &format!("{}[{i}].claim_name", field("claim_to_headers")),
            &c.claim_name,
        )?;
        claim_to_headers.push(ClaimToHeader { header, claim_path });
    }
    let forward_payload_header = if raw.forward_payload_header.is_empty() {
        None
    } else {
        let header = raw.forward_payload_header.to_ascii_lowercase();
        if !is_header_name(&header) {
            return Err(ConfigError::new(
                field("forward_payload_header"),
                format!(
                    "{:?} is not a valid header name",
                    raw.forward_payload_header
                ),
            ));
        }
        Some(header)
    };
    let identity_header = raw
        .identity_header
        .map(|i| compile_identity_header(&field("identity_header"), i))
        .transpose()?;
    let subjects = raw
        .subjects
        .map(|m| StringMatcher::compile(&field("subjects"), m))
        .transpose()?;
    Ok(Provider {
        name: name.to_owned(),
        issuer: Some(raw.issuer).filter(|i| !i.is_empty()),
        audiences: raw.audiences,
        subjects,
        require_expiration: raw.require_expiration,
        max_lifetime: raw.max_lifetime,
        jwks,
        forward: raw.forward,
        locations,
        forward_payload_header,
        pad_forward_payload_header: raw.pad_forward_payload_header,
        claim_to_headers,
        identity_header,
        // proto3: 0 is "unset", so it means the default, as in Envoy.
        clock_skew_seconds: u64::from(match raw.clock_skew_seconds {
            None | Some(0) => DEFAULT_CLOCK_SKEW_SECONDS,
            Some(skew) => skew,
        }),
        jwt_cache_size: raw.jwt_cache_config.map(|c| match c.jwt_cache_size {
            0 => crate::token_cache::DEFAULT_SIZE,
            size => usize::try_from(size).unwrap_or(usize::MAX),
        }),
    })
}

fn compile_identity_header(
    field: &str,
    raw: RawIdentityHeader,
) -> Result<IdentityHeader, ConfigError> {
    let header = raw.header_name.to_ascii_lowercase();
    if !is_header_name(&header) || header.starts_with(':') {
        return Err(ConfigError::new(
            format!("{field}.header_name"),
            format!("{:?} is not a valid header name", raw.header_name),
        ));
    }
    if raw.claims.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.claims"),
            "map at least one field to a claim",
        ));
    }
    let mut fields = Vec::with_capacity(raw.claims.len());
    for (name, claim) in raw.claims {
        let f = format!("{field}.claims.{name}");
        let claim = claim
            .as_str()
            .ok_or_else(|| ConfigError::new(&f, "must be a claim name or dotted path"))?;
        let claim_path = claim_path(&f, claim)?;
        let scopes = matches!(claim, "scope" | "scp");
        fields.push(IdentityField {
            name,
            claim_path,
            scopes,
        });
    }
    Ok(IdentityHeader { header, fields })
}

fn compile_remote_jwks(
    field: &str,
    issuer: &str,
    raw: RawRemoteJwks,
) -> Result<RemoteJwks, ConfigError> {
    let uri_field = format!("{field}.http_uri.uri");
    let target = match (raw.oidc_discovery, raw.http_uri.uri.as_str()) {
        (false, uri) => Target::parse(uri).ok_or_else(|| {
            ConfigError::new(&uri_field, "must be an http:// or https:// URL with a host")
        })?,
        (true, "") => Target::parse(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
        .ok_or_else(|| {
            ConfigError::new(
                field.replace(".remote_jwks", ".issuer"),
                "oidc_discovery needs an http:// or https:// issuer",
            )
        })?,
        (true, _) => return Err(ConfigError::new(
            uri_field,
            "leave it empty with oidc_discovery: the issuer's OpenID configuration names the JWKS",
        )),
    };
    if raw.http_uri.cluster.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.http_uri.cluster"),
            "must name the Envoy cluster of the JWKS host",
        ));
    }
    let timeout = raw.http_uri.timeout.unwrap_or_default();
    if timeout.is_zero() || timeout > Duration::from_secs(3600) {
        return Err(ConfigError::new(
            format!("{field}.http_uri.timeout"),
            "must be set, above 0s and at most 3600s",
        ));
    }
    let defaults = FetchPolicy::default();
    let policy = FetchPolicy {
        cache_duration: raw.cache_duration.unwrap_or(defaults.cache_duration),
        min_cache_duration: raw
            .min_cache_duration
            .unwrap_or(defaults.min_cache_duration),
        max_cache_duration: raw
            .max_cache_duration
            .unwrap_or(defaults.max_cache_duration),
        max_staleness: raw.max_staleness.unwrap_or(defaults.max_staleness),
        retry_base: raw
            .async_fetch
            .and_then(|a| a.failed_refetch_duration)
            .unwrap_or(defaults.retry_base),
        max_backoff: raw.max_backoff.unwrap_or(defaults.max_backoff),
        unknown_kid_interval: raw
            .unknown_kid_refetch_interval
            .unwrap_or(defaults.unknown_kid_interval),
    };
    if policy.min_cache_duration > policy.max_cache_duration {
        return Err(ConfigError::new(
            format!("{field}.min_cache_duration"),
            "must not exceed max_cache_duration",
        ));
    }
    if policy.retry_base.is_zero() {
        return Err(ConfigError::new(
            format!("{field}.async_fetch.failed_refetch_duration"),
            "must be above 0s",
        ));
    }
    Ok(RemoteJwks {
        cluster: raw.http_uri.cluster,
        target,
        oidc_discovery: raw.oidc_discovery,
        timeout,
        policy,
    })
}

fn compile_local_jwks(field: &str, source: RawDataSource) -> Result<KeySet, ConfigError> {
    let text = match source {
        RawDataSource {
            inline_string: Some(text),
            inline_bytes: None,
            filename: None,
            environment_variable: None,
        } => text,
        RawDataSource {
            inline_string: None,
            inline_bytes: Some(b64),
            filename: None,
            environment_variable: None,
        } => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| ConfigError::new(format!("{field}.inline_bytes"), e.to_string()))?;
            String::from_utf8(bytes).map_err(|_| {
                ConfigError::new(format!("{field}.inline_bytes"), "is not UTF-8 JSON")
            })?
        }
        RawDataSource {
            filename: Some(_), ..
        } => {
            return Err(ConfigError::new(
                format!("{field}.filename"),
                "a wasm filter cannot read files; use `inline_string`",
            ))
        }
        RawDataSource {
            environment_variable: Some(_),
            ..
        } => {
            return Err(ConfigError::new(
                format!("{field}.environment_variable"),
                "is not supported; use `inline_string`",
            ))
        }
        _ => {
            return Err(ConfigError::new(
                field,
                "set exactly one of `inline_string` or `inline_bytes`",
            ))
        }
    };
    KeySet::from_json(&text)
        .map_err(|e| ConfigError::new(format!("{field}.inline_string"), e.to_string()))
}

fn compile_route_match(field: &str, raw: RawRouteMatch) -> Result<RouteMatcher, ConfigError> {
    let case_sensitive = raw.case_sensitive.unwrap_or(true);
    let path = match (
        raw.prefix,
        raw.path,
        raw.safe_regex,
        raw.path_separated_prefix,
    ) {
        (Some(prefix), None, None, None) => PathMatcher::Prefix(prefix),
        (None, Some(path), None, None) => PathMatcher::Exact(path),
        (None, None, Some(regex), None) => PathMatcher::Regex(crate::matcher::compile_regex(
            &format!("{field}.safe_regex.regex"),
            &regex.regex,
        )?),
        (None, None, None, Some(prefix)) => {
            if prefix.ends_with('/') || prefix.contains(['?', '#']) {
                return Err(ConfigError::new(
                    format!("{field}.path_separated_prefix"),
                    "must not end with `/` or contain `?` or `#`",
                ));
            }
            PathMatcher::SeparatedPrefix(prefix)
        }
        (None, None, None, None) => {
            return Err(ConfigError::new(
                field,
                "set one of `prefix`, `path`, `safe_regex` or `path_separated_prefix`",
            ))
        }
        _ => {
            return Err(ConfigError::new(
                field,
                "set only one of `prefix`, `path`, `safe_regex` or `path_separated_prefix`",
            ))
        }
    };
    let mut headers = Vec::with_capacity(raw.headers.len());
    for (i, h) in raw.headers.into_iter().enumerate() {
        headers.push(compile_header_matcher(&format!("{field}.headers[{i}]"), h)?);
    }
    for (i, method) in raw.methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
            return Err(ConfigError::new(
                format!("{field}.methods[{i}]"),
                format!(
                    "{method:?} is not an HTTP method in upper case (methods are case-sensitive)"
                ),
            ));
        }
    }
    let mut hosts = Vec::with_capacity(raw.hosts.len());
    for (i, host) in raw.hosts.iter().enumerate() {
        hosts.push(HostMatcher::parse(host).ok_or_else(|| {
            ConfigError::new(
                format!("{field}.hosts[{i}]"),
                format!(
                    "{host:?} is not a host name, `*`, or a name with one `*` at its start or end"
                ),
            )
        })?);
    }
    Ok(RouteMatcher::new(path, case_sensitive, headers)
        .with_methods(raw.methods)
        .with_hosts(hosts))
}

fn compile_header_matcher(
    field: &str,
    raw: RawHeaderMatcher,
) -> Result<HeaderMatcher, ConfigError> {
    use crate::matcher::{TextOp, ValueMatch};
    let name = raw.name.to_ascii_lowercase();
    if !is_header_name(&name) {
        return Err(ConfigError::new(
            format!("{field}.name"),
            format!("{:?} is not a valid header name", raw.name),
        ));
    }
    let mut chosen: Vec<Result<ValueMatch, ConfigError>> = Vec::new();
    for (op, pattern) in [
        (TextOp::Exact, raw.exact_match),
        (TextOp::Prefix, raw.prefix_match),
        (TextOp::Suffix, raw.suffix_match),
        (TextOp::Contains, raw.contains_match),
    ] {
        if let Some(pattern) = pattern {
            chosen.push(Ok(ValueMatch::String(StringMatcher::text(
                op, pattern, false,
            ))));
        }
    }
    if let Some(r) = raw.safe_regex_match {
        chosen.push(
            crate::matcher::compile_regex(&format!("{field}.safe_regex_match.regex"), &r.regex)
                .map(|re| ValueMatch::String(StringMatcher::Regex(re))),
        );
    }
    if let Some(present) = raw.present_match {
        chosen.push(Ok(ValueMatch::Present(present)));
    }
    if let Some(m) = raw.string_match {
        chosen.push(
            StringMatcher::compile(&format!("{field}.string_match"), m).map(ValueMatch::String),
        );
    }
    let value_match = match (chosen.pop(), chosen.is_empty()) {
        // Envoy: a matcher with no rule matches when the header is present.
        (None, _) => ValueMatch::Present(true),
        (Some(only), true) => only?,
        (Some(_), false) => {
            return Err(ConfigError::new(
                field,
                "set only one of exact_match, prefix_match, suffix_match, contains_match, safe_regex_match, present_match or string_match",
            ))
        }
    };
    Ok(HeaderMatcher {
        name,
        value_match,
        invert: raw.invert_match,
        treat_missing_as_empty: raw.treat_missing_header_as_empty,
    })
}

fn compile_requirement(
    field: &str,
    raw: RawRequirement,
    providers: &[&str],
) -> Result<Option<Requirement>, ConfigError> {
    let provider = |f: String, name: &str| {
        providers.iter().position(|p| *p == name).ok_or_else(|| {
            ConfigError::new(f, format!("Required provider ['{name}'] is not configured"))
        })
    };
    let list = |f: String, list: RawRequirementList| {
        let mut out = Vec::with_capacity(list.requirements.len());
        for (i, child) in list.requirements.into_iter().enumerate() {
            let child_field = format!("{f}.requirements[{i}]");
            match compile_requirement(&child_field, child, providers)? {
                Some(child) => out.push(child),
                None => {
                    return Err(ConfigError::new(
                        child_field,
                        "an empty requirement cannot be nested",
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(ConfigError::new(
                format!("{f}.requirements"),
                "must not be empty",
            ));
        }
        Ok(out)
    };
    let set = [
        raw.provider_name.is_some(),
        raw.provider_and_audiences.is_some(),
        raw.requires_any.is_some(),
        raw.requires_all.is_some(),
        raw.allow_missing_or_failed.is_some(),
        raw.allow_missing.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        return Err(ConfigError::new(
            field,
            "set only one of provider_name, provider_and_audiences, requires_any, requires_all, allow_missing, allow_missing_or_failed",
        ));
    }
    let scopes = raw
        .required_scopes
        .map(|s| compile_scopes(&format!("{field}.required_scopes"), s))
        .transpose()?;
    let claims = raw
        .required_claims
        .into_iter()
        .enumerate()
        .map(|(i, c)| compile_claim_rule(&format!("{field}.required_claims[{i}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    let with_provider = raw.provider_name.is_some() || raw.provider_and_audiences.is_some();
    for (set, name) in [
        (scopes.is_some(), "required_scopes"),
        (!claims.is_empty(), "required_claims"),
    ] {
        if set && !with_provider {
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                "goes with provider_name or provider_and_audiences",
            ));
        }
    }
    Ok(Some(if let Some(name) = raw.provider_name {
        Requirement::Provider {
            provider: provider(format!("{field}.provider_name"), &name)?,
            audiences: None,
            scopes,
            claims,
        }
    } else if let Some(pa) = raw.provider_and_audiences {
        Requirement::Provider {
            provider: provider(
                format!("{field}.provider_and_audiences.provider_name"),
                &pa.provider_name,
            )?,
            audiences: Some(pa.audiences),
            scopes,
            claims,
        }
    } else if let Some(any) = raw.requires_any {
        Requirement::Any(list(format!("{field}.requires_any"), any)?)
    } else if let Some(all) = raw.requires_all {
        Requirement::All(list(format!("{field}.requires_all"), all)?)
    } else if raw.allow_missing_or_failed.is_some() {
        Requirement::AllowMissingOrFailed
    } else if raw.allow_missing.is_some() {
        Requirement::AllowMissing
    } else {
        // `requires: {}`: no requirement, as in Envoy.
        return Ok(None);
    }))
}

fn compile_scopes(field: &str, raw: RawScopes) -> Result<ScopeRule, ConfigError> {
    if raw.all_of.is_empty() && raw.any_of.is_empty() {
        return Err(ConfigError::new(field, "set all_of, any_of or both"));
    }
    for (list, scopes) in [("all_of", &raw.all_of), ("any_of", &raw.any_of)] {
        if let Some((i, bad)) = scopes.iter().enumerate().find(|(_, s)| !is_scope_token(s)) {
            return Err(ConfigError::new(
                format!("{field}.{list}[{i}]"),
                format!("{bad:?} is not a scope (printable ASCII, no space, quote or backslash)"),
            ));
        }
    }
    let claim = raw
        .claim
        .map(|name| claim_path(&format!("{field}.claim"), &name))
        .transpose()?;
    Ok(ScopeRule {
        all_of: raw.all_of,
        any_of: raw.any_of,
        claim,
    })
}

fn compile_claim_rule(field: &str, raw: RawClaimRule) -> Result<ClaimRule, ConfigError> {
    let path = claim_path(&format!("{field}.name"), &raw.name)?;
    let scalar = |f: &str, v: serde_json::Value| {
        if is_scalar(&v) {
            Ok(v)
        } else {
            Err(ConfigError::new(
                format!("{field}.{f}"),
                "must be a string, a number or a boolean",
            ))
        }
    };
    let test = match (raw.equals, raw.one_of, raw.contains) {
        (Some(v), None, None) => ClaimTest::Equals(scalar("equals", v)?),
        (None, Some(list), None) if !list.is_empty() => ClaimTest::OneOf(
            list.into_iter()
                .enumerate()
                .map(|(i, v)| scalar(&format!("one_of[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
        (None, None, Some(v)) => ClaimTest::Contains(scalar("contains", v)?),
        _ => {
            return Err(ConfigError::new(
                field,
                "set exactly one of equals, one_of (not empty) or contains",
            ))
        }
    };
    Ok(ClaimRule { path, test })
}

/// A claim name or dotted path into nested objects: `realm_access.roles` → both segments.
fn claim_path(field: &str, name: &str) -> Result<Vec<String>, ConfigError> {
    let path: Vec<String> = name.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is not a claim name or dotted path"),
        ));
    }
    Ok(path)
}

/// RFC 7230 `token` characters, lower-case (pseudo-headers allowed for matching).
fn is_header_name(name: &str) -> bool {
    let body = name.strip_prefix(':').unwrap_or(name);
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

#[cfg(feature = "schema")]
mod schema;
#[cfg(feature = "schema")]
pub use schema::{json_schema, SCHEMA_PATH};

#[cfg(test)]
mod tests;
