//! Verified tokens, per provider and per VM, so a token seen again skips parsing and its
//! signature check: `jwt_authn`'s `jwt_cache_config`.
//!
//! - Bounded: at most `jwt_cache_size` tokens per provider; when full, the oldest entry goes.
//! - Keyed by the token text, found by a hash of its length and its last `HASHED_TAIL` bytes
//!   (the end of the signature) under the standard library's randomly keyed SipHash, and
//!   compared in full, so two tokens can never share an entry. Hashing the whole text cost
//!   about a microsecond per lookup for a 1 KiB token in wasm; the tail, a tenth of that. Two
//!   texts whose hashes collide take turns in one slot (the newer replaces the older): only
//!   verified tokens are stored, whose signatures a client cannot choose, and the key is
//!   random per VM, so that costs at most a signature check. A request whose token came from
//!   this cache (`TokenCache::parsed`) holds the entry's own copy, which is then known equal
//!   by its address, so a hit compares the full text once, not once per lookup.
//! - An entry counts only under the key set that verified it (`KeySet::version`): new keys,
//!   and every entry is a miss until verified again.
//! - An entry lives until the token's `exp`, and at most `MAX_TTL_SECONDS`.
//! - Only a [`Verified`] token goes in, and a hit gives it back as one; the hit vouches only
//!   for the signature: the issuer, time, subject and audience checks run on every request
//!   (`verify::recheck`).
//!
//! Sans-I/O: time comes in as an argument (seconds since the epoch).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

use crate::jwt::UntrustedJwt;
use crate::verify::Verified;

/// Envoy's default `jwt_cache_size` (defined beside the configuration that applies it).
pub use crate::config::DEFAULT_JWT_CACHE_SIZE as DEFAULT_SIZE;

impl crate::config::Config {
    /// The per-VM verified-token caches this configuration asks for (`jwt_cache_config`).
    pub fn token_cache(&self) -> TokenCache {
        TokenCache::new(self.providers.iter().map(|p| p.jwt_cache_size))
    }
}

/// The longest an entry lives, whatever the token's `exp` (tokens without one, far-future ones).
pub const MAX_TTL_SECONDS: i64 = 600;

/// How many bytes at the end of a token its cache hash covers (with its length).
pub const HASHED_TAIL: usize = 64;

/// The hash a token is found by: its length and its last `HASHED_TAIL` bytes.
fn tail_hash(keys: &RandomState, token: &str) -> u64 {
    let bytes = token.as_bytes();
    let tail = bytes
        .get(bytes.len().saturating_sub(HASHED_TAIL)..)
        .unwrap_or(bytes);
    keys.hash_one((bytes.len(), tail))
}

/// Whether `held` and `token` are the same text: at once when `token` is the entry's own copy
/// (a request whose token came from this cache, `TokenCache::parsed`), else compared in full.
fn same_text(held: &str, token: &str) -> bool {
    std::ptr::eq(held, token) || held == token
}

struct Entry {
    /// The whole text: a slot answers only for the token it holds.
    token: Rc<str>,
    verified: Verified,
    key_set: u64,
    expires_at: i64,
}

/// One provider's verified tokens.
pub struct ProviderCache {
    capacity: usize,
    /// The random key of `tail_hash`.
    keys: RandomState,
    /// By `tail_hash` of the token.
    entries: HashMap<u64, Entry>,
    /// The token of every entry once, oldest first (the same text, shared).
    order: VecDeque<Rc<str>>,
}

impl ProviderCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            keys: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The token `token`, if it verified under key set `key_set` and has not expired.
    pub fn get(&self, token: &str, key_set: u64, now: i64) -> Option<&Verified> {
        self.entry(token)
            .filter(|e| e.key_set == key_set && now < e.expires_at)
            .map(|e| &e.verified)
    }

    /// The entry of `token` (whatever its key set and age).
    fn entry(&self, token: &str) -> Option<&Entry> {
        self.entries
            .get(&tail_hash(&self.keys, token))
            .filter(|e| same_text(&e.token, token))
    }

    /// Records that `verified` (parsed from `token`) verified under `key_set` at `now`.
    pub fn insert(&mut self, token: Rc<str>, verified: Verified, key_set: u64, now: i64) {
        let ttl_end = now.saturating_add(MAX_TTL_SECONDS);
        let expires_at = verified
            .claims()
            .exp
            .map_or(ttl_end, |exp| exp.min(ttl_end));
        let hash = tail_hash(&self.keys, &token);
        let entry = Entry {
            token: Rc::clone(&token),
            verified,
            key_set,
            expires_at,
        };
        if let Some(old) = self.entries.get_mut(&hash) {
            if *old.token != *token {
                // Another text with the same hash: it leaves, and its place in `order` too.
                let other = Rc::clone(&old.token);
                self.order.retain(|t| !Rc::ptr_eq(t, &other));
                self.order.push_back(token);
            }
            *old = entry; // the same text keeps its place in `order`
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&tail_hash(&self.keys, &oldest));
                }
                None => break,
            }
        }
        self.order.push_back(token);
        self.entries.insert(hash, entry);
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
    /// depends on the text alone. With the cache's copy of the text, so a hit copies nothing.
    pub fn parsed(&self, token: &str) -> Option<(Rc<str>, Rc<UntrustedJwt>)> {
        self.providers
            .iter()
            .flatten()
            .find_map(|cache| cache.entry(token))
            .map(|entry| (Rc::clone(&entry.token), Rc::clone(entry.verified.jwt())))
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
