//! Callout bookkeeping for remote key sets: which request goes out for a provider (the OIDC
//! discovery document first when discovery is on and no `jwks_uri` is known, else the JWKS),
//! which provider a callout token belongs to, how a response reads (no headers: a reset; status,
//! `cache-control` and body into `Fetched` or a `FetchFailure`), and what an ended fetch does:
//! the key set kept or the failure's backoff (last-good keys kept), the outcome published to
//! the fleet, the discovered `jwks_uri` forgotten after a failure.
//!
//! It performs no host call itself except through its arguments: the response parts through
//! `ResponseParts`, shared data through `fleet::SharedData`. A callout is not dispatched here:
//! `request` says what to send, `filter` sends it, and `sent` takes the host's answer. It logs
//! nothing: an ended fetch comes back as `Ended`, with its log lines, for `filter` to log,
//! count and resume streams.

use std::time::Duration;

use crate::config::{Config, JwksSource, ProviderId};
use crate::fleet::{Fleet, HostError, SharedData};
use crate::jwks_cache::{
    read_discovery, read_response, Availability, FetchFailure, Millis, RemoteKeys, Target,
    MAX_JWKS_BYTES,
};

/// One callout to send: a GET of `headers` to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub provider: ProviderId,
    /// Whether this is the OIDC discovery step (its answer leads to the JWKS request).
    pub discovery: bool,
    pub cluster: String,
    pub headers: Vec<(&'static str, String)>,
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

/// A fetch of a provider's keys that ended (the streams waiting on it are decided again).
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub provider: ProviderId,
    /// `None`: a key set was fetched.
    pub failure: Option<FetchFailure>,
    /// What to log, in order (no secrets: counts, lifetimes, failure reasons).
    pub lines: Vec<(Severity, String)>,
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

/// What an ended fetch changes besides the bookkeeping: the provider's keys, the fleet's
/// records, at `now` (with `jitter`, in `0..1000`, for the backoff).
pub struct Keys<'a, D: SharedData> {
    pub config: &'a Config,
    /// Indexed by provider id; `Some` for remote providers.
    pub remote: &'a mut [Option<RemoteKeys>],
    pub fleet: &'a Fleet,
    pub data: &'a mut D,
    pub jitter: u32,
    pub now: Millis,
}

/// This VM's callouts in flight and what OIDC discovery found.
#[derive(Debug)]
pub struct Callouts {
    /// Dispatched callouts: (token, provider, whether it is the discovery step).
    pending: Vec<(u32, ProviderId, bool)>,
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

    /// The providers with a callout of this VM in flight.
    pub fn providers(&self) -> Vec<ProviderId> {
        self.pending.iter().map(|(_, p, _)| *p).collect()
    }

    /// Whether a callout of this VM for `provider` is in flight.
    pub fn in_flight(&self, provider: ProviderId) -> bool {
        self.pending.iter().any(|(_, p, _)| *p == provider)
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
        Some(Request {
            provider,
            discovery: remote.oidc_discovery && discovered.is_none(),
            cluster: remote.cluster.clone(),
            headers: vec![
                (":method", "GET".to_owned()),
                (":path", target.path.clone()),
                (":authority", target.authority.clone()),
                (":scheme", target.scheme.clone()),
                ("accept", "application/json".to_owned()),
            ],
            timeout: remote.timeout,
        })
    }

    /// The host's answer to sending `request`: its callout token, or a refusal, which ends
    /// the fetch.
    pub fn sent<D: SharedData>(
        &mut self,
        request: &Request,
        sent: Result<u32, HostError>,
        keys: &mut Keys<'_, D>,
    ) -> Option<Ended> {
        match sent {
            Ok(token) => {
                self.pending
                    .push((token, request.provider, request.discovery));
                None
            }
            Err(_) => Some(self.failed(request.provider, FetchFailure::Dispatch, keys)),
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
        keys: &mut Keys<'_, D>,
    ) -> Next {
        let Some(at) = self.pending.iter().position(|(t, _, _)| *t == token) else {
            return Next::Ignored;
        };
        let (_, provider, discovery) = self.pending.swap_remove(at);
        // No headers: the call was reset (Envoy's `onHttpCallFailure`: a reset after the
        // response started, a body past the timeout, a buffer limit). No response is attached
        // then, and reading one would fail; `:status` absent reads as a reset below.
        let header = |name: &str| {
            (headers > 0)
                .then(|| parts.header(name))
                .flatten()
                .and_then(|value| String::from_utf8(value).ok())
        };
        let body = if headers > 0 && body_size <= MAX_JWKS_BYTES {
            parts.body(body_size).unwrap_or_default()
        } else {
            Vec::new()
        };
        let status = header(":status");
        if discovery {
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
                keys.fleet.publish(keys.data, provider, remote, Some(&body));
                Next::Ended(Ended {
                    provider,
                    failure: None,
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
        keys: &mut Keys<'_, D>,
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
            keys.fleet.publish(keys.data, provider, remote, None);
        }
        Ended {
            provider,
            failure: Some(failure),
            lines,
        }
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
