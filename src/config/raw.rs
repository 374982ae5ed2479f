//! The raw JSON shape of the plugin configuration: serde structs with `jwt_authn`'s field
//! names, refusing unknown fields, and the proto-JSON duration parser. Nothing is validated
//! here beyond types; `compile` turns these into the immutable `Config`. The JSON Schema
//! (`schema`) is derived from these types.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

use super::FailurePolicy;

/// The plugin configuration: `jwt_authn`'s `JwtAuthentication` in proto JSON, plus our extensions.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Providers by name, at least one: who issues the tokens, where their keys are, where tokens
    /// are found, what a verified token sets. Required.
    #[serde(default)]
    pub(crate) providers: BTreeMap<String, RawProvider>,
    /// Route rules, first match wins: a `match` and what it `requires`. A request that no rule
    /// matches needs no token. Default `[]`.
    #[serde(default)]
    pub(crate) rules: Vec<RawRule>,
    /// Let CORS preflight requests (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// through without a token. Default `false`.
    #[serde(default)]
    pub(crate) bypass_cors_preflight: bool,
    /// Answer 401 and 403 with an empty body and no `WWW-Authenticate`. Default `false`.
    #[serde(default)]
    pub(crate) strip_failure_response: bool,
    // Extensions (documented in the README).
    /// Ours: what a failed requirement leads to, per class of failure (`token_missing`,
    /// `token_invalid`, `keys_unavailable`): `deny_401`, `deny_503` or `allow`. 403s (audience,
    /// scope, claim) are always 403. Default: `deny_401` for every class.
    #[serde(default)]
    pub(crate) failure_policy: FailurePolicy,
    /// Ours: evaluate and count every request as in enforcement, never deny, and tell the upstream
    /// what enforcement would have done in `x-jwt-authn-outcome`. Default `false`.
    #[serde(default)]
    pub(crate) report_only: bool,
    /// Ours: check RS* and ES* signatures with the host's native crypto (Envoy's
    /// `verify_signature`) when it has it; `false`: every signature in wasm. Default `true`.
    #[serde(default = "yes")]
    pub(crate) host_signatures: bool,
    /// Ours: share remote key sets between the VMs of one Envoy through proxy-wasm shared data
    /// (one fetch per Envoy); `false`: every VM fetches for itself and never reads or writes
    /// shared data. Default `true`.
    #[serde(default = "yes")]
    pub(crate) share_key_sets: bool,
    /// Accepted for compatibility with `jwt_authn`, unused: our stats have fixed names.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) stat_prefix: Option<String>,
    /// Ours: RFC 8693 token exchanges by name, used by rules that name one in `token_exchange`:
    /// the token that satisfied the route's requirement is exchanged for one made for the next
    /// service, which replaces it upstream. Default `{}`.
    #[serde(default)]
    pub(crate) token_exchanges: BTreeMap<String, super::exchange::RawTokenExchange>,
}

