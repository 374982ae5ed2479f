//! The per-VM introspection cache (issue 14): one `lookup::Lookup` per introspection
//! provider, keyed by `CacheKey` (HMAC of provider and token: no token text is kept), with
//! `CachePolicy`'s lifetimes, single-flight per key, bounded by `max_cache_entries` and
//! `MAX_CACHE_BYTES`, and at most `MAX_IN_FLIGHT` introspections out per VM.
//!
//! How the instance core uses it, per request:
//! 1. decide with [`RequestAnswers`] (this cache, plus what this request was told: a failure,
//!    an uncached answer), handed to the decide loop as `parked::Deciding::answers`
//!    (`engine::decide_introspecting` outside it);
//! 2. for the lookups that decision needed: [`IntrospectionCache::find`] for each; `Ask` → dispatch
//!    `needed.request` to the provider's cluster and park; `Wait` → park; `Answer` or
//!    `Failed` → nothing to wait for;
//! 3. on the callout's response: [`IntrospectionCache::settle`] with status and body; it
//!    returns the streams to resume and what they take with them (`Outcome`); each resumed
//!    stream records it in its `RequestAnswers` and decides again.
//!
//! Errors are never cached; a stale active answer serves while the server fails, up to
//! `stale_if_error` (never past `exp`), as `Lookup` and `CachePolicy` say.

use crate::config::{Config, ProviderId};
use crate::jwks_cache::Millis;
use crate::lookup::{Bounds, Found, Lifetime, Lookup, Settled};
use crate::oauth::Unavailable;

use super::{read_response, Answer, Answers, CacheKey, CachePolicy, Known, TokenKeyer};

/// Most introspections out at once per VM (all providers): a flood of new tokens cannot
/// open unbounded callouts; the request beyond it is `introspection_unavailable`.
pub const MAX_IN_FLIGHT: usize = 256;

/// Most bytes of answers one provider's table keeps per VM.
pub const MAX_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// While a stale answer serves because the server fails, ask again at most this often.
pub const RETRY_INTERVAL_MS: Millis = 1_000;

struct Table {
    lookup: Lookup<CacheKey, Answer>,
    policy: CachePolicy,
}

/// One VM's introspection answers, for every introspection provider of a configuration.
pub struct IntrospectionCache {
    keyer: TokenKeyer,
    /// By `ProviderId`; `None` for a JWT provider.
    tables: Vec<Option<Table>>,
    in_flight: usize,
}

/// What a question that ended hands to the streams that waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Decide again: the table holds the answer (or the stale one that serves).
    Cached,
    /// Decide again with this answer, which the table does not keep (`cache_duration: 0s`,
    /// a negative answer with `negative_cache_duration: 0s`, an `exp` already past).
    Uncached(Answer),
    /// Asking failed and nothing may serve: `introspection_unavailable`.
    Failed(Unavailable),
}

/// What `find` tells one stream about one lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the callout now and park; `settle` releases the stream.
    Ask,
    /// Someone is asking already: park; `settle` releases the stream.
    Wait,
    /// An answer is there: decide again now.
    Ready,
    /// Cannot be asked now (table full of questions, too many in flight): decide again now,
    /// recording `Failed` for this key in the stream's `RequestAnswers`; `also` are other
    /// streams that waited for this key (a lost question asked again) and take the same.
    Failed { also: Vec<u32> },
}

impl IntrospectionCache {
    /// The tables of `config`'s introspection providers, keyed under `key` (32 random bytes
    /// the VM draws at start).
    pub fn new(config: &Config, key: &[u8; 32]) -> IntrospectionCache {
        let tables = config
            .providers
            .iter()
            .map(|p| {
                let i = p.introspection.as_deref()?;
                let timeout = Millis::try_from(i.server.timeout.as_millis()).unwrap_or(Millis::MAX);
                Some(Table {
                    lookup: Lookup::new(Bounds {
                        max_entries: i.max_cache_entries,
                        max_bytes: MAX_CACHE_BYTES,
                        // A callout answers or times out within `timeout`; past that (and a
                        // second of slack) its answer was lost.
                        ask_timeout: timeout.saturating_add(1_000),
                        retry_interval: RETRY_INTERVAL_MS,
                    }),
                    policy: i.cache,
                })
            })
            .collect();
        IntrospectionCache {
            keyer: TokenKeyer::new(key),
            tables,
            in_flight: 0,
        }
    }

    /// Introspections out now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Entries held for `provider` (answers and questions in flight).
    pub fn len(&self, provider: ProviderId) -> usize {
        self.table(provider).map_or(0, |t| t.lookup.len())
    }

    fn table(&self, provider: ProviderId) -> Option<&Table> {
        self.tables.get(provider).and_then(Option::as_ref)
    }

    /// Stream `waiter` needs the answer under `key` at `provider`, at `now` (ms).
    pub fn find(&mut self, provider: ProviderId, key: &CacheKey, waiter: u32, now: Millis) -> Step {
        let full = self.in_flight >= MAX_IN_FLIGHT;
        let Some(table) = self.tables.get_mut(provider).and_then(Option::as_mut) else {
            return Step::Failed { also: Vec::new() };
        };
        match table.lookup.find(key, waiter, now) {
            Found::Answer(_) => Step::Ready,
            Found::Wait => Step::Wait,
            Found::Full => Step::Failed { also: Vec::new() },
            Found::Ask if full => {
                // Not sent: whoever joined this question hears that it failed.
                let mut also = table.lookup.settle(key, Settled::Failed, now);
                also.retain(|w| *w != waiter);
                Step::Failed { also }
            }
            Found::Ask => {
                self.in_flight = self.in_flight.saturating_add(1);
                Step::Ask
            }
        }
    }

