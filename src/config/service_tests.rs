//! Configuration of service-to-service identity (issue 17): `peer`, `token_kind`,
//! `service_token` / `resource_owner_claims`, `allowed_typ`, `certificate_bound`,
//! `identity_header.peer_field`, and which connection facts a configuration makes the glue
//! read.

use serde_json::{json, Value};

use super::*;
use crate::binding::Binding;
use crate::claims::ClaimTest;
use crate::mint;
use crate::peer::PrincipalPattern;
use crate::token_kind::{ServiceTest, TokenKind};

fn provider() -> Value {
    json!({ "issuer": "https://example.com", "local_jwks": { "inline_string": mint::JWKS } })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    Config::from_json(v.to_string().as_bytes())
}

fn with_rule(requires: Value) -> Value {
    json!({ "providers": { "p": provider() },
            "rules": [ { "match": { "prefix": "/" }, "requires": requires } ] })
}

#[test]
fn peer_requirement_composes_in_requires_all() {
    let cfg = load(&with_rule(json!({ "requires_all": { "requirements": [
        { "peer": { "principals": ["spiffe://cluster.local/ns/shop/sa/frontend", "*/sa/batch"] } },
        { "provider_name": "p", "token_kind": "user" } ] } })))
    .unwrap();
    assert_eq!(
        cfg.rules[0].requirement,
        Some(Requirement::All(vec![
            Requirement::Peer(vec![
                PrincipalPattern::Exact("cluster.local/ns/shop/sa/frontend".into()),
                PrincipalPattern::Suffix("/sa/batch".into()),
            ]),
            Requirement::Provider {
                provider: 0,
                audiences: None,
                scopes: None,
                claims: vec![],
                token_kind: Some(TokenKind::User),
            },
        ]))
    );
    assert_eq!(
        cfg.peer_reads,
        PeerReads {
            uri_san: true,
            digest: false
        }
    );
}

#[test]
fn provider_fields_compile() {
    let mut p = provider();
    p["allowed_typ"] = json!(["at+jwt", "application/JWT"]);
    p["certificate_bound"] = json!("if_present");
    p["service_token"] = json!([{ "name": "gty", "equals": "client-credentials" }]);
    p["identity_header"] =
        json!({ "header_name": "x-identity", "claims": { "user": "sub" }, "peer_field": "peer" });
    let cfg = load(&json!({ "providers": { "p": p } })).unwrap();
    let p = &cfg.providers[0];
    assert!(p.allowed_typ.is_some());
    assert_eq!(p.certificate_bound, Binding::IfPresent);
    assert_eq!(
        p.service_test,
        ServiceTest::Rules(vec![crate::claims::ClaimRule {
            path: vec!["gty".into()],
            test: ClaimTest::Equals(json!("client-credentials")),
        }])
    );
    assert_eq!(
        p.identity_header.as_ref().unwrap().peer_field.as_deref(),
        Some("peer")
    );
    assert_eq!(
        cfg.peer_reads,
        PeerReads {
            uri_san: true,
            digest: true
        }
    );
}

#[test]
fn defaults_read_no_connection_fact_and_check_nothing_new() {
    let cfg = load(&with_rule(json!({ "provider_name": "p" }))).unwrap();
    assert_eq!(cfg.peer_reads, PeerReads::default());
    let p = &cfg.providers[0];
    assert_eq!(p.allowed_typ, None);
    assert_eq!(p.certificate_bound, Binding::Off);
    assert_eq!(p.service_test, ServiceTest::Default);
    let mut q = provider();
    q["resource_owner_claims"] = json!(["username", "email"]);
    let cfg = load(&json!({ "providers": { "q": q } })).unwrap();
    assert_eq!(
        cfg.providers[0].service_test,
        ServiceTest::ResourceOwnerClaims(vec!["username".into(), "email".into()])
    );
}