/// A `JwtProvider`: one issuer, its keys, where its tokens are found and what a verified token
/// sets.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    /// `iss` must equal this; empty accepts any issuer. With `remote_jwks.oidc_discovery`, the
    /// OpenID configuration is found under it. Default: any issuer.
    #[serde(default)]
    pub(crate) issuer: String,
    /// The token's `aud` must hold one of these (compared without `http(s)://` and a trailing `/`,
    /// as Envoy does); empty accepts any audience. Default `[]`.
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    /// A string matcher that `sub` must match (`exact`, `prefix`, `suffix`, `contains` or
    /// `safe_regex`, and `ignore_case`). Default: any subject.
    #[serde(default)]
    pub(crate) subjects: Option<RawStringMatcher>,
    /// Refuse tokens without `exp`. Default `false`.
    #[serde(default)]
    pub(crate) require_expiration: bool,
    /// Refuse tokens whose remaining lifetime, `exp - now` (as Envoy measures it), is longer than
    /// this; implies that `exp` is required. Default: no limit.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_lifetime: Option<Duration>,
    /// The key set, inline: a JWKS or Google's X.509 form in `inline_string`, or the same base64 in
    /// `inline_bytes`. Exactly one of `local_jwks` and `remote_jwks`.
    #[serde(default)]
    pub(crate) local_jwks: Option<RawDataSource>,
    /// Fetch the key set from the identity provider through an Envoy cluster, cache it and refresh
    /// it. Exactly one of `local_jwks` and `remote_jwks`.
    #[serde(default)]
    pub(crate) remote_jwks: Option<RawRemoteJwks>,
    /// Ours (issue 14): opaque access tokens, checked with the authorization server's RFC 7662
    /// introspection endpoint instead of a key set; instead of `local_jwks` / `remote_jwks`.
    /// A token whose `iss` names a JWT provider goes there; any other token found at this
    /// provider's locations is introspected. Default: none.
    #[serde(default)]
    pub(crate) introspection: Option<super::introspection::RawIntrospection>,
    /// Keep the token in the request. `false`: a header token is removed, a query-parameter token
    /// is cut from `:path`. Default `false`.
    #[serde(default)]
    pub(crate) forward: bool,
    /// Headers that hold a token, each `{name, value_prefix}`. With none of `from_headers`,
    /// `from_params` and `from_cookies`, a provider looks in `Authorization: Bearer <token>`, then
    /// in the `access_token` query parameter.
    #[serde(default)]
    pub(crate) from_headers: Vec<RawJwtHeader>,
    /// Query parameters that hold a token. Default: see `from_headers`.
    #[serde(default)]
    pub(crate) from_params: Vec<String>,
    /// Cookies that hold a token. Default: see `from_headers`.
    #[serde(default)]
    pub(crate) from_cookies: Vec<String>,
    /// A header that receives the verified token's payload, base64url as sent. Default: none.
    #[serde(default)]
    pub(crate) forward_payload_header: String,
    /// Pad the `forward_payload_header` value with `=`. Default `false`.
    #[serde(default)]
    pub(crate) pad_forward_payload_header: bool,
    /// Claims copied into request headers, each `{header_name, claim_name}`; `claim_name` may be a
    /// dotted path into nested objects. Default `[]`.
    #[serde(default)]
    pub(crate) claim_to_headers: Vec<RawClaimToHeader>,
    /// Tolerance in seconds for `exp` and `nbf`; `0` means the default, as in Envoy (proto3).
    /// Default `60`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = 60)))]
    pub(crate) clock_skew_seconds: Option<u32>,
    /// Ours: one header carrying base64 of a JSON object of chosen claims, `{header_name, claims,
    /// peer_field}`. Default: none.
    #[serde(default)]
    pub(crate) identity_header: Option<RawIdentityHeader>,
    /// Ours: set a verified identity as Envoy filter state for access logs and RBAC
    /// (`wasm.jwt_authn_wasm.provider`, `.issuer`, `.subject`, `.identity.<field>`); `false`:
    /// none, one host call less per value on every verified request. Default `true`.
    #[serde(default = "yes")]
    pub(crate) filter_state: bool,
    /// Keep verified tokens (per VM) so a token seen again is neither parsed nor checked again; the
    /// claim checks still run. As in Envoy: no cache without it. Default: no cache.
    #[serde(default)]
    pub(crate) jwt_cache_config: Option<RawJwtCacheConfig>,
    /// Ours: the JOSE `typ` values a token must carry (RFC 8725 §3.11), e.g. `["at+jwt"]`; compared
    /// case-insensitively, with or without `application/`. Default: no check.
    #[serde(default)]
    pub(crate) allowed_typ: Option<Vec<String>>,
    /// Ours: the test that tells a service's own token (`token_kind: service`) from a user's, as
    /// `required_claims`-style rules that must all hold; not with `resource_owner_claims`. Default:
    /// `sub == client_id`, or none of `resource_owner_claims` present.
    #[serde(default)]
    pub(crate) service_token: Option<Vec<RawClaimRule>>,
    /// Ours: claims only a user's token carries (`username`, `email`, ...): a token with none of
    /// them is a service's (besides `sub == client_id`). Default `[]`.
    #[serde(default)]
    pub(crate) resource_owner_claims: Vec<String>,
    /// Ours: RFC 8705 certificate-bound tokens (`cnf["x5t#S256"]` against the client certificate):
    /// `off` (no check), `if_present` (a bound token must match), `required` (every token must be
    /// bound and match). Default `off`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "off")))]
    pub(crate) certificate_bound: RawBinding,
    /// Ours: a revocation list (README "Revocation") fetched from `http_uri` and refreshed every
    /// `cache_duration`; every verified token of this provider, cached ones included, is
    /// checked against it. Default: none.
    #[serde(default)]
    pub(crate) revocation: Option<RawRevocation>,
    // Known jwt_authn fields a wasm filter cannot honour: refused by name in `compile`, and
    // left out of the JSON Schema (`schemars(skip)`) so editors never offer them.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) payload_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) header_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) failed_status_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) normalize_payload_in_metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) clear_route_cache: Option<serde_json::Value>,
}

