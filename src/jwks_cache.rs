//! The lifecycle of one provider's remote key set, as pure functions of `now`: when to fetch,
//! what a response means, which keys to use, how long last-good keys survive an outage, and
//! when an unknown `kid` earns a refetch. No I/O: the instance (`filter`) performs the fetches
//! this module asks for and reports what came back; time (milliseconds since the epoch) and randomness
//! (jitter) come in as arguments.
//!
//! ```text
//!            fetch ok                      refresh due (80% of ttl)
//!   Empty ───────────────▶ Fresh ─────────────────────────────▶ Refreshing
//!     │ ▲                   ▲ │                                  │   │
//!     │ └── fetch failed ───┘ │ unknown kid (≤ 1 per interval)    ok  failed: keep last-good,
//!     │     (backoff+jitter)  └──────────────▶ Refreshing ◀──────┘   │ back off and retry
//!     │                                                               ▼
//!     └─ requests wait (Pending) while a fetch    Stale: ttl passed, keys still used up to
//!        is in flight; else Unavailable            `max_staleness`, then Unavailable
//! ```
//!
//! A failed fetch never replaces good keys: a bad status, a non-JSON body, a body over the
//! size limit, or a JWKS with no usable key all count as failures.
//!
//! A `resource::Resource` (the schedule and backoff are `resource::Schedule`), so `fleet` and
//! `callouts` fetch and share it as they do a revocation list; this module says what its
//! shared records mean and how far they are believed.

use std::sync::Arc;
use std::time::Duration;

use crate::jwks::{JwksError, KeySet};
pub use crate::resource::{lease_until, Lease, Millis, SHARED_CLOCK_SKEW};
use crate::resource::{millis, Resource, Schedule, Verify};

/// The largest JWKS body accepted (1 MiB).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// How many distinct unknown kids are remembered at once (each for `unknown_kid_interval`).
const MAX_UNKNOWN_KIDS: usize = 64;

/// Timing knobs of one remote key set (config: `remote_jwks` and our extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// The key set's lifetime without `Cache-Control: max-age` (`cache_duration`).
    pub cache_duration: Duration,
    /// Bounds applied to `max-age`. The upper one defaults to `cache_duration`, so `max-age`
    /// only ever shortens a key set's lifetime unless the config raises it.
    pub min_cache_duration: Duration,
    pub max_cache_duration: Duration,
    /// How long past its lifetime a key set is still used while refreshes fail.
    pub max_staleness: Duration,
    /// First retry delay after a failure; doubles per failure up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// At most one refetch for unknown kids per interval; a kid looked for in vain is
    /// remembered as unknown for this long (or until a new key set arrives).
    pub unknown_kid_interval: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            cache_duration: Duration::from_secs(600),
            min_cache_duration: Duration::from_secs(30),
            max_cache_duration: Duration::from_secs(600),
            max_staleness: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            unknown_kid_interval: Duration::from_secs(30),
        }
    }
}

/// Why a fetch did not produce a key set. Each is logged with the provider and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// A non-200 status. Envoy synthesises 503 when the cluster cannot be reached and 504 on
    /// timeout, with no way to tell them from the identity provider's own.
    Status(u32),
    /// The call could not be made (`dispatch_http_call` refused it: unknown cluster, ...).
    Dispatch,
    /// The stream was reset before a response (no headers).
    Reset,
    /// The body exceeds `MAX_JWKS_BYTES`.
    TooLarge(usize),
    /// The body is not a usable JWKS.
    BadJwks(JwksError),
    /// The OIDC discovery document has no usable `jwks_uri`.
    Discovery,
}

impl FetchFailure {
    /// A short, stable name for the failure metric and the log.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchFailure::Status(_) => "status",
            FetchFailure::Dispatch => "dispatch",
            FetchFailure::Reset => "reset",
            FetchFailure::TooLarge(_) => "too_large",
            FetchFailure::BadJwks(JwksError::NotJson { .. } | JwksError::NoKeysArray) => "not_jwks",
            FetchFailure::BadJwks(JwksError::NoUsableKey { .. }) => "no_usable_key",
            FetchFailure::Discovery => "discovery",
        }
    }
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::Status(code) => write!(f, "the JWKS endpoint answered {code}"),
            FetchFailure::Dispatch => f.write_str("the JWKS request could not be sent"),
            FetchFailure::Reset => f.write_str("the JWKS request was reset"),
            FetchFailure::TooLarge(size) => {
                write!(f, "the JWKS body is {size} bytes, over {MAX_JWKS_BYTES}")
            }
            FetchFailure::BadJwks(error) => error.fmt(f),
            FetchFailure::Discovery => {
                f.write_str("the OpenID configuration has no http(s) `jwks_uri`")
            }
        }
    }
}

