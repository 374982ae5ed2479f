//! The filter's OAuth client code (`oauth`, `introspection`) against a real authorization
//! server (oidc-provider on loopback, `common::authserver`): the requests our builders make are
//! the ones the server accepts, and our readers give the answers the meaning the features
//! need (issued / refused / unavailable; active / inactive / error). No Envoy: the bytes go
//! over a plain socket, as `dispatch_http_call` would send them.

// Tests fail by panicking.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;

use serde_json::{json, Value};

use common::authserver::{
    jwt_part, AuthServer, Client as ServerClient, Config, Fault, INTROSPECTION_PATH, REPORTS,
    TOKEN_PATH, USER_ISSUER,
};
use common::http::Request;
use common::{mint, now};
use jwt_authn_wasm::introspection::{self, Answer};
use jwt_authn_wasm::oauth::{
    self, AuthMethod, CalloutRequest, Client, Endpoint, Exchange, Refusal, Secret, TokenOutcome,
    Unavailable,
};

/// A client whose id and secret need RFC 6749 §2.3.1's form encoding inside Basic.
const ODD_ID: &str = "odd:client id";
const ODD_SECRET: &str = "p:ss w%rd+&=~\"";

fn config() -> Config {
    let mut c = Config::standard();
    c.clients.push(ServerClient::new(ODD_ID, ODD_SECRET));
    // Only `client_credentials_with_both_methods_and_encoded_credentials` uses these two, so
    // the last request by each is that test's.
    c.clients
        .push(ServerClient::new("cc-tester", "cc-tester-secret"));
    c
}

fn server() -> &'static AuthServer {
    static SERVER: OnceLock<Result<AuthServer, String>> = OnceLock::new();
    match SERVER.get_or_init(|| AuthServer::try_start(&config())) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// Our client for the server's client `id`.
fn client(id: &str, method: AuthMethod) -> Client {
    let registered = config().client(id);
    Client {
        id: registered.id,
        secret: Secret::new(registered.secret),
        method,
    }
}

fn endpoint(s: &AuthServer, path: &str) -> Endpoint {
    Endpoint {
        authority: format!("127.0.0.1:{}", s.port()),
        path: path.to_owned(),
    }
}

/// Sends a callout as the host would, returning (status, body).
fn send(s: &AuthServer, req: &CalloutRequest) -> (u32, Vec<u8>) {
    let mut wire = Request::new(req.header(":method").unwrap(), req.header(":path").unwrap())
        .host(req.header(":authority").unwrap());
    for (name, value) in &req.headers {
        if !name.starts_with(':') {
            wire = wire.header(name, value);
        }
    }
    let resp = wire.body(&req.body).send(s.port());
    (u32::from(resp.status), resp.body)
}

fn token(s: &AuthServer, req: &CalloutRequest) -> TokenOutcome {
    let (status, body) = send(s, req);
    oauth::read_token_response(Some(status), &body)
}

fn issued(outcome: TokenOutcome, what: &str) -> oauth::IssuedToken {
    match outcome {
        TokenOutcome::Issued(t) => t,
        other => panic!("{what}: {other:?}\n{}", server().stderr_tail()),
    }
}

fn cc(s: &AuthServer, c: &Client, scope: Option<&str>, resource: Option<&str>) -> String {
    let req = oauth::client_credentials_request(&endpoint(s, TOKEN_PATH), c, scope, resource);
    issued(token(s, &req), "client credentials")
        .access_token
        .expose()
        .to_owned()
}

fn introspect(s: &AuthServer, c: &Client, tok: &str) -> Result<Answer, Unavailable> {
    let req = oauth::introspection_request(&endpoint(s, INTROSPECTION_PATH), c, tok, None);
    let (status, body) = send(s, &req);
    introspection::read_response(Some(status), &body)
}

fn user_token(claims: Value) -> String {
    let mut payload = json!({
        "iss": USER_ISSUER, "sub": "alice", "aud": "web",
        "scope": "orders:read orders:write", "iat": now(), "exp": now() + 600,
    });
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    mint::token("RS256", &payload)
}

