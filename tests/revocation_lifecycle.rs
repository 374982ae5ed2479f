//! One VM's revocation lists over time, natively (issue 15): the fetch state
//! (`revocation::fetch::ProviderLists`) answering the engine's `KeyStore::revocation`, driven
//! by a millisecond clock against a list server the test controls. What a client sees at each
//! moment: cold start waits, a newly revoked token (cached or not) is refused within one
//! `cache_duration`, a server down past `max_staleness` gives 503 and recovers, a badly signed
//! list is refused and the last good one kept. The same sequence runs end to end once the
//! instance core fetches (see the README, "Revocation").

// Tests fail by panicking.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use jwt_authn_wasm::config::{Config, JwksSource, ProviderId};
use jwt_authn_wasm::engine::{decide_in, Availability, Decision, KeyStore, ListAvailability, Vm};
use jwt_authn_wasm::jwks_cache::Millis;
use jwt_authn_wasm::request::RequestHeaders;
use jwt_authn_wasm::revocation::fetch::{key_set_verifier, ListResponse, ProviderLists};
use jwt_authn_wasm::signature::PureRust;
use jwt_authn_wasm::token_cache::TokenCache;
use serde_json::{json, Value};

#[path = "common/mint.rs"]
mod mint;

/// 2023-11-14T22:13:20Z in milliseconds.
const T0: Millis = 1_700_000_000_000;
const S: Millis = 1000;
const ISS: &str = "https://idp.example.com";

fn config(require_signed: bool) -> Config {
    let json = json!({
        "providers": { "idp": {
            "issuer": ISS,
            "local_jwks": { "inline_string": mint::JWKS },
            "jwt_cache_config": { "jwt_cache_size": 10 },
            "revocation": {
                "http_uri": { "uri": "https://idp.example.com/revocations.json",
                              "cluster": "idp", "timeout": "2s" },
                "cache_duration": "1s",
                "max_staleness": "5s",
                "require_signed": require_signed
            }
        } },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }]
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

/// The list server the test controls; down, the callout is reset.
struct Server {
    up: bool,
    body: String,
    etag: Option<String>,
    fetches: usize,
}

impl Server {
    fn new(doc: Value) -> Server {
        Server {
            up: true,
            body: doc.to_string(),
            etag: None,
            fetches: 0,
        }
    }
}

/// One VM: the configuration, its lists, its verified-token cache.
struct Vm1 {
    config: Config,
    lists: ProviderLists,
    cache: TokenCache,
}

impl Vm1 {
    fn new(config: Config) -> Vm1 {
        Vm1 {
            lists: ProviderLists::new(&config),
            cache: config.token_cache(),
            config,
        }
    }

    /// Starts the fetches that are due (the timer).
    fn start_due(&mut self, now: Millis) -> Vec<ProviderId> {
        let due = self.lists.due(now);
        for &p in &due {
            self.lists.get_mut(p).unwrap().fetch_started();
        }
        due
    }

    /// The fetch of `provider` comes back from `server` at `now`.
    fn answer(&mut self, provider: ProviderId, server: &mut Server, now: Millis) {
        server.fetches += 1;
        let keys = match &self.config.providers[provider].jwks {
            JwksSource::Local(keys) => Some(&**keys),
            JwksSource::Remote(_) => None,
        };
        let asked = self.lists.get(provider).unwrap().etag().map(str::to_owned);
        let not_modified = asked.is_some() && asked == server.etag;
        let response = match (server.up, not_modified) {
            (false, _) => ListResponse::default(),
            (true, true) => ListResponse {
                status: Some("304"),
                ..ListResponse::default()
            },
            (true, false) => ListResponse {
                status: Some("200"),
                body_size: server.body.len(),
                body: server.body.as_bytes(),
                etag: server.etag.as_deref(),
                cache_control: None,
            },
        };
        let list = self.lists.get_mut(provider).unwrap();
        let _ = list.fetch_done(now, response, key_set_verifier(keys, &PureRust), 0);
    }

    /// Runs the timer at `now`: every due fetch, answered at once.
    fn tick(&mut self, server: &mut Server, now: Millis) {
        for p in self.start_due(now) {
            self.answer(p, server, now);
        }
    }

    fn request(&mut self, token: &str, now: Millis) -> (u32, String) {
        let headers = RequestHeaders::new(vec![
            (":method".to_owned(), b"GET".to_vec()),
            (":path".to_owned(), b"/orders".to_vec()),
            (":authority".to_owned(), b"api.test".to_vec()),
            (":scheme".to_owned(), b"http".to_vec()),
            (
                "authorization".to_owned(),
                format!("Bearer {token}").into_bytes(),
            ),
        ]);
        let Vm1 {
            config,
            lists,
            cache,
        } = self;
        let view = Vm1view { config, lists };
        let store = ViewStore { vm: &view, now };
        let vm = Vm {
            keys: &store,
            signatures: &PureRust,
            cache,
        };
        match decide_in(config, vm, &headers, (now / 1000) as i64) {
            Decision::Allow { .. } => (200, String::new()),
            Decision::Deny { denial, .. } => (denial.status, denial.body.to_owned()),
            Decision::Wait(_) => (0, "wait".to_owned()),
        }
    }
}

/// The parts of a `Vm1` a decision reads while its cache is lent out.
struct Vm1view<'v> {
    config: &'v Config,
    lists: &'v ProviderLists,
}

