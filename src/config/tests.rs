use serde_json::{json, Value};

use super::*;
use crate::jwks_cache::FetchPolicy;
use crate::mint;

fn provider() -> Value {
    json!({ "issuer": "https://example.com", "local_jwks": { "inline_string": mint::JWKS } })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    Config::from_json(v.to_string().as_bytes())
}

#[test]
fn a_native_config_loads_with_defaults() {
    let cfg = load(&json!({ "providers": { "p": provider() }, "rules": [
        { "match": { "prefix": "/" }, "requires": { "provider_name": "p" } } ] }))
    .unwrap();
    let p = &cfg.providers[0];
    assert_eq!(p.clock_skew_seconds, 60);
    assert_eq!(
        p.locations,
        vec![
            Location::Header {
                name: "authorization".into(),
                value_prefix: "Bearer ".into()
            },
            Location::Param("access_token".into()),
        ]
    );
    assert_eq!(
        cfg.rules[0].requirement,
        Some(Requirement::Provider {
            scopes: None,
            provider: 0,
            audiences: None,
            claims: vec![],
            token_kind: None,
        })
    );
}

#[test]
fn emitted_headers_are_collected_lower_cased_once() {
    let mut a = provider();
    a["claim_to_headers"] = json!([{ "header_name": "X-Sub", "claim_name": "sub" }]);
    a["forward_payload_header"] = json!("x-payload");
    let mut b = provider();
    b["claim_to_headers"] = json!([{ "header_name": "x-sub", "claim_name": "sub" }]);
    let cfg = load(&json!({ "providers": { "a": a, "b": b } })).unwrap();
    assert_eq!(
        cfg.emitted_headers,
        vec!["x-jwt-authn-outcome", "x-payload", "x-sub"]
    );
}

/// Regression (issue 11, item 10): the outcome header is stripped from every request, not only
/// in `report_only`, so a client can never hand an upstream an outcome of its own.
#[test]
fn outcome_header_is_stripped_without_report_only() {
    let cfg = load(&json!({ "providers": { "p": provider() } })).unwrap();
    assert!(!cfg.report_only);
    assert_eq!(cfg.emitted_headers, vec![OUTCOME_HEADER]);
}

/// Regression (issue 11, item 12): a header the filter writes or strips can never be a
/// pseudo-header (`:path` would be stripped from every request); the refusal names the field.
#[test]
#[rustfmt::skip]
fn pseudo_header_names_are_refused_where_the_filter_writes_or_strips() {
    let with = |key: &str, value: Value| {
        let mut p = provider();
        p[key] = value;
        json!({ "providers": { "p": p } })
    };
    let cases = [
        (with("forward_payload_header", json!(":path")), "providers.p.forward_payload_header"),
        (with("from_headers", json!([{ "name": ":path" }])), "providers.p.from_headers[0].name"),
        (with("from_headers", json!([{ "name": "x-ok" }, { "name": ":Authority", "value_prefix": "B " }])), "providers.p.from_headers[1].name"),
        (with("claim_to_headers", json!([{ "header_name": ":method", "claim_name": "sub" }])), "providers.p.claim_to_headers[0].header_name"),
        (with("identity_header", json!({ "header_name": ":scheme", "claims": { "u": "sub" } })), "providers.p.identity_header.header_name"),
    ];
    for (cfg, field) in cases {
        let e = load(&cfg).expect_err(field);
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains("pseudo-header"), "{e}");
    }
}

#[test]
#[rustfmt::skip]
fn durations() {
    let cases = [
        ("600s", Some(Duration::from_secs(600))),
        ("1.5s", Some(Duration::from_millis(1500))),
        ("0.000000001s", Some(Duration::from_nanos(1))),
        ("0s", Some(Duration::ZERO)),
        ("10", None),
        ("-1s", None),
        ("1.s", None),
        (".5s", None),
        ("1.0000000001s", None),
        ("1m", None),
        ("s", None),
        ("99999999999999999999s", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), want, "{text}");
    }
}

