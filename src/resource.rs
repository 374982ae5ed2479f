//! A remote resource (issue 12): something one VM fetches, refreshes, backs off, keeps
//! last-good, and shares with the other VMs of its Envoy. Today two kinds implement it: a
//! provider's key set (`jwks_cache::RemoteKeys`) and a provider's revocation list
//! (`revocation::fetch::ListFetch`). Owns what they have in common: the fetch schedule (in
//! flight, consecutive failures, the backoff with jitter: [`Schedule`]), the shared-data lease
//! record ([`Lease`]) and the [`Resource`] trait through which `fleet` runs one fetch per Envoy
//! and `callouts` does the bookkeeping, whatever is fetched.
//!
//! A kind says what its records mean: when it is due (`wants_fetch`), what it shares
//! (`shared_version`, and the body as fetched), and how much of a peer's record it believes
//! (`read_shared_version`, `adopt_shared`): shared data is writable by every module of the
//! `vm_id` namespace, so what is read there is bounded by this VM's own policy first (not from
//! the future, lifetime clamped, size bounded, a signed body verified by the adopting VM, and
//! never a rollback). No I/O, no clock: time comes in as arguments.

use std::time::Duration;

use crate::jwt::Alg;

/// Milliseconds since the Unix epoch, from the host clock.
pub type Millis = u64;

/// Checks a signed body's signature: (alg, kid, signing input, signature) → verified. Kinds
/// whose bodies are not signed ignore it.
pub type Verify<'a> = &'a dyn Fn(Alg, Option<&str>, &[u8], &[u8]) -> bool;

/// One kind of remote resource of one provider in one VM, as `fleet` and `callouts` drive it.
pub trait Resource {
    /// A peer's version record as this VM believes it (`read_shared_version`).
    type Version;

    /// The kind's segment in shared-data keys and log lines (`jwks`, `revocation`).
    const KIND: &'static str;

    /// Whether a VM that waits for nothing should still watch a peer's fetch of this kind
    /// closely (`filter::PEER_POLL`) instead of at its next tick: true for revocation lists,
    /// whose point is how soon every VM has the new one.
    const FOLLOW_PEERS: bool;

    /// Whether a fetch should start now (none in flight, not backing off, and due).
    fn wants_fetch(&self, now: Millis) -> bool;
    /// When `wants_fetch` next becomes true if nothing happens (for the timer); `None` while
    /// a fetch is in flight.
    fn next_fetch_at(&self) -> Option<Millis>;
    /// A fetch, this VM's or a peer's, is on the way: requests may wait for it.
    fn fetch_started(&mut self);
    fn is_fetching(&self) -> bool;
    /// Another VM's fetch, which this VM waited for, ended without a new version; they may try
    /// again from `retry_at`.
    fn peer_failed(&mut self, retry_at: Millis);
    /// The schedule: consecutive failures and the next attempt (for the shared lease).
    fn schedule(&self) -> &Schedule;
    /// The longest delay this VM's backoff schedules (a shared `retry_at` later is forged).
    fn max_retry_delay(&self) -> Millis;

    /// The version record of what this VM has, for the other VMs (`None`: nothing yet).
    fn shared_version(&self) -> Option<String>;
    /// A peer's version record, bounded by this VM's policy at `now`: `Some` when it is to be
    /// believed and newer than what this VM has (then the body is worth reading).
    fn read_shared_version(&self, record: &[u8], now: Millis) -> Option<Self::Version>;
    /// Takes the body a peer published under `version`, read as a fetched body is (size,
    /// format, signature with `verify`, no rollback). Whether taken; a body refused changes
    /// nothing.
    fn adopt_shared(
        &mut self,
        now: Millis,
        version: Self::Version,
        body: &[u8],
        verify: Verify<'_>,
    ) -> bool;
}

/// The fetch schedule of one resource: whether a fetch is in flight, consecutive failures,
/// and when the next attempt may start (exponential backoff with jitter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    in_flight: bool,
    failures: u32,
    retry_at: Millis,
}

impl Schedule {
    /// Whether a fetch should start at `now` for a resource due at `due` (`None`: nothing
    /// held yet, due at once).
    pub fn wants_fetch(&self, now: Millis, due: Option<Millis>) -> bool {
        !self.in_flight && now >= self.retry_at && due.is_none_or(|due| now >= due)
    }