struct ViewStore<'v> {
    vm: &'v Vm1view<'v>,
    now: Millis,
}

impl KeyStore for ViewStore<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        self.vm.config.keys(provider)
    }
    fn revocation(&self, provider: ProviderId) -> ListAvailability<'_> {
        self.vm.lists.availability(provider, self.now)
    }
}

fn token(sub: &str, jti: &str, iat: Millis) -> String {
    mint::token(
        "RS256",
        &json!({ "iss": ISS, "sub": sub, "jti": jti, "iat": iat / 1000,
                 "exp": T0 / 1000 + 3600 }),
    )
}

fn revoked() -> (u32, String) {
    (401, "Jwt has been revoked".to_owned())
}

fn ok() -> (u32, String) {
    (200, String::new())
}

#[test]
fn cold_start_waits_then_revoked_jti_and_sub_are_refused_within_one_cache_duration() {
    let mut server = Server::new(json!({ "issued_at": T0 / 1000 - 60 }));
    let mut vm = Vm1::new(config(false));
    let bob = token("bob", "j-bob", T0 - 60 * S);
    let carol = token("carol", "j-carol", T0 - 60 * S);
    // At load: the first fetch starts; a request meanwhile waits for it.
    let due = vm.start_due(T0);
    assert_eq!(due.len(), 1);
    assert_eq!(vm.request(&bob, T0), (0, "wait".to_owned()));
    vm.answer(due[0], &mut server, T0 + 50);
    assert_eq!(vm.request(&bob, T0 + 60), ok());
    assert_eq!(vm.request(&carol, T0 + 60), ok());
    // The identity team revokes bob's token by jti and carol by sub at T0 + 100 ms.
    server.body = json!({ "issued_at": T0 / 1000, "jti": ["j-bob"], "sub": ["carol"] }).to_string();
    let published = T0 + 100;
    let mut refused_at = None;
    let mut now = published;
    while now <= published + 2 * S {
        vm.tick(&mut server, now);
        if vm.request(&bob, now) == revoked() && vm.request(&carol, now) == revoked() {
            refused_at = Some(now);
            break;
        }
        now += 50;
    }
    let latency = refused_at.expect("never refused") - published;
    assert!(
        latency <= S,
        "revocation latency {latency} ms > cache_duration"
    );
    // Bob's token was in the verified-token cache: refused all the same. Another token is fine.
    assert_eq!(vm.request(&token("dave", "j-dave", T0), now), ok());
}

#[test]
fn issued_before_refuses_alices_old_tokens_and_accepts_one_issued_afterwards() {
    let cutoff = T0 / 1000 - 10;
    let mut server = Server::new(json!({ "issued_at": T0 / 1000,
        "issued_before": { "sub": { "alice": cutoff } } }));
    let mut vm = Vm1::new(config(false));
    vm.tick(&mut server, T0);
    assert_eq!(
        vm.request(&token("alice", "a1", T0 - 60 * S), T0),
        revoked()
    );
    assert_eq!(vm.request(&token("alice", "a2", T0 - 10 * S), T0), ok());
    assert_eq!(vm.request(&token("bob", "b1", T0 - 60 * S), T0), ok());
}

