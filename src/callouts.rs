//! Callout bookkeeping for remote resources (`resource::Resource`), whatever is fetched: a
//! provider's key set (the OIDC discovery document first when discovery is on and no
//! `jwks_uri` is known, else the JWKS) or its revocation list (a conditional GET with the
//! list's `ETag`). It says which request goes out, which provider and step a callout token
//! belongs to, how a response reads (no headers: a reset; status, `cache-control`, `etag` and
//! body into a new version or a failure), and what an ended fetch does: the new version kept,
//! or the failure's backoff (last good kept), the outcome published to the kind's fleet, the
//! discovered `jwks_uri` forgotten after a failure.
//!
//! It performs no host call itself except through its arguments: the response parts through
//! `ResponseParts`, shared data through `fleet::SharedData`, signatures of a signed list
//! through `signature::SignatureBackend`. A callout is not dispatched here: `request` /
//! `list_request` say what to send, `filter` sends it, and `sent` takes the host's answer. It
//! logs nothing: an ended fetch comes back as `Ended`, with its log lines, for `filter` to
//! log, count and resume streams.

use std::time::Duration;

use crate::config::{Config, JwksSource, ProviderId};
use crate::fleet::{Fleet, HostError, Published, SharedData};
use crate::jwks::KeySet;
use crate::jwks_cache::{
    read_discovery, read_response, Availability, FetchFailure, Millis, RemoteKeys, Target,
    MAX_JWKS_BYTES,
};
use crate::keys::KeyStore;
use crate::oauth;
use crate::revocation::fetch::{
    key_set_verifier, Fetched, ListFailure, ListResponse, ProviderLists,
};
use crate::revocation::MAX_BODY_BYTES;
use crate::signature::SignatureBackend;

/// What a callout fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The OIDC discovery document (its answer leads to the JWKS request).
    Discovery,
    /// The key set.
    Jwks,
    /// The revocation list.
    List,
}

/// One callout to send: a GET of `headers` to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub provider: ProviderId,
    pub step: Step,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The parts of a callout's response, read from the host on demand.
pub trait ResponseParts {
    /// A response header's value; `None` when absent or unreadable.
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// The first `size` bytes of the body; `None` when unreadable.
    fn body(&self, size: usize) -> Option<Vec<u8>>;
}

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
}

/// A fetch that ended (the streams waiting on the provider are decided again).
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub provider: ProviderId,
    pub outcome: Outcome,
    /// What to log, in order (no secrets: counts, lifetimes, failure reasons; never a listed
    /// value).
    pub lines: Vec<(Severity, String)>,
}

/// How a fetch ended, by kind (`None`: a new or confirmed version).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Keys(Option<FetchFailure>),
    List(Option<ListFailure>),
}

/// What a callout's response leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Not one of ours (an unknown or already answered token): nothing happens.
    Ignored,
    /// The discovery step found the `jwks_uri`: send this JWKS request now.
    Send(Request),
    /// The fetch ended.
    Ended(Ended),
}

/// What an ended fetch changes besides the bookkeeping: the provider's resources and the
/// fleets' records, at `now` (with `jitter`, in `0..1000`, for the backoff).
pub struct Resources<'a, D: SharedData> {
    pub config: &'a Config,
    /// Indexed by provider id; `Some` for remote providers.
    pub remote: &'a mut [Option<RemoteKeys>],
    pub fleet: &'a Fleet,
    /// The revocation lists, and their fleet.
    pub lists: &'a mut ProviderLists,
    pub list_fleet: &'a Fleet,
    /// Checks a signed list's signature (with the provider's key set as it is now).
    pub signatures: &'a dyn SignatureBackend,
    pub data: &'a mut D,
    pub jitter: u32,
    pub now: Millis,
}

/// This VM's callouts in flight and what OIDC discovery found.
#[derive(Debug)]
pub struct Callouts {
    /// Dispatched callouts: (token, provider, what it fetches).
    pending: Vec<(u32, ProviderId, Step)>,
    /// Indexed by provider id: the `jwks_uri` discovery found (kept until a fetch fails).
    discovered: Vec<Option<Target>>,
}

impl Callouts {
    /// No callouts yet, for `providers` providers.
    pub fn new(providers: usize) -> Callouts {
        Callouts {
            pending: Vec::new(),
            discovered: vec![None; providers],
        }
    }

    /// The providers with a key-set callout of this VM in flight.
    pub fn providers(&self) -> Vec<ProviderId> {
        self.of(false).collect()
    }

    /// The providers with a list callout of this VM in flight.
    pub fn list_providers(&self) -> Vec<ProviderId> {
        self.of(true).collect()
    }

