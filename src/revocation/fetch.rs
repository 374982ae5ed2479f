//! The life of one provider's revocation list in one VM, as pure functions of `now`: when to
//! fetch, what a response means (200, 304, a failure), which list is in force, how long a last
//! good list survives an outage, and the backoff. No I/O: the instance core sends the fetches
//! this asks for (`callouts::Callouts::list_request`, with [`ListFetch::etag`]) and reports
//! what came back; time (milliseconds since the epoch) and randomness (jitter) come in as
//! arguments. A `resource::Resource` like `jwks_cache::RemoteKeys` (its schedule and backoff
//! are `resource::Schedule`), so both go through one fetch machinery (`callouts`, `fleet`);
//! [`ProviderLists`] holds one per provider and answers `KeyStore::revocation`.
//!
//! ```text
//!            200, a list that may replace ours           due: cache_duration (or a shorter
//!   Empty ────────────────────────────────▶ InForce ◀──┐     max-age) after the last 200/304
//!     │ ▲                                     │  │    │ 304 (If-None-Match hit): kept,
//!     │ └─ failed: back off (1 s doubling     │  │    │ confirmed now
//!     │    up to cache_duration, ±20%)        │  └────┘
//!     │                                       │ failures: the list is kept, backoff;
//!     └ requests wait (Pending) while the     ▼ past max_staleness since the last 200/304
//!       first fetch is in flight          Unavailable (`revocation_unavailable`)
//! ```
//!
//! A failed fetch never replaces the list in force: a bad status, a reset, a body over
//! `MAX_BODY_BYTES`, a document that does not read, an unsigned or badly signed list under
//! `require_signed`, and a list older than ours (`RevocationList::may_replace`: no rollback)
//! all count as failures, each with its `reason` for `revocation_fetch_failed.<reason>`.
//!
//! One fetch per Envoy (`fleet`): the VM that fetched publishes the body as fetched and
//! [`ListFetch::shared_version`] (after a 304, the version alone); the others take it through
//! `Resource::read_shared_version` / `Resource::adopt_shared`, which read the body exactly as a
//! response (so a signed list is verified by every VM), never take an older list, and bound
//! the record as `jwks_cache::read_version` does (not from the future, not stale, lifetime
//! clamped), because shared data is writable by every module of the `vm_id` namespace.

use std::sync::Arc;
use std::time::Duration;

use super::{ListError, RevocationList, MAX_BODY_BYTES};
use crate::config::{Config, ProviderId};
use crate::jwks::KeySet;
use crate::jwks_cache::max_age;
use crate::jwt::Alg;
use crate::resource::{millis, Millis, Resource, Schedule, Verify, SHARED_CLOCK_SKEW};
use crate::signature::SignatureBackend;

/// Defined beside the configuration that sets them (a leaf for both).
pub use crate::config::{ListPolicy, MIN_LIST_CACHE_DURATION as MIN_CACHE_DURATION};

/// What a request can have of a provider's revocation list right now (asked only for a
/// provider whose configuration names one).
#[derive(Debug, Clone, Copy)]
pub enum ListAvailability<'l> {
    /// The list in force: fetched within `max_staleness`.
    Ready(&'l RevocationList),
    /// No list yet, but a fetch is on the way: wait for it (`Wait` with no kid).
    Pending,
    /// None to be had: none after the wait, or the last good one is past `max_staleness`.
    /// The request fails as `RevocationUnavailable`, never as "nothing revoked".
    Unavailable,
}

/// The longest `ETag` kept for `If-None-Match`; a longer one is not sent back.
pub const MAX_ETAG_BYTES: usize = 256;

/// The first retry delay after a failure; it doubles per failure up to `cache_duration`.
pub const RETRY_BASE: Duration = Duration::from_secs(1);

impl ListPolicy {
    /// The list's lifetime for a response with `cache_control`: `max-age` (`no-cache` /
    /// `no-store` as 0) within `MIN_CACHE_DURATION ..= cache_duration`, else `cache_duration`.
    pub fn ttl(&self, cache_control: Option<&str>) -> Duration {
        cache_control
            .and_then(max_age)
            .map_or(self.cache_duration, |age| age.min(self.cache_duration))
            .max(MIN_CACHE_DURATION)
    }