    /// The callout for `key` at `provider` ended at `now` (ms) with `status` (`None`: no
    /// response: reset, timeout) and `body`. Returns the streams to resume and what they
    /// take. `Outcome::Failed(Unavailable::ClientRejected)` (401/403: the filter's own
    /// credentials refused) is for the caller to log at warn, naming the provider.
    pub fn settle(
        &mut self,
        provider: ProviderId,
        key: &CacheKey,
        status: Option<u32>,
        body: &[u8],
        now: Millis,
    ) -> (Vec<u32>, Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(table) = self.tables.get_mut(provider).and_then(Option::as_mut) else {
            return (Vec::new(), Outcome::Failed(Unavailable::NoResponse));
        };
        let now_s = i64::try_from(now / 1_000).unwrap_or(i64::MAX);
        let ms = |s: i64| Millis::try_from(s).unwrap_or(0).saturating_mul(1_000);
        match read_response(status, body) {
            Err(e) => {
                let waiters = table.lookup.settle(key, Settled::Failed, now);
                // A stale answer the table kept serves them (`peek` finds it); else the error.
                let outcome = if table.lookup.peek(key, now).is_some() {
                    Outcome::Cached
                } else {
                    Outcome::Failed(e)
                };
                (waiters, outcome)
            }
            Ok(answer) => match table.policy.lifetime(&answer, now_s) {
                Some(life) => {
                    let weight = body.len().saturating_add(64);
                    let life = Lifetime {
                        fresh_until: ms(life.fresh_until),
                        stale_until: ms(life.stale_until),
                    };
                    let waiters = table.lookup.settle(
                        key,
                        Settled::Answer {
                            value: answer.clone(),
                            weight,
                            life,
                        },
                        now,
                    );
                    // A table too small to keep it still hands it to its waiters.
                    let outcome = if table.lookup.peek(key, now).is_some() {
                        Outcome::Cached
                    } else {
                        Outcome::Uncached(answer)
                    };
                    (waiters, outcome)
                }
                None => (
                    table.lookup.settle(key, Settled::Uncached, now),
                    Outcome::Uncached(answer),
                ),
            },
        }
    }

    /// Stream `waiter` went away: it is not resumed.
    pub fn forget_waiter(&mut self, waiter: u32) {
        for table in self.tables.iter_mut().flatten() {
            table.lookup.forget_waiter(waiter);
        }
    }

    /// Drops answers whose every use has ended; cheap on a tick.
    pub fn expire(&mut self, now: Millis) {
        for table in self.tables.iter_mut().flatten() {
            table.lookup.expire(now);
        }
    }
}

/// The warn line for a failed introspection the operator must fix, naming the provider and
/// never the secret: the server refused the filter's own credentials (401/403,
/// `invalid_client`). `None` for other failures (counted, not logged per request).
pub fn refusal_warning(provider: &str, failure: Unavailable) -> Option<String> {
    (failure == Unavailable::ClientRejected).then(|| {
        format!(
            "introspection for provider `{provider}`: the authorization server refused the \
             filter's credentials (401/403): check introspection.client_id, client_secret and \
             auth_method"
        )
    })
}

/// The answers one request decides with: the VM's cache at `now`, and what this request was
/// told when its lookups ended (an answer not cached, a failure).
pub struct RequestAnswers<'a> {
    cache: &'a IntrospectionCache,
    now: Millis,
    own: Vec<(ProviderId, CacheKey, Result<Answer, Unavailable>)>,
    /// The last round of a bounded decide loop: what is still unknown counts as failed.
    last_round: bool,
    /// Answers read from the cache, by provider (`introspection_cache_hit`).
    hits: std::cell::RefCell<Vec<ProviderId>>,
}

impl<'a> RequestAnswers<'a> {
    pub fn new(cache: &'a IntrospectionCache, now: Millis) -> RequestAnswers<'a> {
        RequestAnswers {
            cache,
            now,
            own: Vec::new(),
            last_round: false,
            hits: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The answers of the last round of a bounded decide loop (`filter`'s): a key still
    /// unknown is `Known::Failed` (`introspection_unavailable`), so that round needs nothing.
    pub fn last_round(mut self) -> RequestAnswers<'a> {
        self.last_round = true;
        self
    }

    /// The providers whose answer this decision read from the cache, once per read: count
    /// `introspection_cache_hit` from the `RequestAnswers` of a request's final decision only.
    pub fn cache_hits(&self) -> Vec<ProviderId> {
        self.hits.borrow().clone()
    }

    /// Records what a lookup of this request ended with (`Outcome::Uncached`, `Failed`, or a
    /// `Step::Failed` of `find`).
    pub fn record(
        &mut self,
        provider: ProviderId,
        key: CacheKey,
        outcome: Result<Answer, Unavailable>,
    ) {
        self.own.retain(|(p, k, _)| !(*p == provider && *k == key));
        self.own.push((provider, key, outcome));
    }
}

impl Answers for RequestAnswers<'_> {
    fn key(&self, provider: &str, token: &str) -> CacheKey {
        self.cache.keyer.key(provider, token)
    }

    fn answer(&self, provider: ProviderId, key: &CacheKey) -> Known<'_> {
        if let Some((_, _, own)) = self.own.iter().find(|(p, k, _)| *p == provider && k == key) {
            return match own {
                Ok(answer) => Known::Answer(answer),
                Err(_) => Known::Failed,
            };
        }
        match self.cache.table(provider) {
            Some(table) => match table.lookup.peek(key, self.now) {
                Some(answer) => {
                    self.hits.borrow_mut().push(provider);
                    Known::Answer(answer)
                }
                None if self.last_round => Known::Failed,
                None => Known::Unknown,
            },
            None => Known::Failed,
        }
    }
}

#[cfg(test)]
mod tests;