    fn of(&self, lists: bool) -> impl Iterator<Item = ProviderId> + '_ {
        self.pending
            .iter()
            .filter(move |(_, _, step)| (*step == Step::List) == lists)
            .map(|(_, p, _)| *p)
    }

    /// Whether a key-set callout of this VM for `provider` is in flight.
    pub fn in_flight(&self, provider: ProviderId) -> bool {
        self.of(false).any(|p| p == provider)
    }

    /// Whether a list callout of this VM for `provider` is in flight.
    pub fn list_in_flight(&self, provider: ProviderId) -> bool {
        self.of(true).any(|p| p == provider)
    }

    /// The next request for `provider`'s keys: the discovery document when discovery is on
    /// and no `jwks_uri` is known, else the JWKS. `None` for a provider without remote keys.
    pub fn request(&self, config: &Config, provider: ProviderId) -> Option<Request> {
        let Some(JwksSource::Remote(remote)) = config.providers.get(provider).map(|p| &p.jwks)
        else {
            return None;
        };
        let discovered = self.discovered.get(provider).and_then(Option::as_ref);
        let target = discovered.unwrap_or(&remote.target);
        let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        Some(Request {
            provider,
            step: if remote.oidc_discovery && discovered.is_none() {
                Step::Discovery
            } else {
                Step::Jwks
            },
            cluster: remote.cluster.clone(),
            headers: vec![
                header(":method", "GET"),
                header(":path", &target.path),
                header(":authority", &target.authority),
                header(":scheme", &target.scheme),
                header("accept", "application/json"),
            ],
            timeout: remote.timeout,
        })
    }

    /// The request for `provider`'s revocation list, conditional on `etag` (the list in
    /// force's): `oauth::revocation_list_request`. `None` for a provider without one.
    pub fn list_request(
        &self,
        config: &Config,
        provider: ProviderId,
        etag: Option<&str>,
    ) -> Option<Request> {
        let revocation = config.providers.get(provider)?.revocation.as_ref()?;
        let endpoint = oauth::Endpoint {
            authority: revocation.target.authority.clone(),
            path: revocation.target.path.clone(),
        };
        Some(Request {
            provider,
            step: Step::List,
            cluster: revocation.cluster.clone(),
            headers: oauth::revocation_list_request(&endpoint, etag).headers,
            timeout: revocation.timeout,
        })
    }

    /// The host's answer to sending `request`: its callout token, or a refusal, which ends
    /// the fetch.
    pub fn sent<D: SharedData>(
        &mut self,
        request: &Request,
        sent: Result<u32, HostError>,
        keys: &mut Resources<'_, D>,
    ) -> Option<Ended> {
        match (sent, request.step) {
            (Ok(token), step) => {
                self.pending.push((token, request.provider, step));
                None
            }
            (Err(_), Step::List) => {
                Some(list_failed(request.provider, ListFailure::Dispatch, keys))
            }
            (Err(_), _) => Some(self.failed(request.provider, FetchFailure::Dispatch, keys)),
        }
    }

    /// The response to callout `token`: `headers` response headers (none: the call was reset)
    /// and a body of `body_size` bytes, read through `parts`.
    pub fn on_response<D: SharedData>(
        &mut self,
        token: u32,
        headers: usize,
        body_size: usize,
        parts: &impl ResponseParts,
        keys: &mut Resources<'_, D>,
    ) -> Next {
        let Some(at) = self.pending.iter().position(|(t, _, _)| *t == token) else {
            return Next::Ignored;
        };
        let (_, provider, step) = self.pending.swap_remove(at);
        // No headers: the call was reset (Envoy's `onHttpCallFailure`: a reset after the
        // response started, a body past the timeout, a buffer limit). No response is attached
        // then, and reading one would fail; `:status` absent reads as a reset below.
        let header = |name: &str| {
            (headers > 0)
                .then(|| parts.header(name))
                .flatten()
                .and_then(|value| String::from_utf8(value).ok())
        };
        let limit = if step == Step::List {
            MAX_BODY_BYTES
        } else {
            MAX_JWKS_BYTES
        };
        let body = if headers > 0 && body_size <= limit {
            parts.body(body_size).unwrap_or_default()
        } else {
            Vec::new()
        };
        let status = header(":status");
        if step == Step::List {
            let (etag, cache_control) = (header("etag"), header("cache-control"));
            let response = ListResponse {
                status: status.as_deref(),
                body_size,
                body: &body,
                etag: etag.as_deref(),
                cache_control: cache_control.as_deref(),
            };
            return Next::Ended(list_answered(provider, response, keys));
        }
        if step == Step::Discovery {
            return match read_discovery(status.as_deref(), &body) {
                Ok(target) => {
                    if let Some(slot) = self.discovered.get_mut(provider) {
                        *slot = Some(target);
                    }
                    match self.request(keys.config, provider) {
                        Some(request) => Next::Send(request),
                        None => Next::Ignored,
                    }
                }
                Err(failure) => Next::Ended(self.failed(provider, failure, keys)),
            };
        }
        let cache_control = header("cache-control");
        let name = provider_name(keys.config, provider);
        let Some(remote) = keys.remote.get_mut(provider).and_then(Option::as_mut) else {
            return Next::Ignored;
        };
        let result = read_response(
            remote.policy(),
            status.as_deref(),
            body_size,
            &body,
            cache_control.as_deref(),
        );
        match result {
            Ok(fetched) => {
                let mut lines = vec![(
                    Severity::Info,
                    format!(
                        "jwt-authn-wasm: provider {name:?}: fetched {} key(s), good for {}s",
                        fetched.keys.len(),
                        fetched.ttl.as_secs()
                    ),
                )];
                lines.extend(fetched.keys.log_lines().into_iter().map(|line| {
                    (
                        Severity::Warn,
                        format!("jwt-authn-wasm: provider {name:?}: {line}"),
                    )
                }));
                remote.fetch_succeeded(keys.now, fetched);
                keys.fleet
                    .publish(keys.data, provider, remote, Published::Body(&body));
                Next::Ended(Ended {
                    provider,
                    outcome: Outcome::Keys(None),
                    lines,
                })
            }
            Err(failure) => Next::Ended(self.failed(provider, failure, keys)),
        }
    }

    /// A fetch of `provider`'s keys ended in `failure`: back off (keeping last-good keys),
    /// publish the failure and the shared backoff, and discover again next time.
    fn failed<D: SharedData>(
        &mut self,
        provider: ProviderId,
        failure: FetchFailure,
        keys: &mut Resources<'_, D>,
    ) -> Ended {
        if let Some(slot) = self.discovered.get_mut(provider) {
            *slot = None;
        }
        let name = provider_name(keys.config, provider);
        let now = keys.now;
        let mut lines = Vec::new();
        if let Some(remote) = keys.remote.get_mut(provider).and_then(Option::as_mut) {
            remote.fetch_failed(now, keys.jitter);
            let kept = match remote.availability(now) {
                Availability::Ready(_) => "keeping the last good keys",
                _ => "no keys yet",
            };
            lines.push((
                Severity::Warn,
                format!(
                    "jwt-authn-wasm: provider {name:?}: JWKS fetch failed ({}): {failure}; {kept}; retry {} in {}ms",
                    failure.reason(),
                    remote.failures(),
                    remote.next_fetch_at().unwrap_or(now).saturating_sub(now)
                ),
            ));
            keys.fleet
                .publish(keys.data, provider, remote, Published::Failed);
        }
        Ended {
            provider,
            outcome: Outcome::Keys(Some(failure)),
            lines,
        }
    }
}