#[test]
fn the_server_down_past_max_staleness_is_503_and_recovers() {
    let mut server = Server::new(json!({ "issued_at": T0 / 1000, "jti": ["gone"] }));
    let mut vm = Vm1::new(config(false));
    let good = token("bob", "j1", T0);
    vm.tick(&mut server, T0);
    assert_eq!(vm.request(&good, T0), ok());
    server.up = false;
    let mut now = T0;
    // The last good list serves for max_staleness (5 s) after the last fetch.
    while now <= T0 + 5 * S {
        vm.tick(&mut server, now);
        assert_eq!(vm.request(&good, now), ok(), "at +{} ms", now - T0);
        assert_eq!(vm.request(&token("x", "gone", T0), now), revoked());
        now += 250;
    }
    vm.tick(&mut server, now);
    assert_eq!(
        vm.request(&good, now),
        (503, "Jwt revocation list is unavailable".to_owned())
    );
    let fetches_while_down = server.fetches;
    assert!(
        fetches_while_down < 12,
        "backoff: {fetches_while_down} fetches in 5 s"
    );
    // Back up: the next attempt (at most cache_duration x 1.2 later) recovers.
    server.up = true;
    server.body = json!({ "issued_at": T0 / 1000 + 6 }).to_string();
    let mut recovered = false;
    for _ in 0..30 {
        now += 50;
        vm.tick(&mut server, now);
        if vm.request(&good, now) == ok() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "no recovery within 1.5 s");
}

#[test]
fn a_badly_signed_list_is_refused_and_the_last_good_one_kept() {
    let signed = |doc: &Value, key| {
        mint::sign(
            &json!({ "alg": "RS256", "kid": "rsa-a" }),
            doc,
            "RS256",
            key,
        )
    };
    let first = json!({ "issued_at": T0 / 1000, "jti": ["j-old"] });
    let mut server = Server::new(json!({}));
    server.body = signed(&first, mint::Key::RsaA);
    let mut vm = Vm1::new(config(true));
    vm.tick(&mut server, T0);
    assert_eq!(vm.request(&token("bob", "j-old", T0), T0), revoked());
    // A forged list that would un-revoke j-old, signed with a key the provider does not have.
    let forged = json!({ "issued_at": T0 / 1000 + 5 });
    server.body = signed(&forged, mint::Key::RsaWeak);
    vm.tick(&mut server, T0 + S);
    assert_eq!(vm.request(&token("bob", "j-old", T0), T0 + S), revoked());
    // Unsigned, under require_signed: refused too.
    server.body = forged.to_string();
    vm.tick(&mut server, T0 + 3 * S);
    assert_eq!(
        vm.request(&token("bob", "j-old", T0), T0 + 3 * S),
        revoked()
    );
    assert_eq!(server.fetches, 3, "both bad lists were fetched");
    let list = vm.lists.get(0).unwrap();
    assert_eq!((list.failures(), list.entries()), (2, 1));
}

#[test]
fn a_304_keeps_the_list_and_its_age_restarts() {
    let mut server = Server::new(json!({ "issued_at": T0 / 1000, "jti": ["j1"] }));
    server.etag = Some("\"v1\"".to_owned());
    let mut vm = Vm1::new(config(false));
    vm.tick(&mut server, T0);
    // The server would now send a body that does not even read: a 304 never reads one.
    server.body = "garbage".to_owned();
    for i in 1..=10 {
        vm.tick(&mut server, T0 + i * S);
    }
    assert_eq!(server.fetches, 11, "one fetch per cache_duration");
    let list = vm.lists.get(0).unwrap();
    assert_eq!(list.age_seconds(T0 + 10 * S), Some(0));
    assert_eq!(list.entries(), 1);
    assert_eq!(vm.request(&token("b", "j1", T0), T0 + 10 * S), revoked());
}
