//! Streams waiting for keys or a revocation list: which paused stream waits for which provider, what parking one
//! starts (a refetch for an unknown kid, within its budget), and the bounded decide loop that
//! parks a request or gives it a final decision (the last round with a key store that never
//! waits). A stream that goes away is forgotten, so it is never resumed. No host calls: the
//! instance (`filter`) resumes the streams `take` returns, through the host's effective
//! context, and sets the timer as `Parking` says.

use crate::config::{Config, ProviderId};
use crate::engine::{decide_answered, Availability, Final, KeyStore, Verdict, Vm, Wait};
use crate::error::{deny, AuthError};
use crate::introspection::{Answers, Needed};
use crate::jwks_cache::{Millis, RemoteKeys};
use crate::keys::ListAvailability;
use crate::request::RequestHeaders;
use crate::revocation::fetch::ProviderLists;
use crate::signature::SignatureBackend;
use crate::token_cache::TokenCache;

/// The paused streams of this VM: (context id, provider whose keys they wait for).
#[derive(Debug, Default)]
pub struct Parked {
    waiting: Vec<(u32, ProviderId)>,
}

/// What parking a stream did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Parking {
    /// The stream waits (a fetch of the provider's keys is on the way).
    pub parked: bool,
    /// An unknown kid started a refetch: the root should fetch now (and count it).
    pub refetch: bool,
    /// The fetch waited for is a peer's (neither this VM's nor asked for): poll for its end.
    pub peer: bool,
}

/// What is on the way for the provider a stream waits on, besides its remote keys' state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fetching {
    /// This VM's own key-set callout for the provider is in flight.
    pub keys_in_flight: bool,
    /// The provider's revocation list is being fetched (by this VM or a peer).
    pub list: bool,
    /// That list fetch is this VM's (in flight or asked for), not a peer's.
    pub list_is_ours: bool,
}

impl Parked {
    /// Parks stream `id` until `wait.provider`'s keys or revocation list change. Starts a
    /// refetch (added to `requested`) when the wait is for an unknown kid and the budget
    /// allows. Not parked when nothing is on the way (the caller then decides again and gets a
    /// final answer). A wait without a kid may be for the list (`fetching.list`).
    pub fn park(
        &mut self,
        id: u32,
        wait: &Wait,
        remote: &mut [Option<RemoteKeys>],
        requested: &mut Vec<ProviderId>,
        fetching: Fetching,
        now: Millis,
    ) -> Parking {
        let mut parking = Parking::default();
        if let Some(keys) = remote.get_mut(wait.provider).and_then(Option::as_mut) {
            if let Some(kid) = &wait.kid {
                if keys.unknown_kid(kid, now) {
                    keys.fetch_started();
                    requested.push(wait.provider);
                    parking.refetch = true;
                }
            }
            if keys.is_fetching() {
                self.waiting.push((id, wait.provider));
                parking.parked = true;
                // The next tick keeps polling while streams wait, and stops when none does.
                parking.peer = !requested.contains(&wait.provider) && !fetching.keys_in_flight;
                return parking;
            }
        }
        if fetching.list && wait.kid.is_none() {
            self.waiting.push((id, wait.provider));
            parking.parked = true;
            parking.peer = !fetching.list_is_ours;
        }
        parking
    }

    /// The providers streams wait for (one entry per stream).
    pub fn providers(&self) -> Vec<ProviderId> {
        self.waiting.iter().map(|(_, p)| *p).collect()
    }

    /// The streams waiting for `provider`, no longer waiting: to be decided again.
    pub fn take(&mut self, provider: ProviderId) -> Vec<u32> {
        let (ready, rest) = self.waiting.iter().partition(|(_, p)| *p == provider);
        self.waiting = rest;
        ready.into_iter().map(|(id, _)| id).collect()
    }

    /// Stream `id` went away: it is not resumed.
    pub fn gone(&mut self, id: u32) {
        self.waiting.retain(|(waiting, _)| *waiting != id);
    }
}

