use super::*;

fn req(path: &str, extra: &[(&str, &[u8])]) -> RequestHeaders {
    let mut pairs = vec![(":path".to_owned(), path.as_bytes().to_vec())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
    RequestHeaders::new(pairs)
}

fn default_locations() -> Vec<Location> {
    vec![
        Location::Header {
            name: "authorization".into(),
            value_prefix: "Bearer ".into(),
        },
        Location::Param("access_token".into()),
    ]
}

fn tokens(r: &RequestHeaders, locations: &[Location]) -> Vec<Result<String, AuthError>> {
    extract(r, locations)
        .into_iter()
        .map(|f| f.token.map(Cow::into_owned))
        .collect()
}

#[test]
#[rustfmt::skip]
fn default_locations_table() {
    let locs = default_locations();
    let cases: Vec<(&str, &[(&str, &[u8])], Vec<Result<String, AuthError>>)> = vec![
        ("/", &[], vec![]),
        ("/", &[("authorization", b"Bearer a.b.c")], vec![Ok("a.b.c".into())]),
        ("/", &[("authorization", b"Bearer  a.b.c  ")], vec![Ok("a.b.c".into())]),
        ("/", &[("authorization", b"Basic dXNlcg==")], vec![]),
        ("/", &[("authorization", b"Bearer a.b.c,Bearer d.e.f")], vec![Err(AuthError::MultipleTokensInHeader)]),
        ("/", &[("authorization", b"Bearer a.b.c;x")], vec![Ok("a.b.c;x".into())]),
        ("/", &[("authorization", b"Bearer \xff")], vec![Err(AuthError::BadFormat)]),
        ("/", &[("authorization", b"Bearer ")], vec![Err(AuthError::BadFormat)]),
        ("/?access_token=a.b.c", &[], vec![Ok("a.b.c".into())]),
        ("/?x=1&access_token=a%2Eb.c#f", &[], vec![Ok("a.b.c".into())]),
        ("/?access_token=a.b.c&access_token=d.e.f", &[], vec![Err(AuthError::RepeatedTokenLocation)]),
        ("/?access_token=a.b.c", &[("authorization", b"Bearer d.e.f")], vec![Ok("d.e.f".into()), Ok("a.b.c".into())]),
        ("/?access_token=a.b.c", &[("authorization", b"Bearer a.b.c")], vec![Ok("a.b.c".into())]),
    ];
    for (path, headers, want) in cases {
        assert_eq!(
            tokens(&req(path, headers), &locs),
            want,
            "{path} {headers:?}"
        );
    }
}

#[test]
fn custom_header_param_and_cookie() {
    let locs = vec![
        Location::Header {
            name: "x-token".into(),
            value_prefix: String::new(),
        },
        Location::Param("jwt".into()),
        Location::Cookie("session".into()),
    ];
    let r = req(
        "/?jwt=p.p.p",
        &[
            ("x-token", b" h.h.h "),
            ("cookie", b"a=1; session=c.c.c; b=2"),
        ],
    );
    assert_eq!(
        tokens(&r, &locs),
        vec![Ok("h.h.h".into()), Ok("p.p.p".into()), Ok("c.c.c".into())]
    );
}

#[test]
fn every_value_of_a_repeated_header_is_a_token() {
    let locs = vec![Location::Header {
        name: "x-token".into(),
        value_prefix: String::new(),
    }];
    let r = req("/", &[("x-token", b"a.a.a"), ("x-token", b"b.b.b")]);
    assert_eq!(
        tokens(&r, &locs),
        vec![Ok("a.a.a".into()), Ok("b.b.b".into())]
    );
}

#[test]
fn value_prefix_may_be_custom() {
    let locs = vec![Location::Header {
        name: "x-auth".into(),
        value_prefix: "Token=".into(),
    }];
    let r = req("/", &[("x-auth", b"Token=a.b.c")]);
    assert_eq!(tokens(&r, &locs), vec![Ok("a.b.c".into())]);
}

#[test]
#[rustfmt::skip]
fn remove_query_param_keeps_the_rest() {
    let cases = [
        ("/p?access_token=t", "/p"),
        ("/p?a=1&access_token=t&b=2", "/p?a=1&b=2"),
        ("/p?a=1&access_token=t#frag", "/p?a=1#frag"),
        ("/p?a=1", "/p?a=1"),
        ("/p", "/p"),
    ];
    for (path, want) in cases {
        assert_eq!(remove_query_param(path.as_bytes(), "access_token"), want, "{path}");
    }
    // Bytes that are not UTF-8 elsewhere in the path are kept, in their percent-encoded form.
    assert_eq!(remove_query_param(b"/p\xff?access_token=t&x=\xfe", "access_token"), "/p%FF?x=%FE");
}

fn raw_req(path: &[u8], extra: &[(&str, &[u8])]) -> RequestHeaders {
    let mut pairs = vec![(":path".to_owned(), path.to_vec())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
    RequestHeaders::new(pairs)
}

/// Regression (issue 11, item 4): a token parameter or cookie that occurs twice is malformed,
/// whichever copy is good: the upstream may read the other one.
#[test]
#[rustfmt::skip]
fn repeated_token_param_or_cookie_is_malformed() {
    let locs = vec![Location::Param("jwt".into()), Location::Cookie("session".into())];
    let repeated = Err(AuthError::RepeatedTokenLocation);
    let cases: Vec<(&[u8], &[(&str, &[u8])], Vec<Result<String, AuthError>>)> = vec![
        (b"/?jwt=a.b.c&jwt=d.e.f", &[], vec![repeated.clone()]),
        (b"/?jwt=a.b.c&jwt=a.b.c", &[], vec![repeated.clone()]),
        (b"/?jwt=a.b.c&j%77t=d.e.f", &[], vec![repeated.clone()]),
        (b"/?jwt=a.b.c&jwt", &[], vec![repeated.clone()]),
        (b"/", &[("cookie", b"session=a.b.c; session=d.e.f")], vec![repeated.clone()]),
        (b"/", &[("cookie", b"session=a.b.c"), ("cookie", b"session=d.e.f")], vec![repeated.clone()]),
        (b"/", &[("cookie", b"session=a.b.c; other=1; sessionx=2")], vec![Ok("a.b.c".into())]),
        (b"/", &[("cookie", b"session=\"a.b.c\"")], vec![Ok("a.b.c".into())]),
    ];
    for (path, headers, want) in cases {
        assert_eq!(tokens(&raw_req(path, headers), &locs), want, "{path:?} {headers:?}");
    }
}

/// Regression (issue 11, items 1 and 4): a token parameter or cookie that does not decode is
/// malformed, never absent; bytes that are not UTF-8 in *other* parameters or cookies do not
/// hide a token.
#[test]
#[rustfmt::skip]
fn undecodable_token_param_or_cookie_is_malformed() {
    let locs = vec![Location::Param("jwt".into()), Location::Cookie("session".into())];
    let undecodable = Err(AuthError::UndecodableToken);
    let cases: Vec<(&[u8], &[(&str, &[u8])], Vec<Result<String, AuthError>>)> = vec![
        (b"/?jwt=a.b.c%zz", &[], vec![undecodable.clone()]),
        (b"/?jwt=a.b.c%f", &[], vec![undecodable.clone()]),
        (b"/?jwt=a.b.c%+1", &[], vec![undecodable.clone()]),
        (b"/?jwt=%ff", &[], vec![undecodable.clone()]),
        (b"/?jwt=\xff", &[], vec![undecodable.clone()]),
        (b"/", &[("cookie", b"session=\xff\xfe")], vec![undecodable.clone()]),
        (b"/x\xff?y=\xfe&jwt=a.b.c", &[], vec![Ok("a.b.c".into())]),
        (b"/?jw%zz=a.b.c", &[], vec![]),
        (b"/", &[("cookie", b"x=\xff; session=a.b.c")], vec![Ok("a.b.c".into())]),
    ];
    for (path, headers, want) in cases {
        assert_eq!(tokens(&raw_req(path, headers), &locs), want, "{path:?} {headers:?}");
    }
}
