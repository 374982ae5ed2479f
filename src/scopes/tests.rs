use serde_json::{json, Value};

use super::*;

fn rule(all_of: &[&str], any_of: &[&str], claim: Option<&str>) -> ScopeRule {
    ScopeRule {
        all_of: all_of.iter().map(|s| s.to_string()).collect(),
        any_of: any_of.iter().map(|s| s.to_string()).collect(),
        claim: claim.map(|c| c.split('.').map(str::to_owned).collect()),
    }
}

fn check(rule: &ScopeRule, payload: Value) -> Result<(), String> {
    rule.check(&crate::verify::Verified::for_test(
        json!({ "alg": "RS256" }),
        payload,
    ))
}

#[test]
#[rustfmt::skip]
fn scope_formats_and_exact_membership() {
    let read = rule(&["read"], &[], None);
    let cases: Vec<(&str, ScopeRule, Value, Result<(), &str>)> = vec![
        ("scope string", read.clone(), json!({ "scope": "openid read write" }), Ok(())),
        ("scope string, extra spaces", read.clone(), json!({ "scope": "  read  " }), Ok(())),
        ("scp string", read.clone(), json!({ "scp": "read write" }), Ok(())),
        ("scp array", read.clone(), json!({ "scp": ["write", "read"] }), Ok(())),
        ("scp array with junk", read.clone(), json!({ "scp": [1, null, "read"] }), Ok(())),
        ("scope and scp together", rule(&["a", "b"], &[], None), json!({ "scope": "a", "scp": ["b"] }), Ok(())),
        ("no scopes", read.clone(), json!({}), Err("read")),
        ("substring is not membership", read.clone(), json!({ "scope": "read:all reader" }), Err("read")),
        ("case matters", read.clone(), json!({ "scope": "READ" }), Err("read")),
        ("scope a number", read.clone(), json!({ "scope": 7 }), Err("read")),
        ("all_of: one missing", rule(&["a", "b", "c"], &[], None), json!({ "scope": "a c" }), Err("b")),
        ("any_of: one granted", rule(&[], &["x", "y"], None), json!({ "scope": "y" }), Ok(())),
        ("any_of: none granted", rule(&[], &["x", "y"], None), json!({ "scope": "z" }), Err("x y")),
        ("both", rule(&["a"], &["x", "y"], None), json!({ "scope": "x" }), Err("a")),
        ("both missing", rule(&["a"], &["x", "y"], None), json!({}), Err("a x y")),
        ("custom claim array", rule(&["admin"], &[], Some("realm_access.roles")), json!({ "realm_access": { "roles": ["user", "admin"] } }), Ok(())),
        ("custom claim ignores scope", rule(&["admin"], &[], Some("roles")), json!({ "scope": "admin" }), Err("admin")),
        ("custom claim string", rule(&["a"], &[], Some("perms")), json!({ "perms": "a b" }), Ok(())),
    ];
    for (name, rule, payload, want) in cases {
        assert_eq!(check(&rule, payload), want.map_err(str::to_owned), "{name}");
    }
}

#[test]
fn scope_tokens() {
    for good in [
        "read",
        "api:write",
        "https://api/x.read",
        "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    ] {
        assert!(is_scope_token(good), "{good}");
    }
    for bad in ["", "a b", "a\"b", "a\\b", "caf\u{e9}", "a\tb"] {
        assert!(!is_scope_token(bad), "{bad:?}");
    }
}
