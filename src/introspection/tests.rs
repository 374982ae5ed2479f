use super::*;

fn active(body: &str) -> ActiveToken {
    match read_response(Some(200), body.as_bytes()) {
        Ok(Answer::Active(t)) => t,
        other => panic!("{body}: {other:?}"),
    }
}

#[test]
fn rfc_7662_section_2_2_example_is_active_with_its_claims() {
    let t = active(
        r#"{"active":true,"client_id":"l238j323ds-23ij4","username":"jdoe",
            "scope":"read write dolphin","sub":"Z5O3upPC88QrAjx00dis",
            "aud":"https://protected.example.net/resource","iss":"https://server.example.com/",
            "exp":1419356238,"iat":1419350238,"extension_field":"twenty-seven"}"#,
    );
    assert_eq!(t.claims.iss.as_deref(), Some("https://server.example.com/"));
    assert_eq!(t.claims.sub.as_deref(), Some("Z5O3upPC88QrAjx00dis"));
    assert_eq!(t.claims.aud, ["https://protected.example.net/resource"]);
    assert_eq!(t.claims.exp, Some(1_419_356_238));
    assert_eq!(t.claims.iat, Some(1_419_350_238));
    assert_eq!(t.scopes(), ["read", "write", "dolphin"]);
    assert_eq!(t.client_id(), Some("l238j323ds-23ij4"));
    assert_eq!(t.payload["extension_field"], "twenty-seven");
}

