//! Revocation (issue 15) in the instance core: the list is fetched from the root like a key
//! set (at configure, then every `cache_duration`), requests wait for the first one, a listed
//! token is refused, and a list past `max_staleness` fails closed.

use serde_json::{json, Value};

use super::test_vm::{self, Vm};
use super::*;

use crate::host::fake::{Envoy, FakeHost, Sent};
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

/// A token of the provider for subject `sub`.
fn token(sub: &str) -> String {
    mint::token(
        "ES256",
        &json!({ "iss": "https://idp.test/", "sub": sub, "exp": 4_000_000_000_u64 }),
    )
}

fn request(host: &FakeHost, filter: &mut Filter, id: u32, sub: &str) -> Action {
    test_vm::request(host, filter, id, &token(sub))
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

// One list fetch per Envoy (issue 15 through issue 12's resource): several fake VMs sharing
// one fake Envoy's shared data and clock.

/// A provider with a local key set and a revocation list (`cache_duration` 1 s,
/// `max_staleness` 5 s); `signed`: `require_signed`; `share`: `share_key_sets`.
fn list_config(signed: bool, share: bool) -> Vec<u8> {
    json!({
        "providers": { "p": {
            "issuer": "https://idp.test/",
            "local_jwks": { "inline_string": mint::JWKS },
            "revocation": { "http_uri": { "uri": "http://idp.test/revocations.json",
                                          "cluster": "idp", "timeout": "2s" },
                            "cache_duration": "1s", "max_staleness": "5s",
                            "require_signed": signed } } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "p" } }],
        "share_key_sets": share,
    })
    .to_string()
    .into_bytes()
}

/// A list signed with the provider's ES256 key (a compact JWS over the list document).
fn signed(issued_at: u64, subs: &[&str]) -> String {
    mint::token("ES256", &json!({ "issued_at": issued_at, "sub": subs }))
}

impl Vm {
    /// Decides a request for `sub` now (a fresh stream `id`): its status, 200 when let through.
    fn status_for(&mut self, id: u32, sub: &str) -> u32 {
        match self.request(id, &token(sub)) {
            Action::Continue => 200,
            Action::Pause => self.reply_status(id).unwrap_or(0),
        }
    }
}

/// Every list callout the VMs sent since last asked: (which VM, the callout).
fn list_fetches(vms: &[Vm]) -> Vec<(usize, Sent)> {
    vms.iter()
        .enumerate()
        .flat_map(|(i, vm)| vm.host.take_sent().into_iter().map(move |s| (i, s)))
        .collect()
}

/// The shared-data key that ends with `suffix` (`/version`, `/body`, `/lease`) of the list.
fn shared_key(envoy: &Envoy, suffix: &str) -> String {
    envoy
        .shared
        .borrow()
        .keys()
        .find(|k| k.contains("/revocation/") && k.ends_with(suffix))
        .cloned()
        .unwrap()
}

/// Writes `value` under `key` as any module of the `vm_id` namespace could.
fn forge(envoy: &Envoy, key: &str, value: &[u8]) {
    envoy
        .shared
        .borrow_mut()
        .insert(key.to_owned(), (value.to_vec(), 1_000_000));
}

