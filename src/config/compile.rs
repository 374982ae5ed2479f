//! The compile step: raw serde shapes (`raw`) → the validated, immutable `Config`. Resolves
//! provider names, compiles matchers and regexes, parses key sets and claim paths; every error
//! names the JSON path of the offending field. Runs once per configuration, never per request.

use std::collections::BTreeMap;

use super::raw::*;
use super::*;
use super::{ListPolicy, MIN_LIST_CACHE_DURATION};
use crate::binding::Binding;
use crate::claims::{is_scalar, ClaimTest};
use crate::matcher::{compile_regex, HeaderMatcher, HostMatcher, PathMatcher, TextOp};
use crate::peer::PrincipalPattern;
use crate::scopes::is_scope_token;
use crate::token_kind::{AllowedTyp, ServiceTest, TokenKind};

pub(crate) fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
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
    let exchange_names: Vec<String> = raw.token_exchanges.keys().cloned().collect();
    let exchange_names: Vec<&str> = exchange_names.iter().map(String::as_str).collect();
    let token_exchanges =
        super::exchange::compile_exchanges(raw.token_exchanges, &names, &super::secret::vm_env)?;
    check_exchange_policy(&raw.failure_policy)?;
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, rule) in raw.rules.into_iter().enumerate() {
        rules.push(compile_rule(i, rule, &names, &exchange_names)?);
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
        // Always, not only in `report_only`: a client must never be able to hand an upstream
        // an outcome of its own (and an upstream that reads it keeps reading it when
        // report_only is turned off).
        .chain(std::iter::once(OUTCOME_HEADER.to_owned()))
        .collect();
    emitted_headers.sort();
    emitted_headers.dedup();
    if let Some(ex) = token_exchanges
        .iter()
        .find(|ex| emitted_headers.contains(&ex.forward_header))
    {
        return Err(ConfigError::new(
            format!("token_exchanges.{}.forward_header.name", ex.name),
            format!(
                "{:?} is a header the filter sets from the verified token (or its outcome \
                 header); the issued token needs its own",
                ex.forward_header
            ),
        ));
    }
    let peer_reads = PeerReads {
        uri_san: rules
            .iter()
            .filter_map(|r| r.requirement.as_ref())
            .any(needs_peer)
            || providers.iter().any(|p| {
                p.identity_header
                    .as_ref()
                    .is_some_and(|i| i.peer_field.is_some())
            }),
        digest: providers
            .iter()
            .any(|p| p.certificate_bound != Binding::Off),
    };
    Ok(Config {
        providers,
        rules,
        bypass_cors_preflight: raw.bypass_cors_preflight,
        strip_failure_response: raw.strip_failure_response,
        failure_policy: raw.failure_policy,
        report_only: raw.report_only,
        emitted_headers,
        host_signatures: raw.host_signatures,
        share_key_sets: raw.share_key_sets,
        peer_reads,
        token_exchanges,
    })
}

/// `failure_policy.exchange_unavailable` may not be `allow`: the original token would go on.
fn check_exchange_policy(policy: &FailurePolicy) -> Result<(), ConfigError> {
    if policy.exchange_unavailable == OnFailure::Allow {
        return Err(ConfigError::new(
            "failure_policy.exchange_unavailable",
            "must be `deny_503` or `deny_401`: `allow` would forward the original token",
        ));
    }
    Ok(())
}

/// Rule `i`; `names`: the configured providers, in `Config::providers` order; `exchanges`: the
/// configured token exchanges, sorted.
fn compile_rule(
    i: usize,
    rule: RawRule,
    names: &[&str],
    exchanges: &[&str],
) -> Result<Rule, ConfigError> {
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
        Some(raw) => compile_requirement(&format!("{field}.requires"), raw, names)?,
    };
    let exchange_field = format!("{field}.token_exchange");
    let token_exchange = super::exchange::resolve_exchange(
        &exchange_field,
        rule.token_exchange.as_deref(),
        exchanges,
    )?;
    if token_exchange.is_some() && requirement.is_none() {
        return Err(ConfigError::new(
            exchange_field,
            "needs `requires`: only a token that satisfied the route's requirement is exchanged",
        ));
    }
    Ok(Rule {
        matcher,
        requirement,
        token_exchange,
    })
}

