//! Token exchange, natively: each rule of issue 16 as the request sees it (what is sent to the
//! authorization server, what the upstream gets, what the client gets), with answers as an
//! authorization server sends them.

use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::mint;
use crate::signature::PureRust;

const NOW_S: i64 = 1_800_000_000;
const NOW: Millis = NOW_S as u64 * 1000;
const USER_TOKEN: &str = "user.token.text";

fn provider(audiences: &[&str]) -> Value {
    json!({ "issuer": "https://idp.example.com", "audiences": audiences,
            "local_jwks": { "inline_string": mint::JWKS } })
}

/// `to-orders` as the issue writes it; `extra` overrides its members.
fn config(extra: Value) -> Config {
    let mut ex = json!({
        "http_uri": { "uri": "https://idp.example.com/token",
                      "cluster": "outbound|443||idp.example.com", "timeout": "2s" },
        "client_id": "gateway",
        "client_secret": { "inline_string": "gateway-secret" }, "allow_inline_secret": true,
        "audience": "orders",
        "scope": "orders:read",
        "refresh_before": "30s",
        "max_cache_entries": 2
    });
    for (k, v) in extra.as_object().unwrap() {
        ex[k] = v.clone();
    }
    let cfg = json!({
        "providers": { "idp": provider(&["gateway"]), "internal": provider(&["orders"]) },
        "token_exchanges": { "to-orders": ex },
        "rules": [ { "match": { "prefix": "/orders" }, "requires": { "provider_name": "idp" },
                     "token_exchange": "to-orders" } ]
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

fn header_location() -> Location {
    Location::Header {
        name: "authorization".into(),
        value_prefix: "Bearer ".into(),
    }
}

fn subject<'a>(token: &'a str, location: &'a Location, exp: Option<i64>) -> Subject<'a, 'a> {
    Subject {
        token: Cow::Borrowed(token),
        location,
        exp,
    }
}

/// The form parameters of a callout body, decoded.
fn form(request: &CalloutRequest) -> Vec<(String, String)> {
    let text = std::str::from_utf8(&request.body).unwrap();
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    text.split('&')
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap();
            (decode(n), decode(v))
        })
        .collect()
}

