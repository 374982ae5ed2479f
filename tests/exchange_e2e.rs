//! Token exchange (issue 16) end to end: a real Envoy with two listeners running our filter,
//! the gateway (users' tokens, exchanged with `to-orders`) and the orders service (tokens for
//! `orders` only), both in front of the echo upstream, and a real authorization server
//! (oidc-provider with RFC 8693, `common::authserver`) behind the cluster `authserver`.

// Tests fail by panicking.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use serde_json::{json, Value};

use common::authserver::{jwt_part, AuthServer, Config as ServerConfig, Fault, USER_ISSUER};
use common::bootstrap::{self, Listener, Side};
use common::envoy::Envoy;
use common::http::Request;
use common::upstream::Upstream;
use common::{mint, now};

const STRANGERS: &str = "https://strangers.example.com";

fn gateway(s: &AuthServer) -> Value {
    json!({
        "providers": {
            "users": { "issuer": USER_ISSUER, "audiences": ["web"],
                       "local_jwks": { "inline_string": mint::JWKS },
                       "claim_to_headers": [ { "header_name": "x-user", "claim_name": "sub" } ] },
            "strangers": { "issuer": STRANGERS, "audiences": ["web"],
                           "local_jwks": { "inline_string": mint::JWKS } },
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
        "rules": [ { "match": { "prefix": "/orders" },
                     "requires": { "requires_any": { "requirements": [
                         { "provider_name": "users" }, { "provider_name": "strangers" } ] } },
                     "token_exchange": "to-orders" } ]
    })
}

fn orders_service(s: &AuthServer) -> Value {
    json!({
        "providers": {
            "internal": { "issuer": s.issuer(), "audiences": ["orders"],
                          "local_jwks": { "inline_string": s.jwks() } },
            "users": { "issuer": USER_ISSUER, "audiences": ["orders"],
                       "local_jwks": { "inline_string": mint::JWKS } }
        },
        "rules": [ { "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
            { "provider_name": "internal" }, { "provider_name": "users" } ] } } } ]
    })
}

fn user_token(iss: &str, sub: &str) -> String {
    mint::token(
        "RS256",
        &json!({ "iss": iss, "sub": sub, "aud": "web", "scope": "orders:read orders:write",
                 "iat": now(), "exp": now() + 600 }),
    )
}

fn start(s: &AuthServer) -> (Upstream, Envoy) {
    let upstream = Upstream::start();
    let boot = bootstrap::bootstrap(
        &[
            Listener::new("gateway", Side::Wasm, &gateway(s)),
            Listener::new("orders", Side::Wasm, &orders_service(s)),
        ],
        upstream.port(),
    );
    let boot = bootstrap::with_cluster(&boot, "authserver", s.port());
    let envoy = Envoy::start(&boot);
    (upstream, envoy)
}

#[test]
fn the_gateway_exchanges_once_per_user_token_and_the_orders_service_accepts_only_that() {
    let s = AuthServer::start(&ServerConfig::standard());
    let (_upstream, envoy) = start(&s);
    let alice = user_token(USER_ISSUER, "alice");
    let before = s.counts();

    let resp = Request::get("/orders/1")
        .bearer(&alice)
        .send(envoy.port("gateway"));
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let echo = resp.upstream();
    let forwarded = echo.header("authorization").expect("a token upstream");
    let token = forwarded.strip_prefix("Bearer ").unwrap().to_owned();
    assert_ne!(token, alice, "the user's token reached the upstream");
    let claims = jwt_part(&token, 1).unwrap();
    assert_eq!(claims["aud"], json!("orders"), "{claims}");
    assert_eq!(claims["sub"], json!("alice"), "{claims}");
    assert_eq!(claims["scope"], json!("orders:read"), "{claims}");
    assert_eq!(claims["act"], json!({ "sub": "gateway" }), "{claims}");
    assert_eq!(echo.header("x-user"), Some("alice"));

    // The same user token again: the same issued token, no second exchange.
    let again = Request::get("/orders/2")
        .bearer(&alice)
        .send(envoy.port("gateway"));
    assert_eq!(again.status, 200);
    assert_eq!(
        again.upstream().header("authorization"),
        Some(forwarded),
        "a second exchange"
    );
    let after = s.counts();
    let grew = |grant: &str| after.grant(grant) - before.grant(grant);
    assert_eq!(grew(common::authserver::EXCHANGE_GRANT), 1, "{:?}", after.0);
    assert_eq!(grew("client_credentials"), 1, "{:?}", after.0);
    assert_eq!(
        envoy.stat("wasmcustom.jwt_authn_wasm.to-orders.exchange_success"),
        Some(1)
    );
    assert_eq!(
        envoy.stat("wasmcustom.jwt_authn_wasm.to-orders.exchange_cache_hit"),
        Some(1)
    );

    // The orders service: the exchanged token passes, the user's original one does not.
    let ok = Request::get("/o/1")
        .bearer(&token)
        .send(envoy.port("orders"));
    assert_eq!(ok.status, 200, "{}", ok.body_str());
    let original = Request::get("/o/1")
        .bearer(&alice)
        .send(envoy.port("orders"));
    assert_eq!(original.status, 403, "{}", original.body_str());

    // A subject token the server refuses: 401, nothing forwarded.
    let stranger = user_token(STRANGERS, "mallory");
    let refused = Request::get("/orders/1")
        .bearer(&stranger)
        .send(envoy.port("gateway"));
    assert_eq!(refused.status, 401, "{}", refused.body_str());
    assert!(
        refused.echo().is_none(),
        "a refused request reached the upstream"
    );
    assert!(refused
        .header("www-authenticate")
        .is_some_and(|v| v.contains("invalid_token")));

    // The server failing: 503, nothing forwarded; never the original token instead.
    s.set_fault(Some("token"), Fault::Status(503));
    let bob = user_token(USER_ISSUER, "bob");
    let down = Request::get("/orders/1")
        .bearer(&bob)
        .send(envoy.port("gateway"));
    assert_eq!(down.status, 503, "{}", down.body_str());
    assert!(
        down.echo().is_none(),
        "a request reached the upstream without its exchange"
    );
    s.set_fault(None, Fault::None);
}