/// Where a request goes: `:scheme`, `:authority`, `:path` of an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    pub authority: String,
    pub path: String,
}

impl Target {
    /// Splits an `http://` or `https://` URL; the path keeps its query, and defaults to `/`.
    pub fn parse(url: &str) -> Option<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if authority.is_empty() || authority.contains(['@', ' ', '#']) || path.contains('#') {
            return None;
        }
        Some(Target {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            path,
        })
    }
}

/// Reads an OIDC discovery response (RFC 8414 / OpenID Connect Discovery): the `jwks_uri`.
pub fn read_discovery(status: Option<&str>, body: &[u8]) -> Result<Target, FetchFailure> {
    let status = status.ok_or(FetchFailure::Reset)?;
    if status != "200" {
        return Err(FetchFailure::Status(status.parse().unwrap_or(0)));
    }
    if body.len() > MAX_JWKS_BYTES {
        return Err(FetchFailure::TooLarge(body.len()));
    }
    crate::jwt::parse_object(body)
        .and_then(|doc| doc.get("jwks_uri")?.as_str().and_then(Target::parse))
        .ok_or(FetchFailure::Discovery)
}

/// A fetched, parsed key set and how long it is good for.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub keys: KeySet,
    pub ttl: Duration,
}

/// Reads a JWKS response: `status` is `:status` (None when the stream was reset), `body` the
/// body (`body_size` as the host announced it), `cache_control` the header if any.
pub fn read_response(
    policy: &FetchPolicy,
    status: Option<&str>,
    body_size: usize,
    body: &[u8],
    cache_control: Option<&str>,
) -> Result<Fetched, FetchFailure> {
    let status = status.ok_or(FetchFailure::Reset)?;
    if status != "200" {
        return Err(FetchFailure::Status(status.parse().unwrap_or(0)));
    }
    if body_size > MAX_JWKS_BYTES || body.len() > MAX_JWKS_BYTES {
        return Err(FetchFailure::TooLarge(body_size.max(body.len())));
    }
    let keys = KeySet::from_slice(body).map_err(FetchFailure::BadJwks)?;
    let ttl = policy.bound_ttl(
        cache_control
            .and_then(max_age)
            .unwrap_or(policy.cache_duration),
    );
    Ok(Fetched { keys, ttl })
}

/// `max-age` of a `Cache-Control` value; `no-cache` / `no-store` count as zero (the policy's
/// minimum then applies).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(Duration::ZERO),
            "max-age" => {
                found = value
                    .trim()
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
            }
            _ => {}
        }
    }
    found
}

/// What a request can have right now.
#[derive(Debug)]
pub enum Availability<'k> {
    Ready(&'k KeySet),
    /// No usable keys yet, but a fetch is in flight: wait for it.
    Pending,
    /// No usable keys and nothing on the way.
    Unavailable,
}

/// The current key set with when it was fetched and for how long it is good.
#[derive(Debug, Clone)]
struct Current {
    keys: Arc<KeySet>,
    fetched_at: Millis,
    ttl: Duration,
}

impl Current {
    fn refresh_at(&self) -> Millis {
        self.fetched_at.saturating_add(millis(self.ttl) / 5 * 4)
    }
    fn expires_at(&self) -> Millis {
        self.fetched_at.saturating_add(millis(self.ttl))
    }
}

/// One provider's remote key set in one VM.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    policy: FetchPolicy,
    current: Option<Current>,
    schedule: Schedule,
    last_kid_refetch: Option<Millis>,
    /// Kids looked for in vain, with when: forgotten after `unknown_kid_interval` or when a
    /// new key set arrives, so one request naming the identity provider's next (predictable)
    /// kid cannot block learning it until the scheduled refresh.
    unknown_kids: Vec<(String, Millis)>,
}