/// `JwtCacheConfig`. A size of 0 (proto3's unset) means Envoy's default, 100.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtCacheConfig {
    /// How many verified tokens of this provider each VM keeps; `0` means the default. Default
    /// `100`.
    #[serde(default)]
    pub(crate) jwt_cache_size: u32,
}

/// `certificate_bound`.
#[derive(Deserialize, Default, Clone, Copy)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawBinding {
    /// No check.
    #[default]
    Off,
    /// A token with `cnf["x5t#S256"]` must be bound to the client certificate.
    IfPresent,
    /// Every token must be bound to the client certificate.
    Required,
}

/// `token_kind`.
#[derive(Deserialize, Clone, Copy)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawTokenKind {
    /// A service acting for itself (client credentials).
    Service,
    /// A user, or a service acting for one.
    User,
}

pub(crate) fn yes() -> bool {
    true
}

/// `RemoteJwks`: a key set fetched from the identity provider, cached and refreshed.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteJwks {
    /// Where the key set is fetched: `{uri, cluster, timeout}`. Required.
    pub(crate) http_uri: RawHttpUri,
    /// How long a fetched key set is good when the response has no `Cache-Control: max-age`.
    /// Default `600s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "600s")))]
    pub(crate) cache_duration: Option<Duration>,
    /// Accepted as in Envoy, where it starts fetching at start-up: we always fetch in the
    /// background. Its `failed_refetch_duration` is the first retry delay.
    #[serde(default)]
    pub(crate) async_fetch: Option<RawAsyncFetch>,
    // Extensions (documented in the README).
    /// Ours: lower bound for `max-age`. Default `30s`, or `max_cache_duration` when that is lower.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) min_cache_duration: Option<Duration>,
    /// Ours: upper bound for `max-age`; by default a `max-age` can only shorten `cache_duration`.
    /// Default: `cache_duration`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_cache_duration: Option<Duration>,
    /// Ours: how long past its lifetime a key set is still used while refreshes fail. Default
    /// `86400s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "86400s")))]
    pub(crate) max_staleness: Option<Duration>,
    /// Ours: the longest delay between retries of a failing fetch. Default `300s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "300s")))]
    pub(crate) max_backoff: Option<Duration>,
    /// Ours: at most one refetch for unknown `kid`s per interval; a kid looked for in vain is
    /// remembered as unknown this long. Default `30s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "30s")))]
    pub(crate) unknown_kid_refetch_interval: Option<Duration>,
    /// Ours: find the JWKS through the issuer's OpenID configuration
    /// (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`), through the same cluster;
    /// leave `http_uri.uri` empty. Default `false`.
    #[serde(default)]
    pub(crate) oidc_discovery: bool,
}

