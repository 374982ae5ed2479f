//! The callout bookkeeping on its own: scripted responses, an in-memory shared data, a fixed
//! clock; what a user would see is the provider's keys (ready, kept, none) and what is logged.

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::fleet::SetError;
use crate::mint;

const T0: Millis = 1_700_000_000_000;
const P: ProviderId = 0;

fn config(remote_jwks: serde_json::Value) -> Config {
    let v = json!({ "providers": { "p": {
        "issuer": "https://idp.test/realms/x/", "remote_jwks": remote_jwks } } });
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

fn plain() -> Config {
    config(
        json!({ "http_uri": { "uri": "http://idp.test/jwks", "cluster": "idp", "timeout": "2s" } }),
    )
}

fn discovery() -> Config {
    config(json!({ "oidc_discovery": true, "http_uri": { "cluster": "idp", "timeout": "2s" } }))
}

#[derive(Default)]
struct Data(HashMap<String, Vec<u8>>);

impl SharedData for Data {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        Ok(self.0.get(key).map(|v| (v.clone(), 1)))
    }

    fn set(&mut self, key: &str, value: &[u8], _cas: u32) -> Result<(), SetError> {
        self.0.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

/// A scripted response; counts how often the host was asked for a part.
struct Answer {
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    reads: Cell<usize>,
}

impl Answer {
    fn new(status: &str, body: &str) -> Answer {
        Answer {
            headers: vec![(":status", status.to_owned())],
            body: body.as_bytes().to_vec(),
            reads: Cell::new(0),
        }
    }
}

impl ResponseParts for Answer {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes().to_vec())
    }

    fn body(&self, size: usize) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        Some(self.body.iter().take(size).copied().collect())
    }
}

/// One VM's state around `Callouts`, as the glue keeps it.
struct Vm {
    config: Config,
    remote: Vec<Option<RemoteKeys>>,
    fleet: Fleet,
    lists: ProviderLists,
    list_fleet: Fleet,
    data: Data,
    callouts: Callouts,
    next_token: u32,
}

impl Vm {
    fn new(config: Config, share: bool) -> Vm {
        let mut config = config;
        config.share_key_sets = share;
        let remote = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(r) => Some(RemoteKeys::new(r.policy.clone())),
                JwksSource::Local(_) => None,
            })
            .collect();
        let fleet = Fleet::new(&config, "plugin", 7);
        let callouts = Callouts::new(config.providers.len());
        Vm {
            lists: ProviderLists::new(&config),
            list_fleet: Fleet::for_lists(&config, "plugin", 7),
            config,
            remote,
            fleet,
            data: Data::default(),
            callouts,
            next_token: 4,
        }
    }

    fn with<T>(
        &mut self,
        now: Millis,
        f: impl FnOnce(&mut Callouts, &mut Resources<'_, Data>) -> T,
    ) -> T {
        let mut keys = Resources {
            config: &self.config,
            remote: &mut self.remote,
            fleet: &self.fleet,
            lists: &mut self.lists,
            list_fleet: &self.list_fleet,
            signatures: &crate::signature::PureRust,
            data: &mut self.data,
            jitter: 500,
            now,
        };
        f(&mut self.callouts, &mut keys)
    }

    /// Sends provider P's next request as the host would (tokens 4, 8, ...); its token.
    fn send(&mut self, now: Millis) -> (Request, u32) {
        let request = self.callouts.request(&self.config, P).unwrap();
        self.send_request(request, now)
    }

    fn send_request(&mut self, request: Request, now: Millis) -> (Request, u32) {
        let token = self.next_token;
        self.next_token += 4;
        if let Some(remote) = self.remote[P].as_mut() {
            remote.fetch_started();
        }
        let ended = self.with(now, |c, k| c.sent(&request, Ok(token), k));
        assert_eq!(ended, None);
        (request, token)
    }

    fn answer(&mut self, token: u32, answer: &Answer, now: Millis) -> Next {
        let headers = answer.headers.len();
        let size = answer.body.len();
        self.with(now, |c, k| c.on_response(token, headers, size, answer, k))
    }

    fn ready(&self, now: Millis) -> bool {
        matches!(
            self.remote[P].as_ref().unwrap().availability(now),
            Availability::Ready(_)
        )
    }

    fn path(request: &Request) -> &str {
        &request
            .headers
            .iter()
            .find(|(n, _)| *n == ":path")
            .unwrap()
            .1
    }
}