#[test]
fn client_credentials_with_both_methods_and_encoded_credentials() {
    let s = server();
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        for id in ["cc-tester", ODD_ID] {
            let c = client(id, method);
            let req =
                oauth::client_credentials_request(&endpoint(s, TOKEN_PATH), &c, Some("read"), None);
            let t = issued(token(s, &req), id);
            assert_eq!(t.token_type, "Bearer");
            assert!(t.expires_in.is_some_and(|e| e > 0), "{t:?}");
            assert_eq!(t.scope.as_deref(), Some("read"));
            // The server saw the method we chose, for the client we are.
            let last = s
                .requests()
                .into_iter()
                .rfind(|r| r["client_id"] == json!(id))
                .unwrap();
            assert_eq!(last["client_id"], json!(id), "{last}");
            assert_eq!(last["auth_method"], json!(method.name()), "{last}");
        }
    }
}

#[test]
fn introspection_active_then_inactive_after_revocation() {
    let s = server();
    let gateway = client("gateway", AuthMethod::ClientSecretBasic);
    let service = config().client("service");
    let opaque = s.cc_token(&service, Some("read write"), None);
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let Ok(Answer::Active(t)) = introspect(s, &client("gateway", method), &opaque) else {
            panic!("{method:?}: not active");
        };
        assert_eq!(t.client_id(), Some("service"));
        assert_eq!(t.scopes(), ["read", "write"]);
        assert_eq!(t.claims.iss.as_deref(), Some(s.issuer()));
        assert!(t.claims.exp.is_some_and(|exp| exp > now()));
        // The cache lifetime: bounded by cache_duration, and never past exp.
        let policy = introspection::CachePolicy {
            cache_duration: 60,
            negative_cache_duration: 5,
            stale_if_error: 1_000_000,
        };
        let life = policy.lifetime(&Answer::Active(t.clone()), now()).unwrap();
        assert_eq!(life.fresh_until, now() + 60);
        assert_eq!(Some(life.stale_until), t.claims.exp);
    }
    s.revoke(&service, &opaque).unwrap();
    assert_eq!(introspect(s, &gateway, &opaque), Ok(Answer::Inactive));
    assert_eq!(
        introspect(s, &gateway, "never-issued-token"),
        Ok(Answer::Inactive)
    );
}

#[test]
fn a_wrong_secret_is_client_rejected_not_the_users_fault() {
    let s = server();
    let opaque = s.cc_token(&config().client("service"), Some("read"), None);
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let wrong = Client {
            secret: Secret::new("not-the-secret"),
            ..client("gateway", method)
        };
        assert_eq!(
            introspect(s, &wrong, &opaque),
            Err(Unavailable::ClientRejected),
            "{method:?}"
        );
        let req = oauth::client_credentials_request(&endpoint(s, TOKEN_PATH), &wrong, None, None);
        assert_eq!(
            token(s, &req),
            TokenOutcome::Unavailable(Unavailable::ClientRejected),
            "{method:?}"
        );
    }
}

#[test]
fn token_exchange_with_an_actor_gives_a_token_for_the_audience() {
    let s = server();
    let gateway = client("gateway", AuthMethod::ClientSecretBasic);
    let actor = cc(s, &gateway, None, None);
    let subject = user_token(json!({}));
    let mut ex = Exchange::new(&subject);
    ex.actor_token = Some(&actor);
    ex.audience = Some("orders");
    ex.scope = Some("orders:read");
    let req = oauth::exchange_request(&endpoint(s, TOKEN_PATH), &gateway, &ex);
    let t = issued(token(s, &req), "exchange");
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(
        t.issued_token_type.as_deref(),
        Some(oauth::token_type::ACCESS_TOKEN)
    );
    assert_eq!(t.scope.as_deref(), Some("orders:read"));
    let claims = jwt_part(t.access_token.expose(), 1).unwrap();
    assert_eq!(claims["aud"], json!("orders"), "{claims}");
    assert_eq!(claims["sub"], json!("alice"), "{claims}");
    assert_eq!(claims["act"], json!({ "sub": "gateway" }), "{claims}");
}

