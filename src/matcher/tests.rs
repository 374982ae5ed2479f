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

/// The index of the first rule of `rules` (JSON) that matches, or why the request is refused.
fn try_first_match(rules: &str, req: &RequestHeaders) -> Result<Option<usize>, Unreadable> {
    let jwks = crate::mint::JWKS;
    let cfg = format!(
        r#"{{"providers":{{"p":{{"local_jwks":{{"inline_string":{}}}}}}},"rules":{rules}}}"#,
        serde_json::to_string(jwks).unwrap()
    );
    let cfg = Config::from_json(cfg.as_bytes()).unwrap();
    let mut first = None;
    for (i, rule) in cfg.rules.iter().enumerate() {
        if rule.matcher.matches(req)? {
            first = Some(i);
            break;
        }
    }
    Ok(first)
}

/// The index of the first rule of `rules` (JSON) that matches; panics if the request is refused.
fn first_match(rules: &str, req: &RequestHeaders) -> Option<usize> {
    match try_first_match(rules, req) {
        Ok(first) => first,
        Err(e) => panic!("{rules}: request refused ({e:?})"),
    }
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

/// Regression (issue 11, item 1): bytes that are not UTF-8 never make a matcher see "nothing".
/// `/admin/users?x=\xff` still matches `prefix: /admin` (native compares bytes), and a header
/// value with such a byte is still judged by the rest of its characters.
#[test]
#[rustfmt::skip]
fn non_utf8_bytes_are_matched_not_skipped() {
    let raw = |path: &[u8], extra: &[(&str, &[u8])]| {
        let mut pairs = vec![(":method".to_owned(), b"GET".to_vec()), (":path".to_owned(), path.to_vec())];
        pairs.extend(extra.iter().map(|(n, v)| ((*n).to_owned(), v.to_vec())));
        RequestHeaders::new(pairs)
    };
    let cases: Vec<(&str, RequestHeaders, bool)> = vec![
        (r#"{"prefix":"/admin"}"#, raw(b"/admin/users?x=\xff", &[]), true),
        (r#"{"prefix":"/admin"}"#, raw(b"/admin\xff", &[]), true),
        (r#"{"prefix":"/ADMIN","case_sensitive":false}"#, raw(b"/admin/\xc3", &[]), true),
        (r#"{"path":"/admin/users"}"#, raw(b"/admin/users?x=\xff", &[]), true),
        (r#"{"path":"/admin"}"#, raw(b"/admin\xff", &[]), false),
        (r#"{"path_separated_prefix":"/admin"}"#, raw(b"/admin/\xff", &[]), true),
        (r#"{"safe_regex":{"regex":"/admin/.*"}}"#, raw(b"/admin/\xff\xfe", &[]), true),
        (r#"{"prefix":"/","headers":[{"name":"x-a","string_match":{"contains":""}}]}"#, raw(b"/", &[("x-a", b"\xff")]), true),
        (r#"{"prefix":"/","headers":[{"name":"x-a","prefix_match":"adm"}]}"#, raw(b"/", &[("x-a", b"admin\xff")]), true),
        (r#"{"prefix":"/","headers":[{"name":"x-a","exact_match":"admin"}]}"#, raw(b"/", &[("x-a", b"admin\xff")]), false),
        (r#"{"prefix":"/","headers":[{"name":"x-a","present_match":true}]}"#, raw(b"/", &[("x-a", b"\xff")]), true),
    ];
    for (m, req, want) in cases {
        let rules = format!(r#"[{{"match":{m}}}]"#);
        assert_eq!(first_match(&rules, &req).is_some(), want, "{m} vs {req:?}");
    }
}

/// Regression (issue 11, item 8): an `:authority` a `hosts` matcher cannot parse refuses the
/// request instead of matching no host; rules without `hosts` do not look at it.
#[test]
fn unparsable_authority_is_refused_by_hosts_rules() {
    let rules = r#"[{"match":{"prefix":"/","hosts":["api.test"]}}]"#;
    for bad in [
        &b"api.test\xff"[..],
        b"",
        b"user@api.test",
        b"api test",
        b"api.test:80x",
        b"[::1",
        b"[zz]",
        b".",
    ] {
        let req = RequestHeaders::new(vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/".to_vec()),
            (":authority".into(), bad.to_vec()),
        ]);
        assert_eq!(
            try_first_match(rules, &req),
            Err(Unreadable::Authority),
            "{bad:?}"
        );
        assert_eq!(first_match(r#"[{"match":{"prefix":"/"}}]"#, &req), Some(0));
    }
    let no_authority = headers("GET", "/", &[]);
    assert_eq!(
        try_first_match(rules, &no_authority),
        Err(Unreadable::Authority)
    );
}

/// Regression (issue 11, item 8): one trailing dot is the same name (`api.test.`), in the
/// request and in the pattern; two are not.
#[test]
fn hosts_ignore_one_trailing_dot() {
    for (pattern, authority, want) in [
        ("api.test", "api.test.", true),
        ("api.test", "API.TEST.:8443", true),
        ("api.test.", "api.test", true),
        ("*.api.test", "v1.api.test.", true),
        ("api.test", "api.test..", false),
    ] {
        let rules = format!(r#"[{{"match":{{"prefix":"/","hosts":["{pattern}"]}}}}]"#);
        let req = headers("GET", "/", &[(":authority", authority)]);
        assert_eq!(
            first_match(&rules, &req).is_some(),
            want,
            "{pattern} vs {authority}"
        );
    }
}

/// Regression (issue 11, item 5): `methods` ignore ASCII case (`delete` arrives over HTTP/2
/// and frameworks route it as `DELETE`); a `headers` matcher on `:method` compares exactly.
#[test]
fn methods_ignore_ascii_case() {
    let rules = r#"[{"match":{"prefix":"/","methods":["DELETE"]}}]"#;
    for (method, want) in [
        ("DELETE", true),
        ("delete", true),
        ("DeLeTe", true),
        ("DELET", false),
        ("DELETE ", false),
    ] {
        assert_eq!(
            first_match(rules, &headers(method, "/", &[])).is_some(),
            want,
            "{method:?}"
        );
    }
    let exact =
        r#"[{"match":{"prefix":"/","headers":[{"name":":method","exact_match":"DELETE"}]}}]"#;
    assert_eq!(first_match(exact, &headers("delete", "/", &[])), None);
}

#[test]
#[rustfmt::skip]
fn methods_and_hosts() {
    // (match, method, :authority, matches)
    let cases: Vec<(&str, &str, &str, bool)> = vec![
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "GET", "a.test", true),
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "HEAD", "a.test", true),
        (r#"{"prefix":"/","methods":["GET","HEAD"]}"#, "POST", "a.test", false),
        (r#"{"prefix":"/","methods":["GET"]}"#, "get", "a.test", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "API.Test", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test:8443", true),
        (r#"{"prefix":"/","hosts":["api.test"]}"#, "GET", "api.test.evil", false),
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