fn ended(next: Next) -> Ended {
    match next {
        Next::Ended(ended) => ended,
        other => panic!("not ended: {other:?}"),
    }
}

#[test]
fn oidc_discovery_fetches_the_document_then_the_jwks_uri_it_names() {
    let mut vm = Vm::new(discovery(), false);
    let (first, token) = vm.send(T0);
    assert_eq!(first.step, Step::Discovery);
    assert_eq!(
        Vm::path(&first),
        "/realms/x/.well-known/openid-configuration"
    );
    let document = Answer::new("200", r#"{"jwks_uri":"https://keys.test/certs?v=1"}"#);
    let Next::Send(second) = vm.answer(token, &document, T0) else {
        panic!("the JWKS request should follow")
    };
    assert_eq!(second.step, Step::Jwks);
    assert_eq!(Vm::path(&second), "/certs?v=1");
    assert!(second
        .headers
        .contains(&(":authority".to_owned(), "keys.test".to_owned())));
    assert!(!vm.ready(T0), "no keys from the discovery document alone");
    let (_, token) = vm.send_request(second, T0);
    let done = ended(vm.answer(token, &Answer::new("200", mint::JWKS), T0));
    assert_eq!(done.outcome, Outcome::Keys(None));
    assert!(vm.ready(T0));
    // The discovered jwks_uri is kept for the next refresh: no second discovery.
    let next = vm.callouts.request(&vm.config, P).unwrap();
    assert_eq!(next.step, Step::Jwks);
    assert_eq!(Vm::path(&next), "/certs?v=1");
}

#[test]
fn a_failed_jwks_fetch_after_discovery_discovers_again() {
    let mut vm = Vm::new(discovery(), false);
    let (_, token) = vm.send(T0);
    let document = Answer::new("200", r#"{"jwks_uri":"https://keys.test/certs"}"#);
    let Next::Send(second) = vm.answer(token, &document, T0) else {
        panic!("the JWKS request should follow")
    };
    let (_, token) = vm.send_request(second, T0);
    let done = ended(vm.answer(token, &Answer::new("404", ""), T0));
    assert_eq!(done.outcome, Outcome::Keys(Some(FetchFailure::Status(404))));
    assert_eq!(
        vm.callouts.request(&vm.config, P).unwrap().step,
        Step::Discovery
    );
}

#[test]
fn a_discovery_document_without_jwks_uri_ends_the_fetch() {
    let mut vm = Vm::new(discovery(), false);
    let (_, token) = vm.send(T0);
    let done = ended(vm.answer(token, &Answer::new("200", r#"{"issuer":"x"}"#), T0));
    assert_eq!(done.outcome, Outcome::Keys(Some(FetchFailure::Discovery)));
    assert!(!vm.ready(T0));
}

#[test]
fn a_reset_callout_is_a_reset_failure_and_nothing_is_read() {
    let mut vm = Vm::new(plain(), false);
    let (_, token) = vm.send(T0);
    let reset = Answer {
        headers: vec![],
        body: b"ignored".to_vec(),
        reads: Cell::new(0),
    };
    let done = ended(vm.answer(token, &reset, T0));
    assert_eq!(done.outcome, Outcome::Keys(Some(FetchFailure::Reset)));
    assert_eq!(reset.reads.get(), 0, "a reset has no response to read");
    assert!(!vm.ready(T0));
    assert!(done.lines[0].1.contains("(reset)"), "{:?}", done.lines);
    assert!(done.lines[0].1.contains("no keys yet"), "{:?}", done.lines);
}

#[test]
fn a_refresh_that_fails_keeps_the_last_good_keys_and_backs_off() {
    let mut vm = Vm::new(plain(), true);
    let (_, token) = vm.send(T0);
    assert_eq!(
        ended(vm.answer(token, &Answer::new("200", mint::JWKS), T0)).outcome,
        Outcome::Keys(None)
    );
    let later = T0 + 700_000; // past the default 600 s lifetime
    let (_, token) = vm.send(later);
    let done = ended(vm.answer(token, &Answer::new("503", "upstream connect error"), later));
    assert_eq!(done.outcome, Outcome::Keys(Some(FetchFailure::Status(503))));
    assert!(vm.ready(later), "last-good keys still serve");
    assert_eq!(done.lines.len(), 1);
    let line = &done.lines[0].1;
    assert!(line.contains("keeping the last good keys"), "{line}");
    assert!(line.contains("retry 1 in"), "{line}");
    let keys = vm.remote[P].as_ref().unwrap();
    assert!(
        !keys.wants_fetch(later),
        "backing off, not fetching again at once"
    );
    assert!(keys.retry_at() > later);
    // The failure and its backoff are published, the lease released.
    let (_, lease) = vm
        .data
        .0
        .iter()
        .find(|(k, _)| k.ends_with("/lease"))
        .unwrap();
    let lease = crate::jwks_cache::Lease::parse(lease).unwrap();
    assert_eq!((lease.failures, lease.until), (1, 0));
    assert_eq!(lease.retry_at, keys.retry_at());
}

#[test]
fn a_response_for_an_unknown_token_is_ignored() {
    let mut vm = Vm::new(plain(), true);
    let (_, token) = vm.send(T0);
    let answer = Answer::new("200", mint::JWKS);
    assert_eq!(vm.answer(token + 4, &answer, T0), Next::Ignored);
    assert_eq!(answer.reads.get(), 0);
    assert!(!vm.ready(T0));
    assert!(vm.data.0.is_empty(), "nothing published");
    assert!(vm.callouts.in_flight(P), "our own callout is still awaited");
    // Answered once; a second delivery of the same token is ignored too.
    assert_eq!(
        ended(vm.answer(token, &answer, T0)).outcome,
        Outcome::Keys(None)
    );
    assert_eq!(vm.answer(token, &answer, T0), Next::Ignored);
    assert!(!vm.callouts.in_flight(P));
}

#[test]
fn a_refused_dispatch_ends_the_fetch() {
    let mut vm = Vm::new(plain(), false);
    let request = vm.callouts.request(&vm.config, P).unwrap();
    vm.remote[P].as_mut().unwrap().fetch_started();
    let done = vm
        .with(T0, |c, k| c.sent(&request, Err(HostError(2)), k))
        .unwrap();
    assert_eq!(done.outcome, Outcome::Keys(Some(FetchFailure::Dispatch)));
    assert!(!vm.callouts.in_flight(P));
    assert!(!vm.remote[P].as_ref().unwrap().is_fetching());
}

#[test]
fn a_fetched_key_set_is_logged_with_its_lifetime_and_published() {
    let mut vm = Vm::new(plain(), true);
    let (request, token) = vm.send(T0);
    assert_eq!(request.cluster, "idp");
    assert_eq!(Vm::path(&request), "/jwks");
    let mut answer = Answer::new("200", mint::JWKS);
    answer
        .headers
        .push(("cache-control", "max-age=120".to_owned()));
    let done = ended(vm.answer(token, &answer, T0));
    assert_eq!(done.lines[0].0, Severity::Info);
    assert!(
        done.lines[0].1.contains("good for 120s"),
        "{:?}",
        done.lines
    );
    assert!(vm.data.0.keys().any(|k| k.ends_with("/body")));
}