impl RemoteKeys {
    pub fn new(policy: FetchPolicy) -> Self {
        Self {
            policy,
            current: None,
            schedule: Schedule::default(),
            last_kid_refetch: None,
            unknown_kids: Vec::new(),
        }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Whether a fetch should start now: none in flight, not backing off, and either no keys
    /// or a refresh is due.
    pub fn wants_fetch(&self, now: Millis) -> bool {
        self.schedule
            .wants_fetch(now, self.current.as_ref().map(Current::refresh_at))
    }

    /// When `wants_fetch` will next be true if nothing happens (for the timer).
    pub fn next_fetch_at(&self) -> Option<Millis> {
        self.schedule
            .next_fetch_at(self.current.as_ref().map(Current::refresh_at))
    }

    pub fn fetch_started(&mut self) {
        self.schedule.started();
    }

    pub fn is_fetching(&self) -> bool {
        self.schedule.is_fetching()
    }

    /// A fetch produced `fetched`: it becomes the current key set.
    pub fn fetch_succeeded(&mut self, now: Millis, fetched: Fetched) {
        self.current = Some(Current {
            keys: Arc::new(fetched.keys),
            fetched_at: now,
            ttl: fetched.ttl,
        });
        self.schedule.succeeded();
        self.unknown_kids.clear();
    }

    /// A fetch failed: keep whatever keys we have, and back off. `jitter` is a random number
    /// in `0..1000`; the delay is the exponential backoff scaled by 0.8 to 1.2 with it.
    pub fn fetch_failed(&mut self, now: Millis, jitter: u32) {
        self.schedule
            .failed(now, jitter, self.policy.retry_base, self.policy.max_backoff);
    }

    /// A key set another VM of this Envoy fetched at `fetched_at` (shared data). Taken when it
    /// is newer than ours; then it counts as our own successful fetch. Returns whether taken.
    pub fn adopt(&mut self, fetched_at: Millis, fetched: Fetched) -> bool {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.fetched_at >= fetched_at)
        {
            return false;
        }
        self.fetch_succeeded(fetched_at, fetched);
        true
    }

    /// Another VM's fetch, which we waited for, ended without a new key set; they may try
    /// again from `retry_at`.
    pub fn peer_failed(&mut self, retry_at: Millis) {
        self.schedule.peer_failed(retry_at);
    }

    /// The current key set's lifetime.
    pub fn ttl(&self) -> Option<Duration> {
        self.current.as_ref().map(|c| c.ttl)
    }

    /// When the current key set was fetched.
    pub fn fetched_at(&self) -> Option<Millis> {
        self.current.as_ref().map(|c| c.fetched_at)
    }

    /// The earliest time of the next attempt after failures (0: none pending).
    pub fn retry_at(&self) -> Millis {
        self.schedule.retry_at()
    }

    /// Consecutive failed fetches since the last success.
    pub fn failures(&self) -> u32 {
        self.schedule.failures()
    }

    /// Seconds since the current key set was fetched (for the key-set age gauge).
    pub fn age_seconds(&self, now: Millis) -> Option<u64> {
        self.current
            .as_ref()
            .map(|c| now.saturating_sub(c.fetched_at) / 1000)
    }

    /// The keys a request may use now.
    pub fn availability(&self, now: Millis) -> Availability<'_> {
        let usable = self.current.as_ref().filter(|c| {
            now <= c
                .expires_at()
                .saturating_add(millis(self.policy.max_staleness))
        });
        match (usable, self.is_fetching()) {
            (Some(c), _) => Availability::Ready(&c.keys),
            (None, true) => Availability::Pending,
            (None, false) => Availability::Unavailable,
        }
    }

    /// Whether waiting could make `kid` known: it was not looked for in vain in the last
    /// `unknown_kid_interval` (nor since the current key set arrived), and a fetch is in flight
    /// or the refetch budget allows one now.
    pub fn may_learn_kid(&self, kid: &str, now: Millis) -> bool {
        !self.known_unknown(kid, now) && (self.is_fetching() || self.kid_refetch_allowed(now))
    }

    /// `kid` was looked for in vain less than `unknown_kid_interval` ago.
    fn known_unknown(&self, kid: &str, now: Millis) -> bool {
        let interval = millis(self.policy.unknown_kid_interval);
        self.unknown_kids
            .iter()
            .any(|(k, at)| k == kid && now < at.saturating_add(interval))
    }

    fn kid_refetch_allowed(&self, now: Millis) -> bool {
        let interval = millis(self.policy.unknown_kid_interval);
        self.last_kid_refetch
            .is_none_or(|last| now >= last.saturating_add(interval))
    }

    /// A token named `kid`, which no current key has. Returns true when the caller should
    /// start a refetch now (and make the request wait for it); false when this kid is known
    /// unknown, or the refetch budget of this interval is spent. While a fetch is in flight,
    /// the request should wait for it (see `is_fetching`).
    pub fn unknown_kid(&mut self, kid: &str, now: Millis) -> bool {
        if self.known_unknown(kid, now) {
            return false;
        }
        let interval = millis(self.policy.unknown_kid_interval);
        self.unknown_kids
            .retain(|(k, at)| k != kid && now < at.saturating_add(interval));
        if self.unknown_kids.len() < MAX_UNKNOWN_KIDS {
            self.unknown_kids.push((kid.to_owned(), now));
        }
        if self.kid_refetch_allowed(now) && !self.is_fetching() {
            self.last_kid_refetch = Some(now);
            true
        } else {
            false
        }
    }
}