#[test]
#[rustfmt::skip]
fn bad_values_are_refused_naming_the_field() {
    let with = |key: &str, value: Value| {
        let mut p = provider();
        p[key] = value;
        json!({ "providers": { "p": p } })
    };
    let identity = |peer_field: Value| with("identity_header", json!({ "header_name": "x-id", "claims": { "user": "sub" }, "peer_field": peer_field }));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("peer without principals", with_rule(json!({ "peer": { "principals": [] } })), "rules[0].requires.peer.principals"),
        ("peer principal with two stars", with_rule(json!({ "peer": { "principals": ["*a*"] } })), "rules[0].requires.peer.principals[0]"),
        ("peer principal star inside", with_rule(json!({ "peer": { "principals": ["cluster.local/*/sa/x"] } })), "rules[0].requires.peer.principals[0]"),
        ("peer principal not a SPIFFE ID", with_rule(json!({ "peer": { "principals": ["https://evil.example/sa/x"] } })), "rules[0].requires.peer.principals[0]"),
        ("peer principal empty", with_rule(json!({ "peer": { "principals": [""] } })), "rules[0].requires.peer.principals[0]"),
        ("nested peer principal", with_rule(json!({ "requires_any": { "requirements": [{ "provider_name": "p" }, { "peer": { "principals": ["**"] } }] } })), "rules[0].requires.requires_any.requirements[1].peer.principals[0]"),
        ("peer with provider_name", with_rule(json!({ "provider_name": "p", "peer": { "principals": ["*"] } })), "rules[0].requires"),
        ("unknown peer field", with_rule(json!({ "peer": { "principals": ["*"], "namespaces": ["x"] } })), "rules[0].requires.peer"),
        ("token_kind unknown", with_rule(json!({ "provider_name": "p", "token_kind": "robot" })), "rules[0].requires.token_kind"),
        ("token_kind without provider", with_rule(json!({ "requires_any": { "requirements": [{ "provider_name": "p" }] }, "token_kind": "service" })), "rules[0].requires.token_kind"),
        ("token_kind beside peer", with_rule(json!({ "peer": { "principals": ["*"] }, "token_kind": "service" })), "rules[0].requires.token_kind"),
        ("allowed_typ empty", with("allowed_typ", json!([])), "providers.p.allowed_typ"),
        ("allowed_typ with a space", with("allowed_typ", json!(["at jwt"])), "providers.p.allowed_typ"),
        ("allowed_typ not a list", with("allowed_typ", json!("at+jwt")), "providers.p.allowed_typ"),
        ("certificate_bound unknown", with("certificate_bound", json!("always")), "providers.p.certificate_bound"),
        ("certificate_bound not a string", with("certificate_bound", json!(true)), "providers.p.certificate_bound"),
        ("service_token empty", with("service_token", json!([])), "providers.p.service_token"),
        ("service_token bad rule", with("service_token", json!([{ "name": "gty" }])), "providers.p.service_token[0]"),
        ("service_token bad path", with("service_token", json!([{ "name": "a..b", "equals": 1 }])), "providers.p.service_token[0].name"),
        ("resource_owner_claims empty name", with("resource_owner_claims", json!(["email", ""])), "providers.p.resource_owner_claims[1]"),
        ("peer_field empty", identity(json!("")), "providers.p.identity_header.peer_field"),
        ("peer_field is a claims field", identity(json!("user")), "providers.p.identity_header.peer_field"),
        ("peer_field not a string", identity(json!(1)), "providers.p.identity_header.peer_field"),
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
    // Both service tests at once.
    let mut p = provider();
    p["service_token"] = json!([{ "name": "gty", "equals": "client-credentials" }]);
    p["resource_owner_claims"] = json!(["email"]);
    let e = load(&json!({ "providers": { "p": p } })).unwrap_err();
    assert_eq!(e.field, "providers.p.service_token");
}

#[test]
fn certificate_bound_makes_the_glue_read_the_digest_only() {
    let mut p = provider();
    p["certificate_bound"] = json!("required");
    let cfg = load(&json!({ "providers": { "p": p } })).unwrap();
    assert_eq!(
        cfg.peer_reads,
        PeerReads {
            uri_san: false,
            digest: true
        }
    );
    let mut p = provider();
    p["certificate_bound"] = json!("off");
    let cfg = load(&json!({ "providers": { "p": p } })).unwrap();
    assert_eq!(cfg.peer_reads, PeerReads::default());
}