/// `revocation` (ours, issue 15): where the provider's revocation list is fetched and how fresh
/// it must be.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRevocation {
    /// Where the list is fetched: `{uri, cluster, timeout}`; `uri` is required here. Required.
    pub(crate) http_uri: RawHttpUri,
    /// How often the list is fetched again, as configured: at least `1s`, no hidden floor. A
    /// `Cache-Control: max-age` can only shorten it. A revoked token is refused at most this long
    /// plus the fetch time after the list is published. Default `60s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "60s")))]
    pub(crate) cache_duration: Option<Duration>,
    /// How long after the last successful fetch the list is still used while fetches fail; past
    /// it, requests fail as `revocation_unavailable` (`failure_policy`, default `deny_503`). At
    /// least `cache_duration`. Default `300s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "300s")))]
    pub(crate) max_staleness: Option<Duration>,
    /// The body must be a compact JWS over the list, verified with this provider's key set; an
    /// unsigned or badly signed list is a failed fetch. Default `false`.
    #[serde(default)]
    pub(crate) require_signed: bool,
}

/// `HttpUri`: where a key set is fetched, through which Envoy cluster, how long a fetch may take.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpUri {
    /// The URL, http or https (the key set's; in `token_exchanges`, the token endpoint's): its
    /// host becomes `:authority`, its path and query `:path`. Empty with `oidc_discovery`.
    #[serde(default)]
    pub(crate) uri: String,
    /// The Envoy cluster the callout goes to (in Istio `outbound|<port>||<host>`). Required.
    pub(crate) cluster: String,
    /// How long a callout, and a request waiting for it, may take: above `0s`, at most `3600s`
    /// (a token exchange: at most `60s`). Required.
    #[serde(deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) timeout: Option<Duration>,
}

/// Envoy fetches at start-up when this is set; we always do. `fast_listener` is accepted and
/// means nothing here (the listener never waits for us); `failed_refetch_duration` is the
/// first retry delay.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAsyncFetch {
    /// Accepted, without effect: the listener never waits for this filter. Default `false`.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) fast_listener: bool,
    /// The first retry delay after a failed fetch; it doubles per failure up to `max_backoff`.
    /// Default `1s`.
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    #[cfg_attr(feature = "schema", schemars(extend("default" = "1s")))]
    pub(crate) failed_refetch_duration: Option<Duration>,
}

/// A `DataSource`, inline: `inline_string` or `inline_bytes` (a wasm filter cannot read `filename`
/// or `environment_variable`).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataSource {
    /// The key set as text: a JWKS (`{"keys": [...]}`) or Google's X.509 form (`{"<kid>":
    /// "-----BEGIN CERTIFICATE-----..."}`). One of `inline_string` and `inline_bytes`.
    #[serde(default)]
    pub(crate) inline_string: Option<String>,
    /// The key set, base64 (standard alphabet). One of `inline_string` and `inline_bytes`.
    #[serde(default)]
    pub(crate) inline_bytes: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) filename: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) environment_variable: Option<String>,
}

/// A header that holds a token: `name`, and the `value_prefix` before the token.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtHeader {
    /// The header (case-insensitive); not a pseudo-header. Required.
    pub(crate) name: String,
    /// What precedes the token in the value, e.g. `Bearer `; the token runs to the end of the
    /// value. Default `""`: the whole value.
    #[serde(default)]
    pub(crate) value_prefix: String,
}

/// A claim copied into a request header.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaimToHeader {
    /// The header to set; removed from every incoming request first. Required.
    pub(crate) header_name: String,
    /// The claim: a name, or a dotted path into nested objects (`realm_access.roles`). Required.
    pub(crate) claim_name: String,
}

/// Ours: one header with base64 of a JSON object of chosen claims.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentityHeader {
    /// The header that carries the identity; removed from every incoming request first. Required.
    pub(crate) header_name: String,
    /// Field of the JSON object → claim name or dotted path; a field mapped to `scope` or `scp`
    /// becomes an array of scopes. At least one.
    pub(crate) claims: serde_json::Map<String, serde_json::Value>,
    /// The field that carries the downstream peer's SPIFFE ID (its client certificate's URI SAN),
    /// left out when the connection has none. Default: none.
    #[serde(default)]
    pub(crate) peer_field: Option<String>,
}

