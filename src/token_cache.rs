//! Verified tokens, per provider and per VM, so a token seen again skips parsing and its
//! signature check: `jwt_authn`'s `jwt_cache_config`.
//!
//! - Bounded: at most `jwt_cache_size` tokens per provider; when full, the oldest entry goes.
//! - Keyed by the token text: the standard library's SipHash finds the entry (about a
//!   microsecond for a 1 KiB token in wasm, where SHA-256 costs several), and the text is
//!   compared in full, so two tokens can never share an entry.
//! - An entry counts only under the key set that verified it (`KeySet::version`): new keys,
//!   and every entry is a miss until verified again.
//! - An entry lives until the token's `exp`, and at most `MAX_TTL_SECONDS`.
//! - A hit says only that the signature is good: the issuer, time, subject and audience checks
//!   run on every request (`verify::check_claims`).
//!
//! Sans-I/O: time comes in as an argument (seconds since the epoch).

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::jwt::UntrustedJwt;

/// Envoy's default `jwt_cache_size`.
pub const DEFAULT_SIZE: usize = 100;

/// The longest an entry lives, whatever the token's `exp` (tokens without one, far-future ones).
pub const MAX_TTL_SECONDS: i64 = 600;

struct Entry {
    jwt: Rc<UntrustedJwt>,
    key_set: u64,
    expires_at: i64,
}

/// One provider's verified tokens.
pub struct ProviderCache {
    capacity: usize,
    entries: HashMap<Rc<str>, Entry>,
    /// Every key of `entries` once, oldest first (the same text, shared).
    order: VecDeque<Rc<str>>,
}

impl ProviderCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The token `token`, if it verified under key set `key_set` and has not expired.
    pub fn get(&self, token: &str, key_set: u64, now: i64) -> Option<&Rc<UntrustedJwt>> {
        self.entries
            .get(token)
            .filter(|e| e.key_set == key_set && now < e.expires_at)
            .map(|e| &e.jwt)
    }

    /// Records that `jwt` (parsed from `token`) verified under `key_set` at `now`.
    pub fn insert(&mut self, token: Rc<str>, jwt: Rc<UntrustedJwt>, key_set: u64, now: i64) {
        let ttl_end = now.saturating_add(MAX_TTL_SECONDS);
        let expires_at = jwt.claims.exp.map_or(ttl_end, |exp| exp.min(ttl_end));
        let entry = Entry {
            jwt,
            key_set,
            expires_at,
        };
        if let Some(old) = self.entries.get_mut(&token) {
            *old = entry; // keeps its place in `order`
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(Rc::clone(&token));
        self.entries.insert(token, entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The caches of one plugin instance in one VM, indexed by provider id; `None` for providers
/// without `jwt_cache_config`.
pub struct TokenCache {
    providers: Vec<Option<ProviderCache>>,
}

impl TokenCache {
    /// One cache per provider, in provider order: `Some(size)` for a provider with
    /// `jwt_cache_config`, `None` for one without (`Config::token_cache` passes them).
    pub fn new(sizes: impl IntoIterator<Item = Option<usize>>) -> Self {
        Self {
            providers: sizes
                .into_iter()
                .map(|size| size.map(ProviderCache::new))
                .collect(),
        }
    }

    /// No caching at all (tests, and callers that want every token verified).
    pub fn disabled() -> Self {
        Self {
            providers: Vec::new(),
        }
    }

    /// Whether any provider caches.
    pub fn enabled(&self) -> bool {
        self.providers.iter().any(Option::is_some)
    }

    /// `token` parsed, from any provider's cache, whatever its key set or age: a parse
    /// depends on the text alone.
    pub fn parsed(&self, token: &str) -> Option<Rc<UntrustedJwt>> {
        self.providers
            .iter()
            .flatten()
            .find_map(|cache| cache.entries.get(token))
            .map(|entry| Rc::clone(&entry.jwt))
    }

    pub fn provider(&self, id: usize) -> Option<&ProviderCache> {
        self.providers.get(id).and_then(Option::as_ref)
    }

    pub fn provider_mut(&mut self, id: usize) -> Option<&mut ProviderCache> {
        self.providers.get_mut(id).and_then(Option::as_mut)
    }
}

#[cfg(test)]
mod tests;
