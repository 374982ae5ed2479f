//! The instance core against fake VMs (`host::fake`): what a user sees (a stream continued or
//! answered, and with what) when key sets are fetched, shared between VMs, refreshed, lost.

use serde_json::{json, Value};

use super::test_vm::Vm;
use super::*;
use crate::error::AuthError;
use crate::host::fake::{Envoy, FakeHost, Sent};
use crate::metrics;
use crate::mint;

const T0: u64 = 1_700_000_000_000;

fn config(remote_jwks: Value) -> Vec<u8> {
    json!({
        "providers": { "p": { "issuer": "https://idp.test/", "remote_jwks": remote_jwks } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
    })
    .to_string()
    .into_bytes()
}

fn plain() -> Vec<u8> {
    config(json!({
        "http_uri": { "uri": "http://idp.test/jwks", "cluster": "idp", "timeout": "2s" },
        "cache_duration": "60s",
    }))
}

fn good() -> String {
    mint::token(
        "ES256",
        &json!({ "iss": "https://idp.test/", "sub": "alice", "exp": 4_000_000_000_u64 }),
    )
}

/// The fixture key set without the ES256 key `good` is signed with.
fn without_ec256() -> String {
    let mut jwks: Value = serde_json::from_str(mint::JWKS).unwrap();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != "ec256");
    jwks.to_string()
}

#[test]
fn a_request_at_cold_start_waits_for_the_first_fetch_and_is_let_through() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    assert_eq!(
        vm.host.tick.get(),
        POKE,
        "the first fetch is asked for at once"
    );
    assert_eq!(vm.request(2, &good()), Action::Pause);
    assert!(
        vm.host.take_sent().is_empty(),
        "a stream never sends a callout itself"
    );
    vm.tick();
    let sent = vm.sent_one();
    assert_eq!(
        (sent.cluster.as_str(), sent.header(":path")),
        ("idp", Some("/jwks"))
    );
    vm.answer(&sent, 200, mint::JWKS);
    let stream = vm.host.stream(2);
    assert!(stream.continued && stream.reply.is_none(), "{stream:?}");
    assert_eq!(vm.host.metric(&metrics::jwks_fetch_success("p")), 1);
    assert_eq!(vm.host.metric(&metrics::allowed(None)), 1);
    // Later requests are decided at once, and the timer is back to its slow period.
    assert_eq!(vm.request(3, &good()), Action::Continue);
    vm.tick();
    assert_eq!(vm.host.tick.get(), TICK);
}

#[test]
fn four_vms_make_one_fetch_and_the_others_adopt_its_key_set() {
    let envoy = Envoy::new(T0);
    let mut vms: Vec<Vm> = (0..4).map(|_| Vm::new(&envoy, &plain())).collect();
    for (i, vm) in vms.iter_mut().enumerate() {
        assert_eq!(vm.request(2 + i as u32, &good()), Action::Pause);
        vm.tick();
    }
    let sent: Vec<(usize, Sent)> = vms
        .iter()
        .enumerate()
        .flat_map(|(i, vm)| vm.host.take_sent().into_iter().map(move |s| (i, s)))
        .collect();
    assert_eq!(sent.len(), 1, "one fetch for the whole Envoy: {sent:?}");
    let (fetcher, callout) = &sent[0];
    vms[*fetcher].answer(callout, 200, mint::JWKS);
    for (i, vm) in vms.iter_mut().enumerate() {
        if i != *fetcher {
            assert!(!vm.host.stream(2 + i as u32).continued, "not before a tick");
            assert_eq!(vm.host.tick.get(), PEER_POLL, "a waiting VM polls its peer");
            vm.tick();
        }
        assert!(vm.host.stream(2 + i as u32).continued, "vm {i}");
        assert!(
            vm.host.take_sent().is_empty(),
            "vm {i} adopted, not fetched"
        );
    }
}

#[test]
fn a_lease_held_by_a_dead_vm_expires_and_another_vm_fetches() {
    let envoy = Envoy::new(T0);
    let mut dead = Vm::new(&envoy, &plain());
    dead.tick();
    let _lost = dead.sent_one(); // this VM dies before the answer comes
    let mut vm = Vm::new(&envoy, &plain());
    assert_eq!(vm.request(2, &good()), Action::Pause);
    vm.tick();
    assert!(vm.host.take_sent().is_empty(), "the lease is the dead VM's");
    // The lease lasts the fetch timeout (2 s) plus 1 s.
    envoy.advance(Duration::from_millis(3100));
    vm.tick();
    let sent = vm.sent_one();
    vm.answer(&sent, 200, mint::JWKS);
    assert!(vm.host.stream(2).continued);
}