/// `Config::check`: the top level, each provider and each rule read and compiled on its own,
/// so that a mistake in one does not hide a mistake in another. Every error found, in
/// document order (providers by name); empty when every part compiles. A rule's provider
/// names resolve against every configured name, including providers that failed, so one bad
/// provider is not reported again by each rule that uses it.
pub(crate) fn check_parts(value: serde_json::Value) -> Vec<ConfigError> {
    use serde_json::Value;
    let serde_json::Value::Object(mut top) = value else {
        return from_value::<RawConfig>(value, "")
            .err()
            .into_iter()
            .collect();
    };
    let providers = top.remove("providers");
    let rules = top.remove("rules");
    let exchanges = top.remove("token_exchanges");
    let mut errors: Vec<ConfigError> = match from_value::<RawConfig>(Value::Object(top), "") {
        Ok(raw) => check_exchange_policy(&raw.failure_policy)
            .err()
            .into_iter()
            .collect(),
        Err(e) => vec![e],
    };
    let mut names = Vec::new();
    match providers {
        Some(Value::Object(map)) if !map.is_empty() => {
            for (name, provider) in map {
                let compiled = from_value::<RawProvider>(provider, &format!("providers.{name}"))
                    .and_then(|raw| compile_provider(&name, raw));
                errors.extend(compiled.err());
                names.push(name);
            }
        }
        Some(other @ (Value::Array(_) | Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            errors.extend(from_value::<BTreeMap<String, RawProvider>>(other, "providers").err());
        }
        _ => errors.push(ConfigError::new(
            "providers",
            "at least one provider is required",
        )),
    }
    names.sort();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut exchange_names = Vec::new();
    match exchanges {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, exchange) in map {
                let field = format!("token_exchanges.{name}");
                let compiled = from_value::<super::exchange::RawTokenExchange>(exchange, &field)
                    .and_then(|raw| {
                        super::exchange::compile_exchange(
                            &name,
                            raw,
                            &names,
                            &super::secret::vm_env,
                        )
                    });
                errors.extend(compiled.err());
                exchange_names.push(name);
            }
        }
        Some(other) => errors.extend(
            from_value::<BTreeMap<String, super::exchange::RawTokenExchange>>(
                other,
                "token_exchanges",
            )
            .err(),
        ),
    }
    exchange_names.sort();
    let exchange_names: Vec<&str> = exchange_names.iter().map(String::as_str).collect();
    match rules {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, rule) in list.into_iter().enumerate() {
                let compiled = from_value::<RawRule>(rule, &format!("rules[{i}]"))
                    .and_then(|raw| compile_rule(i, raw, &names, &exchange_names));
                errors.extend(compiled.err());
            }
        }
        Some(other) => errors.extend(from_value::<Vec<RawRule>>(other, "rules").err()),
    }
    errors
}

/// `value` read as a `T`, an error naming its JSON path under `prefix`.
fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            (_, "" | ".") => prefix.to_owned(),
            ("", path) => path.to_owned(),
            (prefix, path) if path.starts_with('[') => format!("{prefix}{path}"),
            (prefix, path) => format!("{prefix}.{path}"),
        };
        ConfigError::new(field, e.into_inner().to_string())
    })
}

