//! The test authorization server (`common::authserver`: oidc-provider on loopback) does what
//! the introspection, revocation, client-credentials and token-exchange features need, without
//! the filter: tokens for both client authentication methods, RFC 7662 answers, RFC 7009
//! revocation, RFC 8693 exchange of minted user tokens, counts, faults, restart.
//!
//! Most tests share one server (`Config::standard()` plus a `counter` client that only
//! `counts_per_endpoint_grant_and_client` uses); tests that stop it, inject faults or change
//! the exchange's error code start their own.

// Tests fail by panicking, and index into responses they have just checked.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::authserver::{
    token_type, verify_jwt, AuthServer, Client, Config, Exchange, Fault, OAuthError,
    ResourceServer, ES256_KID, EXCHANGE_GRANT, INVENTORY, ORDERS, REPORTS, RS256_KID, USER_ISSUER,
};
use common::{mint, now};

fn config() -> Config {
    let mut c = Config::standard();
    c.clients.push(Client::new("counter", "counter-secret"));
    c.clients
        .push(Client::new("cc-only", "cc-only-secret").grant_types(&["client_credentials"]));
    c
}

/// The shared server; every test reports the same start failure.
fn server() -> &'static AuthServer {
    static SERVER: OnceLock<Result<AuthServer, String>> = OnceLock::new();
    match SERVER.get_or_init(|| AuthServer::try_start(&config())) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn client(id: &str) -> Client {
    config().client(id)
}

/// A user token from the tests' own identity provider (`mint`, fixture keys).
fn user_token(alg: &str, claims: Value) -> String {
    let mut payload = json!({
        "iss": USER_ISSUER,
        "sub": "alice",
        "aud": "web",
        "scope": "orders:read orders:write profile",
        "iat": now(),
        "exp": now() + 600,
    });
    for (k, v) in claims.as_object().unwrap() {
        payload[k] = v.clone();
    }
    mint::token(alg, &payload)
}

