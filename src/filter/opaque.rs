//! The instance core's part of opaque tokens (issue 14): the VM's introspection cache, the
//! answers each decision gets (`Pending::answers`: the cache and what the stream was told,
//! handed to `parked::decide` as `Deciding::answers`, which gives back the lookups the decision
//! needed), which streams wait for which introspection, the callouts the root sends for them
//! (from the root, at its next tick, so the answer comes back to the root as a key fetch's
//! does), and resuming the streams when an answer or a failure arrives. The cache and its rules
//! are `introspection::cache`; the decision is the engine's.

use std::collections::HashMap;
use std::hash::BuildHasher as _;

use super::{apply, request_headers, Filter, POKE};
use crate::config::{Config, ProviderId};
use crate::host::{Action, Callout, Host, Level};
use crate::introspection::cache::{self, IntrospectionCache, Outcome, RequestAnswers, Step};
use crate::introspection::{Answer, Answers as _, CacheKey, Known, Needed};
use crate::jwks_cache::Millis;
use crate::oauth::Unavailable;
use std::rc::Rc;

/// Rounds of asking in one decision before unknown answers count as failed (a request with
/// tokens for several introspection providers learns one answer per round at worst).
pub(super) const ROUNDS: usize = 3;

type Told = (ProviderId, CacheKey, Result<Answer, Unavailable>);

/// This VM's introspection answers, the introspections it has to send or has out, and what
/// each waiting stream was told.
#[derive(Default)]
pub(super) struct Pending {
    /// The answers (`None`: no introspection provider).
    pub(super) cache: Option<IntrospectionCache>,
    /// To dispatch at the root's next tick.
    queue: Vec<Needed>,
    /// Out: callout token → the lookup it answers.
    calls: Vec<(u32, ProviderId, CacheKey)>,
    /// Streams to decide again at the next tick (a question that could not be asked).
    resume: Vec<u32>,
    /// Per waiting stream: answers not cached and failures, for its next decision.
    pub(super) own: HashMap<u32, Vec<Told>>,
    /// Streams that waited for an introspection (counted as cache misses, not hits).
    waited: std::collections::HashSet<u32>,
}

impl Pending {
    /// Nothing to send or to resume at a tick.
    pub(super) fn idle(&self) -> bool {
        self.queue.is_empty() && self.resume.is_empty()
    }
}

impl Pending {
    /// The state of a configuration: with introspection providers, their cache, keyed under
    /// 32 bytes drawn from the VM's randomness (the standard library's random hash keys).
    pub(super) fn new(config: &Config) -> Pending {
        let cache = config
            .providers
            .iter()
            .any(|p| p.introspection.is_some())
            .then(|| {
                let mut key = [0u8; 32];
                for chunk in key.chunks_mut(8) {
                    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
                    chunk.copy_from_slice(&random.to_le_bytes());
                }
                IntrospectionCache::new(config, &key)
            });
        Pending {
            cache,
            ..Pending::default()
        }
    }

    /// The answers stream `id` decides with at `now`: the cache and what the stream was told;
    /// in the `last_round`, what is still unknown counts as failed. `None`: no introspection.
    pub(super) fn answers(
        &self,
        id: u32,
        now: Millis,
        last_round: bool,
    ) -> Option<RequestAnswers<'_>> {
        let cache = self.cache.as_ref()?;
        let mut answers = RequestAnswers::new(cache, now);
        for (provider, key, told) in self.own.get(&id).into_iter().flatten() {
            answers.record(*provider, *key, told.clone());
        }
        Some(if last_round {
            answers.last_round()
        } else {
            answers
        })
    }
}

impl Filter {
    /// Counts the cache `hits` of stream `id`'s final decision (`introspection_cache_hit`,
    /// by provider), unless it waited for an answer (a miss, counted when the answer came).
    pub(super) fn count_hits(&mut self, host: &impl Host, id: u32, hits: &[ProviderId]) {
        if self.opaque.waited.remove(&id) {
            return;
        }
        for provider in hits {
            if let Some(stats) = self.stats.introspection(*provider) {
                host.increment(stats.cache_hit);
            }
        }
    }

    /// Joins or starts each lookup stream `id` needs; true when the stream waits for one.
    pub(super) fn ask_introspections(
        &mut self,
        host: &impl Host,
        id: u32,
        needed: Vec<Needed>,
        now: Millis,
    ) -> bool {
        let Some(cache) = self.opaque.cache.as_mut() else {
            return false;
        };
        let mut waits = false;
        for n in needed {
            match cache.find(n.provider, &n.key, id, now) {
                Step::Ask => {
                    self.opaque.queue.push(n);
                    waits = true;
                }
                Step::Wait => waits = true,
                Step::Ready => {}
                Step::Failed { also } => {
                    for stream in std::iter::once(id).chain(also.iter().copied()) {
                        let told = self.opaque.own.entry(stream).or_default();
                        told.push((n.provider, n.key, Err(Unavailable::NoResponse)));
                    }
                    if let Some(stats) = self.stats.introspection(n.provider) {
                        host.increment(stats.failed_in_flight);
                    }
                    self.opaque.resume.extend(also);
                }
            }
        }
        if !self.opaque.idle() {
            self.set_tick(host, POKE);
        }
        if waits {
            self.opaque.waited.insert(id);
        }
        waits
    }