/// A route rule: which requests (`match`), and what they require (`requires`).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    /// Which requests the rule is for: one of `prefix`, `path`, `safe_regex` and
    /// `path_separated_prefix`, with `case_sensitive`, `headers`, `methods` and `hosts`. Required.
    #[serde(rename = "match")]
    pub(crate) route_match: RawRouteMatch,
    /// What the requests must carry. Absent: no token needed.
    #[serde(default)]
    pub(crate) requires: Option<RawRequirement>,
    /// Ours: the name of a `token_exchanges` entry. Once `requires` is satisfied, the token that
    /// satisfied it is exchanged and the issued token replaces it upstream (the original never
    /// reaches the upstream, whatever the provider's `forward` says). Needs `requires`. Default:
    /// no exchange.
    #[serde(default)]
    pub(crate) token_exchange: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) requirement_name: Option<String>,
}

/// A `RouteMatch`: the path (one of four ways), headers, and our `methods` and `hosts`; all must
/// match.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteMatch {
    /// `:path`, with its query, starts with this. One of `prefix`, `path`, `safe_regex` and
    /// `path_separated_prefix`.
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    /// `:path` without its query is exactly this. One of `prefix`, `path`, `safe_regex` and
    /// `path_separated_prefix`.
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// `:path` without its query matches this RE2 regex as a whole, `{"regex": "..."}`. One of
    /// `prefix`, `path`, `safe_regex` and `path_separated_prefix`.
    #[serde(default)]
    pub(crate) safe_regex: Option<RawRegex>,
    /// `:path` without its query is this, or this followed by `/...`; must not end with `/`. One of
    /// `prefix`, `path`, `safe_regex` and `path_separated_prefix`.
    #[serde(default)]
    pub(crate) path_separated_prefix: Option<String>,
    /// Compare the path case-sensitively. Default `true`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = true)))]
    pub(crate) case_sensitive: Option<bool>,
    /// Header matchers that must all match; pseudo-headers such as `:method` and `:authority`
    /// included. Default `[]`.
    #[serde(default)]
    pub(crate) headers: Vec<RawHeaderMatcher>,
    // Extensions: Envoy matches these through `headers` on `:method` / `:authority`.
    /// Ours: `:method` is one of these, ASCII case ignored. Default `[]`: any method.
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    /// Ours: `:authority`, without its port, matches one of these as Envoy matches virtual host
    /// `domains`: exact, `*.example.com` (a `*` at the start), `api.*` (at the end), or `*`.
    /// Default `[]`: any host.
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
}

/// A `RegexMatcher`: an RE2 regular expression.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegex {
    /// An RE2 regular expression (linear time: no backreferences, no lookaround). Required.
    pub(crate) regex: String,
    /// Deprecated in Envoy and without meaning here; accepted so configurations move over.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) google_re2: Option<serde_json::Value>,
}

/// A `HeaderMatcher`: one header and one test of its value.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderMatcher {
    /// The header (case-insensitive), or a pseudo-header such as `:method`. Required.
    pub(crate) name: String,
    /// The value is exactly this. At most one of `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`, `present_match` and `string_match`; with none, the
    /// header must be present.
    #[serde(default)]
    pub(crate) exact_match: Option<String>,
    /// The value starts with this. At most one of `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`, `present_match` and `string_match`; with none, the
    /// header must be present.
    #[serde(default)]
    pub(crate) prefix_match: Option<String>,
    /// The value ends with this. At most one of `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`, `present_match` and `string_match`; with none, the
    /// header must be present.
    #[serde(default)]
    pub(crate) suffix_match: Option<String>,
    /// The value contains this. At most one of `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`, `present_match` and `string_match`; with none, the
    /// header must be present.
    #[serde(default)]
    pub(crate) contains_match: Option<String>,
    /// The value matches this RE2 regex as a whole, `{"regex": "..."}`. At most one of
    /// `exact_match`, `prefix_match`, `suffix_match`, `contains_match`, `safe_regex_match`,
    /// `present_match` and `string_match`; with none, the header must be present.
    #[serde(default)]
    pub(crate) safe_regex_match: Option<RawRegex>,
    /// `true`: the header is present; `false`: it is absent. At most one of `exact_match`,
    /// `prefix_match`, `suffix_match`, `contains_match`, `safe_regex_match`, `present_match` and
    /// `string_match`; with none, the header must be present.
    #[serde(default)]
    pub(crate) present_match: Option<bool>,
    /// A string matcher on the value (`exact`, `prefix`, `suffix`, `contains` or `safe_regex`, and
    /// `ignore_case`). At most one of `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`, `present_match` and `string_match`; with none, the
    /// header must be present.
    #[serde(default)]
    pub(crate) string_match: Option<RawStringMatcher>,
    /// Invert the result. Default `false`.
    #[serde(default)]
    pub(crate) invert_match: bool,
    /// Match an absent header as if its value were empty. Default `false`.
    #[serde(default)]
    pub(crate) treat_missing_header_as_empty: bool,
}