/// Every refusal names the offending field.
#[test]
#[rustfmt::skip]
fn refusals_name_the_field() {
    let with = |key: &str, value: Value| {
        let mut p = provider();
        p[key] = value;
        json!({ "providers": { "p": p } })
    };
    let rules = |rules: Value| json!({ "providers": { "p": provider() }, "rules": rules });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("unknown top-level field", json!({ "providers": { "p": provider() }, "bogus": 1 }), "bogus"),
        ("unknown provider field", with("issuerr", json!("x")), "providers.p"),
        ("bad duration", with("max_lifetime", json!("10 minutes")), "providers.p.max_lifetime"),
        ("negative skew", with("clock_skew_seconds", json!(-1)), "providers.p.clock_skew_seconds"),
        ("no key set", json!({ "providers": { "p": { "issuer": "x" } } }), "providers.p.local_jwks"),
        ("JWKS not JSON", with("local_jwks", json!({ "inline_string": "nope" })), "providers.p.local_jwks.inline_string"),
        ("JWKS without usable key", with("local_jwks", json!({ "inline_string": mint::JWKS_WEAK })), "providers.p.local_jwks.inline_string"),
        ("JWKS from a file", with("local_jwks", json!({ "filename": "/etc/jwks.json" })), "providers.p.local_jwks.filename"),
        ("remote JWKS without http_uri", with("remote_jwks", json!({})), "providers.p.remote_jwks"),
        ("metadata output", with("payload_in_metadata", json!("x")), "providers.p.payload_in_metadata"),
        ("bad header name", with("claim_to_headers", json!([{ "header_name": "bad header", "claim_name": "sub" }]),), "providers.p.claim_to_headers[0].header_name"),
        ("empty claim path", with("claim_to_headers", json!([{ "header_name": "x", "claim_name": "a..b" }]),), "providers.p.claim_to_headers[0].claim_name"),
        ("no providers", json!({ "providers": {} }), "providers"),
        ("missing provider", rules(json!([{ "match": { "prefix": "/" }, "requires": { "provider_name": "nope" } }])), "rules[0].requires.provider_name"),
        ("nested missing provider", rules(json!([{ "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [{ "provider_name": "p" }, { "provider_name": "q" }] } } }]),), "rules[0].requires.requires_any.requirements[1].provider_name"),
        ("bad regex", rules(json!([{ "match": { "safe_regex": { "regex": "(" } } }])), "rules[0].match.safe_regex.regex"),
        ("no path matcher", rules(json!([{ "match": {} }])), "rules[0].match"),
        ("two path matchers", rules(json!([{ "match": { "prefix": "/", "path": "/" } }])), "rules[0].match"),
        ("two requirement kinds", rules(json!([{ "match": { "prefix": "/" }, "requires": { "provider_name": "p", "allow_missing": {} } }]),), "rules[0].requires"),
        ("requirement_name", rules(json!([{ "match": { "prefix": "/" }, "requirement_name": "r" }])), "rules[0].requirement_name"),
        ("bad header matcher regex", rules(json!([{ "match": { "prefix": "/", "headers": [{ "name": "x", "safe_regex_match": { "regex": "[" } }] } }]),), "rules[0].match.headers[0].safe_regex_match.regex"),
        ("subjects with two kinds", with("subjects", json!({ "exact": "a", "prefix": "b" })), "providers.p.subjects"),
        ("unknown jwt_cache_config field", with("jwt_cache_config", json!({ "size": 5 })), "providers.p.jwt_cache_config"),
        ("negative jwt_cache_size", with("jwt_cache_config", json!({ "jwt_cache_size": -1 })), "providers.p.jwt_cache_config.jwt_cache_size"),
        ("host_signatures not a bool", json!({ "providers": { "p": provider() }, "host_signatures": "no" }), "host_signatures"),
        ("share_key_sets not a bool", json!({ "providers": { "p": provider() }, "share_key_sets": "no" }), "share_key_sets"),
        ("share_key_sets null", json!({ "providers": { "p": provider() }, "share_key_sets": null }), "share_key_sets"),
        ("method not a token", rules(json!([{ "match": { "prefix": "/", "methods": ["GET", "po st"] } }])), "rules[0].match.methods[1]"),
        ("star inside a host", rules(json!([{ "match": { "prefix": "/", "hosts": ["a.*.test"] } }])), "rules[0].match.hosts[0]"),
        ("empty host", rules(json!([{ "match": { "prefix": "/", "hosts": [""] } }])), "rules[0].match.hosts[0]"),
        ("identity header name", with("identity_header", json!({ "header_name": "bad name", "claims": { "u": "sub" } })), "providers.p.identity_header.header_name"),
        ("identity header without claims", with("identity_header", json!({ "header_name": "x-id", "claims": {} })), "providers.p.identity_header.claims"),
        ("identity claim not a string", with("identity_header", json!({ "header_name": "x-id", "claims": { "u": 1 } })), "providers.p.identity_header.claims.u"),
        ("identity claim bad path", with("identity_header", json!({ "header_name": "x-id", "claims": { "u": "a." } })), "providers.p.identity_header.claims.u"),
        ("unknown failure policy", json!({ "providers": { "p": provider() }, "failure_policy": { "token_missing": "deny_402" } }), "failure_policy.token_missing"),
        ("unknown failure class", json!({ "providers": { "p": provider() }, "failure_policy": { "token_expired": "allow" } }), "failure_policy"),
    ];
    for (name, cfg, field) in cases {
        match load(&cfg) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(
                e.field.starts_with(field) && e.to_string().contains(field),
                "{name}: field {:?} (want {field:?}); message {e}",
                e.field
            ),
        }
    }
}

#[test]
fn empty_and_trailing_input_is_refused() {
    assert!(Config::from_json(b"").is_err());
    assert!(Config::from_json(b"  \n").is_err());
    assert!(Config::from_json(b"{}").is_err());
    let ok = json!({ "providers": { "p": provider() } }).to_string();
    assert!(Config::from_json(ok.as_bytes()).is_ok());
    assert!(Config::from_json(format!("{ok} x").as_bytes()).is_err());
}

#[test]
fn skipped_keys_are_reported_as_warnings() {
    let mut p = provider();
    p["local_jwks"]["inline_string"] = json!(mint::jwks_with_weak_key());
    let cfg = load(&json!({ "providers": { "p": p } })).unwrap();
    let warnings = cfg.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("provider \"p\"") && warnings[0].contains("1024 bits"));
}

fn remote(remote_jwks: Value) -> Result<Config, ConfigError> {
    load(&json!({ "providers": { "p": { "issuer": "i", "remote_jwks": remote_jwks } } }))
}

#[test]
fn remote_jwks_is_resolved_with_defaults() {
    let cfg = remote(json!({ "http_uri": {
        "uri": "https://idp.example.com:8443/oauth/jwks?v=2",
        "cluster": "outbound|443||idp.example.com",
        "timeout": "5s" } }))
    .unwrap();
    let JwksSource::Remote(r) = &cfg.providers[0].jwks else {
        panic!("not remote")
    };
    assert_eq!(
        (
            r.target.scheme.as_str(),
            r.target.authority.as_str(),
            r.target.path.as_str()
        ),
        ("https", "idp.example.com:8443", "/oauth/jwks?v=2")
    );
    assert_eq!(r.cluster, "outbound|443||idp.example.com");
    assert!(!r.oidc_discovery);
    assert_eq!(r.timeout, Duration::from_secs(5));
    assert_eq!(r.policy, FetchPolicy::default());

    let cfg = remote(json!({
        "http_uri": { "uri": "http://idp", "cluster": "idp", "timeout": "1s" },
        "cache_duration": "300s",
        "async_fetch": { "fast_listener": true, "failed_refetch_duration": "2s" },
        "min_cache_duration": "10s", "max_cache_duration": "3600s", "max_staleness": "7200s",
        "max_backoff": "60s", "unknown_kid_refetch_interval": "5s" }))
    .unwrap();
    let JwksSource::Remote(r) = &cfg.providers[0].jwks else {
        panic!("not remote")
    };
    assert_eq!(r.target.path, "/");
    let secs = Duration::from_secs;
    assert_eq!(
        r.policy,
        FetchPolicy {
            cache_duration: secs(300),
            min_cache_duration: secs(10),
            max_cache_duration: secs(3600),
            max_staleness: secs(7200),
            retry_base: secs(2),
            max_backoff: secs(60),
            unknown_kid_interval: secs(5),
        }
    );
}

/// Issue 11 item 6: an identity provider's long `max-age` must not keep a key it removed (say,
/// because it leaked) verifying for a day when the operator asked for `cache_duration: 300s`.
#[test]
fn max_age_shortens_but_never_extends_cache_duration_by_default() {
    use crate::jwks_cache::read_response;
    let jwks = crate::mint::JWKS.as_bytes();
    let ttl = |remote_jwks: Value, cache_control: &str| {
        let cfg = remote(remote_jwks).unwrap();
        let JwksSource::Remote(r) = &cfg.providers[0].jwks else {
            panic!("not remote")
        };
        read_response(
            &r.policy,
            Some("200"),
            jwks.len(),
            jwks,
            Some(cache_control),
        )
        .unwrap()
        .ttl
        .as_secs()
    };
    let uri = json!({ "uri": "https://idp/", "cluster": "c", "timeout": "1s" });
    let short = json!({ "http_uri": uri, "cache_duration": "300s" });
    assert_eq!(ttl(short.clone(), "max-age=86400"), 300, "not extended");
    assert_eq!(ttl(short, "max-age=60"), 60, "shortened");
    let tiny = json!({ "http_uri": uri, "cache_duration": "10s" });
    assert_eq!(
        ttl(tiny, "max-age=5"),
        10,
        "min_cache_duration defaults to at most the max"
    );
    let raised =
        json!({ "http_uri": uri, "cache_duration": "300s", "max_cache_duration": "3600s" });
    assert_eq!(ttl(raised, "max-age=86400"), 3600, "raised on purpose");
}

#[test]
#[rustfmt::skip]
fn remote_jwks_refusals_name_the_field() {
    let uri = |u: &str| json!({ "uri": u, "cluster": "c", "timeout": "1s" });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("not a URL", json!({ "http_uri": uri("idp/jwks") }), "providers.p.remote_jwks.http_uri.uri"),
        ("ftp", json!({ "http_uri": uri("ftp://idp/jwks") }), "providers.p.remote_jwks.http_uri.uri"),
        ("no host", json!({ "http_uri": uri("https:///jwks") }), "providers.p.remote_jwks.http_uri.uri"),
        ("no cluster", json!({ "http_uri": { "uri": "https://idp/", "cluster": "", "timeout": "1s" } }), "providers.p.remote_jwks.http_uri.cluster"),
        ("no timeout", json!({ "http_uri": { "uri": "https://idp/", "cluster": "c" } }), "providers.p.remote_jwks.http_uri"),
        ("zero timeout", json!({ "http_uri": { "uri": "https://idp/", "cluster": "c", "timeout": "0s" } }), "providers.p.remote_jwks.http_uri.timeout"),
        ("bad cache_duration", json!({ "http_uri": uri("https://idp/"), "cache_duration": "10m" }), "providers.p.remote_jwks.cache_duration"),
        ("min over max", json!({ "http_uri": uri("https://idp/"), "min_cache_duration": "100s", "max_cache_duration": "10s" }), "providers.p.remote_jwks.min_cache_duration"),
        ("unknown field", json!({ "http_uri": uri("https://idp/"), "retry_policy": {} }), "providers.p.remote_jwks"),
    ];
    for (name, r, field) in cases {
        match remote(r) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(e.field.starts_with(field), "{name}: field {:?} (want {field:?}); {e}", e.field),
        }
    }
    let both = json!({ "providers": { "p": { "local_jwks": { "inline_string": mint::JWKS },
        "remote_jwks": { "http_uri": uri("https://idp/") } } } });
    assert_eq!(load(&both).unwrap_err().field, "providers.p.remote_jwks");
}