fn param(request: &CalloutRequest, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn issued(token: &str, expires_in: Option<u64>) -> Vec<u8> {
    let mut body = json!({ "access_token": token, "token_type": "Bearer",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token" });
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    body.to_string().into_bytes()
}

fn refused(error: &str) -> Vec<u8> {
    json!({ "error": error, "error_description": "subject token is invalid" })
        .to_string()
        .into_bytes()
}

/// `begin`, expecting a callout.
fn callout(step: Step) -> (Pending, CalloutRequest) {
    match step {
        Step::Callout {
            pending, request, ..
        } => (pending, request),
        other => panic!("expected a callout, got {other:?}"),
    }
}

fn finish(
    state: &mut Exchanges,
    cfg: &Config,
    pending: Pending,
    status: Option<u32>,
    body: &[u8],
    now: Millis,
) -> Finished {
    state.finish(cfg, pending, status, body, None, cfg, &PureRust, now)
}

fn used(then: &Then) -> &str {
    match then {
        Then::Use(e) => e.token.expose(),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn the_exchange_request_says_what_rfc_8693_says() {
    let cfg = config(json!({ "resource": "https://orders.example.com/",
        "requested_token_type": "urn:ietf:params:oauth:token-type:jwt" }));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let step = state.begin(&cfg, 0, &subject(USER_TOKEN, &loc, None), 1, NOW);
    let Step::Callout {
        pending,
        cluster,
        timeout,
        request,
    } = step
    else {
        panic!("expected a callout, got {step:?}");
    };
    assert!(matches!(pending, Pending::Exchange(0, _)));
    assert_eq!(cluster, "outbound|443||idp.example.com");
    assert_eq!(timeout, Duration::from_secs(2));
    assert_eq!(request.header(":method"), Some("POST"));
    assert_eq!(request.header(":path"), Some("/token"));
    assert_eq!(request.header(":authority"), Some("idp.example.com"));
    assert!(request
        .header("authorization")
        .unwrap()
        .starts_with("Basic "));
    let sent = form(&request);
    let want: Vec<(String, String)> = [
        ("grant_type", oauth::EXCHANGE_GRANT),
        ("resource", "https://orders.example.com/"),
        ("audience", "orders"),
        ("scope", "orders:read"),
        ("requested_token_type", oauth::token_type::JWT),
        ("subject_token", USER_TOKEN),
        ("subject_token_type", oauth::token_type::ACCESS_TOKEN),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(sent, want);
    // Neither the subject token nor the secret reaches a `{:?}`.
    let shown = format!("{request:?} {:?}", subject(USER_TOKEN, &loc, None));
    assert!(
        !shown.contains(USER_TOKEN) && !shown.contains("gateway-secret"),
        "{shown}"
    );
    // An ID token as the subject, if configured so.
    let cfg = config(json!({ "subject_token_type": "id_token" }));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let (_, request) = callout(state.begin(&cfg, 0, &subject(USER_TOKEN, &loc, None), 1, NOW));
    assert_eq!(
        param(&request, "subject_token_type").as_deref(),
        Some(oauth::token_type::ID_TOKEN)
    );
}

#[test]
fn the_cache_key_is_a_keyed_hash_of_name_and_token() {
    let keyer = TokenKeyer::new(&[1; 32]);
    let a = cache_key(&keyer, "to-orders", USER_TOKEN);
    assert_eq!(a, cache_key(&keyer, "to-orders", USER_TOKEN));
    assert_ne!(a, cache_key(&keyer, "to-billing", USER_TOKEN));
    assert_ne!(a, cache_key(&keyer, "to-orders", "another.token.text"));
    // The name is length-prefixed: ("ab", "c...") is not ("a", "bc...").
    assert_ne!(cache_key(&keyer, "ab", "c"), cache_key(&keyer, "a", "bc"));
    // Another VM's key gives other keys.
    assert_ne!(
        a,
        cache_key(&TokenKeyer::new(&[2; 32]), "to-orders", USER_TOKEN)
    );
    assert_eq!(format!("{a:?}"), "ExchangeKey(..)");
}

#[test]
fn lifetime_is_the_shorter_of_the_issued_and_the_subject_token() {
    let s = |secs: u64| NOW + secs * 1000;
    let rb = Duration::from_secs(30);
    let life = |e, subject, issued| lifetime(e, rb, subject, issued, NOW).map(|l| l.fresh_until);
    let cases: [(Option<u64>, Option<i64>, Option<i64>, Option<Millis>); 8] = [
        // expires_in − refresh_before
        (Some(300), None, None, Some(s(270))),
        // the subject expires first
        (Some(300), Some(NOW_S + 100), None, Some(s(100))),
        (Some(300), Some(NOW_S + 1000), None, Some(s(270))),
        // no expires_in, no verified exp: not kept
        (None, Some(NOW_S + 100), None, None),
        // no expires_in: the verified issued exp, less refresh_before
        (None, None, Some(NOW_S + 130), Some(s(100))),
        (None, Some(NOW_S + 50), Some(NOW_S + 130), Some(s(50))),
        // already over: not kept
        (Some(30), None, None, None),
        (Some(300), Some(NOW_S - 1), None, None),
    ];
    for (e, subject, issued, want) in cases {
        assert_eq!(
            life(e, subject, issued),
            want,
            "{e:?} {subject:?} {issued:?}"
        );
    }
    let l = lifetime(Some(300), rb, None, None, NOW).unwrap();
    assert_eq!(l.stale_until, l.fresh_until, "never served stale");
}

#[test]
fn one_exchange_per_subject_token_and_the_next_requests_hit_the_cache() {
    let cfg = config(json!({}));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, Some(NOW_S + 3600));
    let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
    // A second request with the same token joins the exchange in flight.
    assert!(matches!(state.begin(&cfg, 0, &user, 2, NOW), Step::Wait));
    let done = finish(
        &mut state,
        &cfg,
        pending,
        Some(200),
        &issued("issued-1", Some(300)),
        NOW,
    );
    assert_eq!(done.waiters, vec![1, 2]);
    assert_eq!(used(&done.then), "issued-1");
    // A third request: from the cache, no callout.
    match state.begin(&cfg, 0, &user, 3, NOW + 1000) {
        Step::Ready(e) => assert_eq!(e.token.expose(), "issued-1"),
        other => panic!("expected a cache hit, got {other:?}"),
    }
    // Another user's token is exchanged on its own.
    let other = subject("other.user.token", &loc, None);
    callout(state.begin(&cfg, 0, &other, 4, NOW));
    // Past expires_in − refresh_before (270 s), the token is exchanged again.
    callout(state.begin(&cfg, 0, &user, 5, NOW + 270_000));
}

#[test]
fn an_issued_token_never_outlives_the_subject_token() {
    let cfg = config(json!({}));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, Some(NOW_S + 10));
    let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
    let done = state.finish(
        &cfg,
        pending,
        Some(200),
        &issued("issued-1", Some(300)),
        user.exp,
        &cfg,
        &PureRust,
        NOW,
    );
    assert_eq!(used(&done.then), "issued-1");
    assert!(matches!(
        state.begin(&cfg, 0, &user, 2, NOW + 9_000),
        Step::Ready(_)
    ));
    callout(state.begin(&cfg, 0, &user, 3, NOW + 10_000));
}

#[test]
fn an_answer_without_a_lifetime_serves_its_waiters_and_is_not_kept() {
    let cfg = config(json!({}));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
    assert!(matches!(state.begin(&cfg, 0, &user, 2, NOW), Step::Wait));
    let done = finish(
        &mut state,
        &cfg,
        pending,
        Some(200),
        &issued("issued-1", None),
        NOW,
    );
    assert_eq!((done.waiters, used(&done.then)), (vec![1, 2], "issued-1"));
    callout(state.begin(&cfg, 0, &user, 3, NOW));
}

#[test]
fn the_cache_is_bounded() {
    // max_cache_entries: 2
    let cfg = config(json!({}));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    for (i, token) in ["a.a.a", "b.b.b", "c.c.c"].iter().enumerate() {
        let stream = u32::try_from(i).unwrap();
        let (pending, _) = callout(state.begin(&cfg, 0, &subject(token, &loc, None), stream, NOW));
        finish(
            &mut state,
            &cfg,
            pending,
            Some(200),
            &issued("t", Some(300)),
            NOW,
        );
        assert!(state.cached(0) <= 2);
    }
    // The oldest went first.
    callout(state.begin(&cfg, 0, &subject("a.a.a", &loc, None), 9, NOW));
    // Two exchanges in flight fill the table: a third request cannot be served.
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    callout(state.begin(&cfg, 0, &subject("a.a.a", &loc, None), 1, NOW));
    callout(state.begin(&cfg, 0, &subject("b.b.b", &loc, None), 2, NOW));
    match state.begin(&cfg, 0, &subject("c.c.c", &loc, None), 3, NOW) {
        Step::Fail(f) => assert_eq!(
            (f.class(), f.reason()),
            ("exchange_unavailable", "cache_full")
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_refused_subject_token_is_a_401_and_an_unreachable_server_a_503() {
    let cfg = config(json!({}));
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    let realm = "https://api.example.com/orders";
    // (status, body) → (class, stat reason, HTTP status)
    let cases: Vec<(Option<u32>, Vec<u8>, &str, &str, u32)> = vec![
        (
            Some(400),
            refused("invalid_grant"),
            "exchange_refused",
            "refused",
            401,
        ),
        (
            Some(400),
            refused("invalid_request"),
            "exchange_refused",
            "refused",
            401,
        ),
        (
            Some(400),
            refused("invalid_target"),
            "exchange_refused",
            "refused",
            401,
        ),
        (None, Vec::new(), "exchange_unavailable", "no_response", 503),
        (
            Some(503),
            b"upstream connect error".to_vec(),
            "exchange_unavailable",
            "server_error",
            503,
        ),
        (
            Some(400),
            refused("invalid_client"),
            "exchange_unavailable",
            "client_rejected",
            503,
        ),
        (
            Some(401),
            Vec::new(),
            "exchange_unavailable",
            "client_rejected",
            503,
        ),
        (
            Some(200),
            b"<html>ok</html>".to_vec(),
            "exchange_unavailable",
            "not_json",
            503,
        ),
        (
            Some(200),
            br#"{"token_type":"Bearer"}"#.to_vec(),
            "exchange_unavailable",
            "bad_response",
            503,
        ),
        (
            Some(200),
            issued("a token\r\nx-admin: 1", Some(60)),
            "exchange_unavailable",
            "bad_response",
            503,
        ),
        (Some(302), Vec::new(), "exchange_unavailable", "status", 503),
        // Not a bearer token: cannot be forwarded as one.
        (
            Some(200),
            json!({ "access_token": "id.token.x", "token_type": "N_A", "expires_in": 60 })
                .to_string()
                .into_bytes(),
            "exchange_unavailable",
            "bad_response",
            503,
        ),
        (
            Some(200),
            json!({ "access_token": "a.b.c", "token_type": "DPoP", "expires_in": 60 })
                .to_string()
                .into_bytes(),
            "exchange_unavailable",
            "bad_response",
            503,
        ),
    ];
    for (status, body, class, reason, http) in cases {
        let mut state = Exchanges::new(&cfg, &[7; 32]);
        let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
        assert!(matches!(state.begin(&cfg, 0, &user, 2, NOW), Step::Wait));
        let done = finish(&mut state, &cfg, pending, status, &body, NOW);
        assert_eq!(
            done.waiters,
            vec![1, 2],
            "{status:?}: every waiter gets the failure"
        );
        let Then::Fail(failure) = done.then else {
            panic!("{status:?}: expected a failure, got {:?}", done.then);
        };
        assert_eq!(
            (failure.class(), failure.reason()),
            (class, reason),
            "{status:?}"
        );
        assert!(FAILED_REASONS.contains(&failure.reason()));
        let denial = failure.denial(realm, false, cfg.failure_policy.exchange_unavailable);
        assert_eq!(denial.status, http, "{status:?} {reason}");
        if http == 401 {
            assert_eq!(
                denial.www_authenticate.as_deref(),
                Some("Bearer realm=\"https://api.example.com/orders\", error=\"invalid_token\"")
            );
            assert_eq!(denial.body, REFUSED_BODY);
        } else {
            assert_eq!(
                (denial.www_authenticate, denial.body),
                (None, UNAVAILABLE_BODY)
            );
        }
        // Errors are never kept: the next request asks again.
        callout(state.begin(&cfg, 0, &user, 3, NOW));
    }
}

#[test]
fn failure_policy_and_strip_shape_the_denial() {
    let unavailable = Failure::Unavailable(Cause::Server(Unavailable::ServerError));
    let d = unavailable.denial("r", false, OnFailure::Deny401);
    assert_eq!(d.status, 401);
    assert!(d.www_authenticate.unwrap().contains("invalid_token"));
    // `allow` is refused at load; should one get here, it is still a denial.
    assert_eq!(unavailable.denial("r", false, OnFailure::Allow).status, 503);
    let stripped = Failure::Refused(Refusal::InvalidGrant).denial("r", true, OnFailure::Deny503);
    assert_eq!(
        (stripped.status, stripped.www_authenticate, stripped.body),
        (401, None, "")
    );
    // The realm is client bytes: quoted safely.
    let d = Failure::Refused(Refusal::InvalidGrant).denial("a\"b\r\n", false, OnFailure::Deny503);
    assert_eq!(
        d.www_authenticate.as_deref(),
        Some("Bearer realm=\"a\\\"b\", error=\"invalid_token\"")
    );
}

#[test]
fn the_actor_token_comes_first_once_and_is_sent_as_actor_token() {
    let cfg = config(json!({ "actor": "client_credentials" }));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    let (pending, request) = callout(state.begin(&cfg, 0, &user, 1, NOW));
    assert_eq!(pending, Pending::Actor(0));
    assert_eq!(
        form(&request),
        vec![("grant_type".to_owned(), "client_credentials".to_owned())]
    );
    assert!(request
        .header("authorization")
        .unwrap()
        .starts_with("Basic "));
    // Another request waits for the same actor token.
    let other = subject("other.user.token", &loc, None);
    assert!(matches!(state.begin(&cfg, 0, &other, 2, NOW), Step::Wait));
    let done = finish(
        &mut state,
        &cfg,
        pending,
        Some(200),
        &issued("actor-1", Some(3600)),
        NOW,
    );
    assert_eq!(done.waiters, vec![1, 2]);
    assert!(matches!(done.then, Then::Again));
    // Both go on to their own exchange, with the actor token.
    for (stream, s) in [(1, &user), (2, &other)] {
        let (pending, request) = callout(state.begin(&cfg, 0, s, stream, NOW));
        assert!(matches!(pending, Pending::Exchange(0, _)));
        assert_eq!(param(&request, "actor_token").as_deref(), Some("actor-1"));
        assert_eq!(
            param(&request, "actor_token_type").as_deref(),
            Some(oauth::token_type::ACCESS_TOKEN)
        );
        finish(
            &mut state,
            &cfg,
            pending,
            Some(200),
            &issued("t", Some(30)),
            NOW,
        );
    }
    // Kept until refresh_before its expiry (3600 − 30 s), then fetched again.
    let third = subject("third.user.token", &loc, None);
    let (pending, _) = callout(state.begin(&cfg, 0, &third, 3, NOW + 3_569_000));
    assert!(matches!(pending, Pending::Exchange(..)));
    let (pending, _) = callout(state.begin(&cfg, 0, &third, 4, NOW + 3_570_000));
    assert_eq!(pending, Pending::Actor(0));
}

#[test]
fn an_actor_token_not_had_is_unavailable_for_every_waiter() {
    let cfg = config(json!({ "actor": "client_credentials" }));
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    for (status, body) in [
        (Some(400), refused("invalid_grant")),
        (Some(400), refused("invalid_client")),
        (Some(500), Vec::new()),
        (Some(200), issued("actor", Some(10))), // expires within refresh_before
    ] {
        let mut state = Exchanges::new(&cfg, &[7; 32]);
        let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
        let done = finish(&mut state, &cfg, pending, status, &body, NOW);
        assert_eq!(done.waiters, vec![1]);
        let Then::Fail(f) = done.then else {
            panic!("{status:?}: expected a failure");
        };
        assert_eq!(
            (f.class(), f.reason()),
            ("exchange_unavailable", "actor"),
            "{status:?}"
        );
        assert_eq!(f.denial("r", false, OnFailure::Deny503).status, 503);
        // Not kept: the next request asks for the actor token again.
        assert_eq!(
            callout(state.begin(&cfg, 0, &user, 2, NOW)).0,
            Pending::Actor(0)
        );
    }
}

#[test]
fn verify_with_checks_the_issued_token_before_it_is_used() {
    let cfg = config(json!({ "verify_with": "internal" }));
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    let good = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "orders", "sub": "alice",
                 "act": { "sub": "gateway" }, "exp": NOW_S + 130 }),
    );
    let wrong_aud = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "gateway", "exp": NOW_S + 130 }),
    );
    let expired = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "orders", "exp": NOW_S - 3600 }),
    );
    let cases = [
        (good.clone(), None),
        (wrong_aud, Some(AuthError::AudienceNotAllowed)),
        (expired, Some(AuthError::Expired)),
        (mint::tampered(&good), Some(AuthError::SignatureInvalid)),
        ("opaque-token".to_owned(), Some(AuthError::BadFormat)),
    ];
    for (token, want) in cases {
        let mut state = Exchanges::new(&cfg, &[7; 32]);
        let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
        // No expires_in: a verified token lives until its own exp − refresh_before (100 s).
        let done = finish(
            &mut state,
            &cfg,
            pending,
            Some(200),
            &issued(&token, None),
            NOW,
        );
        match (want, done.then) {
            (None, Then::Use(e)) => {
                assert_eq!(e.token.expose(), token);
                assert!(matches!(
                    state.begin(&cfg, 0, &user, 2, NOW + 99_000),
                    Step::Ready(_)
                ));
                callout(state.begin(&cfg, 0, &user, 3, NOW + 100_000));
            }
            (Some(e), Then::Fail(f)) => {
                assert_eq!(f, Failure::Unavailable(Cause::NotVerified(e)));
                assert_eq!(
                    (f.class(), f.reason()),
                    ("exchange_unavailable", "not_verified")
                );
            }
            (want, then) => panic!("{want:?}: got {then:?}"),
        }
    }
}

