//! `token_exchanges` and a rule's `token_exchange`, as a user writes them and as load refuses
//! them.

use serde_json::{json, Value};

use crate::config::{Actor, Config, OnFailure};
use crate::error::ConfigError;
use crate::mint;
use crate::oauth::{token_type, AuthMethod};

fn provider() -> Value {
    json!({ "issuer": "https://example.com", "local_jwks": { "inline_string": mint::JWKS } })
}

/// The issue's example, with an inline secret (the environment is `secret`'s to test).
fn exchange() -> Value {
    json!({
        "http_uri": { "uri": "https://idp.example.com/token",
                      "cluster": "outbound|443||idp.example.com", "timeout": "2s" },
        "client_id": "gateway",
        "client_secret": { "inline_string": "gateway-secret" }, "allow_inline_secret": true,
        "auth_method": "client_secret_basic",
        "audience": "orders",
        "scope": "orders:read",
        "actor": "client_credentials",
        "verify_with": "internal",
        "forward_header": { "name": "authorization", "value_prefix": "Bearer " },
        "refresh_before": "30s",
        "max_cache_entries": 10000
    })
}

fn config(exchange: Value, rule_exchange: Value) -> Value {
    json!({
        "providers": { "idp": provider(), "internal": provider() },
        "token_exchanges": { "to-orders": exchange },
        "rules": [ { "match": { "prefix": "/orders" }, "requires": { "provider_name": "idp" },
                     "token_exchange": rule_exchange } ]
    })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    Config::from_json(v.to_string().as_bytes())
}

#[test]
fn the_issue_example_loads() {
    let cfg = load(&config(exchange(), json!("to-orders"))).unwrap();
    assert_eq!(cfg.rules[0].token_exchange, Some(0));
    let ex = &cfg.token_exchanges[0];
    assert_eq!(ex.name, "to-orders");
    assert_eq!(ex.server.cluster, "outbound|443||idp.example.com");
    assert_eq!(ex.server.endpoint.authority, "idp.example.com");
    assert_eq!(ex.server.endpoint.path, "/token");
    assert_eq!(ex.server.timeout.as_secs(), 2);
    assert_eq!(ex.server.client.id, "gateway");
    assert_eq!(ex.server.client.secret.expose(), "gateway-secret");
    assert_eq!(ex.server.client.method, AuthMethod::ClientSecretBasic);
    assert_eq!(ex.audience.as_deref(), Some("orders"));
    assert_eq!(ex.scope.as_deref(), Some("orders:read"));
    assert_eq!(ex.actor, Actor::ClientCredentials);
    assert_eq!(ex.verify_with, cfg.provider_id("internal"));
    assert_eq!(ex.forward_header, "authorization");
    assert_eq!(ex.forward_prefix, "Bearer ");
    assert_eq!(ex.refresh_before.as_secs(), 30);
    assert_eq!(ex.max_cache_entries, 10000);
    assert_eq!(ex.subject_token_type, token_type::ACCESS_TOKEN);
    assert_eq!(cfg.failure_policy.exchange_unavailable, OnFailure::Deny503);
    assert!(
        !format!("{ex:?}").contains("gateway-secret"),
        "Debug shows the secret"
    );
}

