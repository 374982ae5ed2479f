//! Parking and resuming on their own: a real decision over remote keys that are on the way,
//! a fixed clock, no host.

use serde_json::json;

use super::*;
use crate::config::JwksSource;
use crate::jwks::KeySet;
use crate::jwks_cache::Fetched;
use crate::mint;
use crate::revocation::fetch::ProviderLists;
use crate::signature::PureRust;

const T0: Millis = 1_700_000_000_000;
const P: ProviderId = 0;

fn config() -> Config {
    let v = json!({
        "providers": { "p": { "issuer": "https://issuer.test/", "remote_jwks": { "http_uri": {
            "uri": "http://idp.test/jwks", "cluster": "jwks", "timeout": "2s" } } } },
        "rules": [ { "match": { "prefix": "/" }, "requires": { "provider_name": "p" } } ],
    });
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

/// Remote keys as `on_configure` leaves them: a fetch on the way, no keys yet.
fn pending(config: &Config) -> Vec<Option<RemoteKeys>> {
    let Some(JwksSource::Remote(remote)) = config.providers.first().map(|p| &p.jwks) else {
        panic!("a remote provider")
    };
    let mut keys = RemoteKeys::new(remote.policy.clone());
    keys.fetch_started();
    vec![Some(keys)]
}

fn request() -> RequestHeaders {
    let token = mint::token(
        "RS256",
        &json!({ "iss": "https://issuer.test/", "sub": "alice", "exp": T0 / 1000 + 3600 }),
    );
    RequestHeaders::new(vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), b"/api".to_vec()),
        (":authority".to_owned(), b"api.test".to_vec()),
        (
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        ),
    ])
}

/// One VM's state around `Parked`, as the glue keeps it; `decide` parks stream `id`.
struct Vm {
    config: Config,
    remote: Vec<Option<RemoteKeys>>,
    cache: TokenCache,
    parked: Parked,
    requested: Vec<ProviderId>,
    last: Parking,
}

impl Vm {
    fn new() -> Vm {
        let config = config();
        let remote = pending(&config);
        let cache = config.token_cache();
        Vm {
            config,
            remote,
            cache,
            parked: Parked::default(),
            requested: Vec::new(),
            last: Parking::default(),
        }
    }

    /// Whether stream `id` got a final decision (an allow: true; a deny: false); `None`: parked.
    fn decide(&mut self, id: u32, in_flight: bool) -> Option<bool> {
        let Vm {
            config,
            remote,
            cache,
            parked,
            requested,
            last,
        } = self;
        let vm = Deciding {
            remote,
            lists: &ProviderLists::new(config),
            signatures: &PureRust,
            cache,
            answers: &crate::introspection::Unwired,
            needed: &mut Vec::new(),
        };
        let decision = decide(config, vm, &request(), T0, |remote, wait| {
            *last = parked.park(
                id,
                wait,
                remote,
                requested,
                Fetching {
                    keys_in_flight: in_flight,
                    ..Fetching::default()
                },
                T0,
            );
            last.parked
        });
        decision.map(|d| matches!(d, Final::Allow { .. }))
    }

    fn keys_arrive(&mut self) {
        let keys = KeySet::from_json(mint::JWKS).unwrap();
        let fetched = Fetched {
            keys,
            ttl: std::time::Duration::from_secs(600),
        };
        self.remote[P]
            .as_mut()
            .unwrap()
            .fetch_succeeded(T0, fetched);
    }
}

#[test]
fn a_request_waits_for_keys_on_the_way_and_is_allowed_once_they_arrive() {
    let mut vm = Vm::new();
    assert_eq!(vm.decide(1, true), None, "parked");
    assert!(vm.last.parked && !vm.last.refetch && !vm.last.peer);
    vm.keys_arrive();
    assert_eq!(vm.parked.take(P), vec![1]);
    assert_eq!(vm.decide(1, false), Some(true));
    assert!(vm.parked.take(P).is_empty(), "resumed once");
}

#[test]
fn a_stream_that_goes_away_while_parked_is_not_resumed() {
    let mut vm = Vm::new();
    assert_eq!(vm.decide(1, true), None);
    assert_eq!(vm.decide(2, true), None);
    assert_eq!(vm.parked.providers(), vec![P, P]);
    vm.parked.gone(1);
    vm.keys_arrive();
    assert_eq!(vm.parked.take(P), vec![2], "only the stream still there");
}

#[test]
fn a_wait_for_a_peers_fetch_asks_to_poll_for_it() {
    let mut vm = Vm::new();
    assert_eq!(vm.decide(1, false), None);
    assert!(
        vm.last.peer,
        "neither our callout nor asked for: a peer fetches"
    );
}

#[test]
fn a_request_that_cannot_park_gets_a_final_decision() {
    let config = config();
    let mut remote = pending(&config);
    let mut cache = config.token_cache();
    let mut asked = 0;
    let vm = Deciding {
        remote: &mut remote,
        lists: &ProviderLists::new(&config),
        signatures: &PureRust,
        cache: &mut cache,
        answers: &crate::introspection::Unwired,
        needed: &mut Vec::new(),
    };
    let decision = decide(&config, vm, &request(), T0, |_, wait| {
        assert_eq!(wait.provider, P);
        asked += 1;
        false
    });
    assert_eq!(
        asked, 2,
        "a wait is asked at most once per provider, plus once"
    );
    let Some(Final::Deny { denial, .. }) = decision else {
        panic!("a final deny, not {decision:?}")
    };
    assert!(denial.status >= 400);
}

#[test]
fn nothing_on_the_way_is_not_parked() {
    let mut vm = Vm::new();
    vm.remote[P].as_mut().unwrap().fetch_failed(T0, 500);
    let wait = Wait {
        provider: P,
        kid: None,
    };
    let parking = vm.parked.park(
        1,
        &wait,
        &mut vm.remote,
        &mut vm.requested,
        Fetching::default(),
        T0,
    );
    assert_eq!(parking, Parking::default());
    assert!(vm.parked.providers().is_empty());
}