#[test]
fn oidc_discovery_derives_the_configuration_url_from_the_issuer() {
    let cfg = load(
        &json!({ "providers": { "p": { "issuer": "https://idp.example/realms/x/",
        "remote_jwks": { "oidc_discovery": true,
            "http_uri": { "cluster": "idp", "timeout": "1s" } } } } }),
    )
    .unwrap();
    let JwksSource::Remote(r) = &cfg.providers[0].jwks else {
        panic!("not remote")
    };
    assert!(r.oidc_discovery);
    assert_eq!(r.target.authority, "idp.example");
    assert_eq!(r.target.path, "/realms/x/.well-known/openid-configuration");
    let not_a_url = json!({ "providers": { "p": { "issuer": "idp",
        "remote_jwks": { "oidc_discovery": true, "http_uri": { "cluster": "c", "timeout": "1s" } } } } });
    assert_eq!(load(&not_a_url).unwrap_err().field, "providers.p.issuer");
    let both = json!({ "providers": { "p": { "issuer": "https://idp",
        "remote_jwks": { "oidc_discovery": true,
            "http_uri": { "uri": "https://idp/jwks", "cluster": "c", "timeout": "1s" } } } } });
    assert_eq!(
        load(&both).unwrap_err().field,
        "providers.p.remote_jwks.http_uri.uri"
    );
}