    /// The longest delay between retries: `cache_duration`, so a failing server is never asked
    /// more often than once a second nor less often than a healthy one.
    fn max_backoff(&self) -> Duration {
        self.cache_duration.max(RETRY_BASE)
    }
}

/// Why a fetch did not produce a list in force; the last good list stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFailure {
    /// A status other than 200 (and 304 answering our `If-None-Match`).
    Status(u32),
    /// The callout could not be sent (unknown cluster, ...).
    Dispatch,
    /// The stream was reset before a response.
    Reset,
    /// The body was read and refused (`ListError`, including an older list).
    List(ListError),
}

impl ListFailure {
    /// The stat-name segment (`metrics::REVOCATION_FETCH_FAILURE_REASONS`).
    pub fn reason(&self) -> &'static str {
        match self {
            ListFailure::Status(_) => "status",
            ListFailure::Dispatch => "dispatch",
            ListFailure::Reset => "reset",
            ListFailure::List(e) => e.reason(),
        }
    }
}

impl std::fmt::Display for ListFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListFailure::Status(code) => write!(f, "the revocation list endpoint answered {code}"),
            ListFailure::Dispatch => f.write_str("the revocation list request could not be sent"),
            ListFailure::Reset => f.write_str("the revocation list request was reset"),
            ListFailure::List(e) => e.fmt(f),
        }
    }
}

/// A response to a list fetch, as the host gave it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListResponse<'a> {
    /// `:status`; `None` when the stream was reset.
    pub status: Option<&'a str>,
    /// The body size the host announced (refused above `MAX_BODY_BYTES` before reading).
    pub body_size: usize,
    pub body: &'a [u8],
    pub etag: Option<&'a str>,
    pub cache_control: Option<&'a str>,
}

/// What a successful fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A new list is in force (`revocation_entries` gauge: `entries`).
    Replaced { issued_at: i64, entries: usize },
    /// 304: the list in force is confirmed (its age restarts).
    NotModified,
}

/// The list in force.
#[derive(Debug, Clone)]
struct InForce {
    list: Arc<RevocationList>,
    /// The last 200 or 304 that gave or confirmed it.
    confirmed_at: Millis,
    ttl: Duration,
    etag: Option<String>,
}

/// One provider's revocation list in one VM.
#[derive(Debug, Clone)]
pub struct ListFetch {
    policy: ListPolicy,
    current: Option<InForce>,
    schedule: Schedule,
}

impl ListFetch {
    pub fn new(policy: ListPolicy) -> Self {
        Self {
            policy,
            current: None,
            schedule: Schedule::default(),
        }
    }

    pub fn policy(&self) -> &ListPolicy {
        &self.policy
    }

    /// Whether a fetch should start now: none in flight, not backing off, and no list yet or
    /// its lifetime is over. (Configuration load: true at once.)
    pub fn wants_fetch(&self, now: Millis) -> bool {
        self.schedule
            .wants_fetch(now, self.current.as_ref().map(InForce::due))
    }

    /// When `wants_fetch` next becomes true if nothing happens (for the timer); `None` while a
    /// fetch is in flight.
    pub fn next_fetch_at(&self) -> Option<Millis> {
        self.schedule
            .next_fetch_at(self.current.as_ref().map(InForce::due))
    }

    pub fn fetch_started(&mut self) {
        self.schedule.started();
    }

    pub fn is_fetching(&self) -> bool {
        self.schedule.is_fetching()
    }

    /// The list's `ETag`, for the fetch's `If-None-Match` (`oauth::revocation_list_request`
    /// builds the request): a 304 then keeps the list.
    pub fn etag(&self) -> Option<&str> {
        self.current.as_ref().and_then(|c| c.etag.as_deref())
    }

    /// A fetch came back with `response` at `now`. A signed list (`require_signed`) is checked
    /// with `verify(alg, kid, signing_input, signature)` (`key_set_verifier`). On failure the
    /// list in force stays and the next attempt backs off (`jitter` in `0..1000`).
    pub fn fetch_done(
        &mut self,
        now: Millis,
        response: ListResponse<'_>,
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
        jitter: u32,
    ) -> Result<Fetched, ListFailure> {
        let result = self.read(now, response, verify);
        match &result {
            Ok(_) => self.schedule.succeeded(),
            Err(_) => self.fetch_failed(now, jitter),
        }
        result
    }