#[test]
fn four_vms_make_one_list_fetch_per_period_and_all_refuse_a_newly_listed_subject() {
    let envoy = Envoy::new(T0);
    let config = list_config(false, true);
    let mut vms: Vec<Vm> = (0..4).map(|_| Vm::new(&envoy, &config)).collect();
    for vm in &mut vms {
        assert_eq!(vm.request(2, &token("alice")), Action::Pause, "cold start");
        vm.tick();
    }
    let mut fetches = list_fetches(&vms);
    assert_eq!(
        fetches.len(),
        1,
        "one fetch for the whole Envoy: {fetches:?}"
    );
    let (fetcher, sent) = fetches.remove(0);
    vms[fetcher].answer(&sent, 200, &list(T0 / 1000, &[]));
    for vm in &mut vms {
        vm.tick();
        assert!(
            vm.host.stream(2).continued,
            "every VM adopted the first list"
        );
    }
    assert!(list_fetches(&vms).is_empty(), "adopted, not fetched");
    let mut id = 10;
    for period in 1..=3_u64 {
        envoy.advance(Duration::from_millis(1000));
        for vm in &mut vms {
            vm.tick();
        }
        let mut fetches = list_fetches(&vms);
        assert_eq!(fetches.len(), 1, "period {period}: {fetches:?}");
        let (fetcher, sent) = fetches.remove(0);
        for (i, vm) in vms.iter().enumerate() {
            if i != fetcher {
                assert_eq!(
                    vm.host.tick.get(),
                    PEER_POLL,
                    "vm {i} follows the peer's fetch"
                );
            }
        }
        let listed: &[&str] = if period >= 2 { &["mallory"] } else { &[] };
        envoy.advance(Duration::from_millis(20));
        vms[fetcher].answer(&sent, 200, &list(T0 / 1000 + period, listed));
        envoy.advance(Duration::from_millis(50));
        for vm in &mut vms {
            vm.tick();
        }
        assert!(list_fetches(&vms).is_empty(), "period {period}: adopted");
        for (i, vm) in vms.iter_mut().enumerate() {
            id += 1;
            let want = if period >= 2 { 401 } else { 200 };
            assert_eq!(
                vm.status_for(id, "mallory"),
                want,
                "period {period}, vm {i}"
            );
        }
    }
    let fetched: u64 = vms
        .iter()
        .map(|vm| vm.host.metric(&metrics::revocation_fetch_success("p")))
        .max()
        .unwrap();
    assert_eq!(
        fetched, 4,
        "the counter is Envoy-wide: one success per period"
    );
}

#[test]
fn a_peers_signed_list_is_verified_by_the_adopter_and_a_badly_signed_one_is_refused() {
    let envoy = Envoy::new(T0);
    let config = list_config(true, true);
    let mut a = Vm::new(&envoy, &config);
    a.tick();
    let sent = a.host.take_sent().remove(0);
    a.answer(&sent, 200, &signed(T0 / 1000, &["mallory"]));
    assert_eq!(a.status_for(2, "mallory"), 401);
    // A VM that starts later adopts the signed list (verifying it) instead of fetching.
    let mut b = Vm::new(&envoy, &config);
    assert_eq!(b.request(2, &token("alice")), Action::Pause);
    b.tick();
    assert!(b.host.take_sent().is_empty(), "adopted, not fetched");
    assert!(b.host.stream(2).continued);
    assert_eq!(b.status_for(3, "mallory"), 401);
    // Someone in the namespace publishes a newer list that un-lists mallory, badly signed.
    envoy.advance(Duration::from_millis(300));
    let now = T0 + 300;
    let forged = mint::tampered(&signed(T0 / 1000 + 1, &[]));
    forge(&envoy, &shared_key(&envoy, "/body"), forged.as_bytes());
    forge(
        &envoy,
        &shared_key(&envoy, "/version"),
        format!("{now} 1000 -").as_bytes(),
    );
    b.tick();
    assert_eq!(
        b.status_for(4, "mallory"),
        401,
        "the forged list is not adopted"
    );
    // A new VM does not take it either: it fetches the list itself.
    let mut c = Vm::new(&envoy, &config);
    assert_eq!(c.request(2, &token("mallory")), Action::Pause);
    c.tick();
    let sent = c.host.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    c.answer(&sent[0], 200, &signed(T0 / 1000, &["mallory"]));
    assert_eq!(reply(&c.host, 2).map(|r| r.0), Some(401));
}

