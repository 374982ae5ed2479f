use serde_json::json;

use super::*;

#[test]
fn claims_render_as_envoy_does_with_json_for_structures() {
    let cases = [
        (json!("alice"), Some("alice")),
        (json!(""), None),
        (json!(42), Some("42")),
        (json!(-7), Some("-7.000000")),
        (json!(18446744073709551615u64), Some("18446744073709551615")),
        (json!(1.0), Some("1")),
        (json!(1.5), Some("1.500000")),
        (json!(-3.25), Some("-3.250000")),
        (json!(1e20), Some("100000000000000000000.000000")),
        (json!(true), Some("true")),
        (json!(false), Some("false")),
        (json!(["a", "b"]), Some(r#"["a","b"]"#)),
        (json!({ "k": 1 }), Some(r#"{"k":1}"#)),
        (json!(null), None),
        (json!("a\r\nx-admin: true"), None),
        (json!("tab\there"), None),
        (json!("José"), Some("José")),
    ];
    for (value, want) in cases {
        assert_eq!(render(&value).as_deref(), want, "{value}");
    }
}

#[test]
fn dotted_paths_walk_objects_only() {
    let payload = json!({ "a": { "b": { "c": 1 } }, "l": [1], "a.b": "flat" });
    let payload = payload.as_object().unwrap();
    let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(claim(payload, &path("a.b.c")), Some(&json!(1)));
    assert_eq!(claim(payload, &path("a.x")), None);
    assert_eq!(claim(payload, &path("l.0")), None);
    assert_eq!(
        claim(payload, &path("a")),
        Some(&json!({ "b": { "c": 1 } }))
    );
}

/// Regression (issue 11, item 11): a claim with leading or trailing spaces or tabs is not
/// sent (an HTTP/1 upstream would read `" admin"` as `admin`); inner spaces are kept.
#[test]
fn claims_with_outer_whitespace_are_not_emitted() {
    for padded in [" admin", "admin ", "\tadmin", "admin\t", " ", "\t"] {
        assert_eq!(render(&json!(padded)), None, "{padded:?}");
    }
    assert_eq!(
        render(&json!("Alice Smith")).as_deref(),
        Some("Alice Smith")
    );
}

/// A filter-state key is a property path (NUL separates segments): only plain field names
/// get one.
#[test]
fn identity_fields_with_plain_names_get_a_filter_state_key() {
    assert_eq!(
        state_key("user_id").as_deref(),
        Some("wasm.jwt_authn_wasm.identity.user_id")
    );
    assert_eq!(
        state_key("org.id-2").as_deref(),
        Some("wasm.jwt_authn_wasm.identity.org.id-2")
    );
    for odd in ["", "a\0b", "a b", "é", "a:b", "a/b"] {
        assert_eq!(state_key(odd), None, "{odd:?}");
    }
}
