//! Token exchange in the instance core against a fake VM: a request on an exchange route is
//! paused, the root sends the exchange at its tick, and the answer resumes the stream with the
//! issued token in place of the user's; the next request with the same token is served from
//! the cache; a refusal is a 401, a server error a 503.

use serde_json::json;

use super::super::Filter;
use crate::host::fake::{Envoy, FakeHost, Sent};
use crate::host::Action;
use crate::mint;

const T0: u64 = 1_800_000_000_000;

fn config() -> Vec<u8> {
    json!({
        "providers": { "users": { "issuer": "https://idp.test/", "audiences": ["web"],
            "local_jwks": { "inline_string": mint::JWKS },
            "claim_to_headers": [ { "header_name": "x-user", "claim_name": "sub" } ] } },
        "token_exchanges": { "to-orders": {
            "http_uri": { "uri": "https://idp.test/token", "cluster": "idp", "timeout": "2s" },
            "client_id": "gateway", "client_secret": { "inline_string": "gateway-secret" }, "allow_inline_secret": true,
            "audience": "orders" } },
        "rules": [ { "match": { "prefix": "/orders" }, "requires": { "provider_name": "users" },
                     "token_exchange": "to-orders" } ]
    })
    .to_string()
    .into_bytes()
}

fn user(sub: &str) -> String {
    mint::token(
        "RS256",
        &json!({ "iss": "https://idp.test/", "aud": "web", "sub": sub,
                 "exp": T0 / 1000 + 3600 }),
    )
}

fn request(host: &FakeHost, filter: &mut Filter, id: u32, token: &str) -> Action {
    let bearer = format!("Bearer {token}");
    host.open(
        id,
        &[
            (":method", "GET"),
            (":path", "/orders/1"),
            (":authority", "api.test"),
            ("authorization", &bearer),
        ],
    );
    filter.on_request_headers(host, id)
}

fn answer(host: &FakeHost, filter: &mut Filter, sent: &Sent, status: u16, body: &str) {
    host.set_response(status, &[], body.as_bytes());
    filter.on_callout_response(host, sent.token, 1, body.len());
}

fn header(host: &FakeHost, id: u32, name: &str) -> Option<String> {
    host.stream(id)
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn a_request_waits_for_its_exchange_and_goes_on_with_the_issued_token() {
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    let mut filter = Filter::configure(&host, &config()).unwrap();
    let alice = user("alice");
    assert_eq!(request(&host, &mut filter, 2, &alice), Action::Pause);
    // Same token, another stream: it joins the exchange.
    assert_eq!(request(&host, &mut filter, 3, &alice), Action::Pause);
    assert!(
        host.take_sent().is_empty(),
        "a stream never sends a callout itself"
    );
    filter.on_tick(&host);
    let mut sent = host.take_sent();
    assert_eq!(sent.len(), 1, "one exchange for one user token: {sent:?}");
    let sent = sent.remove(0);
    assert_eq!(sent.cluster, "idp");
    assert_eq!(sent.header(":path"), Some("/token"));
    let body = String::from_utf8(sent.body.clone()).unwrap();
    assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"));
    assert!(body.contains(&format!("subject_token={alice}")), "{body}");
    answer(
        &host,
        &mut filter,
        &sent,
        200,
        r#"{"access_token":"issued.for.orders","token_type":"Bearer","expires_in":300}"#,
    );
    for id in [2, 3] {
        assert!(host.stream(id).continued, "stream {id} not resumed");
        assert_eq!(
            header(&host, id, "authorization").as_deref(),
            Some("Bearer issued.for.orders")
        );
        assert_eq!(header(&host, id, "x-user").as_deref(), Some("alice"));
    }
    assert_eq!(host.metric("jwt_authn_wasm.to-orders.exchange_success"), 1);
    // Again with the same token: from the cache, at once.
    assert_eq!(request(&host, &mut filter, 4, &alice), Action::Continue);
    assert_eq!(
        header(&host, 4, "authorization").as_deref(),
        Some("Bearer issued.for.orders")
    );
    filter.on_tick(&host);
    assert!(host.take_sent().is_empty());
    assert_eq!(
        host.metric("jwt_authn_wasm.to-orders.exchange_cache_hit"),
        1
    );
}

#[test]
fn a_refusal_is_a_401_and_a_server_error_a_503_and_nothing_is_forwarded() {
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    let mut filter = Filter::configure(&host, &config()).unwrap();
    for (id, sub, status, body, want) in [
        (2, "bob", 400, r#"{"error":"invalid_grant"}"#, 401),
        (3, "carol", 503, "unavailable", 503),
    ] {
        assert_eq!(request(&host, &mut filter, id, &user(sub)), Action::Pause);
        filter.on_tick(&host);
        let sent = host.take_sent().remove(0);
        answer(&host, &mut filter, &sent, status, body);
        let log = host.stream(id);
        let (code, headers, _) = log.reply.clone().expect("a local reply");
        assert_eq!(code, want, "{sub}");
        assert!(!log.continued);
        let challenge = headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.contains("invalid_token"));
        assert_eq!(challenge, want == 401, "{sub}: {headers:?}");
    }
    assert_eq!(
        host.metric("jwt_authn_wasm.to-orders.exchange_failed.refused"),
        1
    );
    assert_eq!(
        host.metric("jwt_authn_wasm.to-orders.exchange_failed.server_error"),
        1
    );
    // A callout the host refuses to send: 503 too.
    host.dispatch_fails.set(Some(1));
    assert_eq!(request(&host, &mut filter, 4, &user("dave")), Action::Pause);
    filter.on_tick(&host);
    assert_eq!(host.stream(4).reply.map(|r| r.0), Some(503));
}
