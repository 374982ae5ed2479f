//! Revocation (issue 15) in the instance core: the list is fetched from the root like a key
//! set (at configure, then every `cache_duration`), requests wait for the first one, a listed
//! token is refused, and a list past `max_staleness` fails closed.

use serde_json::{json, Value};

use super::*;
use crate::host::fake::{Envoy, FakeHost};
use crate::metrics;
use crate::mint;

const T0: u64 = 1_700_000_000_000;

fn configure(host: &FakeHost) -> Filter {
    let config = json!({
        "providers": { "p": {
            "issuer": "https://idp.test/",
            "local_jwks": { "inline_string": mint::JWKS },
            "revocation": { "http_uri": { "uri": "http://idp.test/revocations.json",
                                          "cluster": "idp", "timeout": "2s" },
                            "cache_duration": "1s", "max_staleness": "5s" } } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    })
    .to_string();
    Filter::configure(host, config.as_bytes()).unwrap()
}

fn request(host: &FakeHost, filter: &mut Filter, id: u32, sub: &str) -> Action {
    let token = mint::token(
        "ES256",
        &json!({ "iss": "https://idp.test/", "sub": sub, "exp": 4_000_000_000_u64 }),
    );
    let bearer = format!("Bearer {token}");
    host.open(
        id,
        &[
            (":method", "GET"),
            (":path", "/x"),
            (":authority", "api.test"),
            ("authorization", &bearer),
        ],
    );
    filter.on_request_headers(host, id)
}

fn list(issued_at: u64, subs: &[&str]) -> String {
    json!({ "issued_at": issued_at, "sub": subs }).to_string()
}

fn answer(host: &FakeHost, filter: &mut Filter, status: u16, body: &str) {
    let mut sent = host.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let sent = sent.remove(0);
    assert_eq!(
        (sent.cluster.as_str(), sent.header(":path")),
        ("idp", Some("/revocations.json"))
    );
    host.set_response(status, &[("etag", "\"v1\"")], body.as_bytes());
    filter.on_callout_response(host, sent.token, 2, body.len());
}

fn reply(host: &FakeHost, id: u32) -> Option<(u32, Value)> {
    host.stream(id)
        .reply
        .map(|(status, _, body)| (status, Value::String(String::from_utf8(body).unwrap())))
}

#[test]
fn requests_wait_for_the_first_list_and_a_listed_subject_is_401() {
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    let mut filter = configure(&host);
    assert_eq!(request(&host, &mut filter, 2, "alice"), Action::Pause);
    assert_eq!(request(&host, &mut filter, 3, "mallory"), Action::Pause);
    assert!(reply(&host, 2).is_none(), "waits for the list");
    filter.on_tick(&host);
    answer(&host, &mut filter, 200, &list(T0 / 1000, &["mallory"]));
    assert!(host.stream(2).continued, "alice is not listed");
    assert_eq!(
        reply(&host, 3),
        Some((401, Value::String("Jwt has been revoked".into())))
    );
    assert_eq!(host.metric(&metrics::revocation_fetch_success("p")), 1);
    assert_eq!(host.metric(&metrics::denied(Some("p"), "revoked")), 1);
    filter.on_tick(&host);
    assert_eq!(host.metric(&metrics::revocation_entries("p")), 1);
}

#[test]
fn a_new_list_revokes_within_cache_duration_and_a_stale_one_fails_closed() {
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    let mut filter = configure(&host);
    filter.on_tick(&host);
    answer(&host, &mut filter, 200, &list(T0 / 1000, &[]));
    assert_eq!(request(&host, &mut filter, 2, "alice"), Action::Continue);
    // One cache_duration later the list is fetched again, with its ETag, and now lists alice.
    envoy.advance(Duration::from_millis(1000));
    filter.on_tick(&host);
    let sent = host.sent.borrow().first().cloned().unwrap();
    assert_eq!(sent.header("if-none-match"), Some("\"v1\""));
    answer(&host, &mut filter, 200, &list(T0 / 1000 + 1, &["alice"]));
    assert_eq!(request(&host, &mut filter, 3, "alice"), Action::Pause);
    assert_eq!(reply(&host, 3).map(|r| r.0), Some(401));
    // The server fails from now on: the last good list serves until max_staleness (5 s).
    for _ in 0..4 {
        envoy.advance(Duration::from_millis(1000));
        filter.on_tick(&host);
        for sent in host.take_sent() {
            host.set_response(500, &[], b"");
            filter.on_callout_response(&host, sent.token, 1, 0);
        }
    }
    assert_eq!(request(&host, &mut filter, 4, "bob"), Action::Continue);
    envoy.advance(Duration::from_millis(2000));
    assert_eq!(request(&host, &mut filter, 5, "bob"), Action::Pause);
    assert_eq!(
        reply(&host, 5),
        Some((
            503,
            Value::String("Jwt revocation list is unavailable".into())
        ))
    );
    assert!(host.metric(&metrics::revocation_fetch_failed("p", "status")) >= 1);
    assert!(host.logged("revocation list of p: fetch failed"));
}