fn refused(result: Result<impl std::fmt::Debug, OAuthError>, what: &str) -> OAuthError {
    match result {
        Ok(ok) => panic!("{what}: expected an error, got {ok:?}"),
        Err(e) => e,
    }
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn client_credentials_with_basic_and_with_post() {
    let s = server();
    for (id, method) in [
        ("gateway", "client_secret_basic"),
        ("poster", "client_secret_post"),
    ] {
        let t = s
            .client_credentials(&client(id), Some("read"), None)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(t.token_type, "Bearer", "{id}: {:?}", t.raw);
        assert_eq!(t.expires_in, Some(600), "{id}: {:?}", t.raw);
        assert_eq!(t.scope.as_deref(), Some("read"), "{id}: {:?}", t.raw);
        assert!(
            t.claims().is_none(),
            "{id}: no resource, so an opaque token: {:?}",
            t.raw
        );
        // The request really used that method (oidc-provider accepts both from either client).
        let seen = s
            .requests()
            .into_iter()
            .rev()
            .find(|r| r["client_id"] == json!(id) && r["endpoint"] == "token")
            .unwrap();
        assert_eq!(seen["auth_method"], json!(method), "{seen}");
        assert!(
            seen["params"].get("client_secret").is_none(),
            "secret logged: {seen}"
        );
    }
}

#[test]
fn introspection_of_an_opaque_token_is_active_with_client_id_scope_exp() {
    let s = server();
    let t = s.cc_token(&client("service"), Some("read write"), None);
    let before = now();
    let r = s.introspect(&client("gateway"), &t).unwrap();
    assert_eq!(r["active"], json!(true), "{r}");
    assert_eq!(r["client_id"], json!("service"), "{r}");
    assert_eq!(r["scope"], json!("read write"), "{r}");
    assert_eq!(r["iss"], json!(s.issuer()), "{r}");
    assert_eq!(r["token_type"], json!("Bearer"), "{r}");
    let exp = r["exp"].as_i64().unwrap();
    assert!(
        (before + 590..=before + 610).contains(&exp),
        "exp {exp}, now {before}: {r}"
    );
    assert!(r["iat"].as_i64().is_some(), "{r}");
    // What the feature engineers must know: no `aud` without a resource indicator, and no
    // `sub` for a client-credentials token.
    assert!(r.get("aud").is_none(), "{r}");
    assert!(r.get("sub").is_none(), "{r}");

    // With a resource indicator the opaque token has that resource server's audience.
    let t = s.cc_token(&client("service"), Some("reports:read"), Some(REPORTS));
    let r = s.introspect(&client("poster"), &t).unwrap();
    assert_eq!(r["active"], json!(true), "{r}");
    assert_eq!(r["aud"], json!("reports"), "{r}");
    assert_eq!(r["scope"], json!("reports:read"), "{r}");

    // Unknown tokens are simply inactive.
    let r = s.introspect(&client("gateway"), "no-such-token").unwrap();
    assert_eq!(r, json!({ "active": false }));
}

#[test]
fn revocation_makes_the_token_inactive_at_once() {
    let s = server();
    let owner = client("service");
    let t = s.cc_token(&owner, Some("read"), None);
    assert_eq!(
        s.introspect(&client("gateway"), &t).unwrap()["active"],
        json!(true)
    );

    // Only the client the token was issued to may revoke it.
    let e = refused(
        s.revoke(&client("gateway"), &t),
        "revocation by another client",
    );
    assert_eq!(
        (e.status, e.error.as_str()),
        (400, "invalid_request"),
        "{e}"
    );
    assert_eq!(
        s.introspect(&client("gateway"), &t).unwrap()["active"],
        json!(true)
    );

    s.revoke(&owner, &t).unwrap();
    let r = s.introspect(&client("gateway"), &t).unwrap();
    assert_eq!(r, json!({ "active": false }));
    // RFC 7009 §2.2: revoking an unknown (or already revoked) token is a success.
    s.revoke(&owner, &t).unwrap();
}

#[test]
fn a_wrong_client_secret_is_401_invalid_client() {
    let s = server();
    let t = s.cc_token(&client("service"), Some("read"), None);
    for id in ["gateway", "poster"] {
        let wrong = client(id).with_secret("not-the-secret");
        let e = refused(
            s.client_credentials(&wrong, None, None),
            "token with a wrong secret",
        );
        assert_eq!(
            (e.status, e.error.as_str()),
            (401, "invalid_client"),
            "{id}: {e}"
        );
        // The introspecting client (the filter) authenticates the same way.
        let e = refused(
            s.introspect(&wrong, &t),
            "introspection with a wrong secret",
        );
        assert_eq!(
            (e.status, e.error.as_str()),
            (401, "invalid_client"),
            "{id}: {e}"
        );
        if id == "gateway" {
            let challenge = e.www_authenticate.clone().unwrap_or_default();
            assert!(challenge.starts_with("Basic "), "{e:?}");
        }
    }
    let unknown = Client::new("nobody", "x");
    let e = refused(
        s.introspect(&unknown, &t),
        "introspection by an unknown client",
    );
    assert_eq!((e.status, e.error.as_str()), (401, "invalid_client"), "{e}");
    assert!(
        !s.stderr_tail().contains("not-the-secret"),
        "a secret reached the log:\n{}",
        s.stderr_tail()
    );
}

#[test]
fn client_credentials_jwt_is_at_jwt_with_aud_scope_client_id_sub() {
    let s = server();
    let jwks = s.jwks();
    for (resource, aud, scope, alg, kid) in [
        (ORDERS, "orders", "orders:read", "RS256", RS256_KID),
        (INVENTORY, "inventory", "inventory:read", "ES256", ES256_KID),
    ] {
        // A scope the resource server does not have is dropped, not granted.
        let t = s
            .client_credentials(
                &client("gateway"),
                Some(&format!("{scope} admin")),
                Some(resource),
            )
            .unwrap();
        let header = t.header().unwrap();
        assert_eq!(header["typ"], json!("at+jwt"), "{header}");
        assert_eq!(header["alg"], json!(alg), "{header}");
        assert_eq!(header["kid"], json!(kid), "{header}");
        let claims = verify_jwt(&jwks, &t.access_token).unwrap();
        assert_eq!(claims["aud"], json!(aud), "{claims}");
        assert_eq!(claims["scope"], json!(scope), "{claims}");
        assert_eq!(claims["client_id"], json!("gateway"), "{claims}");
        assert_eq!(claims["sub"], json!("gateway"), "{claims}");
        assert_eq!(claims["iss"], json!(s.issuer()), "{claims}");
        assert!(
            claims["jti"].is_string() && claims["exp"].is_i64(),
            "{claims}"
        );
        assert_eq!(t.scope.as_deref(), Some(scope));
    }

    // oidc-provider keeps no record of its JWTs: introspection says inactive (and revocation
    // cannot reach them). A feature that needs introspection uses opaque tokens.
    let t = s.cc_token(&client("gateway"), Some("orders:read"), Some(ORDERS));
    let r = s.introspect(&client("gateway"), &t).unwrap();
    assert_eq!(r, json!({ "active": false }));

    // A token signed by a key of another set does not verify.
    assert!(verify_jwt(mint::JWKS, &t).is_err());
}

#[test]
fn token_exchange_gives_a_token_for_the_audience_naming_the_actor() {
    let s = server();
    let jwks = s.jwks();
    let gateway = client("gateway");
    let actor = s.cc_token(&gateway, None, None);
    let mut first = None;
    for alg in ["RS256", "ES256"] {
        let subject = user_token(alg, json!({}));
        let t = s
            .exchange(
                &gateway,
                &Exchange::new(&subject)
                    .actor(&actor)
                    .audience("orders")
                    .scope("orders:read"),
            )
            .unwrap_or_else(|e| panic!("{alg}: {e}\n{}", s.stderr_tail()));
        assert_eq!(
            t.issued_token_type.as_deref(),
            Some(token_type::ACCESS_TOKEN),
            "{:?}",
            t.raw
        );
        assert_eq!(t.token_type, "Bearer", "{:?}", t.raw);
        assert_eq!(t.expires_in, Some(600), "{:?}", t.raw);
        assert_eq!(t.scope.as_deref(), Some("orders:read"), "{:?}", t.raw);
        let claims = verify_jwt(&jwks, &t.access_token).unwrap();
        assert_eq!(claims["aud"], json!("orders"), "{claims}");
        assert_eq!(claims["scope"], json!("orders:read"), "{claims}");
        assert_eq!(claims["sub"], json!("alice"), "{claims}");
        assert_eq!(claims["act"], json!({ "sub": "gateway" }), "{claims}");
        assert_eq!(claims["client_id"], json!("gateway"), "{claims}");
        assert_eq!(claims["iss"], json!(s.issuer()), "{claims}");
        assert_eq!(t.header().unwrap()["typ"], json!("at+jwt"));
        first.get_or_insert(t.access_token);
    }

    // By resource instead of audience, no actor, no scope asked: the subject's scopes that the
    // target has; a JWT asked for by type, ES256 because that resource server signs so.
    let subject = user_token("RS256", json!({ "scope": "inventory:read profile" }));
    let t = s
        .exchange(
            &gateway,
            &Exchange::new(&subject)
                .subject_token_type(token_type::JWT)
                .resource(INVENTORY)
                .requested_token_type(token_type::JWT),
        )
        .unwrap();
    assert_eq!(t.issued_token_type.as_deref(), Some(token_type::JWT));
    assert_eq!(t.header().unwrap()["kid"], json!(ES256_KID));
    let claims = verify_jwt(&jwks, &t.access_token).unwrap();
    assert_eq!(
        (claims["aud"].clone(), claims["scope"].clone()),
        (json!("inventory"), json!("inventory:read"))
    );
    assert!(claims.get("act").is_none(), "{claims}");

    // An exchanged token can itself be exchanged (a second hop, by another service); `act`
    // keeps the chain (RFC 8693 §4.1: the current actor outside, the earlier one inside).
    let service = client("service");
    let second = Exchange::new(&first.unwrap())
        .actor(&s.cc_token(&service, None, None))
        .audience("inventory");
    let claims = s.exchange(&service, &second).unwrap().claims().unwrap();
    assert_eq!(claims["sub"], json!("alice"), "{claims}");
    assert_eq!(
        claims["act"],
        json!({ "sub": "service", "act": { "sub": "gateway" } }),
        "{claims}"
    );

    // An opaque target: the issued token is opaque and introspects with the user as `sub`.
    let t = s
        .exchange(
            &gateway,
            &Exchange::new(&user_token("RS256", json!({ "scope": "reports:read" })))
                .actor(&actor)
                .audience("reports"),
        )
        .unwrap();
    assert!(t.claims().is_none(), "{:?}", t.raw);
    let r = s.introspect(&gateway, &t.access_token).unwrap();
    assert_eq!(
        (r["active"].clone(), r["sub"].clone(), r["aud"].clone()),
        (json!(true), json!("alice"), json!("reports")),
        "{r}"
    );
    assert_eq!(r["act"], json!({ "sub": "gateway" }), "{r}");
}

#[test]
fn token_exchange_refuses_bad_tokens_and_malformed_requests() {
    let s = server();
    let gateway = client("gateway");
    let good = user_token("RS256", json!({}));
    let actor = s.cc_token(&gateway, None, None);
    let revoked = s.cc_token(&gateway, None, None);
    s.revoke(&gateway, &revoked).unwrap();
    let foreign_actor = s.cc_token(&client("service"), None, None);
    let other_issuer = mint::token(
        "RS256",
        &json!({ "iss": "https://elsewhere.test", "sub": "alice", "exp": now() + 600 }),
    );

    let cases: Vec<(&str, Exchange, u16, &str)> = vec![
        (
            "tampered signature",
            Exchange::new(&mint::tampered(&good)).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "expired",
            Exchange::new(&user_token("RS256", json!({ "exp": now() - 120 }))).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "not yet valid",
            Exchange::new(&user_token("RS256", json!({ "nbf": now() + 120 }))).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "without sub",
            Exchange::new(&user_token("RS256", json!({ "sub": null }))).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "untrusted issuer",
            Exchange::new(&other_issuer).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "HS256 with the fixture secret",
            Exchange::new(&user_token("HS256", json!({}))).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "unknown opaque token",
            Exchange::new("no-such-token").audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "revoked opaque token",
            Exchange::new(&revoked).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "opaque token typed jwt",
            Exchange::new(&actor)
                .subject_token_type(token_type::JWT)
                .audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "actor of another client",
            Exchange::new(&good)
                .actor(&foreign_actor)
                .audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "actor that is a user token",
            Exchange::new(&good).actor(&good).audience("orders"),
            400,
            "invalid_grant",
        ),
        (
            "no subject_token_type",
            Exchange::new(&good)
                .subject_token_type("")
                .audience("orders"),
            400,
            "invalid_request",
        ),
        (
            "unknown subject_token_type",
            Exchange::new(&good)
                .subject_token_type("urn:x:saml")
                .audience("orders"),
            400,
            "invalid_request",
        ),
        (
            "actor_token without its type",
            Exchange {
                actor_token: Some(actor.clone()),
                ..Exchange::new(&good).audience("orders")
            },
            400,
            "invalid_request",
        ),
        (
            "no audience or resource",
            Exchange::new(&good),
            400,
            "invalid_request",
        ),
        (
            "unknown requested_token_type",
            Exchange::new(&good)
                .audience("orders")
                .requested_token_type(token_type::ID_TOKEN),
            400,
            "invalid_request",
        ),
        (
            "unknown audience",
            Exchange::new(&good).audience("payments"),
            400,
            "invalid_target",
        ),
        (
            "two targets",
            Exchange::new(&good).audience("orders").resource(INVENTORY),
            400,
            "invalid_target",
        ),
        (
            "scope beyond the target",
            Exchange::new(&good)
                .audience("orders")
                .scope("orders:read admin"),
            400,
            "invalid_scope",
        ),
    ];
    for (what, request, status, error) in cases {
        let e = refused(s.exchange(&gateway, &request), what);
        assert_eq!((e.status, e.error.as_str()), (status, error), "{what}: {e}");
    }

    // A client not allowed the grant, and a wrong secret.
    let e = refused(
        s.exchange(&client("cc-only"), &Exchange::new(&good).audience("orders")),
        "grant not allowed",
    );
    assert_eq!(
        (e.status, e.error.as_str()),
        (400, "invalid_request"),
        "{e}"
    );
    let e = refused(
        s.exchange(
            &gateway.with_secret("wrong"),
            &Exchange::new(&good).audience("orders"),
        ),
        "wrong secret",
    );
    assert_eq!((e.status, e.error.as_str()), (401, "invalid_client"), "{e}");
}

#[test]
fn bad_token_error_can_be_invalid_request_as_rfc_8693_says() {
    let s = AuthServer::start(&Config {
        bad_token_error: Some("invalid_request".to_string()),
        ..Config::standard()
    });
    let gateway = Config::standard().client("gateway");
    let bad = mint::tampered(&user_token("RS256", json!({})));
    let e = refused(
        s.exchange(&gateway, &Exchange::new(&bad).audience("orders")),
        "tampered subject",
    );
    assert_eq!(
        (e.status, e.error.as_str()),
        (400, "invalid_request"),
        "{e}"
    );
    assert!(s
        .exchange(
            &gateway,
            &Exchange::new(&user_token("RS256", json!({}))).audience("orders")
        )
        .is_ok());
}

#[test]
fn counts_per_endpoint_grant_and_client() {
    let s = server();
    let counter = client("counter");
    let before = s.counts();
    let t = s.cc_token(&counter, Some("read"), None);
    s.cc_token(&counter, None, Some(ORDERS));
    for _ in 0..3 {
        s.introspect(&counter, &t).unwrap();
    }
    s.exchange(
        &counter,
        &Exchange::new(&user_token("RS256", json!({}))).audience("orders"),
    )
    .unwrap();
    s.revoke(&counter, &t).unwrap();
    let _ = s.introspect(&counter.with_secret("wrong"), &t);
    s.jwks();

    let after = s.counts();
    assert_eq!(after.client("counter", "token"), 3, "{:?}", after.0);
    assert_eq!(
        after.client("counter", "introspection"),
        4,
        "refused requests count too: {:?}",
        after.0
    );
    assert_eq!(after.client("counter", "revocation"), 1, "{:?}", after.0);
    // Totals are shared with the tests running beside this one: at least ours.
    assert!(after.endpoint("introspection") >= before.endpoint("introspection") + 4);
    assert!(after.grant("client_credentials") >= before.grant("client_credentials") + 2);
    assert!(after.grant(EXCHANGE_GRANT) > before.grant(EXCHANGE_GRANT));
    assert!(after.endpoint("jwks") > before.endpoint("jwks"));
}

#[test]
fn discovery_names_the_endpoints_and_the_exchange_grant() {
    let s = server();
    let d = s.discovery();
    assert_eq!(d["issuer"], json!(s.issuer()));
    assert_eq!(d["token_endpoint"], json!(format!("{}/token", s.issuer())));
    assert_eq!(
        d["introspection_endpoint"],
        json!(format!("{}/token/introspection", s.issuer()))
    );
    assert_eq!(
        d["revocation_endpoint"],
        json!(format!("{}/token/revocation", s.issuer()))
    );
    assert_eq!(d["jwks_uri"], json!(format!("{}/jwks", s.issuer())));
    let grants = d["grant_types_supported"].as_array().unwrap();
    assert!(
        grants.contains(&json!(EXCHANGE_GRANT)) && grants.contains(&json!("client_credentials")),
        "{d}"
    );
    let keys: Value = serde_json::from_str(&s.jwks()).unwrap();
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [RS256_KID, ES256_KID]);
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none()),
        "private parts published: {keys}"
    );
}