/// A `StringMatcher`: one test of a text.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStringMatcher {
    /// The text is exactly this. One of `exact`, `prefix`, `suffix`, `contains` and `safe_regex`.
    #[serde(default)]
    pub(crate) exact: Option<String>,
    /// The text starts with this. One of `exact`, `prefix`, `suffix`, `contains` and `safe_regex`.
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    /// The text ends with this. One of `exact`, `prefix`, `suffix`, `contains` and `safe_regex`.
    #[serde(default)]
    pub(crate) suffix: Option<String>,
    /// The text contains this. One of `exact`, `prefix`, `suffix`, `contains` and `safe_regex`.
    #[serde(default)]
    pub(crate) contains: Option<String>,
    /// The text matches this RE2 regex as a whole, `{"regex": "..."}`. One of `exact`, `prefix`,
    /// `suffix`, `contains` and `safe_regex`.
    #[serde(default)]
    pub(crate) safe_regex: Option<RawRegex>,
    /// Compare ASCII case-insensitively (not for `safe_regex`). Default `false`.
    #[serde(default)]
    pub(crate) ignore_case: bool,
}

/// A `JwtRequirement`: exactly one kind of requirement, and, with a provider, our scope, claim and
/// token-kind checks.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequirement {
    /// A token of this provider: there is at least one at its locations, and every one there
    /// verifies. One of `provider_name`, `provider_and_audiences`, `requires_any`, `requires_all`,
    /// `allow_missing`, `allow_missing_or_failed` and `peer`; `{}` requires nothing.
    #[serde(default)]
    pub(crate) provider_name: Option<String>,
    /// `{provider_name, audiences}`: as `provider_name`, with these audiences instead of the
    /// provider's. One of `provider_name`, `provider_and_audiences`, `requires_any`,
    /// `requires_all`, `allow_missing`, `allow_missing_or_failed` and `peer`; `{}` requires
    /// nothing.
    #[serde(default)]
    pub(crate) provider_and_audiences: Option<RawProviderAndAudiences>,
    /// `{requirements: [...]}`: one of them is satisfied. One of `provider_name`,
    /// `provider_and_audiences`, `requires_any`, `requires_all`, `allow_missing`,
    /// `allow_missing_or_failed` and `peer`; `{}` requires nothing.
    #[serde(default)]
    pub(crate) requires_any: Option<RawRequirementList>,
    /// `{requirements: [...]}`: every one of them is satisfied. One of `provider_name`,
    /// `provider_and_audiences`, `requires_any`, `requires_all`, `allow_missing`,
    /// `allow_missing_or_failed` and `peer`; `{}` requires nothing.
    #[serde(default)]
    pub(crate) requires_all: Option<RawRequirementList>,
    /// `{}`: always satisfied; a token that verifies still sets identity headers. One of
    /// `provider_name`, `provider_and_audiences`, `requires_any`, `requires_all`, `allow_missing`,
    /// `allow_missing_or_failed` and `peer`; `{}` requires nothing.
    #[serde(default)]
    pub(crate) allow_missing_or_failed: Option<RawEmpty>,
    /// `{}`: no token, or every token present verifies with the provider its `iss` names. One of
    /// `provider_name`, `provider_and_audiences`, `requires_any`, `requires_all`, `allow_missing`,
    /// `allow_missing_or_failed` and `peer`; `{}` requires nothing.
    #[serde(default)]
    pub(crate) allow_missing: Option<RawEmpty>,
    /// Ours: `{principals}`, who is on the other end of the mTLS connection: the client certificate
    /// names one of these SPIFFE IDs; else 403. One of `provider_name`, `provider_and_audiences`,
    /// `requires_any`, `requires_all`, `allow_missing`, `allow_missing_or_failed` and `peer`; `{}`
    /// requires nothing.
    #[serde(default)]
    pub(crate) peer: Option<RawPeer>,
    /// Ours, with `provider_name` or `provider_and_audiences`: the scopes the verified token must
    /// grant, `{all_of, any_of, claim}`; else 403 `insufficient_scope`. Default: none.
    #[serde(default)]
    pub(crate) required_scopes: Option<RawScopes>,
    /// Ours, with `provider_name` or `provider_and_audiences`: claim rules that must all hold for
    /// the verified token, each `name` and one of `equals`, `one_of` and `contains`; else 403.
    /// Default `[]`.
    #[serde(default)]
    pub(crate) required_claims: Vec<RawClaimRule>,
    /// Ours, with `provider_name` or `provider_and_audiences`: `service` (a service acting for
    /// itself, client credentials) or `user` (a user, or a service acting for one); else 403
    /// `insufficient_scope`. Default: either.
    #[serde(default)]
    pub(crate) token_kind: Option<RawTokenKind>,
}

