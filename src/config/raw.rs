//! The raw JSON shape of the plugin configuration: serde structs with `jwt_authn`'s field
//! names, refusing unknown fields, and the proto-JSON duration parser. Nothing is validated
//! here beyond types; `compile` turns these into the immutable `Config`. The JSON Schema
//! (`schema`) is derived from these types.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

use super::FailurePolicy;

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub(crate) rules: Vec<RawRule>,
    #[serde(default)]
    pub(crate) bypass_cors_preflight: bool,
    #[serde(default)]
    pub(crate) strip_failure_response: bool,
    // Extensions (documented in the README).
    #[serde(default)]
    pub(crate) failure_policy: FailurePolicy,
    #[serde(default)]
    pub(crate) report_only: bool,
    /// Check RS* and ES* signatures with the host's native crypto (Envoy's `verify_signature`)
    /// when it has it; `false`: every signature in wasm.
    #[serde(default = "yes")]
    pub(crate) host_signatures: bool,
    /// Share remote key sets between the VMs of one Envoy through proxy-wasm shared data (one
    /// fetch per Envoy); `false`: every VM fetches for itself and never reads or writes shared
    /// data.
    #[serde(default = "yes")]
    pub(crate) share_key_sets: bool,
    /// Accepted for compatibility; our stats have fixed names.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) stat_prefix: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    #[serde(default)]
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    #[serde(default)]
    pub(crate) subjects: Option<RawStringMatcher>,
    #[serde(default)]
    pub(crate) require_expiration: bool,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_lifetime: Option<Duration>,
    #[serde(default)]
    pub(crate) local_jwks: Option<RawDataSource>,
    #[serde(default)]
    pub(crate) remote_jwks: Option<RawRemoteJwks>,
    #[serde(default)]
    pub(crate) forward: bool,
    #[serde(default)]
    pub(crate) from_headers: Vec<RawJwtHeader>,
    #[serde(default)]
    pub(crate) from_params: Vec<String>,
    #[serde(default)]
    pub(crate) from_cookies: Vec<String>,
    #[serde(default)]
    pub(crate) forward_payload_header: String,
    #[serde(default)]
    pub(crate) pad_forward_payload_header: bool,
    #[serde(default)]
    pub(crate) claim_to_headers: Vec<RawClaimToHeader>,
    #[serde(default)]
    pub(crate) clock_skew_seconds: Option<u32>,
    /// Our extension.
    #[serde(default)]
    pub(crate) identity_header: Option<RawIdentityHeader>,
    /// Keep verified tokens (per VM) so a token seen again is neither parsed nor checked again;
    /// the claim checks still run. As in Envoy: no cache without it.
    #[serde(default)]
    pub(crate) jwt_cache_config: Option<RawJwtCacheConfig>,
    /// Ours (issue 17): the JOSE `typ` values a token must carry (RFC 8725 §3.11), e.g.
    /// `["at+jwt"]`; compared case-insensitively, with or without `application/`. Absent: no
    /// check.
    #[serde(default)]
    pub(crate) allowed_typ: Option<Vec<String>>,
    /// Ours: the test that tells a service's own token (`token_kind: service`) from a user's,
    /// as `required_claims`-style rules that must all hold. Absent: `sub == client_id`, or
    /// none of `resource_owner_claims` present.
    #[serde(default)]
    pub(crate) service_token: Option<Vec<RawClaimRule>>,
    /// Ours: claims only a user's token carries (`username`, `email`, ...): a token with none
    /// of them is a service's (besides `sub == client_id`).
    #[serde(default)]
    pub(crate) resource_owner_claims: Vec<String>,
    /// Ours: RFC 8705 certificate-bound tokens (`cnf["x5t#S256"]`). Default `off`.
    #[serde(default)]
    pub(crate) certificate_bound: RawBinding,
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
    /// How many verified tokens of this provider each VM keeps; 0 means 100.
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

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemoteJwks {
    pub(crate) http_uri: RawHttpUri,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) cache_duration: Option<Duration>,
    #[serde(default)]
    pub(crate) async_fetch: Option<RawAsyncFetch>,
    // Extensions (documented in the README).
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) min_cache_duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_cache_duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_staleness: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) unknown_kid_refetch_interval: Option<Duration>,
    #[serde(default)]
    pub(crate) oidc_discovery: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpUri {
    #[serde(default)]
    pub(crate) uri: String,
    pub(crate) cluster: String,
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
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) fast_listener: bool,
    #[serde(default, deserialize_with = "duration")]
    #[cfg_attr(feature = "schema", schemars(with = "super::schema::ProtoDuration"))]
    pub(crate) failed_refetch_duration: Option<Duration>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataSource {
    #[serde(default)]
    pub(crate) inline_string: Option<String>,
    #[serde(default)]
    pub(crate) inline_bytes: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) filename: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) environment_variable: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtHeader {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) value_prefix: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaimToHeader {
    pub(crate) header_name: String,
    pub(crate) claim_name: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentityHeader {
    pub(crate) header_name: String,
    /// Output field → claim name or dotted path.
    pub(crate) claims: serde_json::Map<String, serde_json::Value>,
    /// The field that carries the downstream peer's SPIFFE ID (its client certificate's URI
    /// SAN), left out when the connection has none.
    #[serde(default)]
    pub(crate) peer_field: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    pub(crate) route_match: RawRouteMatch,
    #[serde(default)]
    pub(crate) requires: Option<RawRequirement>,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) requirement_name: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteMatch {
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) safe_regex: Option<RawRegex>,
    #[serde(default)]
    pub(crate) path_separated_prefix: Option<String>,
    #[serde(default)]
    pub(crate) case_sensitive: Option<bool>,
    #[serde(default)]
    pub(crate) headers: Vec<RawHeaderMatcher>,
    // Extensions: Envoy matches these through `headers` on `:method` / `:authority`.
    #[serde(default)]
    pub(crate) methods: Vec<String>,
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegex {
    pub(crate) regex: String,
    /// Deprecated in Envoy and without meaning for us; accepted so configs move over.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) google_re2: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderMatcher {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) exact_match: Option<String>,
    #[serde(default)]
    pub(crate) prefix_match: Option<String>,
    #[serde(default)]
    pub(crate) suffix_match: Option<String>,
    #[serde(default)]
    pub(crate) contains_match: Option<String>,
    #[serde(default)]
    pub(crate) safe_regex_match: Option<RawRegex>,
    #[serde(default)]
    pub(crate) present_match: Option<bool>,
    #[serde(default)]
    pub(crate) string_match: Option<RawStringMatcher>,
    #[serde(default)]
    pub(crate) invert_match: bool,
    #[serde(default)]
    pub(crate) treat_missing_header_as_empty: bool,
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
pub(crate) struct RawRequirement {
    #[serde(default)]
    pub(crate) provider_name: Option<String>,
    #[serde(default)]
    pub(crate) provider_and_audiences: Option<RawProviderAndAudiences>,
    #[serde(default)]
    pub(crate) requires_any: Option<RawRequirementList>,
    #[serde(default)]
    pub(crate) requires_all: Option<RawRequirementList>,
    #[serde(default)]
    pub(crate) allow_missing_or_failed: Option<RawEmpty>,
    #[serde(default)]
    pub(crate) allow_missing: Option<RawEmpty>,
    /// Ours: who is on the other end of the mTLS connection.
    #[serde(default)]
    pub(crate) peer: Option<RawPeer>,
    /// Our extensions, with `provider_name` or `provider_and_audiences`.
    #[serde(default)]
    pub(crate) required_scopes: Option<RawScopes>,
    #[serde(default)]
    pub(crate) required_claims: Vec<RawClaimRule>,
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
    pub(crate) principals: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaimRule {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) equals: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) one_of: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub(crate) contains: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScopes {
    #[serde(default)]
    pub(crate) all_of: Vec<String>,
    #[serde(default)]
    pub(crate) any_of: Vec<String>,
    #[serde(default)]
    pub(crate) claim: Option<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProviderAndAudiences {
    pub(crate) provider_name: String,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequirementList {
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
