use super::*;
use crate::config::Config;

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> RequestHeaders {
    let mut pairs = vec![
        (":method".to_owned(), method.as_bytes().to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    RequestHeaders::new(pairs)
}

/// The index of the first rule of `rules` (JSON) that matches.
fn first_match(rules: &str, req: &RequestHeaders) -> Option<usize> {
    let jwks = crate::mint::JWKS;
    let cfg = format!(
        r#"{{"providers":{{"p":{{"local_jwks":{{"inline_string":{}}}}}}},"rules":{rules}}}"#,
        serde_json::to_string(jwks).unwrap()
    );
    let cfg = Config::from_json(cfg.as_bytes()).unwrap();
    cfg.rules.iter().position(|r| r.matcher.matches(req))
}

#[test]
#[rustfmt::skip]
fn path_matchers() {
    let cases: Vec<(&str, &str, bool)> = vec![
        (r#"{"prefix":"/api"}"#, "/api/x", true),
        (r#"{"prefix":"/api"}"#, "/apix", true),
        (r#"{"prefix":"/api"}"#, "/API", false),
        (r#"{"prefix":"/api","case_sensitive":false}"#, "/API/x", true),
        (r#"{"prefix":"/a?b"}"#, "/a?b=1", true),
        (r#"{"path":"/a"}"#, "/a", true),
        (r#"{"path":"/a"}"#, "/a?x=1", true),
        (r#"{"path":"/a"}"#, "/a#f", true),
        (r#"{"path":"/a"}"#, "/a/", false),
        (r#"{"path":"/a","case_sensitive":false}"#, "/A", true),
        (r#"{"safe_regex":{"regex":"/v[0-9]+/.*"}}"#, "/v2/x?q", true),
        (r#"{"safe_regex":{"regex":"/v[0-9]+"}}"#, "/v2/x", false),
        (r#"{"safe_regex":{"regex":"/v[0-9]+"}}"#, "x/v2", false),
        (r#"{"path_separated_prefix":"/api"}"#, "/api", true),
        (r#"{"path_separated_prefix":"/api"}"#, "/api/x", true),
        (r#"{"path_separated_prefix":"/api"}"#, "/apix", false),
    ];
    for (m, path, want) in cases {
        let rules = format!(r#"[{{"match":{m}}}]"#);
        assert_eq!(
            first_match(&rules, &headers("GET", path, &[])).is_some(),
            want,
            "{m} vs {path}"
        );
    }
}

#[test]
#[rustfmt::skip]
fn header_matchers() {
    let cases: Vec<(&str, &[(&str, &str)], bool)> = vec![
        (r#"{"name":"x-a","exact_match":"1"}"#, &[("x-a", "1")], true),
        (r#"{"name":"X-A","exact_match":"1"}"#, &[("x-a", "1")], true),
        (r#"{"name":"x-a","exact_match":"1"}"#, &[("x-a", "2")], false),
        (r#"{"name":"x-a","exact_match":"1"}"#, &[], false),
        (r#"{"name":"x-a","present_match":true}"#, &[("x-a", "")], true),
        (r#"{"name":"x-a","present_match":true}"#, &[], false),
        (r#"{"name":"x-a","present_match":false}"#, &[], true),
        (r#"{"name":"x-a"}"#, &[("x-a", "v")], true),
        (r#"{"name":"x-a","invert_match":true,"exact_match":"1"}"#, &[("x-a", "2")], true),
        (r#"{"name":"x-a","string_match":{"prefix":"ab","ignore_case":true}}"#, &[("x-a", "ABc")], true),
        (r#"{"name":"x-a","string_match":{"suffix":"bc"}}"#, &[("x-a", "abc")], true),
        (r#"{"name":"x-a","string_match":{"contains":"b"}}"#, &[("x-a", "abc")], true),
        (r#"{"name":"x-a","string_match":{"safe_regex":{"regex":"a.c"}}}"#, &[("x-a", "abc")], true),
        (r#"{"name":"x-a","exact_match":"1,2"}"#, &[("x-a", "1"), ("x-a", "2")], true),
        (r#"{"name":"x-a","treat_missing_header_as_empty":true,"exact_match":""}"#, &[], true),
        (r#"{"name":":method","exact_match":"POST"}"#, &[], false),
    ];
    for (m, extra, want) in cases {
        let rules = format!(r#"[{{"match":{{"prefix":"/","headers":[{m}]}}}}]"#);
        assert_eq!(
            first_match(&rules, &headers("GET", "/", extra)).is_some(),
            want,
            "{m} vs {extra:?}"
        );
    }
}

#[test]
fn first_rule_wins() {
    let rules = r#"[{"match":{"prefix":"/a"}},{"match":{"prefix":"/"}}]"#;
    assert_eq!(first_match(rules, &headers("GET", "/a", &[])), Some(0));
    assert_eq!(first_match(rules, &headers("GET", "/b", &[])), Some(1));
}

#[test]
fn non_utf8_header_values_do_not_match_strings() {
    let req = RequestHeaders::new(vec![
        (":path".into(), b"/".to_vec()),
        ("x-a".into(), b"\xff".to_vec()),
    ]);
    let rules =
        r#"[{"match":{"prefix":"/","headers":[{"name":"x-a","string_match":{"contains":""}}]}}]"#;
    assert_eq!(first_match(rules, &req), None);
    let rules = r#"[{"match":{"prefix":"/","headers":[{"name":"x-a","present_match":true}]}}]"#;
    assert_eq!(first_match(rules, &req), Some(0));
}

#[test]
#[rustfmt::skip]
fn methods_and_hosts() {
    // (match, method, :authority, matches)
    let cases: Vec<(&str, &str, &str, bool)> = vec![
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "GET", "a.test", true),
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "HEAD", "a.test", true),
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "POST", "a.test", false),
        (r#"{"prefix":"/","methods":["GET"]}"#, "get", "a.test", false),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "API.Test", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test:8443", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test.evil", false),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "", false),
        (r#"{"prefix":"/","hosts":["*.api.test"]}"#, "GET", "v1.api.test", true),
        (r#"{"prefix":"/","hosts":["*.api.test"]}"#, "GET", "a.b.api.test:80", true),
        (r#"{"prefix":"/","hosts":["*.api.test"]}"#, "GET", "api.test", false),
        (r#"{"prefix":"/","hosts":["*.api.test"]}"#, "GET", ".api.test", false),
        (r#"{"prefix":"/","hosts":["*-api.test"]}"#, "GET", "v1-api.test", true),
        (r#"{"prefix":"/","hosts":["api.*"]}"#, "GET", "api.test", true),
        (r#"{"prefix":"/","hosts":["api.*"]}"#, "GET", "api.", false),
        (r#"{"prefix":"/","hosts":["*"]}"#, "GET", "anything:1", true),
        (r#"{"prefix":"/","hosts":["[::1]"]}"#, "GET", "[::1]:8080", true),
        (r#"{"prefix":"/","hosts":["[::1]"]}"#, "GET", "[::1]", true),
        (r#"{"prefix":"/","hosts":["a.test","b.test"]}"#, "GET", "b.test", true),
        (r#"{"prefix":"/","hosts":["a.test"],"methods":["POST"]}"#, "GET", "a.test", false),
        (r#"{"prefix":"/x","hosts":["a.test"],"methods":["GET"]}"#, "GET", "a.test", false),
    ];
    for (m, method, authority, want) in cases {
        let rules = format!(r#"[{{"match":{m}}}]"#);
        let req = headers(method, "/", &[(":authority", authority)]);
        assert_eq!(first_match(&rules, &req).is_some(), want, "{m} vs {method} {authority}");
    }
}

#[test]
fn host_patterns() {
    for good in ["a.test", "*.a.test", "a.*", "*", "[::1]", "A.Test"] {
        assert!(HostMatcher::parse(good).is_some(), "{good}");
    }
    for bad in ["", "a.*.test", "**", "*a*", "a test", "a/b"] {
        assert!(HostMatcher::parse(bad).is_none(), "{bad:?}");
    }
}