#[test]
#[rustfmt::skip]
fn required_claims_are_validated() {
    let with_claims = |claims: Value| json!({ "providers": { "p": provider() }, "rules": [
        { "match": { "prefix": "/" }, "requires": { "provider_name": "p", "required_claims": claims } } ] });
    let cfg = load(&with_claims(json!([
        { "name": "realm_access.roles", "contains": "admin" },
        { "name": "email_verified", "equals": true },
        { "name": "tenant", "one_of": ["a", 7] },
    ]))).unwrap();
    let Some(Requirement::Provider { claims, .. }) = &cfg.rules[0].requirement else { panic!() };
    assert_eq!(claims.len(), 3);
    assert_eq!(claims[0].path, vec!["realm_access".to_owned(), "roles".to_owned()]);
    assert_eq!(claims[1].test, crate::claims::ClaimTest::Equals(json!(true)));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no test", with_claims(json!([{ "name": "a" }])), "rules[0].requires.required_claims[0]"),
        ("two tests", with_claims(json!([{ "name": "a", "equals": 1, "contains": 1 }])), "rules[0].requires.required_claims[0]"),
        ("empty one_of", with_claims(json!([{ "name": "a", "one_of": [] }])), "rules[0].requires.required_claims[0]"),
        ("array value", with_claims(json!([{ "name": "a", "equals": ["x"] }])), "rules[0].requires.required_claims[0].equals"),
        ("null value", with_claims(json!([{ "name": "a", "contains": null }])), "rules[0].requires.required_claims[0]"),
        ("object in one_of", with_claims(json!([{ "name": "a", "one_of": ["x", {}] }])), "rules[0].requires.required_claims[0].one_of[1]"),
        ("bad path", with_claims(json!([{ "name": ".a", "equals": 1 }])), "rules[0].requires.required_claims[0].name"),
        ("unknown test", with_claims(json!([{ "name": "a", "matches": "x" }])), "rules[0].requires.required_claims[0]"),
        ("without a provider", json!({ "providers": { "p": provider() }, "rules": [{ "match": { "prefix": "/" },
            "requires": { "allow_missing": {}, "required_claims": [{ "name": "a", "equals": 1 }] } }] }), "rules[0].requires.required_claims"),
    ];
    for (name, cfg, field) in cases {
        match load(&cfg) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(e.field.starts_with(field), "{name}: {:?} (want {field:?}); {e}", e.field),
        }
    }
}

