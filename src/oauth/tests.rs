use super::*;

fn endpoint() -> Endpoint {
    Endpoint {
        authority: "server.example.com".into(),
        path: "/introspect".into(),
    }
}

fn client(method: AuthMethod) -> Client {
    Client {
        id: "s6BhdRkqt3".into(),
        secret: Secret::new("7Fjfp0ZBr1KtDRbnfVdmIw"),
        method,
    }
}

fn body(req: &CalloutRequest) -> &str {
    std::str::from_utf8(&req.body).unwrap()
}

#[test]
fn basic_credentials_match_rfc_6749_section_2_3_1() {
    // RFC 6749 §2.3.1 and RFC 7662 §2.1 example.
    assert_eq!(
        basic_credentials("s6BhdRkqt3", &Secret::new("7Fjfp0ZBr1KtDRbnfVdmIw")),
        "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
    );
}

#[test]
fn basic_credentials_form_encode_before_base64() {
    // "a:b c%" would split at the wrong colon and lose the space without the encoding:
    // urlencode gives "a%3Ab+c%25", base64 of "a%3Ab+c%25:p%C3%A4ss%3Aw%2Bord".
    let got = basic_credentials("a:b c%", &Secret::new("päss:w+ord"));
    let decoded = STANDARD
        .decode(got.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&decoded).unwrap(),
        "a%3Ab+c%25:p%C3%A4ss%3Aw%2Bord"
    );
}

#[test]
fn form_encoding_table() {
    for (value, want) in [
        ("", ""),
        ("AZaz09*-._", "AZaz09*-._"),
        (" ", "+"),
        ("+", "%2B"),
        ("&=", "%26%3D"),
        ("~", "%7E"),
        ("é", "%C3%A9"),
        ("a/b?c#d", "a%2Fb%3Fc%23d"),
        ("\r\n", "%0D%0A"),
    ] {
        assert_eq!(
            form_encode(&[("k", value)]),
            format!("k={want}"),
            "{value:?}"
        );
    }
    assert_eq!(form_encode(&[("a", "1"), ("b c", "2")]), "a=1&b+c=2");
    assert_eq!(form_encode(&[]), "");
}

#[test]
fn introspection_request_as_rfc_7662_section_2_1() {
    let req = introspection_request(
        &endpoint(),
        &client(AuthMethod::ClientSecretBasic),
        "mF_9.B5f-4.1JqM",
        Some("access_token"),
    );
    assert_eq!(req.header(":method"), Some("POST"));
    assert_eq!(req.header(":path"), Some("/introspect"));
    assert_eq!(req.header(":authority"), Some("server.example.com"));
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(
        req.header("authorization"),
        Some("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3")
    );
    assert_eq!(
        body(&req),
        "token=mF_9.B5f-4.1JqM&token_type_hint=access_token"
    );
}

#[test]
fn client_secret_post_puts_both_in_the_form_and_no_authorization_header() {
    let req = introspection_request(
        &endpoint(),
        &client(AuthMethod::ClientSecretPost),
        "tok",
        None,
    );
    assert_eq!(req.header("authorization"), None);
    assert_eq!(
        body(&req),
        "token=tok&client_id=s6BhdRkqt3&client_secret=7Fjfp0ZBr1KtDRbnfVdmIw"
    );
}

#[test]
fn client_credentials_request_body() {
    let c = client(AuthMethod::ClientSecretBasic);
    let req = client_credentials_request(&endpoint(), &c, None, None);
    assert_eq!(body(&req), "grant_type=client_credentials");
    let req = client_credentials_request(
        &endpoint(),
        &c,
        Some("orders:read orders:write"),
        Some("https://orders.example.com/"),
    );
    assert_eq!(
        body(&req),
        "grant_type=client_credentials&scope=orders%3Aread+orders%3Awrite\
         &resource=https%3A%2F%2Forders.example.com%2F"
    );
}

#[test]
fn exchange_request_as_rfc_8693_appendix_a_1_1() {
    // RFC 8693 A.1.1 (no client authentication there; ours always authenticates).
    let mut ex = Exchange::new("accVkjcJyb4BWCxGsndESCJQbdFMogUC5PbRDqceLTC");
    ex.resource = Some("https://backend.example.com/api");
    let req = exchange_request(&endpoint(), &client(AuthMethod::ClientSecretBasic), &ex);
    assert_eq!(
        body(&req),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &resource=https%3A%2F%2Fbackend.example.com%2Fapi\
         &subject_token=accVkjcJyb4BWCxGsndESCJQbdFMogUC5PbRDqceLTC\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
    );
}