/// The answer to `provider`'s list request: read (`ListFetch::fetch_done`; a signed list is
/// checked with the provider's key set as it is now), published, and what to log.
fn list_answered<D: SharedData>(
    provider: ProviderId,
    response: ListResponse<'_>,
    keys: &mut Resources<'_, D>,
) -> Ended {
    let (now, jitter) = (keys.now, keys.jitter);
    let key_set = key_set(keys.config, keys.remote, provider, now);
    let Some(list) = keys.lists.get_mut(provider) else {
        return Ended {
            provider,
            outcome: Outcome::List(None),
            lines: Vec::new(),
        };
    };
    let verify = key_set_verifier(key_set, keys.signatures);
    match list.fetch_done(now, response, verify, jitter) {
        Ok(fetched) => {
            let published = match fetched {
                Fetched::Replaced { .. } => Published::Body(response.body),
                Fetched::NotModified => Published::Confirmed,
            };
            keys.list_fleet
                .publish(keys.data, provider, &*list, published);
            Ended {
                provider,
                outcome: Outcome::List(None),
                lines: Vec::new(),
            }
        }
        Err(failure) => {
            keys.list_fleet
                .publish(keys.data, provider, &*list, Published::Failed);
            list_ended_in(provider, failure, keys.config)
        }
    }
}

/// The keys of `provider` as they are at `now` (remote: the cache; local: the configuration),
/// to check a signed list with; none ready: none.
pub fn key_set<'k>(
    config: &'k Config,
    remote: &'k [Option<RemoteKeys>],
    provider: ProviderId,
    now: Millis,
) -> Option<&'k KeySet> {
    let keys = match remote.get(provider).and_then(Option::as_ref) {
        Some(remote) => remote.availability(now),
        None => KeyStore::keys(config, provider),
    };
    match keys {
        Availability::Ready(keys) => Some(keys),
        _ => None,
    }
}

/// A list fetch that could not be sent: back off (the list in force kept) and publish.
fn list_failed<D: SharedData>(
    provider: ProviderId,
    failure: ListFailure,
    keys: &mut Resources<'_, D>,
) -> Ended {
    if let Some(list) = keys.lists.get_mut(provider) {
        list.fetch_failed(keys.now, keys.jitter);
        keys.list_fleet
            .publish(keys.data, provider, &*list, Published::Failed);
    }
    list_ended_in(provider, failure, keys.config)
}

/// A failed list fetch, logged at warn (its reason and never a listed value).
fn list_ended_in(provider: ProviderId, failure: ListFailure, config: &Config) -> Ended {
    let name = config
        .providers
        .get(provider)
        .map_or("", |p| p.name.as_str());
    Ended {
        provider,
        lines: vec![(
            Severity::Warn,
            format!("jwt-authn-wasm: revocation list of {name}: fetch failed: {failure}"),
        )],
        outcome: Outcome::List(Some(failure)),
    }
}

fn provider_name(config: &Config, provider: ProviderId) -> String {
    config
        .providers
        .get(provider)
        .map_or_else(String::new, |p| p.name.clone())
}

#[cfg(test)]
mod tests;