    fn read(
        &mut self,
        now: Millis,
        response: ListResponse<'_>,
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
    ) -> Result<Fetched, ListFailure> {
        let status = response.status.ok_or(ListFailure::Reset)?;
        let ttl = self.policy.ttl(response.cache_control);
        if status == "304" {
            // Only an answer to our `If-None-Match` keeps the list.
            if let Some(current) = self.current.as_mut().filter(|c| c.etag.is_some()) {
                current.confirmed_at = current.confirmed_at.max(now);
                current.ttl = ttl;
                return Ok(Fetched::NotModified);
            }
            return Err(ListFailure::Status(304));
        }
        if status != "200" {
            return Err(ListFailure::Status(status.parse().unwrap_or(0)));
        }
        if response.body_size > MAX_BODY_BYTES {
            return Err(ListFailure::List(ListError::TooLarge));
        }
        let list = self.read_body(response.body, verify)?;
        list.may_replace(self.list(), seconds(now))
            .map_err(ListFailure::List)?;
        let fetched = Fetched::Replaced {
            issued_at: list.issued_at(),
            entries: list.entries(),
        };
        self.current = Some(InForce {
            list: Arc::new(list),
            confirmed_at: now,
            ttl,
            etag: response.etag.and_then(etag),
        });
        Ok(fetched)
    }

    /// The callout could not be sent, or another failure outside a response: back off (1 s
    /// doubling up to `cache_duration`).
    pub fn fetch_failed(&mut self, now: Millis, jitter: u32) {
        self.schedule
            .failed(now, jitter, RETRY_BASE, self.policy.max_backoff());
    }

    /// A list another VM of this Envoy fetched or confirmed at `confirmed_at`, already read,
    /// with its lifetime and `ETag`. Taken when it is more recent than ours, at most
    /// `SHARED_CLOCK_SKEW` ahead of `now`, not past `max_staleness`, and may replace ours
    /// (never an older `issued_at`); its lifetime is clamped to `1s ..= cache_duration`.
    /// Returns whether taken.
    pub fn adopt(
        &mut self,
        now: Millis,
        confirmed_at: Millis,
        list: RevocationList,
        ttl: Duration,
        etag: Option<&str>,
    ) -> bool {
        if !self.newer_and_believable(confirmed_at, now)
            || list.may_replace(self.list(), seconds(now)).is_err()
        {
            return false;
        }
        self.current = Some(InForce {
            list: Arc::new(list),
            confirmed_at,
            ttl: ttl.clamp(MIN_CACHE_DURATION, self.policy.cache_duration),
            etag: etag.and_then(self::etag),
        });
        self.schedule.succeeded();
        true
    }

    /// The shared-data version record of the list in force, for the other VMs of this Envoy:
    /// `confirmed_at ttl_ms etag` (`-` for no `ETag`). Published with the body as fetched
    /// (`adopt_shared`); after a 304 only this record changes.
    pub fn shared_version(&self) -> Option<String> {
        self.current.as_ref().map(|c| {
            format!(
                "{} {} {}",
                c.confirmed_at,
                millis(c.ttl),
                c.etag.as_deref().unwrap_or("-")
            )
        })
    }

    /// A list a peer published in shared data: its `version` record and the body it fetched
    /// (what `fleet` does through `Resource`, with the reason a body was refused). Shared data
    /// is writable by every module of the `vm_id` namespace, so the record is bounded
    /// (`Resource::read_shared_version`) and the body read as a fetched one is (size, format,
    /// `require_signed` with `verify`, no rollback). `Ok(false)`: nothing newer (or a record
    /// not to believe); `Err`: the body was refused, which never touches the list in force.
    pub fn adopt_shared(
        &mut self,
        now: Millis,
        version: &[u8],
        body: &[u8],
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
    ) -> Result<bool, ListFailure> {
        match Resource::read_shared_version(self, version, now) {
            Some(version) => self.adopt_read(now, version, body, verify),
            None => Ok(false),
        }
    }