/// What a decision needs of this VM besides the request.
pub struct Deciding<'a> {
    pub remote: &'a mut [Option<RemoteKeys>],
    /// The revocation lists of the providers that have one.
    pub lists: &'a ProviderLists,
    pub signatures: &'a dyn SignatureBackend,
    pub cache: &'a mut TokenCache,
    /// The introspection answers known for this request (`introspection::Unwired`: none).
    pub answers: &'a dyn Answers,
    /// Set to the introspections the returned decision needed: when not empty, that decision
    /// took them as unavailable, and the caller asks them and decides again (`filter`).
    pub needed: &'a mut Vec<Needed>,
}

/// Decides for the request in `headers` at `now`; when it must wait, asks `park` (given the
/// remote keys), and `None` if that parked it. A wait parks at most once per provider, and
/// the last round uses a store that never waits, so a final decision always comes: the instance
/// is never handed a `Wait`.
pub fn decide<'c>(
    config: &'c Config,
    vm: Deciding<'_>,
    headers: &RequestHeaders,
    now: Millis,
    mut park: impl FnMut(&mut [Option<RemoteKeys>], &Wait) -> bool,
) -> Option<Final<'c>> {
    let Deciding {
        remote,
        lists,
        signatures,
        cache,
        answers,
        needed,
    } = vm;
    for _ in 0..=config.providers.len() {
        let store = Store {
            config,
            remote,
            lists,
            now,
        };
        let vm = Vm {
            keys: &store,
            signatures,
            cache,
        };
        let (decision, asked) = decide_answered(config, vm, answers, headers, seconds(now));
        *needed = asked;
        match decision.into_final() {
            Err(wait) => {
                if park(remote, &wait) {
                    return None;
                }
            }
            Ok(decision) => return Some(decision),
        }
    }
    let store = Store {
        config,
        remote,
        lists,
        now,
    };
    let vm = Vm {
        keys: &NoWait(&store),
        signatures,
        cache,
    };
    let (last, asked) = decide_answered(config, vm, answers, headers, seconds(now));
    *needed = asked;
    let last = last.into_final();
    Some(last.unwrap_or_else(|wait| unavailable(config, headers, &wait)))
}

/// Were `NoWait` to wait after all (it cannot: no key set is pending there and no kid may be
/// learnt), the keys are unavailable: 503, never forwarded without the engine's header
/// removals, whatever the failure policy.
fn unavailable<'c>(config: &Config, headers: &RequestHeaders, wait: &Wait) -> Final<'c> {
    let reason = AuthError::KeysUnavailable;
    Final::Deny {
        denial: deny(
            reason,
            &headers.url(),
            config.strip_failure_response,
            None,
            true,
        ),
        verdict: Verdict {
            failure: Some(reason),
            provider: Some(wait.provider),
        },
    }
}

fn seconds(now: Millis) -> i64 {
    i64::try_from(now / 1000).unwrap_or(i64::MAX)
}

/// The key store as of one moment: local keys from the config, remote ones from the cache.
struct Store<'s> {
    config: &'s Config,
    remote: &'s [Option<RemoteKeys>],
    lists: &'s ProviderLists,
    now: Millis,
}

impl KeyStore for Store<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match self.remote.get(provider).and_then(Option::as_ref) {
            Some(remote) => remote.availability(self.now),
            None => self.config.keys(provider),
        }
    }

    fn may_learn_kid(&self, provider: ProviderId, kid: &str) -> bool {
        self.remote
            .get(provider)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.may_learn_kid(kid, self.now))
    }

    fn revocation(&self, provider: ProviderId) -> ListAvailability<'_> {
        self.lists.availability(provider, self.now)
    }
}

/// A store that never makes a request wait (the last word of a bounded decision loop).
struct NoWait<'s>(&'s Store<'s>);

impl KeyStore for NoWait<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match self.0.keys(provider) {
            Availability::Pending => Availability::Unavailable,
            other => other,
        }
    }

    fn revocation(&self, provider: ProviderId) -> ListAvailability<'_> {
        match self.0.revocation(provider) {
            ListAvailability::Pending => ListAvailability::Unavailable,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