/// Whether `requirement` has a `peer` requirement anywhere in it.
fn needs_peer(requirement: &Requirement) -> bool {
    match requirement {
        Requirement::Peer(_) => true,
        Requirement::Any(children) | Requirement::All(children) => children.iter().any(needs_peer),
        _ => false,
    }
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
    let introspection = match raw.introspection {
        None => None,
        Some(_) if raw.local_jwks.is_some() || raw.remote_jwks.is_some() => {
            return Err(ConfigError::new(
                field("introspection"),
                "set only one of `local_jwks`, `remote_jwks` and `introspection`",
            ))
        }
        Some(introspection) => {
            let refused = [
                (
                    "forward_payload_header",
                    !raw.forward_payload_header.is_empty(),
                ),
                ("allowed_typ", raw.allowed_typ.is_some()),
                ("jwt_cache_config", raw.jwt_cache_config.is_some()),
            ];
            if let Some((f, _)) = refused.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    field(f),
                    "means nothing for opaque tokens (`introspection`): remove it",
                ));
            }
            Some(Box::new(super::introspection::compile_introspection(
                &field("introspection"),
                introspection,
            )?))
        }
    };
    let jwks = match (raw.local_jwks, raw.remote_jwks) {
        (None, None) if introspection.is_some() => JwksSource::Local(Arc::new(KeySet::none())),
        (None, None) => {
            return Err(ConfigError::new(
                field("local_jwks"),
                "a provider needs a key set: set `local_jwks` or `remote_jwks` (or \
                 `introspection` for opaque tokens)",
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
        if !is_header_name(&name) || name.starts_with(':') {
            // A token header is removed once consumed (`forward: false`): `:path` would go.
            return Err(ConfigError::new(
                format!("{}[{i}].name", field("from_headers")),
                not_a_writable_header(&header.name),
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
                not_a_writable_header(&c.header_name),
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
        if !is_header_name(&header) || header.starts_with(':') {
            // Emitted headers are removed from every request first: `:path` would go.
            return Err(ConfigError::new(
                field("forward_payload_header"),
                not_a_writable_header(&raw.forward_payload_header),
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
        .map(|m| compile_string_matcher(&field("subjects"), m))
        .transpose()?;
    let allowed_typ = raw
        .allowed_typ
        .map(|types| {
            AllowedTyp::new(&types).map_err(|reason| ConfigError::new(field("allowed_typ"), reason))
        })
        .transpose()?;
    let service_test = match (raw.service_token, raw.resource_owner_claims.is_empty()) {
        (Some(_), false) => {
            return Err(ConfigError::new(
                field("service_token"),
                "set only one of `service_token` and `resource_owner_claims`",
            ))
        }
        (Some(rules), true) => {
            if rules.is_empty() {
                return Err(ConfigError::new(
                    field("service_token"),
                    "must list at least one rule (leave it out for the default test)",
                ));
            }
            ServiceTest::Rules(
                rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        compile_claim_rule(&format!("{}[{i}]", field("service_token")), r)
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        (None, true) => ServiceTest::Default,
        (None, false) => {
            for (i, name) in raw.resource_owner_claims.iter().enumerate() {
                if name.is_empty() {
                    return Err(ConfigError::new(
                        format!("{}[{i}]", field("resource_owner_claims")),
                        "must be a claim name",
                    ));
                }
            }
            ServiceTest::ResourceOwnerClaims(raw.resource_owner_claims)
        }
    };
    let revocation = raw
        .revocation
        .map(|r| compile_revocation(&field("revocation"), r))
        .transpose()?;
    let certificate_bound = match raw.certificate_bound {
        RawBinding::Off => Binding::Off,
        RawBinding::IfPresent => Binding::IfPresent,
        RawBinding::Required => Binding::Required,
    };
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
        filter_state: raw.filter_state,
        // proto3: 0 is "unset", so it means the default, as in Envoy.
        clock_skew_seconds: u64::from(match raw.clock_skew_seconds {
            None | Some(0) => DEFAULT_CLOCK_SKEW_SECONDS,
            Some(skew) => skew,
        }),
        jwt_cache_size: raw.jwt_cache_config.map(|c| match c.jwt_cache_size {
            0 => super::DEFAULT_JWT_CACHE_SIZE,
            size => usize::try_from(size).unwrap_or(usize::MAX),
        }),
        allowed_typ,
        service_test,
        certificate_bound,
        revocation,
        introspection,
    })
}

/// `revocation`: a fetchable URL and cluster, a timeout as for key sets, `cache_duration` of at
/// least 1 s (kept as configured: no hidden floor above that), `max_staleness` at least
/// `cache_duration` (else a healthy list would expire between two fetches).
fn compile_revocation(field: &str, raw: RawRevocation) -> Result<Revocation, ConfigError> {
    let target = Target::parse(&raw.http_uri.uri).ok_or_else(|| {
        ConfigError::new(
            format!("{field}.http_uri.uri"),
            "must be an http:// or https:// URL with a host",
        )
    })?;
    if raw.http_uri.cluster.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.http_uri.cluster"),
            "must name the Envoy cluster of the revocation list host",
        ));
    }
    let timeout = raw.http_uri.timeout.unwrap_or_default();
    if timeout.is_zero() || timeout > Duration::from_secs(3600) {
        return Err(ConfigError::new(
            format!("{field}.http_uri.timeout"),
            "must be set, above 0s and at most 3600s",
        ));
    }
    let defaults = ListPolicy::default();
    let cache_duration = raw.cache_duration.unwrap_or(defaults.cache_duration);
    if cache_duration < MIN_LIST_CACHE_DURATION {
        return Err(ConfigError::new(
            format!("{field}.cache_duration"),
            "must be at least 1s",
        ));
    }
    let max_staleness = raw.max_staleness.unwrap_or(defaults.max_staleness);
    if max_staleness < cache_duration {
        return Err(ConfigError::new(
            format!("{field}.max_staleness"),
            "must be at least cache_duration",
        ));
    }
    Ok(Revocation {
        cluster: raw.http_uri.cluster,
        target,
        timeout,
        policy: ListPolicy {
            cache_duration,
            max_staleness,
            require_signed: raw.require_signed,
        },
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
            not_a_writable_header(&raw.header_name),
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
            state_key: super::state_key(&name),
            name,
            claim_path,
            scopes,
        });
    }
    let peer_field = match raw.peer_field {
        None => None,
        Some(name) if name.is_empty() => {
            return Err(ConfigError::new(
                format!("{field}.peer_field"),
                "must name a field",
            ))
        }
        Some(name) if fields.iter().any(|f| f.name == name) => {
            return Err(ConfigError::new(
                format!("{field}.peer_field"),
                format!("{name:?} is already a field of `claims`"),
            ))
        }
        Some(name) => Some(name),
    };
    Ok(IdentityHeader {
        header,
        fields,
        peer_state_key: peer_field.as_deref().and_then(super::state_key),
        peer_field,
    })
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
    let cache_duration = raw.cache_duration.unwrap_or(defaults.cache_duration);
    // `max-age` is honoured only downwards unless the config raises the bound: an identity
    // provider's long `max-age` must not keep a key it removed verifying past `cache_duration`.
    let max_cache_duration = raw.max_cache_duration.unwrap_or(cache_duration);
    let policy = FetchPolicy {
        cache_duration,
        min_cache_duration: raw
            .min_cache_duration
            .unwrap_or(defaults.min_cache_duration.min(max_cache_duration)),
        max_cache_duration,
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
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
            return Err(ConfigError::new(
                format!("{field}.methods[{i}]"),
                format!("{method:?} is not an HTTP method (letters and `-`; case is ignored)"),
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
            compile_string_matcher(&format!("{field}.string_match"), m).map(ValueMatch::String),
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
        raw.peer.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        return Err(ConfigError::new(
            field,
            "set only one of provider_name, provider_and_audiences, requires_any, requires_all, allow_missing, allow_missing_or_failed, peer",
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
    let token_kind = raw.token_kind.map(|kind| match kind {
        RawTokenKind::Service => TokenKind::Service,
        RawTokenKind::User => TokenKind::User,
    });
    for (set, name) in [
        (scopes.is_some(), "required_scopes"),
        (!claims.is_empty(), "required_claims"),
        (token_kind.is_some(), "token_kind"),
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
            token_kind,
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
            token_kind,
        }
    } else if let Some(any) = raw.requires_any {
        Requirement::Any(list(format!("{field}.requires_any"), any)?)
    } else if let Some(all) = raw.requires_all {
        Requirement::All(list(format!("{field}.requires_all"), all)?)
    } else if let Some(peer) = raw.peer {
        Requirement::Peer(compile_peer(&format!("{field}.peer"), peer)?)
    } else if raw.allow_missing_or_failed.is_some() {
        Requirement::AllowMissingOrFailed
    } else if raw.allow_missing.is_some() {
        Requirement::AllowMissing
    } else {
        // `requires: {}`: no requirement, as in Envoy.
        return Ok(None);
    }))
}

fn compile_peer(field: &str, raw: RawPeer) -> Result<Vec<PrincipalPattern>, ConfigError> {
    if raw.principals.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.principals"),
            "must list at least one principal (`*` for any peer with one)",
        ));
    }
    raw.principals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PrincipalPattern::parse(p)
                .map_err(|reason| ConfigError::new(format!("{field}.principals[{i}]"), reason))
        })
        .collect()
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
    crate::claim_path::parse(name).ok_or_else(|| {
        ConfigError::new(
            field,
            format!("{name:?} is not a claim name or dotted path"),
        )
    })
}

/// Why a header the filter writes or removes was refused: not a token, or a pseudo-header,
/// which the filter must never set or strip (`:path` would vanish from every request).
fn not_a_writable_header(name: &str) -> String {
    if name.starts_with(':') {
        format!("{name:?} is a pseudo-header: the filter never writes or removes one")
    } else {
        format!("{name:?} is not a valid header name")
    }
}

/// RFC 7230 `token` characters, lower-case (pseudo-headers allowed for matching).
fn is_header_name(name: &str) -> bool {
    let body = name.strip_prefix(':').unwrap_or(name);
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// `envoy.type.matcher.v3.StringMatcher`: exactly one of its operations.
fn compile_string_matcher(
    field: &str,
    raw: RawStringMatcher,
) -> Result<StringMatcher, ConfigError> {
    let ic = raw.ignore_case;
    let mut chosen = Vec::new();
    for (op, pattern) in [
        (TextOp::Exact, raw.exact),
        (TextOp::Prefix, raw.prefix),
        (TextOp::Suffix, raw.suffix),
        (TextOp::Contains, raw.contains),
    ] {
        if let Some(pattern) = pattern {
            chosen.push(StringMatcher::text(op, pattern, ic));
        }
    }
    if let Some(r) = raw.safe_regex {
        chosen.push(StringMatcher::Regex(compile_regex(
            &format!("{field}.safe_regex.regex"),
            &r.regex,
        )?));
    }
    match (chosen.pop(), chosen.is_empty()) {
        (Some(m), true) => Ok(m),
        _ => Err(ConfigError::new(
            field,
            "set exactly one of exact, prefix, suffix, contains or safe_regex",
        )),
    }
}
