//! Token exchange (issue 16) against a real authorization server (oidc-provider with RFC 8693,
//! `common::authserver`), without Envoy: the engine decides the user's request, the exchange
//! core (`exchange`) makes the callouts, the bytes go over a plain socket as
//! `dispatch_http_call` would send them, and the answers go back into the core. What the
//! upstream would get is read off the header operations; a second filter (the orders service)
//! decides on what it would receive. The server counts the requests it got.

// Tests fail by panicking.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::json;

use common::authserver::{jwt_part, AuthServer, Config as ServerConfig, Fault, USER_ISSUER};
use common::http::Request;
use common::{mint, now};
use jwt_authn_wasm::config::{Config, Location};
use jwt_authn_wasm::engine::{decide, Decision};
use jwt_authn_wasm::exchange::{
    header_ops, subject_for, Cause, Exchanged, Exchanges, Failure, Step, Subject, Then,
};
use jwt_authn_wasm::oauth::{CalloutRequest, Unavailable, EXCHANGE_GRANT};
use jwt_authn_wasm::propagate::HeaderOp;
use jwt_authn_wasm::request::RequestHeaders;
use jwt_authn_wasm::signature::PureRust;

fn server() -> &'static AuthServer {
    static SERVER: OnceLock<Result<AuthServer, String>> = OnceLock::new();
    match SERVER.get_or_init(|| AuthServer::try_start(&ServerConfig::standard())) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The gateway: users' tokens (`aud: web`) on `/orders`, exchanged with `to-orders` for the