#[test]
fn an_older_list_in_shared_data_is_never_adopted() {
    let envoy = Envoy::new(T0);
    let config = list_config(false, true);
    let mut a = Vm::new(&envoy, &config);
    a.tick();
    let sent = a.host.take_sent().remove(0);
    a.answer(&sent, 200, &list(T0 / 1000 + 10, &["mallory"]));
    let mut b = Vm::new(&envoy, &config);
    b.tick();
    assert!(b.host.take_sent().is_empty());
    assert_eq!(b.status_for(2, "mallory"), 401);
    // A replayed older list (issued before the one in force) under a newer version record.
    envoy.advance(Duration::from_millis(300));
    let now = T0 + 300;
    forge(
        &envoy,
        &shared_key(&envoy, "/body"),
        list(T0 / 1000, &[]).as_bytes(),
    );
    forge(
        &envoy,
        &shared_key(&envoy, "/version"),
        format!("{now} 1000 -").as_bytes(),
    );
    a.tick();
    b.tick();
    assert_eq!(a.status_for(3, "mallory"), 401, "no rollback");
    assert_eq!(b.status_for(3, "mallory"), 401, "no rollback");
}

#[test]
fn a_list_lease_held_by_a_dead_vm_expires_and_another_vm_fetches() {
    let envoy = Envoy::new(T0);
    let config = list_config(false, true);
    let mut dead = Vm::new(&envoy, &config);
    dead.tick();
    let _lost = dead.host.take_sent(); // this VM dies before the answer comes
    let mut vm = Vm::new(&envoy, &config);
    assert_eq!(vm.request(2, &token("alice")), Action::Pause);
    vm.tick();
    assert!(vm.host.take_sent().is_empty(), "the lease is the dead VM's");
    assert_eq!(vm.host.tick.get(), PEER_POLL, "a waiting VM polls its peer");
    // The lease lasts the fetch timeout (2 s) plus 1 s.
    envoy.advance(Duration::from_millis(2900));
    vm.tick();
    assert!(vm.host.take_sent().is_empty(), "still held");
    envoy.advance(Duration::from_millis(200));
    vm.tick();
    let sent = vm.host.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    vm.answer(&sent[0], 200, &list(T0 / 1000, &[]));
    assert!(vm.host.stream(2).continued);
}

#[test]
fn without_share_key_sets_each_vm_fetches_its_list_and_shared_data_is_untouched() {
    let envoy = Envoy::new(T0);
    let config = list_config(false, false);
    let mut vms: Vec<Vm> = (0..2).map(|_| Vm::new(&envoy, &config)).collect();
    for vm in &mut vms {
        vm.tick();
    }
    let fetches = list_fetches(&vms);
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    for (i, sent) in &fetches {
        vms[*i].answer(sent, 200, &list(T0 / 1000, &["mallory"]));
        assert_eq!(vms[*i].status_for(2, "mallory"), 401);
    }
    assert!(
        envoy.shared.borrow().is_empty(),
        "{:?}",
        envoy.shared.borrow()
    );
}

#[test]
fn the_timer_wakes_at_the_lists_due_time_not_the_next_whole_tick() {
    let envoy = Envoy::new(T0);
    let mut vm = Vm::new(&envoy, &list_config(false, true));
    vm.tick();
    let sent = vm.host.take_sent().remove(0);
    // The answer comes 400 ms later: the list is due again at T0 + 1400.
    envoy.advance(Duration::from_millis(400));
    vm.answer(&sent, 200, &list(T0 / 1000, &[]));
    envoy.advance(Duration::from_millis(600));
    vm.tick();
    assert_eq!(
        vm.host.tick.get(),
        Duration::from_millis(400),
        "the next tick is at the due time"
    );
    assert!(vm.host.take_sent().is_empty(), "not due yet");
    envoy.advance(Duration::from_millis(400));
    vm.tick();
    assert_eq!(vm.host.take_sent().len(), 1, "fetched when due");
    // Nothing due sooner: back to TICK (the fetch in flight has no due time).
    assert_eq!(vm.host.tick.get(), TICK);
}