#[test]
fn verify_with_a_provider_without_keys_is_unavailable() {
    struct NoKeys;
    impl KeyStore for NoKeys {
        fn keys(&self, _: crate::config::ProviderId) -> Availability<'_> {
            Availability::Pending
        }
    }
    let cfg = config(json!({ "verify_with": "internal" }));
    let loc = header_location();
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let (pending, _) = callout(state.begin(&cfg, 0, &subject(USER_TOKEN, &loc, None), 1, NOW));
    let token = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "orders" }),
    );
    let done = state.finish(
        &cfg,
        pending,
        Some(200),
        &issued(&token, Some(60)),
        None,
        &NoKeys,
        &PureRust,
        NOW,
    );
    assert!(matches!(
        done.then,
        Then::Fail(Failure::Unavailable(Cause::NotVerified(
            AuthError::KeysUnavailable
        )))
    ));
}

#[test]
fn the_upstream_gets_the_issued_token_and_never_the_original() {
    let cfg = config(json!({}));
    let ex = &cfg.token_exchanges[0];
    let issued = Exchanged {
        token: Secret::new("issued-1"),
    };
    let headers = crate::request::RequestHeaders::new(vec![
        (
            ":path".into(),
            b"/orders?access_token=user.token.text&x=1".to_vec(),
        ),
        ("authorization".into(), b"Bearer user.token.text".to_vec()),
        (
            "cookie".into(),
            b"a=1; session=user.token.text; b=2".to_vec(),
        ),
    ]);
    // In a header (the provider's `forward` does not matter: the exchange removes it).
    let loc = header_location();
    let mut ops = Vec::new();
    header_ops(ex, &loc, &headers, &issued, &mut ops);
    assert_eq!(
        ops,
        vec![
            HeaderOp::Remove("authorization"),
            HeaderOp::Set("authorization", "Bearer issued-1".into())
        ]
    );
    // In the query.
    let loc = Location::Param("access_token".into());
    let mut ops = Vec::new();
    header_ops(ex, &loc, &headers, &issued, &mut ops);
    assert_eq!(
        ops,
        vec![
            HeaderOp::Set(":path", "/orders?x=1".into()),
            HeaderOp::Set("authorization", "Bearer issued-1".into())
        ]
    );
    // In a cookie: the other cookies stay.
    let loc = Location::Cookie("session".into());
    let mut ops = Vec::new();
    header_ops(ex, &loc, &headers, &issued, &mut ops);
    assert_eq!(ops[0], HeaderOp::Set("cookie", "a=1; b=2".into()));
    // A configured forward_header, after the engine's own operations.
    let cfg = config(json!({ "forward_header": { "name": "X-Orders-Token", "value_prefix": "" } }));
    let loc = header_location();
    let mut ops = vec![HeaderOp::Set("x-user", "alice".into())];
    header_ops(&cfg.token_exchanges[0], &loc, &headers, &issued, &mut ops);
    assert_eq!(
        ops,
        vec![
            HeaderOp::Set("x-user", "alice".into()),
            HeaderOp::Remove("authorization"),
            HeaderOp::Set("x-orders-token", "issued-1".into())
        ]
    );
}