    /// At a tick, from the root: sends the introspections streams asked for, and decides
    /// again for streams whose question could not be asked.
    pub(super) fn send_introspections(&mut self, host: &impl Host, now: Millis) {
        let config = Rc::clone(&self.config);
        for n in std::mem::take(&mut self.opaque.queue) {
            let Some(introspection) = config
                .providers
                .get(n.provider)
                .and_then(|p| p.introspection.as_deref())
            else {
                continue;
            };
            let headers: Vec<(&str, &str)> = n
                .request
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let sent = host.dispatch(&Callout {
                cluster: &introspection.server.cluster,
                headers: &headers,
                body: &n.request.body,
                timeout: introspection.server.timeout,
            });
            match sent {
                Ok(token) => self.opaque.calls.push((token, n.provider, n.key)),
                Err(_) => self.introspection_ended(host, n.provider, &n.key, None, &[], now),
            }
        }
        for id in std::mem::take(&mut self.opaque.resume) {
            self.resume_stream(host, id, now);
        }
    }

    /// A callout's answer: true when it was an introspection (then handled here).
    pub(super) fn introspection_answered(
        &mut self,
        host: &impl Host,
        token: u32,
        headers: usize,
        body_size: usize,
        now: Millis,
    ) -> bool {
        let Some(i) = self.opaque.calls.iter().position(|(t, _, _)| *t == token) else {
            return false;
        };
        let (_, provider, key) = self.opaque.calls.swap_remove(i);
        let status = (headers > 0)
            .then(|| host.callout_header(":status"))
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.parse::<u32>().ok());
        let body = if body_size > 0 {
            host.callout_body(body_size).unwrap_or_default()
        } else {
            Vec::new()
        };
        self.introspection_ended(host, provider, &key, status, &body, now);
        true
    }

    /// The question under `key` ended: remember, count, warn, resume who waited.
    fn introspection_ended(
        &mut self,
        host: &impl Host,
        provider: ProviderId,
        key: &CacheKey,
        status: Option<u32>,
        body: &[u8],
        now: Millis,
    ) {
        let Some(cache) = self.opaque.cache.as_mut() else {
            return;
        };
        let (waiters, outcome) = cache.settle(provider, key, status, body, now);
        let inactive = match &outcome {
            Outcome::Uncached(answer) => *answer == Answer::Inactive,
            Outcome::Cached => {
                let answers = RequestAnswers::new(cache, now);
                answers.answer(provider, key) == Known::Answer(&Answer::Inactive)
            }
            Outcome::Failed(_) => false,
        };
        let name = self
            .config
            .providers
            .get(provider)
            .map_or("", |p| p.name.as_str());
        if let Some(stats) = self.stats.introspection(provider) {
            stats.record(host, &outcome, waiters.len(), inactive);
        }
        let told = match outcome {
            Outcome::Cached => None,
            Outcome::Uncached(answer) => Some(Ok(answer)),
            Outcome::Failed(failure) => {
                if let Some(line) = cache::refusal_warning(name, failure) {
                    host.log(Level::Warn, &format!("jwt-authn-wasm: {line}"));
                }
                Some(Err(failure))
            }
        };
        for id in waiters {
            if let Some(told) = &told {
                let own = self.opaque.own.entry(id).or_default();
                own.push((provider, *key, told.clone()));
            }
            self.resume_stream(host, id, now);
        }
    }

    /// Decides again for stream `id`, through the host's effective context.
    fn resume_stream(&mut self, host: &impl Host, id: u32, now: Millis) {
        if !host.set_effective_context(id) {
            self.introspection_stream_gone(id);
            return;
        }
        let config = Rc::clone(&self.config);
        let headers = request_headers(host, &config);
        if let Some(decision) = self.decide(host, &config, id, &headers, now) {
            if apply(host, &decision) == Action::Continue {
                host.continue_request();
            }
        }
    }

    /// Stream `id` went away: never resumed, and what it was told is dropped.
    pub(super) fn introspection_stream_gone(&mut self, id: u32) {
        self.opaque.own.remove(&id);
        self.opaque.waited.remove(&id);
        if let Some(cache) = self.opaque.cache.as_mut() {
            cache.forget_waiter(id);
        }
    }
}

#[cfg(test)]
mod tests;