#[test]
fn identity_header_policies_and_report_only_load() {
    let mut p = provider();
    p["identity_header"] = json!({ "header_name": "X-Verified-Identity",
        "claims": { "user_id": "sub", "roles": "realm_access.roles", "scopes": "scope", "s2": "scp" } });
    let cfg = load(&json!({ "providers": { "p": p }, "report_only": true,
        "failure_policy": { "token_missing": "allow", "keys_unavailable": "deny_503" } }))
    .unwrap();
    let identity = cfg.providers[0].identity_header.as_ref().unwrap();
    assert_eq!(identity.header, "x-verified-identity");
    let scopes: Vec<(&str, bool)> = identity
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.scopes))
        .collect();
    assert_eq!(
        scopes,
        vec![
            ("roles", false),
            ("s2", true),
            ("scopes", true),
            ("user_id", false)
        ]
    );
    assert_eq!(
        cfg.emitted_headers,
        vec!["x-jwt-authn-outcome", "x-verified-identity"]
    );
    assert_eq!(
        cfg.failure_policy,
        FailurePolicy {
            token_missing: OnFailure::Allow,
            token_invalid: OnFailure::Deny401,
            keys_unavailable: OnFailure::Deny503,
            revocation_unavailable: OnFailure::Deny503,
            exchange_unavailable: OnFailure::Deny503,
            introspection_unavailable: OnFailure::Deny503,
        }
    );
    assert!(cfg.report_only);
    // Defaults: everything denied with 401 but an unavailable revocation list (503: the
    // client is not at fault), enforced; the outcome header is stripped anyway.
    let cfg = load(&json!({ "providers": { "p": provider() } })).unwrap();
    assert_eq!(cfg.failure_policy, FailurePolicy::default());
    assert_eq!(
        cfg.failure_policy.revocation_unavailable,
        OnFailure::Deny503
    );
    assert_eq!(cfg.failure_policy.keys_unavailable, OnFailure::Deny401);
    assert!(!cfg.report_only && cfg.emitted_headers == [OUTCOME_HEADER]);
}