#[test]
fn a_cookie_header_that_is_not_text_goes_whole() {
    let cfg = config(json!({}));
    let headers = crate::request::RequestHeaders::new(vec![(
        "cookie".into(),
        b"session=user.token.text; n=\xff".to_vec(),
    )]);
    let loc = Location::Cookie("session".into());
    let mut ops = Vec::new();
    let issued = Exchanged {
        token: Secret::new("issued-1"),
    };
    header_ops(&cfg.token_exchanges[0], &loc, &headers, &issued, &mut ops);
    assert_eq!(ops[0], HeaderOp::Remove("cookie"));
}

#[test]
fn a_stream_gone_is_not_resumed() {
    let cfg = config(json!({}));
    let mut state = Exchanges::new(&cfg, &[7; 32]);
    let loc = header_location();
    let user = subject(USER_TOKEN, &loc, None);
    let (pending, _) = callout(state.begin(&cfg, 0, &user, 1, NOW));
    assert!(matches!(state.begin(&cfg, 0, &user, 2, NOW), Step::Wait));
    state.forget(2);
    let done = finish(
        &mut state,
        &cfg,
        pending,
        Some(200),
        &issued("t", Some(60)),
        NOW,
    );
    assert_eq!(done.waiters, vec![1]);
}

#[test]
fn stat_names() {
    assert_eq!(
        stat_success("to-orders"),
        "jwt_authn_wasm.to-orders.exchange_success"
    );
    assert_eq!(
        stat_failed("to-orders", "refused"),
        "jwt_authn_wasm.to-orders.exchange_failed.refused"
    );
    assert_eq!(
        stat_cache_hit("to-orders"),
        "jwt_authn_wasm.to-orders.exchange_cache_hit"
    );
}

