//! Opaque tokens through the instance core against a fake VM: the stream pauses, the root
//! sends one introspection at its next tick, the answer resumes every stream that waited,
//! with what a user sees (continued with the identity header, or answered).

use serde_json::json;

use crate::filter::test_vm::Vm;
use crate::host::fake::Envoy;
use crate::host::Action;

const T0: u64 = 1_700_000_000_000;

fn config(failure_policy: serde_json::Value) -> Vec<u8> {
    json!({
        "providers": { "opaque": {
            "issuer": "https://idp.test",
            "introspection": {
                "http_uri": { "uri": "http://idp.test/introspect", "cluster": "idp", "timeout": "2s" },
                "client_id": "gw",
                "client_secret": { "inline_string": "gw-secret" },
                "allow_inline_secret": true
            },
            "claim_to_headers": [{ "header_name": "x-client-id", "claim_name": "client_id" }]
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "opaque" } }],
        "failure_policy": failure_policy,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn fifty_streams_with_one_new_token_make_one_introspection_and_all_continue() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &config(json!({})));
    for id in 1..=50 {
        assert_eq!(vm.request(id, "opaque-1"), Action::Pause, "stream {id}");
    }
    assert!(
        vm.host.take_sent().is_empty(),
        "streams never send a callout themselves"
    );
    vm.filter.on_tick(&vm.host);
    let sent = vm.host.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let call = &sent[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.header(":path"), Some("/introspect"));
    assert!(String::from_utf8_lossy(&call.body).contains("token=opaque-1"));
    vm.answer(
        call,
        200,
        r#"{"active":true,"client_id":"shop","iss":"https://idp.test"}"#,
    );
    for id in 1..=50 {
        let s = vm.host.stream(id);
        assert!(s.continued && s.reply.is_none(), "stream {id}: {s:?}");
        assert_eq!(vm.header(id, "x-client-id").as_deref(), Some("shop"));
    }
    // From the cache now: decided at once, no callout.
    assert_eq!(vm.request(51, "opaque-1"), Action::Continue);
    vm.filter.on_tick(&vm.host);
    assert!(vm.host.take_sent().is_empty());
    assert_eq!(
        vm.host
            .metric("jwt_authn_wasm.opaque.introspection_success"),
        1
    );
    assert_eq!(
        vm.host
            .metric("jwt_authn_wasm.opaque.introspection_cache_miss"),
        50
    );
}

#[test]
fn inactive_is_401_and_refused_credentials_503_with_a_warning_naming_the_provider() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &config(json!({})));
    assert_eq!(vm.request(1, "revoked"), Action::Pause);
    vm.filter.on_tick(&vm.host);
    let sent = vm.host.take_sent();
    vm.answer(&sent[0], 200, r#"{"active":false}"#);
    let reply = vm.host.stream(1).reply.unwrap();
    assert_eq!(
        (reply.0, reply.2.as_slice()),
        (401, &b"Token is not active"[..])
    );

    assert_eq!(vm.request(2, "other"), Action::Pause);
    vm.filter.on_tick(&vm.host);
    let sent = vm.host.take_sent();
    vm.answer(&sent[0], 401, r#"{"error":"invalid_client"}"#);
    assert_eq!(vm.host.stream(2).reply.map(|r| r.0), Some(503));
    assert!(vm.host.logged("provider `opaque`"));
    assert!(!vm.host.logged("gw-secret"));
    assert_eq!(
        vm.host
            .metric("jwt_authn_wasm.opaque.introspection_failed.client_rejected"),
        1
    );
    // Not cached: the next request asks again.
    assert_eq!(vm.request(3, "other"), Action::Pause);
    vm.filter.on_tick(&vm.host);
    assert_eq!(vm.host.take_sent().len(), 1);
}

#[test]
fn a_reset_or_a_refused_dispatch_is_503_and_a_gone_stream_is_not_resumed() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &config(json!({})));
    assert_eq!(vm.request(1, "t1"), Action::Pause);
    assert_eq!(vm.request(2, "t1"), Action::Pause);
    vm.host.close(2);
    vm.filter.on_stream_gone(2);
    vm.filter.on_tick(&vm.host);
    let sent = vm.host.take_sent();
    // No headers: the call failed (reset, timeout).
    vm.filter.on_callout_response(&vm.host, sent[0].token, 0, 0);
    assert_eq!(vm.host.stream(1).reply.map(|r| r.0), Some(503));
    assert_eq!(vm.host.stream(2).reply, None);

    vm.host.dispatch_fails.set(Some(1));
    assert_eq!(vm.request(3, "t3"), Action::Pause);
    vm.filter.on_tick(&vm.host);
    assert_eq!(vm.host.stream(3).reply.map(|r| r.0), Some(503));
}