#[test]
fn down_then_back_on_the_same_port_with_its_tokens_and_faults() {
    let mut config = Config::standard();
    config
        .resource_servers
        .push(ResourceServer::opaque("https://short.authserver.test", "short", &["read"]).ttl(1));
    let mut s = AuthServer::start(&config);
    let gateway = config.client("gateway");
    let (port, issuer, jwks) = (s.port(), s.issuer().to_string(), s.jwks());
    let t = s.cc_token(&gateway, Some("read"), None);

    s.stop();
    assert!(!s.is_running());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    s.restart();
    assert_eq!(
        (s.port(), s.issuer(), s.jwks()),
        (port, issuer.as_str(), jwks)
    );
    let r = s.introspect(&gateway, &t).unwrap();
    assert_eq!(
        r["active"],
        json!(true),
        "a token from before the restart: {r}"
    );

    // Faults, per endpoint.
    s.set_fault(Some("introspection"), Fault::Status(503));
    let e = refused(s.introspect(&gateway, &t), "503 fault");
    assert_eq!(e.status, 503, "{e}");
    assert!(
        s.client_credentials(&gateway, None, None).is_ok(),
        "other endpoints unaffected"
    );
    s.set_fault(Some("introspection"), Fault::Garbage);
    let resp = s.post_form("/token/introspection", Some(&gateway), &[("token", &t)]);
    assert_eq!(resp.status, 200);
    assert!(
        serde_json::from_slice::<Value>(&resp.body).is_err(),
        "{resp}"
    );
    s.set_fault(None, Fault::Reset);
    let raw = common::http::Request::get("/jwks").try_send(s.port());
    assert!(raw.is_err(), "a reset gives no response: {raw:?}");
    s.set_fault(None, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    s.jwks();
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.set_fault(None, Fault::None);
    assert_eq!(s.introspect(&gateway, &t).unwrap()["active"], json!(true));
    let faulted = s.counts().client("gateway", "introspection");
    assert!(faulted >= 4, "faulted requests are counted: {faulted}");

    // A token past its `exp` is inactive (the server applies no clock skew there).
    let short = s.cc_token(
        &gateway,
        Some("read"),
        Some("https://short.authserver.test"),
    );
    assert_eq!(
        s.introspect(&gateway, &short).unwrap()["active"],
        json!(true)
    );
    assert!(
        eventually(Duration::from_secs(15), || s
            .introspect(&gateway, &short)
            .unwrap()["active"]
            == json!(false)),
        "a 1 s token is still active"
    );
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let err = AuthServer::try_start_json(json!({ "clients": [], "bogus": 1 }))
        .err()
        .unwrap();
    assert!(err.contains("unknown key config.bogus"), "{err}");
    let err = AuthServer::try_start_json(json!({ "clients": [{ "client_id": "a", "client_secret": "b", "token_endpoint_auth_method": "private_key_jwt" }] }))
        .err()
        .unwrap();
    assert!(
        err.contains("clients[0].token_endpoint_auth_method"),
        "{err}"
    );
}