/// The gateway of the issue, natively: the engine verifies the user's token (audience
/// `gateway`, `forward: true`), the exchange replaces it; the claim header is still the user's.
#[test]
fn through_the_engine_the_upstream_gets_the_exchanged_token_and_the_users_identity() {
    let cfg = json!({
        "providers": {
            "idp": { "issuer": "https://idp.example.com", "audiences": ["gateway"], "forward": true,
                     "local_jwks": { "inline_string": mint::JWKS },
                     "claim_to_headers": [ { "header_name": "x-user", "claim_name": "sub" } ] },
            "internal": provider(&["orders"])
        },
        "token_exchanges": { "to-orders": {
            "http_uri": { "uri": "https://idp.example.com/token", "cluster": "idp", "timeout": "2s" },
            "client_id": "gateway", "client_secret": { "inline_string": "gateway-secret" }, "allow_inline_secret": true,
            "audience": "orders", "verify_with": "internal" } },
        "rules": [
            { "match": { "prefix": "/orders" }, "requires": { "provider_name": "idp" },
              "token_exchange": "to-orders" },
            { "match": { "prefix": "/public" }, "requires": { "allow_missing": {} },
              "token_exchange": "to-orders" },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }
        ]
    });
    let cfg = Config::from_json(cfg.to_string().as_bytes()).unwrap();
    let user = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "gateway", "sub": "alice",
                 "exp": NOW_S + 600 }),
    );
    let request = |path: &str, token: Option<&str>| {
        let mut pairs = vec![
            (":method".to_owned(), b"GET".to_vec()),
            (":path".to_owned(), path.as_bytes().to_vec()),
            (":authority".to_owned(), b"api.example.com".to_vec()),
        ];
        if let Some(t) = token {
            pairs.push((
                "authorization".to_owned(),
                format!("Bearer {t}").into_bytes(),
            ));
        }
        crate::request::RequestHeaders::new(pairs)
    };
    let headers = request("/orders/1", Some(&user));
    let decision = crate::engine::decide(&cfg, &cfg, &headers, NOW_S);
    let crate::engine::Decision::Allow { mut ops, verdict } = decision else {
        panic!("expected the user's token to verify, got {decision:?}");
    };
    let (id, subject) = subject_for(&cfg, &verdict, &headers).expect("an exchange route");
    assert_eq!(
        (id, subject.token.as_ref(), subject.exp),
        (0, user.as_str(), Some(NOW_S + 600))
    );

    let mut state = Exchanges::new(&cfg, &[9; 32]);
    let (pending, request_sent) = callout(state.begin(&cfg, id, &subject, 1, NOW));
    assert_eq!(
        param(&request_sent, "subject_token").as_deref(),
        Some(user.as_str())
    );
    let issued_token = mint::token(
        "RS256",
        &json!({ "iss": "https://idp.example.com", "aud": "orders", "sub": "alice",
                 "act": { "sub": "gateway" }, "exp": NOW_S + 300 }),
    );
    let done = state.finish(
        &cfg,
        pending,
        Some(200),
        &issued(&issued_token, Some(300)),
        subject.exp,
        &cfg,
        &PureRust,
        NOW,
    );
    let Then::Use(exchanged) = done.then else {
        panic!("expected the issued token, got {:?}", done.then);
    };
    header_ops(
        &cfg.token_exchanges[id],
        subject.location,
        &headers,
        &exchanged,
        &mut ops,
    );
    // What the upstream gets: the last word on `authorization` is the issued token.
    let mut upstream: Vec<(String, String)> =
        vec![("authorization".into(), format!("Bearer {user}"))];
    for op in &ops {
        match op {
            HeaderOp::Remove(name) => upstream.retain(|(n, _)| n != name),
            HeaderOp::Set(name, value) => {
                upstream.retain(|(n, _)| n != name);
                upstream.push(((*name).to_owned(), value.clone()));
            }
            HeaderOp::FilterState(..) => {}
        }
    }
    assert!(upstream.contains(&("authorization".into(), format!("Bearer {issued_token}"))));
    assert!(upstream.contains(&("x-user".into(), "alice".into())));
    assert!(
        !upstream.iter().any(|(_, v)| v.contains(&user)),
        "the original token leaked"
    );

    // No exchange on a route without one, and none without a token to exchange.
    let plain = request("/other", Some(&user));
    let crate::engine::Decision::Allow { verdict, .. } =
        crate::engine::decide(&cfg, &cfg, &plain, NOW_S)
    else {
        panic!("expected allow");
    };
    assert!(subject_for(&cfg, &verdict, &plain).is_none());
    let anonymous = request("/public", None);
    let crate::engine::Decision::Allow { verdict, .. } =
        crate::engine::decide(&cfg, &cfg, &anonymous, NOW_S)
    else {
        panic!("expected allow");
    };
    assert!(subject_for(&cfg, &verdict, &anonymous).is_none());
    // A requirement that failed (let through by a policy) exchanges nothing.
    let failed = crate::engine::Verdict {
        failure: Some(AuthError::Expired),
        provider: Some(0),
    };
    assert!(subject_for(&cfg, &failed, &headers).is_none());
}
