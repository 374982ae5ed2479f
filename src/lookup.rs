//! A per-token lookup: the answer to one question about one input (an introspection result, an
//! exchanged token), asked of a remote server through a host callout and remembered.
//!
//! What it owns, and what every user gets from it alike:
//! - **Keyed by a hash of the input** (`K`, e.g. `introspection::CacheKey`): the table never
//!   holds the input itself.
//! - **Single-flight per key**: the first request that misses is told to [`Found::Ask`]; every
//!   other request for the same key while that question is out joins it ([`Found::Wait`]) and is
//!   released with it by [`Lookup::settle`], which returns the waiters to resume. A question
//!   that never settles (the callout's answer got lost) is asked again after `ask_timeout`.
//! - **Bounded** in entries and in bytes (each answer says what it weighs); when a new answer
//!   does not fit, the oldest answers go first. A question in flight is never evicted (its
//!   waiters hold it), and is counted against the entry bound.
//! - **Positive and negative lifetimes**: the user says how long each answer serves
//!   ([`Lifetime`]): `fresh_until`, used without asking; `stale_until`, used when asking again
//!   fails. A negative answer is a value like any other with its own (usually shorter) life.
//!   While asking again fails, a stale answer is served and the question is asked at most once
//!   every `retry_interval`.
//! - Errors are never remembered: a failed question with nothing stale to serve leaves no entry,
//!   and its waiters are released to decide with the error ([`Settled::Failed`]).
//!
//! Sans-I/O: time comes in as an argument (milliseconds since the epoch); the waiters are the
//! host's stream ids, resumed by whoever calls `settle`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::jwks_cache::Millis;

/// How long one answer serves, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Served without asking before this.
    pub fresh_until: Millis,
    /// Served when asking again fails, before this (at least `fresh_until`).
    pub stale_until: Millis,
}

/// The bounds of one lookup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most entries, answers and questions in flight together (at least 1).
    pub max_entries: usize,
    /// Most bytes of answers, as their `weight` says.
    pub max_bytes: usize,
    /// A question not settled after this long is asked again.
    pub ask_timeout: Millis,
    /// While a stale answer is served because asking failed, ask again at most this often.
    pub retry_interval: Millis,
}

/// What a request finds for its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a, V> {
    /// An answer to use now (fresh, or stale while the server fails).
    Answer(&'a V),
    /// Nobody is asking: the caller asks (dispatches the callout) and later calls `settle`.
    /// The caller waits for the answer like the ones that join it.
    Ask,
    /// The question is out; the caller waits and is released by `settle`.
    Wait,
    /// The table is full of questions in flight: the caller cannot be served (decide as for a
    /// server that does not answer).
    Full,
}

/// How a question ended.
#[derive(Debug)]
pub enum Settled<V> {
    /// The server answered; `weight` is what the answer costs in bytes.
    Answer {
        value: V,
        weight: usize,
        life: Lifetime,
    },
    /// The server answered with something not worth remembering (`cache_duration` 0, an answer
    /// whose life has already ended): waiters take it from the caller, the table keeps nothing.
    Uncached,
    /// The server could not be asked or did not answer usably.
    Failed,
}

struct Answered<V> {
    value: V,
    weight: usize,
    life: Lifetime,
    /// While stale because asking failed: not asked again before this.
    retry_at: Millis,
    /// Its place in `order`.
    seq: u64,
}

enum Slot<V> {
    Answered(Answered<V>),
    /// A question in flight, with the answer it may replace (served if it fails).
    Asking {
        since: Millis,
        waiters: Vec<u32>,
        previous: Option<Answered<V>>,
    },
}

/// One table of answers (per provider and per VM).
pub struct Lookup<K, V> {
    bounds: Bounds,
    slots: HashMap<K, Slot<V>>,
    /// Answers by age, oldest first, as (key, seq): a pair whose slot has gone or holds a newer
    /// answer is skipped, and the queue is compacted when such pairs outnumber the live ones.
    order: VecDeque<(K, u64)>,
    next_seq: u64,
    bytes: usize,
}

impl<K: Hash + Eq + Clone, V> Lookup<K, V> {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds: Bounds {
                max_entries: bounds.max_entries.max(1),
                ..bounds
            },
            slots: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    /// Entries held (answers and questions in flight).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes of the answers held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The answer `find` would serve for `key` at `now` (fresh, or stale while asking again
    /// fails), without asking or recording anyone: what a decision reads.
    pub fn peek(&self, key: &K, now: Millis) -> Option<&V> {
        match self.slots.get(key) {
            Some(Slot::Answered(a))
                if now < a.life.fresh_until || (now < a.life.stale_until && now < a.retry_at) =>
            {
                Some(&a.value)
            }
            _ => None,
        }
    }