    /// A believed, newer version record and its body. One with the `ETag` of the list in
    /// force is a peer's 304: it confirms our list, and the body (up to 4 MiB) is not read.
    fn adopt_read(
        &mut self,
        now: Millis,
        (confirmed_at, ttl, etag): (Millis, Duration, Option<String>),
        body: &[u8],
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
    ) -> Result<bool, ListFailure> {
        if let Some(current) = self
            .current
            .as_mut()
            .filter(|c| c.etag.is_some() && c.etag == etag && confirmed_at > c.confirmed_at)
        {
            current.confirmed_at = confirmed_at;
            current.ttl = ttl.clamp(MIN_CACHE_DURATION, self.policy.cache_duration);
            self.schedule.succeeded();
            return Ok(true);
        }
        let list = self.read_body(body, verify)?;
        Ok(self.adopt(now, confirmed_at, list, ttl, etag.as_deref()))
    }

    /// A body, fetched or a peer's: size, format, `require_signed` with `verify`.
    fn read_body(
        &self,
        body: &[u8],
        verify: impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool,
    ) -> Result<RevocationList, ListFailure> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ListFailure::List(ListError::TooLarge));
        }
        if self.policy.require_signed {
            RevocationList::parse_signed(body, verify)
        } else {
            RevocationList::parse(body)
        }
        .map_err(ListFailure::List)
    }

    /// Whether a peer's list confirmed at `confirmed_at` is more recent than ours, at most
    /// `SHARED_CLOCK_SKEW` ahead of `now`, and not past `max_staleness`.
    fn newer_and_believable(&self, confirmed_at: Millis, now: Millis) -> bool {
        let newer = self
            .current
            .as_ref()
            .is_none_or(|c| confirmed_at > c.confirmed_at);
        newer
            && confirmed_at <= now.saturating_add(millis(SHARED_CLOCK_SKEW))
            && now <= confirmed_at.saturating_add(millis(self.policy.max_staleness))
    }

    /// The list in force, however old.
    pub fn list(&self) -> Option<&RevocationList> {
        self.current.as_ref().map(|c| &*c.list)
    }

    /// What a request may use now: the list while the last 200/304 is at most `max_staleness`
    /// old; else `Pending` while a fetch is in flight, `Unavailable` when none is.
    pub fn availability(&self, now: Millis) -> ListAvailability<'_> {
        let usable = self.current.as_ref().filter(|c| {
            now <= c
                .confirmed_at
                .saturating_add(millis(self.policy.max_staleness))
        });
        match (usable, self.is_fetching()) {
            (Some(c), _) => ListAvailability::Ready(&c.list),
            (None, true) => ListAvailability::Pending,
            (None, false) => ListAvailability::Unavailable,
        }
    }

    /// Seconds since the last 200 or 304 (`revocation_list_age_seconds`); `None` before one.
    pub fn age_seconds(&self, now: Millis) -> Option<u64> {
        self.current
            .as_ref()
            .map(|c| now.saturating_sub(c.confirmed_at) / 1000)
    }

    /// Entries of the list in force (`revocation_entries`); 0 before one.
    pub fn entries(&self) -> usize {
        self.list().map_or(0, RevocationList::entries)
    }

    /// Consecutive failed fetches since the last success.
    pub fn failures(&self) -> u32 {
        self.schedule.failures()
    }
}

impl InForce {
    fn due(&self) -> Millis {
        self.confirmed_at.saturating_add(millis(self.ttl))
    }
}

/// Every provider's list state in one VM, indexed by `ProviderId` (`None`: no `revocation`):
/// what the instance core owns beside the remote key sets, and answers
/// `KeyStore::revocation` from.
#[derive(Debug, Clone, Default)]
pub struct ProviderLists {
    lists: Vec<Option<ListFetch>>,
}

impl ProviderLists {
    /// One `ListFetch` per provider with `revocation`, each wanting its first fetch now.
    pub fn new(config: &Config) -> Self {
        Self {
            lists: config
                .providers
                .iter()
                .map(|p| {
                    p.revocation
                        .as_ref()
                        .map(|r| ListFetch::new(r.policy.clone()))
                })
                .collect(),
        }
    }

    pub fn get(&self, provider: ProviderId) -> Option<&ListFetch> {
        self.lists.get(provider).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, provider: ProviderId) -> Option<&mut ListFetch> {
        self.lists.get_mut(provider).and_then(Option::as_mut)
    }

    /// Every provider's list, indexed by provider id (for `fleet`).
    pub fn as_mut_slice(&mut self) -> &mut [Option<ListFetch>] {
        &mut self.lists
    }

