use serde_json::{json, Value};

use super::*;

fn rule(path: &str, test: ClaimTest) -> ClaimRule {
    ClaimRule {
        path: path.split('.').map(str::to_owned).collect(),
        test,
    }
}

#[test]
#[rustfmt::skip]
fn claim_rules() {
    use ClaimTest::*;
    let cases: Vec<(&str, ClaimRule, Value, bool)> = vec![
        ("equals string", rule("tenant", Equals(json!("acme"))), json!({ "tenant": "acme" }), true),
        ("equals string, other", rule("tenant", Equals(json!("acme"))), json!({ "tenant": "acme2" }), false),
        ("equals is case-sensitive", rule("tenant", Equals(json!("acme"))), json!({ "tenant": "ACME" }), false),
        ("equals missing", rule("tenant", Equals(json!("acme"))), json!({}), false),
        ("equals null", rule("tenant", Equals(json!("acme"))), json!({ "tenant": null }), false),
        ("boolean true", rule("email_verified", Equals(json!(true))), json!({ "email_verified": true }), true),
        ("boolean false", rule("email_verified", Equals(json!(true))), json!({ "email_verified": false }), false),
        ("boolean as string is not boolean", rule("email_verified", Equals(json!(true))), json!({ "email_verified": "true" }), false),
        ("number", rule("level", Equals(json!(3))), json!({ "level": 3 }), true),
        ("number by value", rule("level", Equals(json!(3))), json!({ "level": 3.0 }), true),
        ("number as string is not number", rule("level", Equals(json!(3))), json!({ "level": "3" }), false),
        ("equals is not contains", rule("roles", Equals(json!("admin"))), json!({ "roles": ["admin"] }), false),
        ("one of: hit", rule("tenant", OneOf(vec![json!("a"), json!("b")])), json!({ "tenant": "b" }), true),
        ("one of: miss", rule("tenant", OneOf(vec![json!("a"), json!("b")])), json!({ "tenant": "c" }), false),
        ("one of: array claim", rule("tenant", OneOf(vec![json!("a")])), json!({ "tenant": ["a"] }), false),
        ("contains: hit", rule("roles", Contains(json!("admin"))), json!({ "roles": ["user", "admin"] }), true),
        ("contains: miss", rule("roles", Contains(json!("admin"))), json!({ "roles": ["administrator"] }), false),
        ("contains: string is not an array", rule("roles", Contains(json!("admin"))), json!({ "roles": "admin" }), false),
        ("contains: nested path", rule("realm_access.roles", Contains(json!("admin"))), json!({ "realm_access": { "roles": ["admin"] } }), true),
        ("contains: nested path missing", rule("realm_access.roles", Contains(json!("admin"))), json!({ "realm_access": "admin" }), false),
        ("contains: number", rule("groups", Contains(json!(7))), json!({ "groups": [1, 7] }), true),
        ("nested equals", rule("org.id", Equals(json!("o1"))), json!({ "org": { "id": "o1" } }), true),
    ];
    for (name, rule, payload, want) in cases {
        assert_eq!(rule.matches(&crate::verify::Verified::for_test(json!({ "alg": "RS256" }), payload.clone())), want, "{name}");
    }
}