    /// What stream `waiter` finds for `key` at `now`. On [`Found::Ask`] and [`Found::Wait`]
    /// the waiter is recorded and is among those `settle` returns.
    pub fn find(&mut self, key: &K, waiter: u32, now: Millis) -> Found<'_, V> {
        let ask_timeout = self.bounds.ask_timeout;
        let verdict = match self.slots.get_mut(key) {
            None => Verdict::New,
            Some(Slot::Answered(a)) if now < a.life.fresh_until => Verdict::Serve,
            Some(Slot::Answered(a)) if now < a.life.stale_until && now < a.retry_at => {
                Verdict::Serve
            }
            Some(Slot::Answered(_)) => Verdict::Refresh,
            Some(Slot::Asking { since, waiters, .. }) => {
                if now.saturating_sub(*since) >= ask_timeout {
                    // Lost: ask again, and everyone waiting waits for the new question.
                    *since = now;
                    waiters.push(waiter);
                    return Found::Ask;
                }
                waiters.push(waiter);
                return Found::Wait;
            }
        };
        match verdict {
            Verdict::Serve => match self.slots.get(key) {
                Some(Slot::Answered(a)) => Found::Answer(&a.value),
                _ => Found::Full,
            },
            Verdict::Refresh => {
                // The old answer stays (and keeps its bytes) to serve if asking fails.
                let previous = match self.slots.remove(key) {
                    Some(Slot::Answered(a)) if now < a.life.stale_until => Some(a),
                    Some(Slot::Answered(a)) => {
                        self.bytes = self.bytes.saturating_sub(a.weight);
                        None
                    }
                    _ => None,
                };
                self.ask(key, waiter, now, previous)
            }
            Verdict::New => {
                if self.slots.len() >= self.bounds.max_entries && !self.evict_one() {
                    return Found::Full;
                }
                self.ask(key, waiter, now, None)
            }
        }
    }

    fn ask(
        &mut self,
        key: &K,
        waiter: u32,
        now: Millis,
        previous: Option<Answered<V>>,
    ) -> Found<'_, V> {
        self.slots.insert(
            key.clone(),
            Slot::Asking {
                since: now,
                waiters: vec![waiter],
                previous,
            },
        );
        Found::Ask
    }

    /// The question for `key` ended at `now`: remember the answer if it may be, and return the
    /// streams to resume (each finds again, or takes the error). A key nobody asked for (an
    /// answer that arrives after the table forgot the question) changes nothing.
    pub fn settle(&mut self, key: &K, settled: Settled<V>, now: Millis) -> Vec<u32> {
        let (waiters, previous) = match self.slots.remove(key) {
            Some(Slot::Asking {
                waiters, previous, ..
            }) => (waiters, previous),
            Some(answered) => {
                self.slots.insert(key.clone(), answered);
                return Vec::new();
            }
            None => return Vec::new(),
        };
        if let Some(p) = &previous {
            self.bytes = self.bytes.saturating_sub(p.weight);
        }
        match settled {
            Settled::Answer {
                value,
                weight,
                life,
            } if now < life.fresh_until.max(life.stale_until) => {
                self.store(
                    key,
                    Answered {
                        value,
                        weight,
                        life,
                        retry_at: 0,
                        seq: 0,
                    },
                );
            }
            Settled::Answer { .. } | Settled::Uncached => {}
            Settled::Failed => {
                if let Some(mut p) = previous.filter(|p| now < p.life.stale_until) {
                    p.retry_at = now.saturating_add(self.bounds.retry_interval);
                    self.store(key, p);
                }
            }
        }
        waiters
    }

    /// Stream `waiter` went away while waiting: it is not resumed. The question stays out (its
    /// answer still serves the next request).
    pub fn forget_waiter(&mut self, waiter: u32) {
        for slot in self.slots.values_mut() {
            if let Slot::Asking { waiters, .. } = slot {
                waiters.retain(|w| *w != waiter);
            }
        }
    }

    /// Drops answers whose every use has ended (past `stale_until`). Cheap to call on a tick.
    pub fn expire(&mut self, now: Millis) {
        let mut freed = 0;
        self.slots.retain(|_, slot| match slot {
            Slot::Answered(a) if now >= a.life.stale_until.max(a.life.fresh_until) => {
                freed += a.weight;
                false
            }
            _ => true,
        });
        self.bytes = self.bytes.saturating_sub(freed);
        self.compact();
    }

    /// Drops the pairs of `order` that no longer name a live answer.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.order
            .retain(|(k, seq)| matches!(slots.get(k), Some(Slot::Answered(a)) if a.seq == *seq));
    }

    fn store(&mut self, key: &K, mut answer: Answered<V>) {
        if answer.weight > self.bounds.max_bytes {
            return;
        }
        while self.slots.len() >= self.bounds.max_entries
            || self.bytes.saturating_add(answer.weight) > self.bounds.max_bytes
        {
            if !self.evict_one() {
                return;
            }
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        answer.seq = self.next_seq;
        self.bytes = self.bytes.saturating_add(answer.weight);
        self.slots.insert(key.clone(), Slot::Answered(answer));
        self.order.push_back((key.clone(), self.next_seq));
        if self.order.len() > self.slots.len().saturating_mul(2).saturating_add(16) {
            self.compact();
        }
    }

    /// Drops the oldest answer; false when there is none (only questions in flight).
    fn evict_one(&mut self) -> bool {
        while let Some((key, seq)) = self.order.pop_front() {
            if let Some(Slot::Answered(a)) = self.slots.get(&key) {
                if a.seq == seq {
                    self.bytes = self.bytes.saturating_sub(a.weight);
                    self.slots.remove(&key);
                    return true;
                }
            }
        }
        false
    }
}

enum Verdict {
    New,
    Serve,
    Refresh,
}

#[cfg(test)]
mod tests;