#[test]
fn a_stream_that_goes_away_while_parked_is_never_resumed() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    assert_eq!(vm.request(2, &good()), Action::Pause);
    assert_eq!(vm.request(3, &good()), Action::Pause);
    vm.filter.on_stream_gone(2);
    vm.tick();
    let sent = vm.sent_one();
    vm.answer(&sent, 200, mint::JWKS);
    assert!(!vm.host.stream(2).continued && vm.reply_status(2).is_none());
    assert!(vm.host.stream(3).continued);
}

#[test]
fn oidc_discovery_finds_the_key_set_in_two_steps() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(
        &envoy,
        &config(
            json!({ "oidc_discovery": true, "http_uri": { "cluster": "idp", "timeout": "2s" } }),
        ),
    );
    assert_eq!(vm.request(2, &good()), Action::Pause);
    vm.tick();
    let discovery = vm.sent_one();
    assert_eq!(
        discovery.header(":path"),
        Some("/.well-known/openid-configuration")
    );
    let document = json!({ "issuer": "https://idp.test/", "jwks_uri": "https://idp.test/keys" });
    vm.answer(&discovery, 200, &document.to_string());
    assert!(!vm.host.stream(2).continued, "the keys are not there yet");
    let jwks = vm.sent_one();
    assert_eq!(
        (jwks.header(":path"), jwks.header(":authority")),
        (Some("/keys"), Some("idp.test"))
    );
    vm.answer(&jwks, 200, mint::JWKS);
    assert!(vm.host.stream(2).continued);
}

#[test]
fn a_reset_callout_at_cold_start_answers_401_fetch_failed_and_is_counted() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    assert_eq!(vm.request(2, &good()), Action::Pause);
    vm.tick();
    let sent = vm.sent_one();
    // No headers at all: the host reports a reset.
    vm.filter.on_callout_response(&vm.host, sent.token, 0, 0);
    let (status, _, body) = vm.host.stream(2).reply.unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (401, &b"Jwks remote fetch is failed"[..])
    );
    assert_eq!(vm.host.metric(&metrics::jwks_fetch_failed("p", "reset")), 1);
}

#[test]
fn a_dispatch_the_host_refuses_is_a_failed_fetch_not_a_hang() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    vm.host.dispatch_fails.set(Some(2));
    assert_eq!(vm.request(2, &good()), Action::Pause);
    vm.tick();
    assert_eq!(vm.reply_status(2), Some(401));
    assert_eq!(
        vm.host.metric(&metrics::jwks_fetch_failed("p", "dispatch")),
        1
    );
}

#[test]
fn a_refresh_that_fails_keeps_the_last_good_keys() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    vm.tick();
    let sent = vm.sent_one();
    vm.answer(&sent, 200, mint::JWKS);
    envoy.advance(Duration::from_secs(61));
    vm.tick();
    let refresh = vm.sent_one();
    vm.answer(&refresh, 500, "oops");
    assert_eq!(
        vm.host.metric(&metrics::jwks_fetch_failed("p", "status")),
        1
    );
    assert_eq!(
        vm.request(2, &good()),
        Action::Continue,
        "last good keys serve"
    );
    assert!(vm.reply_status(2).is_none());
    vm.tick();
    assert_eq!(vm.host.metric(&metrics::jwks_age_seconds("p")), 61);
}

#[test]
fn an_unknown_kid_refetches_once_within_its_budget() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    vm.tick();
    let sent = vm.sent_one();
    vm.answer(&sent, 200, &without_ec256());
    // The token's kid is not in the key set: one refetch, the stream waits for it.
    assert_eq!(vm.request(2, &good()), Action::Pause);
    assert_eq!(vm.host.tick.get(), POKE);
    assert_eq!(vm.host.metric(&metrics::jwks_unknown_kid_refetch("p")), 1);
    vm.tick();
    let refetch = vm.sent_one();
    vm.answer(&refetch, 200, &without_ec256());
    assert_eq!(vm.reply_status(2), Some(401));
    // Within the refetch interval the same kid is refused at once, with no fetch.
    assert_eq!(vm.request(3, &good()), Action::Pause);
    assert_eq!(vm.reply_status(3), Some(401));
    vm.tick();
    assert!(vm.host.take_sent().is_empty());
    assert_eq!(vm.host.metric(&metrics::jwks_unknown_kid_refetch("p")), 1);
}