// Records shared with the other VMs of this Envoy (proxy-wasm shared data). Every module that
// shares the `vm_id` namespace can read and write them (in Istio: every WasmPlugin of the
// proxy), so what is read there is bounded before it is believed: nothing written there can
// pin a key set, stop fetching, or back fetching off for longer than this VM's own policy
// would.

impl FetchPolicy {
    /// `ttl` within this policy's bounds (`min_cache_duration ..= max_cache_duration`): the
    /// lifetime a fetched key set gets, whether this VM fetched it or a peer did.
    pub fn bound_ttl(&self, ttl: Duration) -> Duration {
        ttl.min(self.max_cache_duration)
            .max(self.min_cache_duration.min(self.max_cache_duration))
    }

    /// The longest delay `RemoteKeys::fetch_failed` schedules: `max_backoff` at the largest
    /// jitter (x 1.2).
    pub fn max_retry_delay(&self) -> Millis {
        crate::resource::max_retry_delay(self.max_backoff)
    }
}

/// The shared `version` record of a fetched key set: `fetched_at ttl_ms`.
pub fn encode_version(fetched_at: Millis, ttl: Duration) -> String {
    format!("{fetched_at} {}", millis(ttl))
}

/// The `version` record as written, unbounded (see `read_version` for what a VM believes).
pub fn parse_version(bytes: &[u8]) -> Option<(Millis, Duration)> {
    let (at, ttl) = std::str::from_utf8(bytes).ok()?.split_once(' ')?;
    Some((at.parse().ok()?, Duration::from_millis(ttl.parse().ok()?)))
}

/// A peer's `version` record as this VM may believe it at `now` under `policy`: the ttl is
/// clamped to the policy (`FetchPolicy::bound_ttl`); a record that does not parse, whose
/// `fetched_at` is more than `SHARED_CLOCK_SKEW` in the future (it would pin its key set: a
/// genuine later one would look older), or whose key set is past use (lifetime and
/// `max_staleness` over) is ignored.
pub fn read_version(bytes: &[u8], policy: &FetchPolicy, now: Millis) -> Option<(Millis, Duration)> {
    let (fetched_at, ttl) = parse_version(bytes)?;
    if fetched_at > now.saturating_add(millis(SHARED_CLOCK_SKEW)) {
        return None;
    }
    let ttl = policy.bound_ttl(ttl);
    let usable_until = fetched_at
        .saturating_add(millis(ttl))
        .saturating_add(millis(policy.max_staleness));
    (now <= usable_until).then_some((fetched_at, ttl))
}

/// A key set a peer published (the body it fetched): ignored when over `MAX_JWKS_BYTES` (a
/// fetch would have refused it too), not UTF-8, or not a usable JWKS.
pub fn read_shared_key_set(body: &[u8]) -> Option<KeySet> {
    if body.len() > MAX_JWKS_BYTES {
        return None;
    }
    KeySet::from_slice(body).ok()
}

impl Resource for RemoteKeys {
    /// `fetched_at` and the lifetime, bounded (`read_version`).
    type Version = (Millis, Duration);

    const KIND: &'static str = "jwks";
    const FOLLOW_PEERS: bool = false;

    fn wants_fetch(&self, now: Millis) -> bool {
        RemoteKeys::wants_fetch(self, now)
    }
    fn next_fetch_at(&self) -> Option<Millis> {
        RemoteKeys::next_fetch_at(self)
    }
    fn fetch_started(&mut self) {
        RemoteKeys::fetch_started(self);
    }
    fn is_fetching(&self) -> bool {
        RemoteKeys::is_fetching(self)
    }
    fn peer_failed(&mut self, retry_at: Millis) {
        RemoteKeys::peer_failed(self, retry_at);
    }
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    fn max_retry_delay(&self) -> Millis {
        self.policy.max_retry_delay()
    }

    fn shared_version(&self) -> Option<String> {
        self.current
            .as_ref()
            .map(|c| encode_version(c.fetched_at, c.ttl))
    }

    /// Believed as `read_version` says, and newer than the current key set.
    fn read_shared_version(&self, record: &[u8], now: Millis) -> Option<(Millis, Duration)> {
        read_version(record, &self.policy, now)
            .filter(|(at, _)| self.fetched_at().is_none_or(|ours| ours < *at))
    }

    /// The body is read as `read_shared_key_set` says (size, JWKS); key sets are not signed.
    fn adopt_shared(
        &mut self,
        _now: Millis,
        (fetched_at, ttl): (Millis, Duration),
        body: &[u8],
        _verify: Verify<'_>,
    ) -> bool {
        read_shared_key_set(body).is_some_and(|keys| self.adopt(fetched_at, Fetched { keys, ttl }))
    }
}

#[cfg(test)]
mod tests;