#[test]
fn inactive_is_only_the_json_false() {
    assert_eq!(
        read_response(Some(200), br#"{"active":false}"#),
        Ok(Answer::Inactive)
    );
    // Other members of an inactive answer are ignored, even of the wrong type.
    assert_eq!(
        read_response(Some(200), br#"{"active":false,"exp":"never","scope":1}"#),
        Ok(Answer::Inactive)
    );
}

#[test]
fn aud_as_an_array_and_fractional_times() {
    let t = active(r#"{"active":true,"aud":["a","b"],"exp":1700000000.9,"nbf":5}"#);
    assert_eq!(t.claims.aud, ["a", "b"]);
    assert_eq!(t.claims.exp, Some(1_700_000_000));
    assert_eq!(t.claims.nbf, Some(5));
    assert!(active(r#"{"active":true}"#).scopes().is_empty());
}

#[test]
fn what_is_not_an_answer_is_an_error_never_inactive() {
    for body in [
        "",
        "null",
        "true",
        "[]",
        "<html>busy</html>",
        "{",
        r#"{}"#,
        r#"{"active":"true"}"#,
        r#"{"active":"false"}"#,
        r#"{"active":1}"#,
        r#"{"active":0}"#,
        r#"{"active":null}"#,
        r#"{"Active":true}"#,
        r#"{"active":true,"active":false}"#,
        r#"{"active":false,"active":true}"#,
        r#"{"active":true,"scope":["read"]}"#,
        r#"{"active":true,"client_id":7}"#,
        r#"{"active":true,"username":null}"#,
        r#"{"active":true,"token_type":{}}"#,
        r#"{"active":true,"jti":1}"#,
        r#"{"active":true,"sub":1}"#,
        r#"{"active":true,"iss":false}"#,
        r#"{"active":true,"aud":[1]}"#,
        r#"{"active":true,"exp":"1700000000"}"#,
        r#"{"active":true,"exp":-1}"#,
        r#"{"active":true,"exp":253402300800}"#,
        r#"{"active":true,"iat":1e300}"#,
        r#"{"active":true,"nbf":true}"#,
    ] {
        let got = read_response(Some(200), body.as_bytes());
        assert!(got.is_err(), "{body:?} gave {got:?}");
    }
}

#[test]
fn error_classes() {
    let ok = br#"{"active":true}"#;
    assert_eq!(read_response(None, ok), Err(Unavailable::NoResponse));
    assert_eq!(read_response(Some(503), ok), Err(Unavailable::ServerError));
    assert_eq!(
        read_response(Some(401), ok),
        Err(Unavailable::ClientRejected)
    );
    assert_eq!(
        read_response(Some(403), ok),
        Err(Unavailable::ClientRejected)
    );
    assert_eq!(
        read_response(Some(404), ok),
        Err(Unavailable::UnexpectedStatus)
    );
    assert_eq!(read_response(Some(200), b"no"), Err(Unavailable::NotJson));
    assert_eq!(
        read_response(Some(200), br#"{"active":"yes"}"#),
        Err(Unavailable::BadResponse)
    );
    let huge = format!(
        r#"{{"active":true,"pad":"{}"}}"#,
        "x".repeat(oauth::MAX_RESPONSE_BYTES)
    );
    assert_eq!(
        read_response(Some(200), huge.as_bytes()),
        Err(Unavailable::TooLarge)
    );
}

const NOW: i64 = 1_000_000;

fn policy(cache: u64, negative: u64, stale: u64) -> CachePolicy {
    CachePolicy {
        cache_duration: cache,
        negative_cache_duration: negative,
        stale_if_error: stale,
    }
}

fn with_exp(exp: Option<i64>) -> Answer {
    let body = match exp {
        Some(exp) => format!(r#"{{"active":true,"exp":{exp}}}"#),
        None => r#"{"active":true}"#.to_owned(),
    };
    read_response(Some(200), body.as_bytes()).unwrap()
}

#[test]
fn positive_lifetime_is_bounded_by_cache_duration_and_exp() {
    let lt = |p: CachePolicy, exp| p.lifetime(&with_exp(exp), NOW);
    let life = |fresh: i64, stale: i64| {
        Some(Lifetime {
            fresh_until: NOW + fresh,
            stale_until: NOW + stale,
        })
    };
    // (policy, exp relative to NOW, expected fresh/stale relative to NOW)
    assert_eq!(lt(policy(60, 5, 0), None), life(60, 60));
    assert_eq!(lt(policy(60, 5, 30), None), life(60, 90));
    assert_eq!(lt(policy(60, 5, 0), Some(NOW + 600)), life(60, 60));
    assert_eq!(lt(policy(60, 5, 0), Some(NOW + 10)), life(10, 10));
    // stale_if_error never past exp either.
    assert_eq!(lt(policy(60, 5, 300), Some(NOW + 100)), life(60, 100));
    assert_eq!(lt(policy(60, 5, 300), Some(NOW + 30)), life(30, 30));
    // Expired (or expiring now): not cached.
    assert_eq!(lt(policy(60, 5, 300), Some(NOW)), None);
    assert_eq!(lt(policy(60, 5, 300), Some(NOW - 1)), None);
    // cache_duration 0: no cache at all.
    assert_eq!(lt(policy(0, 5, 300), None), None);
    // Huge durations saturate instead of wrapping.
    assert_eq!(
        lt(policy(u64::MAX, 0, u64::MAX), None),
        Some(Lifetime {
            fresh_until: i64::MAX,
            stale_until: i64::MAX
        })
    );
}

#[test]
fn negative_lifetime() {
    let p = policy(60, 5, 300);
    assert_eq!(
        p.lifetime(&Answer::Inactive, NOW),
        Some(Lifetime {
            fresh_until: NOW + 5,
            stale_until: NOW + 5
        })
    );
    assert_eq!(policy(60, 0, 300).lifetime(&Answer::Inactive, NOW), None);
    assert_eq!(policy(0, 5, 300).lifetime(&Answer::Inactive, NOW), None);
}

#[test]
fn lifetime_edges() {
    let l = Lifetime {
        fresh_until: 10,
        stale_until: 20,
    };
    assert!(l.is_fresh(9));
    assert!(!l.is_fresh(10));
    assert!(l.serves_on_error(19));
    assert!(!l.serves_on_error(20));
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // Test case 2: key "Jefe" (HMAC zero-pads a short key, as our 32-byte key is).
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(b"Jefe");
    assert_eq!(
        hex(TokenKeyer::new(&key).mac(&[b"what do ya want ", b"for nothing?"])),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 1: key 0x0b * 20.
    let mut key = [0u8; 32];
    key[..20].fill(0x0b);
    assert_eq!(
        hex(TokenKeyer::new(&key).mac(&[b"Hi There"])),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
}

#[test]
fn cache_keys_separate_providers_keys_and_tokens() {
    let a = TokenKeyer::new(&[1; 32]);
    let b = TokenKeyer::new(&[2; 32]);
    assert_eq!(a.key("p", "tok"), a.key("p", "tok"));
    assert_ne!(a.key("p", "tok"), b.key("p", "tok"));
    assert_ne!(a.key("p", "tok"), a.key("q", "tok"));
    assert_ne!(a.key("p", "tok"), a.key("p", "tok2"));
    // Bytes moved between provider and token make another key.
    assert_ne!(a.key("ab", "c"), a.key("a", "bc"));
    // Neither Debug shows key material or the token.
    assert_eq!(format!("{:?}", a.key("p", "tok")), "CacheKey(..)");
    assert!(!format!("{a:?}").contains('1'));
}

#[test]
fn only_rfc_6750_b64tokens_of_at_most_16_kib_are_sent() {
    let long_ok = "a".repeat(jwt::MAX_TOKEN_BYTES);
    let too_long = "a".repeat(jwt::MAX_TOKEN_BYTES + 1);
    for (token, ok) in [
        ("2YotnFZFEjr1zCsicMWpAA", true),
        ("a-b.c_d~e+f/g", true),
        ("abc==", true),
        ("eyJ.eyJ.sig", true),
        ("", false),
        ("==", false),
        ("a=b", false),
        ("a b", false),
        ("a,b", false),
        ("a\"b", false),
        ("ä", false),
        (long_ok.as_str(), true),
        (too_long.as_str(), false),
    ] {
        assert_eq!(is_b64token(token), ok, "{token:.20}");
    }
}