#[test]
fn token_exchange_refusals_and_our_own_errors() {
    let s = server();
    let gateway = client("gateway", AuthMethod::ClientSecretBasic);
    let good = user_token(json!({}));
    let expired = user_token(json!({ "exp": now() - 120 }));
    let tampered = mint::tampered(&good);
    let cases: Vec<(&str, Exchange<'_>, TokenOutcome)> = vec![
        (
            "tampered subject",
            Exchange {
                audience: Some("orders"),
                ..Exchange::new(&tampered)
            },
            TokenOutcome::Refused(Refusal::InvalidGrant),
        ),
        (
            "expired subject",
            Exchange {
                audience: Some("orders"),
                ..Exchange::new(&expired)
            },
            TokenOutcome::Refused(Refusal::InvalidGrant),
        ),
        (
            "unknown audience",
            Exchange {
                audience: Some("payments"),
                ..Exchange::new(&good)
            },
            TokenOutcome::Refused(Refusal::InvalidTarget),
        ),
        (
            "scope beyond the target",
            Exchange {
                audience: Some("orders"),
                scope: Some("orders:read admin"),
                ..Exchange::new(&good)
            },
            TokenOutcome::Refused(Refusal::InvalidScope),
        ),
    ];
    for (what, ex, want) in cases {
        let req = oauth::exchange_request(&endpoint(s, TOKEN_PATH), &gateway, &ex);
        assert_eq!(token(s, &req), want, "{what}");
    }
    let wrong = Client {
        secret: Secret::new("wrong"),
        ..gateway.clone()
    };
    let ex = Exchange {
        audience: Some("orders"),
        ..Exchange::new(&good)
    };
    let req = oauth::exchange_request(&endpoint(s, TOKEN_PATH), &wrong, &ex);
    assert_eq!(
        token(s, &req),
        TokenOutcome::Unavailable(Unavailable::ClientRejected)
    );
}

#[test]
fn opaque_exchange_result_for_an_opaque_resource() {
    let s = server();
    let gateway = client("gateway", AuthMethod::ClientSecretPost);
    let subject = user_token(json!({ "scope": "reports:read" }));
    let ex = Exchange {
        resource: Some(REPORTS),
        ..Exchange::new(&subject)
    };
    let req = oauth::exchange_request(&endpoint(s, TOKEN_PATH), &gateway, &ex);
    let t = issued(token(s, &req), "exchange for an opaque resource");
    assert!(jwt_part(t.access_token.expose(), 1).is_none());
    let Ok(Answer::Active(a)) = introspect(s, &gateway, t.access_token.expose()) else {
        panic!("the exchanged opaque token is not active");
    };
    assert_eq!(a.claims.sub.as_deref(), Some("alice"));
}

#[test]
fn server_faults_are_unavailable_never_inactive_or_refused() {
    // Its own server: faults apply to every test using it.
    let s = AuthServer::start(&config());
    let gateway = client("gateway", AuthMethod::ClientSecretBasic);
    let opaque = s.cc_token(&config().client("service"), Some("read"), None);
    let cc_req = oauth::client_credentials_request(&endpoint(&s, TOKEN_PATH), &gateway, None, None);
    for (fault, want) in [
        (Fault::Status(500), Unavailable::ServerError),
        (Fault::Status(503), Unavailable::ServerError),
        (Fault::Status(404), Unavailable::UnexpectedStatus),
        (Fault::Garbage, Unavailable::NotJson),
    ] {
        s.set_fault(Some("introspection"), fault);
        assert_eq!(introspect(&s, &gateway, &opaque), Err(want), "{fault:?}");
        s.set_fault(Some("token"), fault);
        assert_eq!(
            token(&s, &cc_req),
            TokenOutcome::Unavailable(want),
            "{fault:?}"
        );
    }
    s.set_fault(None, Fault::None);
    assert!(matches!(
        introspect(&s, &gateway, &opaque),
        Ok(Answer::Active(_))
    ));
}
