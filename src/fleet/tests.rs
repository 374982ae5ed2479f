//! Several fake VMs of one Envoy, sharing an in-memory shared-data store with Envoy's CAS
//! rules, run the protocol round by round on a controlled clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::json;

use super::*;
use crate::jwks::KeySet;
use crate::jwks_cache::{Availability, Fetched, RemoteKeys};
use crate::mint;

const T0: Millis = 1_700_000_000_000;
/// The provider's fetch timeout in `config` (2 s): a lease lasts it plus 1 s.
const LEASE: Millis = 3000;
const P: ProviderId = 0;

fn config(share: bool) -> Config {
    let v = json!({
        "providers": { "p": { "issuer": "https://issuer.test/", "remote_jwks": { "http_uri": {
            "uri": "http://idp.test/jwks", "cluster": "jwks", "timeout": "2s" } } } },
        "share_key_sets": share,
    });
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

/// Envoy's shared data (proxy-wasm-cpp-host `shared_data.cc`): every write takes a new CAS; a
/// non-zero CAS must match an existing key's, and is ignored for a key that does not exist.
#[derive(Default)]
struct Store {
    values: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    calls: usize,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<Store>>);

impl SharedData for Fake {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        let mut store = self.0.borrow_mut();
        store.calls += 1;
        Ok(store.values.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut store = self.0.borrow_mut();
        store.calls += 1;
        if let Some((_, current)) = store.values.get(key) {
            if cas != 0 && cas != *current {
                return Err(SetError::CasMismatch);
            }
        }
        store.next_cas += 1;
        let cas = store.next_cas;
        store.values.insert(key.to_owned(), (value.to_vec(), cas));
        Ok(())
    }
}

impl Fake {
    fn lease(&self) -> Lease {
        let store = self.0.borrow();
        let (_, (value, _)) = store
            .values
            .iter()
            .find(|(k, _)| k.ends_with("/lease"))
            .unwrap();
        Lease::parse(value).unwrap()
    }
}

/// Shared data where, just before this VM's next conditional write of a lease, VM `rival`
/// takes that lease (the race two workers can run).
struct Racing {
    inner: Fake,
    rival: Option<Lease>,
}

impl SharedData for Racing {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        self.inner.get(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        if cas != 0 && key.ends_with("/lease") {
            if let Some(rival) = self.rival.take() {
                self.inner.set(key, rival.encode().as_bytes(), 0)?;
            }
        }
        self.inner.set(key, value, cas)
    }
}

/// One fake VM: the glue's bookkeeping around `Fleet` (requested fetches, its own callouts,
/// its waiting streams).
struct Vm {
    fleet: Fleet,
    keys: Vec<Option<RemoteKeys>>,
    data: Fake,
    requested: Vec<ProviderId>,
    own: Vec<ProviderId>,
    waited: Vec<ProviderId>,
    fetches: usize,
}

impl Vm {
    /// A VM just configured, as `on_configure` leaves it: keys on the way, a fetch asked for,
    /// and a stream waiting for them.
    fn start(me: u64, data: &Fake, config: &Config) -> Vm {
        let Some(JwksSource::Remote(remote)) = config.providers.first().map(|p| &p.jwks) else {
            panic!("a remote provider")
        };
        let mut keys = RemoteKeys::new(remote.policy.clone());
        keys.fetch_started();
        Vm {
            fleet: Fleet::new(config, "plugin", me),
            keys: vec![Some(keys)],
            data: data.clone(),
            requested: vec![P],
            own: Vec::new(),
            waited: vec![P],
            fetches: 0,
        }
    }

    fn round(&mut self, now: Millis) -> Round {
        let mut data = self.data.clone();
        self.round_with(&mut data, now)
    }

    fn round_with(&mut self, data: &mut impl SharedData, now: Millis) -> Round {
        let requested = std::mem::take(&mut self.requested);
        let local = Local {
            requested: &requested,
            own: &self.own,
            waited: &self.waited,
        };
        let round = self.fleet.coordinate(data, &mut self.keys, &local, now);
        self.fetches += round.due.len();
        self.own.extend(&round.due);
        // What the glue does with `changed`: decide again; the streams stop waiting.
        if !round.changed.is_empty() {
            self.waited.clear();
        }
        round
    }

    fn keys(&self) -> &RemoteKeys {
        self.keys[P].as_ref().unwrap()
    }

    fn fetch_succeeded(&mut self, now: Millis) {
        let keys = self.keys[P].as_mut().unwrap();
        keys.fetch_succeeded(
            now,
            Fetched {
                keys: KeySet::from_json(mint::JWKS).unwrap(),
                ttl: Duration::from_secs(600),
            },
        );
        self.own.clear();
        let mut data = self.data.clone();
        self.fleet.publish(
            &mut data,
            P,
            self.keys(),
            Published::Body(mint::JWKS.as_bytes()),
        );
        self.waited.clear();
    }

    fn fetch_failed(&mut self, now: Millis) {
        self.keys[P].as_mut().unwrap().fetch_failed(now, 500);
        self.own.clear();
        let mut data = self.data.clone();
        self.fleet
            .publish(&mut data, P, self.keys(), Published::Failed);
        self.waited.clear();
    }

    fn ready(&self, now: Millis) -> bool {
        matches!(self.keys().availability(now), Availability::Ready(_))
    }
}

fn fleet(n: u64, data: &Fake, config: &Config) -> Vec<Vm> {
    (1..=n).map(|me| Vm::start(me, data, config)).collect()
}

#[test]
fn four_vms_make_one_fetch() {
    let (data, config) = (Fake::default(), config(true));
    let mut vms = fleet(4, &data, &config);
    let rounds: Vec<Round> = vms.iter_mut().map(|vm| vm.round(T0)).collect();
    assert_eq!(rounds[0].due, vec![P], "the first VM takes the lease");
    for round in &rounds[1..] {
        assert_eq!((round.due.len(), round.poll), (0, true), "the others poll");
    }
    vms[0].fetch_succeeded(T0 + 100);
    for vm in &mut vms[1..] {
        let round = vm.round(T0 + 150);
        assert_eq!(round.changed, vec![P]);
        assert!(!round.poll, "nothing waits any more");
        assert!(vm.ready(T0 + 150));
    }
    // Nobody fetches again before the refresh is due (4/5 of 600 s).
    for now in (T0 + 200..T0 + 470_000).step_by(10_000) {
        for vm in &mut vms {
            vm.round(now);
        }
    }
    let fetches: usize = vms.iter().map(|vm| vm.fetches).sum();
    assert_eq!(fetches, 1);
}

#[test]
fn a_peers_key_set_is_adopted() {
    let (data, config) = (Fake::default(), config(true));
    let mut a = Vm::start(1, &data, &config);
    assert_eq!(a.round(T0).due, vec![P]);
    a.fetch_succeeded(T0 + 100);
    // A VM that starts later asks for keys and gets the published ones instead of fetching.
    let mut b = Vm::start(2, &data, &config);
    let round = b.round(T0 + 5000);
    assert_eq!((round.due, round.changed), (vec![], vec![P]));
    assert!(b.ready(T0 + 5000));
    assert_eq!(
        b.keys().fetched_at(),
        Some(T0 + 100),
        "the peer's fetch time"
    );
    assert_eq!(b.keys().ttl(), Some(Duration::from_secs(600)));
}

#[test]
fn a_lease_held_by_a_dead_vm_expires() {
    let (data, config) = (Fake::default(), config(true));
    let mut dead = Vm::start(1, &data, &config);
    let mut b = Vm::start(2, &data, &config);
    assert_eq!(dead.round(T0).due, vec![P]); // and then it never answers
    let round = b.round(T0);
    assert_eq!((round.due.len(), round.poll), (0, true));
    let round = b.round(T0 + LEASE - 1);
    assert_eq!((round.due.len(), round.poll), (0, true), "still held");
    let round = b.round(T0 + LEASE);
    assert_eq!(round.changed, vec![P], "the wait ends");
    assert_eq!(
        round.due,
        vec![P],
        "and this VM fetches, at most timeout + 1 s late"
    );
    assert_eq!(data.lease().owner, 2);
}

#[test]
fn a_cas_mismatch_means_no_fetch_and_polling() {
    let (data, config) = (Fake::default(), config(true));
    let mut b = Vm::start(2, &data, &config);
    let rival = Lease {
        owner: 1,
        until: lease_until(T0, Duration::from_secs(2)),
        ..Lease::default()
    };
    let mut racing = Racing {
        inner: data.clone(),
        rival: Some(rival),
    };
    let round = b.round_with(&mut racing, T0);
    assert!(round.due.is_empty(), "another VM won the lease: no fetch");
    assert!(round.poll, "watch for the winner's fetch");
    assert!(b.keys().is_fetching(), "streams keep waiting for it");
    assert_eq!(data.lease(), rival);
    // The next rounds see the winner's lease: still no fetch.
    let round = b.round(T0 + 50);
    assert_eq!((round.due.len(), round.poll), (0, true));
}

#[test]
fn a_failed_fetch_releases_the_lease_and_peers_see_it() {
    let (data, config) = (Fake::default(), config(true));
    let (mut a, mut b) = (Vm::start(1, &data, &config), Vm::start(2, &data, &config));
    assert_eq!(a.round(T0).due, vec![P]);
    assert!(b.round(T0).poll);
    a.fetch_failed(T0 + 100);
    let retry_at = a.keys().retry_at();
    assert_eq!(retry_at, T0 + 100 + 1000, "retry_base 1 s, mid jitter");
    let lease = data.lease();
    assert_eq!(
        (lease.until, lease.failures, lease.retry_at),
        (0, 1, retry_at)
    );
    let round = b.round(T0 + 150);
    assert_eq!(
        round.changed,
        vec![P],
        "the waiting streams are decided again"
    );
    assert!(
        round.due.is_empty(),
        "the shared backoff holds for this VM too"
    );
    assert!(!round.poll);
    assert!(matches!(
        b.keys().availability(T0 + 150),
        Availability::Unavailable
    ));
    assert_eq!(b.keys().retry_at(), retry_at);
    assert!(b.round(retry_at - 1).due.is_empty());
    assert_eq!(
        b.round(retry_at).due,
        vec![P],
        "after the backoff, one VM fetches"
    );
    assert!(a.round(retry_at).due.is_empty(), "and only one");
}

#[test]
fn polling_only_while_streams_wait_for_a_peer() {
    let (data, config) = (Fake::default(), config(true));
    let (mut a, mut b) = (Vm::start(1, &data, &config), Vm::start(2, &data, &config));
    b.waited.clear();
    assert_eq!(a.round(T0).due, vec![P]);
    let round = b.round(T0);
    assert_eq!(
        (round.due.len(), round.poll),
        (0, false),
        "nothing waits: no polling"
    );
    b.waited.push(P);
    assert!(
        b.round(T0 + 1000).poll,
        "a stream waits for the peer's fetch"
    );
    assert!(
        !a.round(T0 + 1000).poll,
        "the holder never polls its own fetch"
    );
}

#[test]
fn a_forged_lease_does_not_stop_fetching() {
    let (data, config) = (Fake::default(), config(true));
    let mut vm = Vm::start(1, &data, &config);
    let forged = Lease {
        owner: 99,
        until: Millis::MAX,
        failures: 0,
        retry_at: Millis::MAX,
    };
    let key = format!(
        "{}/lease",
        vm.fleet.providers[0]
            .as_ref()
            .unwrap()
            .base
            .clone()
            .unwrap()
    );
    data.clone()
        .set(&key, forged.encode().as_bytes(), 0)
        .unwrap();
    assert_eq!(vm.round(T0).due, vec![P]);
}

#[test]
fn without_share_key_sets_each_vm_fetches_and_shared_data_is_untouched() {
    let (data, config) = (Fake::default(), config(false));
    let mut vms = fleet(2, &data, &config);
    for vm in &mut vms {
        assert_eq!(vm.round(T0).due, vec![P]);
    }
    vms[0].fetch_succeeded(T0 + 100);
    vms[1].fetch_failed(T0 + 100);
    assert_eq!(data.0.borrow().calls, 0);
}

#[test]
fn key_prefixes_name_plugin_provider_kind_and_url() {
    let fleet = Fleet::new(&config(true), "plugin", 1);
    let base = fleet.providers[0].as_ref().unwrap().base.clone().unwrap();
    let hash = fnv1a(&["jwks", "idp.test", "/jwks"]);
    assert_eq!(
        base,
        format!("{}/plugin/p/jwks/{hash:016x}", metrics::PREFIX)
    );
    assert_ne!(hash, fnv1a(&["jwks", "idp.test", "/jwks2"]));
}