#[test]
#[rustfmt::skip]
fn required_scopes_are_validated() {
    let with_scopes = |scopes: Value| json!({ "providers": { "p": provider() }, "rules": [
        { "match": { "prefix": "/" }, "requires": { "provider_name": "p", "required_scopes": scopes } } ] });
    let cfg = load(&with_scopes(json!({ "all_of": ["read"], "claim": "realm_access.roles" }))).unwrap();
    let Some(Requirement::Provider { scopes: Some(rule), .. }) = &cfg.rules[0].requirement else { panic!() };
    assert_eq!(rule.claim.as_deref(), Some(&["realm_access".to_owned(), "roles".to_owned()][..]));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("empty", with_scopes(json!({})), "rules[0].requires.required_scopes"),
        ("space in a scope", with_scopes(json!({ "all_of": ["a b"] })), "rules[0].requires.required_scopes.all_of[0]"),
        ("quote in a scope", with_scopes(json!({ "any_of": ["ok", "a\"b"] })), "rules[0].requires.required_scopes.any_of[1]"),
        ("bad claim path", with_scopes(json!({ "all_of": ["a"], "claim": "a..b" })), "rules[0].requires.required_scopes.claim"),
        ("unknown field", with_scopes(json!({ "one_of": ["a"] })), "rules[0].requires.required_scopes"),
        ("without a provider", json!({ "providers": { "p": provider() }, "rules": [{ "match": { "prefix": "/" },
            "requires": { "allow_missing": {}, "required_scopes": { "all_of": ["a"] } } }] }), "rules[0].requires.required_scopes"),
    ];
    for (name, cfg, field) in cases {
        match load(&cfg) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(e.field.starts_with(field), "{name}: {:?} (want {field:?}); {e}", e.field),
        }
    }
}

#[test]
fn jwt_cache_config_sizes_the_cache_as_in_envoy() {
    let size = |cache: Option<Value>| {
        let mut p = provider();
        if let Some(cache) = cache {
            p["jwt_cache_config"] = cache;
        }
        load(&json!({ "providers": { "p": p } })).unwrap().providers[0].jwt_cache_size
    };
    assert_eq!(size(None), None, "no jwt_cache_config: no cache");
    assert_eq!(size(Some(json!({}))), Some(100), "Envoy's default");
    assert_eq!(
        size(Some(json!({ "jwt_cache_size": 0 }))),
        Some(100),
        "0 is unset"
    );
    assert_eq!(size(Some(json!({ "jwt_cache_size": 7 }))), Some(7));
}

#[test]
fn host_signatures_is_on_unless_switched_off() {
    let cfg = |extra: Value| {
        let mut c = json!({ "providers": { "p": provider() } });
        if let Some(obj) = extra.as_object() {
            for (k, v) in obj {
                c[k] = v.clone();
            }
        }
        load(&c).unwrap().host_signatures
    };
    assert!(cfg(json!({})));
    assert!(cfg(json!({ "host_signatures": true })));
    assert!(!cfg(json!({ "host_signatures": false })));
}

#[test]
fn share_key_sets_is_on_unless_switched_off() {
    let cfg = |extra: Value| {
        let mut c = json!({ "providers": { "p": provider() } });
        if let Some(obj) = extra.as_object() {
            for (k, v) in obj {
                c[k] = v.clone();
            }
        }
        load(&c).unwrap().share_key_sets
    };
    assert!(cfg(json!({})));
    assert!(cfg(json!({ "share_key_sets": true })));
    assert!(!cfg(json!({ "share_key_sets": false })));
}

/// The example in `manifests/` (reused by the Istio manifests) must stay loadable.
#[test]
fn the_scopes_example_loads() {
    let cfg = Config::from_json(include_bytes!("../../manifests/examples/scopes.json")).unwrap();
    assert_eq!(cfg.rules.len(), 5);
    assert_eq!(cfg.failure_policy.keys_unavailable, OnFailure::Deny503);
    assert_eq!(
        cfg.emitted_headers,
        vec!["x-jwt-authn-outcome", "x-jwt-sub", "x-verified-identity"]
    );
}
