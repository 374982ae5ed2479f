//! The token exchange's part of the instance core (issue 16): after the engine allowed a
//! request on an exchange route, run the exchange (`crate::exchange`) and pause the stream
//! while its callout is out; when the answer comes, resume every stream that waited for it.
//!
//! Callouts go out from the root at its next tick (`POKE`), as key-set fetches do: Envoy hands
//! a callout's answer to the context that sent it, and only the root listens. A stream keeps
//! nothing between its pause and its resumption but its outcome (`results`): on resumption it
//! is decided again (the engine is cheap, its verified token may be cached) and the outcome is
//! applied to the new decision's operations.
//!
//! Stats per exchange: `<name>.exchange_success` (a callout answered with a usable token),
//! `.cache_hit`, `.failed.<reason>` (requests denied by the exchange).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::{now_millis, request_headers, Filter, POKE};
use crate::config::{Config, ProviderId};
use crate::engine::Final;
use crate::exchange::{
    self, header_ops, remove_original, subject_for, Exchanged, Exchanges, Failure, Finished,
    Pending, Step, Then,
};
use crate::host::{self, Action, Callout, Host, MetricKind};
use crate::jwks_cache::{Availability, Millis, RemoteKeys};
use crate::keys::KeyStore;
use crate::oauth::CalloutRequest;
use crate::request::RequestHeaders;
use crate::signature::{PureRust, SignatureBackend};

/// A callout a stream asked for, sent by the root at its next tick.
struct Queued {
    pending: Pending,
    cluster: String,
    timeout: Duration,
    request: CalloutRequest,
    subject_exp: Option<i64>,
}

/// Host metric ids of one exchange.
struct Ids {
    success: u32,
    cache_hit: u32,
    /// In `exchange::FAILED_REASONS` order.
    failed: Vec<(&'static str, u32)>,
}

/// The exchange state of one plugin instance.
pub(super) struct ExchangeState {
    exchanges: Exchanges,
    queue: Vec<Queued>,
    /// Callouts in flight by token: what they answer, and the asking stream's subject `exp`.
    in_flight: HashMap<u32, (Pending, Option<i64>)>,
    /// Outcomes for streams about to be resumed.
    results: HashMap<u32, Result<Exchanged, Failure>>,
    /// By exchange id; `None` where the host refused a metric.
    ids: Vec<Option<Ids>>,
}

/// 32 bytes for the cache key's HMAC key: std's `RandomState` keys come from the system's
/// random source (WASI `random_get` in the VM), drawn once per thread.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    key
}

impl ExchangeState {
    pub(super) fn new(host: &impl Host, config: &Config) -> ExchangeState {
        let counter = |name: String| host.define_metric(MetricKind::Counter, &name);
        let ids = config
            .token_exchanges
            .iter()
            .map(|ex| {
                Some(Ids {
                    success: counter(exchange::stat_success(&ex.name))?,
                    cache_hit: counter(exchange::stat_cache_hit(&ex.name))?,
                    failed: exchange::FAILED_REASONS
                        .iter()
                        .map(|r| Some((*r, counter(exchange::stat_failed(&ex.name, r))?)))
                        .collect::<Option<_>>()?,
                })
            })
            .collect();
        ExchangeState {
            exchanges: Exchanges::new(config, &random_key()),
            queue: Vec::new(),
            in_flight: HashMap::new(),
            results: HashMap::new(),
            ids,
        }
    }

    pub(super) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(super) fn gone(&mut self, id: u32) {
        self.exchanges.forget(id);
        self.results.remove(&id);
    }

    fn count_failed(&self, host: &impl Host, exchange: usize, failure: Failure) {
        if let Some(ids) = self.ids.get(exchange).and_then(Option::as_ref) {
            if let Some((_, id)) = ids.failed.iter().find(|(r, _)| *r == failure.reason()) {
                host.increment(*id);
            }
        }
    }
}

/// Keys as of one moment, for `verify_with`: remote ones from the cache, local ones from the
/// configuration.
struct Keys<'s> {
    config: &'s Config,
    remote: &'s [Option<RemoteKeys>],
    now: Millis,
}

impl KeyStore for Keys<'_> {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match self.remote.get(provider).and_then(Option::as_ref) {
            Some(remote) => match remote.availability(self.now) {
                Availability::Pending => Availability::Unavailable,
                other => other,
            },
            None => self.config.keys(provider),
        }
    }
}