#[test]
fn defaults_of_a_minimal_exchange() {
    let minimal = json!({
        "http_uri": { "uri": "http://idp:8080/token", "cluster": "idp", "timeout": "1s" },
        "client_id": "gw", "client_secret": { "inline_string": "s" }, "allow_inline_secret": true,
        "subject_token_type": "id_token"
    });
    let cfg = load(&config(minimal, json!("to-orders"))).unwrap();
    let ex = &cfg.token_exchanges[0];
    assert_eq!(ex.actor, Actor::None);
    assert_eq!(ex.verify_with, None);
    assert_eq!(
        (ex.forward_header.as_str(), ex.forward_prefix.as_str()),
        ("authorization", "Bearer ")
    );
    assert_eq!(ex.refresh_before, crate::config::DEFAULT_REFRESH_BEFORE);
    assert_eq!(
        ex.max_cache_entries,
        crate::config::DEFAULT_MAX_CACHE_ENTRIES
    );
    assert_eq!(ex.subject_token_type, token_type::ID_TOKEN);
    assert_eq!((ex.audience.as_ref(), ex.scope.as_ref()), (None, None));
    // A rule without `token_exchange` runs none.
    let plain = json!({ "providers": { "idp": provider() }, "rules": [
        { "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } } ] });
    assert_eq!(load(&plain).unwrap().rules[0].token_exchange, None);
}

/// One secret policy for every OAuth client: an exchange's inline secret needs the same
/// consent as an introspection's, and the refusal names the field, never the secret.
#[test]
fn an_inline_secret_needs_consent_as_for_introspection() {
    let mut ex = exchange();
    ex.as_object_mut().unwrap().remove("allow_inline_secret");
    let e = load(&config(ex.clone(), json!("to-orders"))).unwrap_err();
    assert_eq!(
        e.field,
        "token_exchanges.to-orders.client_secret.inline_string"
    );
    assert!(e.reason.contains("allow_inline_secret: true"), "{e}");
    assert!(
        !e.to_string().contains("gateway-secret"),
        "the secret leaked: {e}"
    );
    ex["allow_inline_secret"] = json!(false);
    assert!(load(&config(ex.clone(), json!("to-orders"))).is_err());
    ex["allow_inline_secret"] = json!(true);
    let cfg = load(&config(ex, json!("to-orders"))).unwrap();
    assert_eq!(
        cfg.token_exchanges[0].server.client.secret.expose(),
        "gateway-secret"
    );
}

#[test]
fn every_bad_reference_or_value_is_refused_naming_its_field() {
    let with = |field: &str, value: Value| {
        let mut ex = exchange();
        let mut at = &mut ex;
        let parts: Vec<&str> = field.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = &mut at[*part];
        }
        at[parts[parts.len() - 1]] = value;
        ex
    };
    let x = "token_exchanges.to-orders";
    let cases: Vec<(Value, String, &str)> = vec![
        (
            config(exchange(), json!("nope")),
            "rules[0].token_exchange".into(),
            "[\"nope\"] is not configured",
        ),
        (
            config(with("verify_with", json!("ghost")), json!("to-orders")),
            format!("{x}.verify_with"),
            "[\"ghost\"] is not configured",
        ),
        (
            config(with("http_uri.uri", json!("idp/token")), json!("to-orders")),
            format!("{x}.http_uri.uri"),
            "URL",
        ),
        (
            config(with("http_uri.cluster", json!("")), json!("to-orders")),
            format!("{x}.http_uri.cluster"),
            "cluster",
        ),
        (
            config(with("http_uri.timeout", json!("0s")), json!("to-orders")),
            format!("{x}.http_uri.timeout"),
            "above 0s",
        ),
        (
            config(with("client_id", json!("")), json!("to-orders")),
            format!("{x}.client_id"),
            "VSCHAR",
        ),
        (
            config(with("client_secret", json!({})), json!("to-orders")),
            format!("{x}.client_secret"),
            "exactly one",
        ),
        (
            config(
                with("auth_method", json!("private_key_jwt")),
                json!("to-orders"),
            ),
            format!("{x}.auth_method"),
            "private_key_jwt",
        ),
        (
            config(with("audience", json!("")), json!("to-orders")),
            format!("{x}.audience"),
            "non-empty",
        ),
        (
            config(with("resource", json!("orders")), json!("to-orders")),
            format!("{x}.resource"),
            "absolute URI",
        ),
        (
            config(
                with("forward_header.name", json!(":path")),
                json!("to-orders"),
            ),
            format!("{x}.forward_header.name"),
            "pseudo-header",
        ),
        (
            config(with("max_cache_entries", json!(0)), json!("to-orders")),
            format!("{x}.max_cache_entries"),
            "1 to 1000000",
        ),
        (
            config(with("actor", json!("impersonate")), json!("to-orders")),
            format!("{x}.actor"),
            "unknown variant",
        ),
        (
            config(with("refresh_before", json!("30")), json!("to-orders")),
            format!("{x}.refresh_before"),
            "invalid duration",
        ),
    ];
    for (cfg, field, says) in cases {
        let e = load(&cfg).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.reason.contains(says), "{field}: {}", e.reason);
        assert!(
            !e.to_string().contains("gateway-secret"),
            "{field}: the secret leaked"
        );
        // `check` finds the same error.
        let found = Config::check(cfg.to_string().as_bytes());
        assert!(
            found.iter().any(|f| f.field == field),
            "{field}: check found {found:?}"
        );
    }
}

#[test]
fn an_exchange_needs_a_requirement_and_never_falls_back_to_the_original_token() {
    let mut cfg = config(exchange(), json!("to-orders"));
    cfg["rules"][0].as_object_mut().unwrap().remove("requires");
    let e = load(&cfg).unwrap_err();
    assert_eq!(e.field, "rules[0].token_exchange");
    assert!(e.reason.contains("needs `requires`"), "{}", e.reason);

    // The issued token cannot go where an identity header goes.
    let mut cfg = config(exchange(), json!("to-orders"));
    cfg["providers"]["idp"]["claim_to_headers"] =
        json!([{ "header_name": "X-User", "claim_name": "sub" }]);
    cfg["token_exchanges"]["to-orders"]["forward_header"] = json!({ "name": "x-user" });
    let e = load(&cfg).unwrap_err();
    assert_eq!(e.field, "token_exchanges.to-orders.forward_header.name");
    assert!(e.reason.contains("its own"), "{}", e.reason);

    // The name goes into stat names.
    let mut cfg = config(exchange(), json!("to.orders"));
    cfg["token_exchanges"] = json!({ "to.orders": exchange() });
    let e = load(&cfg).unwrap_err();
    assert_eq!(e.field, "token_exchanges.to.orders");
    assert!(e.reason.contains("stat names"), "{}", e.reason);

    let mut cfg = config(exchange(), json!("to-orders"));
    cfg["failure_policy"] = json!({ "exchange_unavailable": "allow" });
    let e = load(&cfg).unwrap_err();
    assert_eq!(e.field, "failure_policy.exchange_unavailable");
    // `check` lists it beside another part's error.
    let mut both = cfg.clone();
    both["rules"][0]["token_exchange"] = json!("nope");
    let found = Config::check(both.to_string().as_bytes());
    let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "failure_policy.exchange_unavailable",
            "rules[0].token_exchange"
        ]
    );
    cfg["failure_policy"] = json!({ "exchange_unavailable": "deny_401" });
    assert_eq!(
        load(&cfg).unwrap().failure_policy.exchange_unavailable,
        OnFailure::Deny401
    );
}