    /// The providers whose list should be fetched now.
    pub fn due(&self, now: Millis) -> Vec<ProviderId> {
        (0..self.lists.len())
            .filter(|&p| self.get(p).is_some_and(|l| l.wants_fetch(now)))
            .collect()
    }

    /// The earliest `next_fetch_at` of all (for the timer); `None` when nothing is scheduled.
    pub fn next_fetch_at(&self) -> Option<Millis> {
        self.lists
            .iter()
            .flatten()
            .filter_map(ListFetch::next_fetch_at)
            .min()
    }

    /// `KeyStore::revocation` at `now`. A provider without `revocation` is never asked; if it
    /// were, it has nothing: `Unavailable`.
    pub fn availability(&self, provider: ProviderId, now: Millis) -> ListAvailability<'_> {
        self.get(provider)
            .map_or(ListAvailability::Unavailable, |l| l.availability(now))
    }
}

/// The signature check of a signed list: the provider's key set, as for its tokens. No key set
/// (yet): nothing verifies.
pub fn key_set_verifier<'a>(
    keys: Option<&'a KeySet>,
    backend: &'a dyn SignatureBackend,
) -> impl FnOnce(Alg, Option<&str>, &[u8], &[u8]) -> bool + 'a {
    move |alg, kid, input, signature| {
        keys.is_some_and(|k| k.verify(alg, kid, input, signature, backend).is_ok())
    }
}

/// `confirmed_at ttl_ms etag` as `shared_version` writes it; `-`: no `ETag`.
fn parse_version(bytes: &[u8]) -> Option<(Millis, Duration, Option<&str>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = text.split(' ');
    let confirmed_at = fields.next()?.parse().ok()?;
    let ttl = Duration::from_millis(fields.next()?.parse().ok()?);
    let etag = fields.next().filter(|e| *e != "-");
    fields.next().is_none().then_some((confirmed_at, ttl, etag))
}

/// An `ETag` worth sending back: visible ASCII, at most `MAX_ETAG_BYTES`.
fn etag(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()
        && value.len() <= MAX_ETAG_BYTES
        && value.bytes().all(|b| b.is_ascii_graphic()))
    .then(|| value.to_owned())
}

fn seconds(now: Millis) -> i64 {
    i64::try_from(now / 1000).unwrap_or(i64::MAX)
}

impl Resource for ListFetch {
    /// `confirmed_at`, the lifetime and the `ETag` of a peer's list.
    type Version = (Millis, Duration, Option<String>);

    const KIND: &'static str = "revocation";
    const FOLLOW_PEERS: bool = true;

    fn wants_fetch(&self, now: Millis) -> bool {
        ListFetch::wants_fetch(self, now)
    }
    fn next_fetch_at(&self) -> Option<Millis> {
        ListFetch::next_fetch_at(self)
    }
    fn fetch_started(&mut self) {
        ListFetch::fetch_started(self);
    }
    fn is_fetching(&self) -> bool {
        ListFetch::is_fetching(self)
    }
    fn peer_failed(&mut self, retry_at: Millis) {
        self.schedule.peer_failed(retry_at);
    }
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    fn max_retry_delay(&self) -> Millis {
        crate::resource::max_retry_delay(self.policy.max_backoff())
    }

    fn shared_version(&self) -> Option<String> {
        ListFetch::shared_version(self)
    }

    /// A record that parses, more recent than the list in force, at most `SHARED_CLOCK_SKEW`
    /// ahead and not past `max_staleness` (`adopt` checks the same again).
    fn read_shared_version(
        &self,
        record: &[u8],
        now: Millis,
    ) -> Option<(Millis, Duration, Option<String>)> {
        let (confirmed_at, ttl, etag) = parse_version(record)?;
        self.newer_and_believable(confirmed_at, now)
            .then(|| (confirmed_at, ttl, etag.map(str::to_owned)))
    }

    /// `ListFetch::adopt_shared` on a record already read: a peer's 304 confirms, a body is
    /// read as a fetched one (a signed list verified here); a refused body is not taken.
    fn adopt_shared(
        &mut self,
        now: Millis,
        version: (Millis, Duration, Option<String>),
        body: &[u8],
        verify: Verify<'_>,
    ) -> bool {
        let verify = |alg: Alg, kid: Option<&str>, input: &[u8], signature: &[u8]| {
            verify(alg, kid, input, signature)
        };
        self.adopt_read(now, version, body, verify).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