impl Filter {
    /// After the engine's final decision: on an exchange route, the exchange. `None`: the
    /// stream is paused until an exchange's answer resumes it.
    pub(super) fn exchange<'c>(
        &mut self,
        host: &impl Host,
        config: &'c Config,
        id: u32,
        headers: &RequestHeaders,
        decision: Final<'c>,
        now: Millis,
    ) -> Option<Final<'c>> {
        let Final::Allow { mut ops, verdict } = decision else {
            return Some(decision);
        };
        let Some((xid, subject)) = subject_for(config, &verdict, headers) else {
            return Some(Final::Allow { ops, verdict });
        };
        let Some(ex) = config.token_exchanges.get(xid) else {
            return Some(Final::Allow { ops, verdict });
        };
        let state = &mut self.exchange;
        let outcome = match state.results.remove(&id) {
            Some(outcome) => outcome,
            None => match state.exchanges.begin(config, xid, &subject, id, now) {
                Step::Ready(issued) => {
                    if let Some(ids) = state.ids.get(xid).and_then(Option::as_ref) {
                        host.increment(ids.cache_hit);
                    }
                    Ok(issued)
                }
                Step::Fail(failure) => Err(failure),
                Step::Wait => return None,
                Step::Callout {
                    pending,
                    cluster,
                    timeout,
                    request,
                } => {
                    state.queue.push(Queued {
                        pending,
                        cluster,
                        timeout,
                        request,
                        subject_exp: subject.exp,
                    });
                    self.set_tick(host, POKE);
                    return None;
                }
            },
        };
        match outcome {
            Ok(issued) => {
                header_ops(ex, subject.location, headers, &issued, &mut ops);
                Some(Final::Allow { ops, verdict })
            }
            Err(failure) => {
                state.count_failed(host, xid, failure);
                if config.report_only {
                    // Never denied, and never with the original token.
                    remove_original(subject.location, headers, &mut ops);
                    return Some(Final::Allow { ops, verdict });
                }
                let denial = failure.denial(
                    &headers.url(),
                    config.strip_failure_response,
                    config.failure_policy.exchange_unavailable,
                );
                Some(Final::Deny { denial, verdict })
            }
        }
    }

    /// At the root's tick: sends the exchange callouts streams asked for.
    pub(super) fn send_exchanges(&mut self, host: &impl Host, now: Millis) {
        for queued in std::mem::take(&mut self.exchange.queue) {
            let headers: Vec<(&str, &str)> = queued
                .request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let sent = host.dispatch(&Callout {
                cluster: &queued.cluster,
                headers: &headers,
                body: &queued.request.body,
                timeout: queued.timeout,
            });
            match sent {
                Ok(token) => {
                    self.exchange
                        .in_flight
                        .insert(token, (queued.pending, queued.subject_exp));
                }
                // Not sent: as a callout without an answer.
                Err(_) => {
                    self.exchange_answered(host, queued.pending, None, &[], queued.subject_exp, now)
                }
            }
        }
    }

    /// Whether callout `token` is an exchange's; if so, its answer is taken.
    pub(super) fn exchange_response(
        &mut self,
        host: &impl Host,
        token: u32,
        headers: usize,
        body_size: usize,
    ) -> bool {
        let Some((pending, subject_exp)) = self.exchange.in_flight.remove(&token) else {
            return false;
        };
        let status = if headers == 0 {
            None
        } else {
            host.callout_header(":status")
                .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok())
        };
        let body = host.callout_body(body_size).unwrap_or_default();
        let now = now_millis(host);
        self.exchange_answered(host, pending, status, &body, subject_exp, now);
        true
    }

    fn exchange_answered(
        &mut self,
        host: &impl Host,
        pending: Pending,
        status: Option<u32>,
        body: &[u8],
        subject_exp: Option<i64>,
        now: Millis,
    ) {
        let config = std::rc::Rc::clone(&self.config);
        let host_signatures = host::Signatures(host);
        let signatures: &dyn SignatureBackend = if self.host_signatures {
            &host_signatures
        } else {
            &PureRust
        };
        let keys = Keys {
            config: &config,
            remote: &self.remote,
            now,
        };
        let Finished { waiters, then } = self.exchange.exchanges.finish(
            &config,
            pending,
            status,
            body,
            subject_exp,
            &keys,
            signatures,
            now,
        );
        if let (Then::Use(_), Pending::Exchange(xid, _)) = (&then, pending) {
            if let Some(ids) = self.exchange.ids.get(xid).and_then(Option::as_ref) {
                host.increment(ids.success);
            }
        }
        for id in waiters {
            match &then {
                Then::Use(issued) => {
                    self.exchange.results.insert(id, Ok(issued.clone()));
                }
                Then::Fail(failure) => {
                    self.exchange.results.insert(id, Err(*failure));
                }
                Then::Again => {}
            }
            if !host.set_effective_context(id) {
                self.exchange.results.remove(&id);
                continue;
            }
            let headers = request_headers(host, &config);
            let decided = self
                .decide(host, &config, id, &headers, now)
                .and_then(|d| self.exchange(host, &config, id, &headers, d, now));
            if let Some(decision) = decided {
                if super::apply(host, &decision) == Action::Continue {
                    host.continue_request();
                }
            }
        }
        if self.exchange.has_queued() {
            self.set_tick(host, POKE);
        }
    }
}

#[cfg(test)]
mod tests;