/// orders service, the issued token checked by `internal` (the server's own keys).
fn gateway(s: &AuthServer) -> Config {
    let cfg = json!({
        "providers": {
            "users": { "issuer": USER_ISSUER, "audiences": ["web"],
                       "local_jwks": { "inline_string": mint::JWKS },
                       "claim_to_headers": [ { "header_name": "x-user", "claim_name": "sub" } ] },
            "internal": { "issuer": s.issuer(), "audiences": ["orders"],
                          "local_jwks": { "inline_string": s.jwks() } }
        },
        "token_exchanges": { "to-orders": {
            "http_uri": { "uri": format!("http://127.0.0.1:{}/token", s.port()),
                          "cluster": "authserver", "timeout": "5s" },
            "client_id": "gateway",
            "client_secret": { "inline_string": "gateway-secret" }, "allow_inline_secret": true,
            "audience": "orders",
            "scope": "orders:read",
            "actor": "client_credentials",
            "verify_with": "internal"
        } },
        "rules": [ { "match": { "prefix": "/orders" }, "requires": { "provider_name": "users" },
                     "token_exchange": "to-orders" } ]
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

/// The orders service behind the gateway: it accepts tokens for `orders` only, from the server
/// and (to show the audience check) from the users' issuer.
fn orders_service(s: &AuthServer) -> Config {
    let cfg = json!({
        "providers": {
            "internal": { "issuer": s.issuer(), "audiences": ["orders"],
                          "local_jwks": { "inline_string": s.jwks() } },
            "users": { "issuer": USER_ISSUER, "audiences": ["orders"],
                       "local_jwks": { "inline_string": mint::JWKS } }
        },
        "rules": [ { "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "internal" }, { "provider_name": "users" } ] } } } ]
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

fn user_token(iss: &str, sub: &str) -> String {
    mint::token(
        "RS256",
        &json!({ "iss": iss, "sub": sub, "aud": "web", "scope": "orders:read orders:write",
                 "iat": now(), "exp": now() + 600 }),
    )
}

fn request(path: &str, token: &str) -> RequestHeaders {
    RequestHeaders::new(vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.example.com".to_vec()),
        (
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        ),
    ])
}

/// Sends a callout as the host would: (status, body), or no status when the connection gave
/// no answer.
fn send(s: &AuthServer, req: &CalloutRequest) -> (Option<u32>, Vec<u8>) {
    let mut wire = Request::new(req.header(":method").unwrap(), req.header(":path").unwrap())
        .host(req.header(":authority").unwrap());
    for (name, value) in &req.headers {
        if !name.starts_with(':') {
            wire = wire.header(name, value);
        }
    }
    let resp = wire.body(&req.body).send(s.port());
    (Some(u32::from(resp.status)), resp.body)
}

/// Runs one stream's exchange to its end as the instance core would, counting the callouts.
fn exchange(
    s: &AuthServer,
    cfg: &Config,
    state: &mut Exchanges,
    subject: &Subject<'_, '_>,
    stream: u32,
    callouts: &mut u32,
) -> Result<Exchanged, Failure> {
    loop {
        let now_ms = u64::try_from(now()).unwrap() * 1000;
        match state.begin(cfg, 0, subject, stream, now_ms) {
            Step::Ready(e) => return Ok(e),
            Step::Fail(f) => return Err(f),
            Step::Wait => panic!("nobody else is asking"),
            Step::Callout {
                pending, request, ..
            } => {
                *callouts += 1;
                let (status, body) = send(s, &request);
                let done = state.finish(
                    cfg,
                    pending,
                    status,
                    &body,
                    subject.exp,
                    cfg,
                    &PureRust,
                    now_ms,
                );
                assert_eq!(done.waiters, vec![stream]);
                match done.then {
                    Then::Use(e) => return Ok(e),
                    Then::Fail(f) => return Err(f),
                    Then::Again => {}
                }
            }
        }
    }
}

/// The request's headers after `ops`, as the upstream gets them.
fn upstream(headers: &[(&str, &str)], ops: &[HeaderOp<'_>]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for op in ops {
        match op {
            HeaderOp::Remove(name) => out.retain(|(n, _)| n != name),
            HeaderOp::Set(name, value) => {
                out.retain(|(n, _)| n != name);
                out.push(((*name).to_owned(), value.clone()));
            }
            HeaderOp::FilterState(..) => {}
        }
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_next_service_gets_a_token_made_for_it_once_per_user_token() {
    // Its own server: its counts are this test's requests only.
    let own = AuthServer::start(&ServerConfig::standard());
    let s = &own;
    let cfg = gateway(s);
    let orders = orders_service(s);
    let mut state = Exchanges::new(&cfg, &[5; 32]);
    let alice = user_token(USER_ISSUER, "alice");
    let before = s.counts();

    let headers = request("/orders/1", &alice);
    let Decision::Allow { mut ops, verdict } = decide(&cfg, &cfg, &headers, now()) else {
        panic!("the user's token does not verify at the gateway");
    };
    let (id, subject) = subject_for(&cfg, &verdict, &headers).expect("an exchange route");
    assert_eq!(id, 0);
    let mut callouts = 0;
    let issued = exchange(s, &cfg, &mut state, &subject, 1, &mut callouts)
        .unwrap_or_else(|f| panic!("{f:?}\n{}", s.stderr_tail()));
    assert_eq!(callouts, 2, "the actor token, then the exchange");
    header_ops(
        &cfg.token_exchanges[id],
        subject.location,
        &headers,
        &issued,
        &mut ops,
    );
    let bearer = format!("Bearer {alice}");
    let got = upstream(&[("authorization", &bearer)], &ops);

    // The upstream gets the issued token: for `orders`, narrowed, naming the gateway.
    let forwarded = header(&got, "authorization").unwrap();
    let token = forwarded.strip_prefix("Bearer ").unwrap();
    assert_ne!(token, alice);
    assert!(
        !got.iter().any(|(_, v)| v.contains(&alice)),
        "the user's token reached the upstream"
    );
    let claims = jwt_part(token, 1).unwrap();
    assert_eq!(claims["aud"], json!("orders"), "{claims}");
    assert_eq!(claims["sub"], json!("alice"), "{claims}");
    assert_eq!(claims["scope"], json!("orders:read"), "{claims}");
    assert_eq!(claims["act"], json!({ "sub": "gateway" }), "{claims}");
    // Identity headers are the user's.
    assert_eq!(header(&got, "x-user"), Some("alice"));

    // The same user token again: no second exchange.
    let again = exchange(s, &cfg, &mut state, &subject, 2, &mut callouts).unwrap();
    assert_eq!((callouts, again.token.expose()), (2, token));
    // Another user: one exchange, the actor token kept.
    let bob = user_token(USER_ISSUER, "bob");
    let bob_loc = Location::Header {
        name: "authorization".into(),
        value_prefix: "Bearer ".into(),
    };
    let bob_subject = Subject {
        token: Cow::Borrowed(&bob),
        location: &bob_loc,
        exp: Some(now() + 600),
    };
    exchange(s, &cfg, &mut state, &bob_subject, 3, &mut callouts).unwrap();
    assert_eq!(callouts, 3);
    let after = s.counts();
    let grew = |grant: &str| after.grant(grant) - before.grant(grant);
    assert_eq!(grew(EXCHANGE_GRANT), 2, "{:?}", after.0);
    assert_eq!(grew("client_credentials"), 1, "{:?}", after.0);

    // The orders service accepts the exchanged token and refuses the user's (its audience).
    let status = |d: &Decision<'_>| match d {
        Decision::Allow { verdict, .. } => (200, verdict.failure),
        Decision::Deny { denial, verdict } => (denial.status, verdict.failure),
        Decision::Wait(_) => panic!("local keys never wait"),
    };
    let (code, failure) = status(&decide(&orders, &orders, &request("/o/1", token), now()));
    assert_eq!((code, failure), (200, None));
    let (code, failure) = status(&decide(&orders, &orders, &request("/o/1", &alice), now()));
    assert_eq!(
        (code, failure),
        (
            403,
            Some(jwt_authn_wasm::error::AuthError::AudienceNotAllowed)
        )
    );
}

#[test]
fn a_subject_token_the_server_refuses_is_a_401() {
    let s = server();
    let cfg = gateway(s);
    let mut state = Exchanges::new(&cfg, &[5; 32]);
    // Signed by keys the gateway trusts, from an issuer the server does not exchange for.
    let stranger = user_token("https://strangers.example.com", "mallory");
    let loc = Location::Header {
        name: "authorization".into(),
        value_prefix: "Bearer ".into(),
    };
    let subject = Subject {
        token: Cow::Borrowed(&stranger),
        location: &loc,
        exp: Some(now() + 600),
    };
    let mut callouts = 0;
    let failure = exchange(s, &cfg, &mut state, &subject, 1, &mut callouts).unwrap_err();
    assert!(matches!(failure, Failure::Refused(_)), "{failure:?}");
    assert_eq!(failure.class(), "exchange_refused");
    let denial = failure.denial(
        "https://api.example.com/orders",
        false,
        cfg.failure_policy.exchange_unavailable,
    );
    assert_eq!(denial.status, 401);
    assert!(denial
        .www_authenticate
        .unwrap()
        .contains("error=\"invalid_token\""));
}

#[test]
fn the_server_failing_is_a_503_and_nothing_is_forwarded() {
    // Its own server: faults apply to every request it gets.
    let s = AuthServer::start(&ServerConfig::standard());
    let cfg = gateway(&s);
    let alice = user_token(USER_ISSUER, "alice");
    let loc = Location::Header {
        name: "authorization".into(),
        value_prefix: "Bearer ".into(),
    };
    let subject = Subject {
        token: Cow::Borrowed(&alice),
        location: &loc,
        exp: Some(now() + 600),
    };
    for (fault, want) in [
        (Fault::Status(500), Cause::Actor),
        (Fault::Status(503), Cause::Actor),
        (Fault::Garbage, Cause::Actor),
    ] {
        let mut state = Exchanges::new(&cfg, &[5; 32]);
        s.set_fault(Some("token"), fault);
        let mut callouts = 0;
        let failure = exchange(&s, &cfg, &mut state, &subject, 1, &mut callouts).unwrap_err();
        assert_eq!(failure, Failure::Unavailable(want), "{fault:?}");
        let denial = failure.denial("r", false, cfg.failure_policy.exchange_unavailable);
        assert_eq!(
            (denial.status, denial.www_authenticate),
            (503, None),
            "{fault:?}"
        );
    }
    // The actor token had, the exchange itself failing.
    s.set_fault(None, Fault::None);
    let mut state = Exchanges::new(&cfg, &[5; 32]);
    let bob = user_token(USER_ISSUER, "bob");
    let bob_subject = Subject {
        token: Cow::Borrowed(&bob),
        location: &loc,
        exp: Some(now() + 600),
    };
    let mut callouts = 0;
    exchange(&s, &cfg, &mut state, &bob_subject, 1, &mut callouts).unwrap();
    for (fault, want) in [
        (Fault::Status(500), Unavailable::ServerError),
        (Fault::Garbage, Unavailable::NotJson),
    ] {
        s.set_fault(Some("token"), fault);
        let failure = exchange(&s, &cfg, &mut state, &subject, 2, &mut callouts).unwrap_err();
        assert_eq!(
            failure,
            Failure::Unavailable(Cause::Server(want)),
            "{fault:?}"
        );
        assert_eq!(
            failure
                .denial("r", false, cfg.failure_policy.exchange_unavailable)
                .status,
            503
        );
    }
    // The server back: the exchange works (the failures were not kept).
    s.set_fault(None, Fault::None);
    exchange(&s, &cfg, &mut state, &subject, 3, &mut callouts).unwrap();
}