#[test]
fn exchange_request_with_every_parameter() {
    let ex = Exchange {
        subject_token: "sub.tok",
        subject_token_type: token_type::JWT,
        actor_token: Some("act.tok"),
        actor_token_type: token_type::ACCESS_TOKEN,
        audience: Some("orders"),
        resource: Some("https://orders"),
        scope: Some("orders:read"),
        requested_token_type: Some(token_type::ACCESS_TOKEN),
    };
    let req = exchange_request(&endpoint(), &client(AuthMethod::ClientSecretPost), &ex);
    let body = body(&req);
    let pairs: Vec<&str> = body.split('&').collect();
    assert_eq!(
        pairs,
        [
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
            "resource=https%3A%2F%2Forders",
            "audience=orders",
            "scope=orders%3Aread",
            "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
            "subject_token=sub.tok",
            "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt",
            "actor_token=act.tok",
            "actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
            "client_id=s6BhdRkqt3",
            "client_secret=7Fjfp0ZBr1KtDRbnfVdmIw",
        ]
    );
}

#[test]
fn actor_token_type_is_not_sent_without_an_actor_token() {
    let ex = Exchange::new("t");
    let req = exchange_request(&endpoint(), &client(AuthMethod::ClientSecretBasic), &ex);
    assert!(!body(&req).contains("actor_token"), "{}", body(&req));
}

#[test]
fn revocation_list_request_is_a_conditional_get() {
    let req = revocation_list_request(&endpoint(), None);
    assert_eq!(req.header(":method"), Some("GET"));
    assert_eq!(req.header("if-none-match"), None);
    assert!(req.body.is_empty());
    let req = revocation_list_request(&endpoint(), Some("\"v42\""));
    assert_eq!(req.header("if-none-match"), Some("\"v42\""));
    assert_eq!(req.header("authorization"), None);
}

