//! Revocation (issue 15) in the instance core as it stands: the check runs on the request path,
//! but the core does not fetch lists yet, so a provider with `revocation` fails closed. Guards
//! against the opposite (a configured list silently checking nothing) until the fetch is wired.

use serde_json::json;

use super::*;
use crate::host::fake::{Envoy, FakeHost};
use crate::metrics;
use crate::mint;

const T0: u64 = 1_700_000_000_000;

#[test]
fn a_provider_with_revocation_and_no_list_fails_closed_with_503() {
    let config = json!({
        "providers": { "p": {
            "issuer": "https://idp.test/",
            "local_jwks": { "inline_string": mint::JWKS },
            "revocation": { "http_uri": { "uri": "http://idp.test/revocations.json",
                                          "cluster": "idp", "timeout": "2s" } } } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    })
    .to_string();
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    let mut filter = Filter::configure(&host, config.as_bytes()).unwrap();
    let token = mint::token(
        "ES256",
        &json!({ "iss": "https://idp.test/", "sub": "alice", "exp": 4_000_000_000_u64 }),
    );
    let bearer = format!("Bearer {token}");
    host.open(
        2,
        &[
            (":method", "GET"),
            (":path", "/x"),
            (":authority", "api.test"),
            ("authorization", &bearer),
        ],
    );
    assert_eq!(filter.on_request_headers(&host, 2), Action::Pause);
    let (status, _, body) = host.stream(2).reply.unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (503, &b"Jwt revocation list is unavailable"[..])
    );
    assert_eq!(
        host.metric(&metrics::denied(Some("p"), "revocation_unavailable")),
        1
    );
}