    /// When `wants_fetch` next becomes true; `None` while a fetch is in flight.
    pub fn next_fetch_at(&self, due: Option<Millis>) -> Option<Millis> {
        (!self.in_flight).then(|| due.unwrap_or(0).max(self.retry_at))
    }

    pub fn started(&mut self) {
        self.in_flight = true;
    }

    pub fn is_fetching(&self) -> bool {
        self.in_flight
    }

    /// A fetch (or an adoption) succeeded: no failures, no backoff.
    pub fn succeeded(&mut self) {
        self.in_flight = false;
        self.failures = 0;
        self.retry_at = 0;
    }

    /// A fetch failed at `now`: the delay doubles per failure from `base` up to `max`, scaled
    /// by 0.8 to 1.2 with `jitter` (in `0..1000`).
    pub fn failed(&mut self, now: Millis, jitter: u32, base: Duration, max: Duration) {
        self.in_flight = false;
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(20);
        let backoff = millis(base).saturating_mul(1 << exponent).min(millis(max));
        let scaled = backoff.saturating_mul(800 + u64::from(jitter.min(999)) * 400 / 1000) / 1000;
        self.retry_at = now.saturating_add(scaled.max(1));
    }

    /// A peer's fetch that this VM waited for ended without a new version.
    pub fn peer_failed(&mut self, retry_at: Millis) {
        self.in_flight = false;
        self.retry_at = self.retry_at.max(retry_at);
    }

    /// Consecutive failed fetches since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The earliest time of the next attempt after failures (0: none pending).
    pub fn retry_at(&self) -> Millis {
        self.retry_at
    }
}

/// The longest delay `Schedule::failed` schedules with `max`: at the largest jitter (x 1.2).
pub fn max_retry_delay(max: Duration) -> Millis {
    millis(max).saturating_mul(12) / 10 + 1
}

/// How far ahead of this VM's clock a peer's version stamp may be. The VMs of one Envoy read
/// one clock; the allowance covers reading it at different moments and small clock steps.
pub const SHARED_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// How long past the fetch timeout a lease outlives its fetch.
const LEASE_GRACE: Duration = Duration::from_secs(1);

/// When a lease taken at `now` for a fetch with `timeout` ends: the timeout plus a second, so
/// a VM that dies mid-fetch delays the others by at most that.
pub fn lease_until(now: Millis, timeout: Duration) -> Millis {
    now.saturating_add(millis(timeout))
        .saturating_add(millis(LEASE_GRACE))
}

/// The shared-data lease that lets one VM of an Envoy fetch a resource for all of them (every
/// worker has its own VM). Text: `owner until failures retry_at`, all decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lease {
    /// The VM holding (or last holding) the lease.
    pub owner: u64,
    /// The lease is held until then; 0: released.
    pub until: Millis,
    /// Consecutive failed fetches, and when the next attempt may start (shared backoff).
    pub failures: u32,
    pub retry_at: Millis,
}

impl Lease {
    pub fn parse(bytes: &[u8]) -> Option<Lease> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut fields = text.split(' ');
        let lease = Lease {
            owner: fields.next()?.parse().ok()?,
            until: fields.next()?.parse().ok()?,
            failures: fields.next()?.parse().ok()?,
            retry_at: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(lease)
    }

    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.owner, self.until, self.failures, self.retry_at
        )
    }

    /// The lease as this VM may believe it at `now`, for a resource fetched with `timeout`
    /// whose backoff is at most `max_retry_delay`. An `until` later than a lease taken now
    /// could last (`lease_until(now, timeout)`) counts as released, and a later `retry_at`
    /// counts as none: a record written by anyone in the namespace cannot stop fetching. A
    /// genuine lease was taken at or before `now`, so it is never cut.
    pub fn bounded(self, now: Millis, timeout: Duration, max_retry_delay: Millis) -> Lease {
        let until = if self.until > lease_until(now, timeout) {
            0
        } else {
            self.until
        };
        let retry_at = if self.retry_at > now.saturating_add(max_retry_delay) {
            0
        } else {
            self.retry_at
        };
        Lease {
            until,
            retry_at,
            ..self
        }
    }

    /// Another VM is fetching right now.
    pub fn held_by_other(&self, me: u64, now: Millis) -> bool {
        self.owner != me && self.until > now
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