#[test]
fn debug_never_shows_a_secret_or_a_token() {
    let c = client(AuthMethod::ClientSecretPost);
    let shown = format!("{c:?}");
    assert!(!shown.contains("7Fjfp0ZBr1KtDRbnfVdmIw"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");

    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let mut ex = Exchange::new("SUBJECT-TOKEN");
        ex.actor_token = Some("ACTOR-TOKEN");
        let req = exchange_request(&endpoint(), &client(method), &ex);
        let shown = format!("{req:?} {ex:?}");
        for secret in [
            "7Fjfp0ZBr1KtDRbnfVdmIw",
            "czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3",
            "SUBJECT-TOKEN",
            "ACTOR-TOKEN",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    let issued = read_token_response(
        Some(200),
        br#"{"access_token":"ISSUED-TOKEN","token_type":"Bearer"}"#,
    );
    assert!(!format!("{issued:?}").contains("ISSUED-TOKEN"));
}

#[test]
fn token_response_issued() {
    // RFC 8693 §2.3 example response, trimmed.
    let body = br#"{"access_token":"eyJhbGciOiJFUzI1NiIsImtpZCI6IjcyIn0.eyJhdWQiOiJ1cm46ZXhhbXBsZTpjb29wZXJhdGlvbi1jb250ZXh0In0.FB1s_Ul7kL0Uk5Ysuxe8V6xkMh4PyMpwF6yQKCQ_rIQ","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60}"#;
    let TokenOutcome::Issued(t) = read_token_response(Some(200), body) else {
        panic!("not issued");
    };
    assert!(t.access_token.expose().starts_with("eyJhbGciOiJFUzI1NiIs"));
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, Some(60));
    assert_eq!(
        t.issued_token_type.as_deref(),
        Some(token_type::ACCESS_TOKEN)
    );
    assert_eq!(t.scope, None);
}

#[test]
fn token_response_classification_table() {
    use TokenOutcome::{Refused, Unavailable as U};
    let cases: Vec<(Option<u32>, &str, TokenOutcome)> = vec![
        (None, "", U(Unavailable::NoResponse)),
        (Some(500), "{}", U(Unavailable::ServerError)),
        (Some(503), "", U(Unavailable::ServerError)),
        (Some(429), "", U(Unavailable::ServerError)),
        (Some(302), "", U(Unavailable::UnexpectedStatus)),
        (Some(404), "", U(Unavailable::UnexpectedStatus)),
        (
            Some(401),
            r#"{"error":"invalid_client"}"#,
            U(Unavailable::ClientRejected),
        ),
        (
            Some(401),
            r#"{"error":"invalid_grant"}"#,
            U(Unavailable::ClientRejected),
        ),
        (Some(403), "", U(Unavailable::ClientRejected)),
        (
            Some(400),
            r#"{"error":"invalid_grant"}"#,
            Refused(Refusal::InvalidGrant),
        ),
        (
            Some(400),
            r#"{"error":"invalid_request","error_description":"x"}"#,
            Refused(Refusal::InvalidRequest),
        ),
        (
            Some(400),
            r#"{"error":"invalid_target"}"#,
            Refused(Refusal::InvalidTarget),
        ),
        (
            Some(400),
            r#"{"error":"invalid_scope"}"#,
            Refused(Refusal::InvalidScope),
        ),
        (
            Some(400),
            r#"{"error":"invalid_client"}"#,
            U(Unavailable::ClientRejected),
        ),
        (
            Some(400),
            r#"{"error":"unauthorized_client"}"#,
            U(Unavailable::ClientRejected),
        ),
        (
            Some(400),
            r#"{"error":"unsupported_grant_type"}"#,
            U(Unavailable::ClientRejected),
        ),
        (
            Some(400),
            r#"{"error":"something_new"}"#,
            U(Unavailable::UnexpectedStatus),
        ),
        (
            Some(400),
            r#"{"error":7}"#,
            U(Unavailable::UnexpectedStatus),
        ),
        (Some(400), "invalid_grant", U(Unavailable::UnexpectedStatus)),
        (
            Some(400),
            r#"{"error":"invalid_grant","error":"invalid_client"}"#,
            U(Unavailable::UnexpectedStatus),
        ),
        (Some(200), "", U(Unavailable::NotJson)),
        (Some(200), "<html>", U(Unavailable::NotJson)),
        (Some(200), "[]", U(Unavailable::NotJson)),
        (
            Some(200),
            r#"{"access_token":"a","access_token":"b","token_type":"Bearer"}"#,
            U(Unavailable::NotJson),
        ),
        (
            Some(200),
            r#"{"token_type":"Bearer"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"","token_type":"Bearer"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":7,"token_type":"Bearer"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a b","token_type":"Bearer"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a\r\nx-admin: 1","token_type":"Bearer"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a","token_type":"Bearer","expires_in":-1}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a","token_type":"Bearer","expires_in":1.5}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a","token_type":"Bearer","scope":["x"]}"#,
            U(Unavailable::BadResponse),
        ),
        (
            Some(200),
            r#"{"access_token":"a","token_type":"Bearer","issued_token_type":null}"#,
            U(Unavailable::BadResponse),
        ),
    ];
    for (status, body, want) in cases {
        assert_eq!(
            read_token_response(status, body.as_bytes()),
            want,
            "{status:?} {body}"
        );
    }
}

#[test]
fn token_response_bounds() {
    let big = format!(
        r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
        "a".repeat(MAX_ISSUED_TOKEN_BYTES + 1)
    );
    assert_eq!(
        read_token_response(Some(200), big.as_bytes()),
        TokenOutcome::Unavailable(Unavailable::BadResponse)
    );
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_RESPONSE_BYTES));
    assert_eq!(
        read_token_response(Some(200), huge.as_bytes()),
        TokenOutcome::Unavailable(Unavailable::TooLarge)
    );
}

#[test]
fn status_classes() {
    assert_eq!(check_status(200), Ok(()));
    for (status, want) in [
        (201, Unavailable::UnexpectedStatus),
        (204, Unavailable::UnexpectedStatus),
        (304, Unavailable::UnexpectedStatus),
        (401, Unavailable::ClientRejected),
        (403, Unavailable::ClientRejected),
        (404, Unavailable::UnexpectedStatus),
        (429, Unavailable::ServerError),
        (502, Unavailable::ServerError),
        (599, Unavailable::ServerError),
        (600, Unavailable::UnexpectedStatus),
    ] {
        assert_eq!(check_status(status), Err(want), "{status}");
    }
}

#[test]
fn b64token_table() {
    for (s, ok) in [
        ("abc", true),
        ("mF_9.B5f-4.1JqM", true),
        ("a+/~==", true),
        ("==", false),
        ("", false),
        ("a=b", false),
        ("a b", false),
        ("a,b", false),
        ("é", false),
    ] {
        assert_eq!(is_b64token(s), ok, "{s:?}");
    }
}

#[test]
fn auth_method_names_round_trip() {
    for m in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        assert_eq!(AuthMethod::from_name(m.name()), Some(m));
    }
    assert_eq!(AuthMethod::from_name("private_key_jwt"), None);
    assert_eq!(AuthMethod::default(), AuthMethod::ClientSecretBasic);
}

#[test]
fn client_credentials_are_vschar() {
    assert!(is_vschar(" ~azAZ09:%+&=\"\\"));
    assert!(is_vschar(""));
    for bad in ["é", "\t", "\n", "\u{7f}"] {
        assert!(!is_vschar(bad), "{bad:?}");
    }
}