#[test]
fn a_configuration_that_does_not_load_is_refused_with_its_reason_logged() {
    let envoy = Envoy::new(T0);
    let host = FakeHost::new(&envoy);
    assert!(Filter::configure(&host, b"{\"providers\": 1}").is_none());
    assert!(host.logged("providers"), "{:?}", host.lines.borrow());
    assert!(Filter::configure(&host, b"").is_none());
}

#[test]
fn shared_data_that_fails_still_lets_each_vm_fetch_for_itself() {
    let envoy = Envoy::new(T0);
    envoy.shared_fails.set(Some(2));
    let mut vm = Vm::new(&envoy, &plain());
    assert_eq!(vm.request(2, &good()), Action::Pause);
    vm.tick();
    let sent = vm.sent_one();
    vm.answer(&sent, 200, mint::JWKS);
    assert!(vm.host.stream(2).continued);
}

/// Issue 13: a route that needs no token (no rule, a rule without `requires`, a CORS preflight)
/// is decided without reading the clock, one host call less per request; a route with
/// `requires` reads it. Counted and answered as before either way.
#[test]
fn an_open_route_reads_no_clock_and_a_route_with_requires_does() {
    let config = json!({
        "providers": { "p": { "issuer": "https://idp.test/",
            "local_jwks": { "inline_string": mint::JWKS } } },
        "rules": [
            { "match": { "prefix": "/public" } },
            { "match": { "prefix": "/api" }, "requires": { "provider_name": "p" } }
        ],
        "bypass_cors_preflight": true,
    })
    .to_string()
    .into_bytes();
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &config);
    // Debug lines off, as in production: an unreadable request then logs nothing either.
    vm.host.level.set(Level::Info);
    let mut on = |id: u32, headers: &[(&str, &str)]| {
        vm.host.open(id, headers);
        let before = vm.host.clock_reads.get();
        let action = vm.filter.on_request_headers(&vm.host, id);
        let reply = vm.host.stream(id).reply.map(|(status, _, _)| status);
        (action, reply, vm.host.clock_reads.get() - before)
    };
    let get = |path: &'static str| [(":method", "GET"), (":path", path), (":authority", "a")];
    let bearer = format!("Bearer {}", good());
    // Open: a rule without requires, no rule at all, a preflight, an unreadable request.
    assert_eq!(on(1, &get("/public/x")), (Action::Continue, None, 0));
    assert_eq!(on(2, &get("/elsewhere")), (Action::Continue, None, 0));
    let preflight = [
        (":method", "OPTIONS"),
        (":path", "/api/x"),
        (":authority", "a"),
        ("origin", "https://o.test"),
        ("access-control-request-method", "GET"),
    ];
    assert_eq!(on(3, &preflight), (Action::Continue, None, 0));
    assert_eq!(
        on(4, &[(":method", "GET"), (":authority", "a")]),
        (Action::Pause, Some(400), 0)
    );
    // A route with requires reads the clock, with a token and without.
    let with_token = [
        (":method", "GET"),
        (":path", "/api/x"),
        (":authority", "a"),
        ("authorization", bearer.as_str()),
    ];
    let (action, reply, reads) = on(5, &with_token);
    assert_eq!((action, reply), (Action::Continue, None));
    assert!(reads >= 1, "a token is checked at the host's time");
    let (action, reply, reads) = on(6, &get("/api/x"));
    assert_eq!((action, reply), (Action::Pause, Some(401)));
    assert!(reads >= 1);
    // Counted as before: four allowed (three open, one with p's token), two denials.
    assert_eq!(vm.host.metric(&metrics::allowed(None)), 4);
    assert_eq!(vm.host.metric(&metrics::allowed(Some("p"))), 1);
    assert_eq!(
        vm.host.metric(&metrics::denied(
            None,
            AuthError::UnreadableRequest.reason()
        )),
        1
    );
    assert_eq!(
        vm.host
            .metric(&metrics::denied(None, AuthError::Missing.reason())),
        1
    );
}

/// Issue 13: a per-request line on an open route still gets its time (the rate limit's), read
/// then: an unreadable request logged at debug reads the clock once.
#[test]
fn an_open_route_that_logs_reads_the_clock_for_the_line() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &plain());
    vm.host.level.set(Level::Debug);
    vm.host.open(1, &[(":method", "GET"), (":authority", "a")]);
    let before = vm.host.clock_reads.get();
    assert_eq!(vm.filter.on_request_headers(&vm.host, 1), Action::Pause);
    assert_eq!(vm.reply_status(1), Some(400));
    assert_eq!(vm.host.clock_reads.get() - before, 1);
    assert!(vm.host.logged("400"), "{:?}", vm.host.lines.borrow());
}