/// `peer`: the client certificate's URI SAN must be a SPIFFE ID matching one of these
/// (Istio's `principals`: exact, or one `*` at the start or end; with or without
/// `spiffe://`).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    /// SPIFFE IDs that the client certificate's URI SAN may name: exact, or with one `*` at the
    /// start or end; with or without `spiffe://`. Required.
    pub(crate) principals: Vec<String>,
}

/// Ours: a claim rule, `name` and one test.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaimRule {
    /// The claim: a name, or a dotted path into nested objects. Required.
    pub(crate) name: String,
    /// The claim is this value: a string, number or boolean, compared with its type (`"true"` is
    /// not `true`). One of `equals`, `one_of` and `contains`.
    #[serde(default)]
    pub(crate) equals: Option<serde_json::Value>,
    /// The claim is one of these values (a non-empty list). One of `equals`, `one_of` and
    /// `contains`.
    #[serde(default)]
    pub(crate) one_of: Option<Vec<serde_json::Value>>,
    /// The claim is an array with this value among its members. One of `equals`, `one_of` and
    /// `contains`.
    #[serde(default)]
    pub(crate) contains: Option<serde_json::Value>,
}

/// Ours: the scopes a token must grant.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScopes {
    /// Scopes the token must all grant. Default `[]`.
    #[serde(default)]
    pub(crate) all_of: Vec<String>,
    /// Scopes of which the token must grant at least one. Default `[]`.
    #[serde(default)]
    pub(crate) any_of: Vec<String>,
    /// The claim that holds the scopes (a name or dotted path; a space-delimited string or an
    /// array). Default: `scope`, then `scp`.
    #[serde(default)]
    pub(crate) claim: Option<String>,
}

/// A provider, with audiences of the requirement's own.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProviderAndAudiences {
    /// The provider. Required.
    pub(crate) provider_name: String,
    /// Audiences that replace the provider's own for this requirement; empty accepts any. Default
    /// `[]`.
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
}

/// A list of requirements (`requires_any`, `requires_all`).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequirementList {
    /// The child requirements. Default `[]`.
    #[serde(default)]
    pub(crate) requirements: Vec<RawRequirement>,
}

/// `google.protobuf.Empty`: `{}`.
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmpty {}

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

pub(crate) fn duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format_args!(
            "invalid duration {text:?}: expected seconds with an `s` suffix, e.g. \"600s\" or \"1.5s\""
        ))
    })
}
