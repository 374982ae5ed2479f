//! The fleet: the VMs of one Envoy (one per worker) sharing one key-set fetch per provider,
//! through proxy-wasm shared data. Owns the protocol and its records: per provider a `lease`
//! (who fetches, until when, and the shared backoff), a `version` (when the published key set
//! was fetched, and its lifetime) and the `jwks` body. Pure functions over a `SharedData`
//! trait: `host::Shared` implements it over the host seam, tests with an in-memory store that
//! several fake VMs share. It does not fetch, log or set timers; it says what to fetch, which
//! waiting streams to decide again, and whether to poll for a peer's fetch.
//!
//! What is read from shared data is bounded by this VM's own policy before it is believed
//! (`jwks_cache`: `Lease::bounded`, `read_version`, `read_shared_key_set`): anyone in the
//! `vm_id` namespace can write it. With `share_key_sets: false` shared data is never touched.

use std::time::Duration;

use crate::config::{Config, JwksSource, ProviderId};
use crate::jwks_cache::{
    encode_version, lease_until, read_shared_key_set, read_version, Fetched, Lease, Millis,
    RemoteKeys,
};
use crate::metrics;

/// The host's shared data (proxy-wasm `get_shared_data` / `set_shared_data`).
pub trait SharedData {
    /// The value of `key` and its CAS; `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Writes `value` if `key`'s CAS is still `cas` (0: unconditionally). Like Envoy, a key
    /// that does not exist yet is written whatever `cas` says.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

/// A host status other than OK / NotFound, as the host gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

/// Why a `SharedData::set` did not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Another writer changed the key since it was read (proxy-wasm CasMismatch).
    CasMismatch,
    /// Any other refusal.
    Host(HostError),
}

/// This VM's part in the fleet: who it is in leases, and per provider what it shares.
#[derive(Debug)]
pub struct Fleet {
    me: u64,
    /// Indexed by provider id; `Some` for remote providers.
    providers: Vec<Option<Member>>,
}

#[derive(Debug)]
struct Member {
    /// The shared-data key prefix that VMs of this plugin and this JWKS URL share; `None` with
    /// `share_key_sets: false` (this VM then fetches for itself).
    base: Option<String>,
    /// The provider's fetch timeout (a lease lasts that plus a grace).
    timeout: Duration,
}

/// What this VM knows of its own fetches and streams, for one round.
#[derive(Debug, Default)]
pub struct Local<'a> {
    /// Providers whose fetch a stream (or configure) asked for since the last round.
    pub requested: &'a [ProviderId],
    /// Providers with a fetch of this VM in flight.
    pub own: &'a [ProviderId],
    /// Providers that paused streams of this VM wait for.
    pub waited: &'a [ProviderId],
}

/// The outcome of one round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Fetch these now: this VM took their lease (or shares nothing).
    pub due: Vec<ProviderId>,
    /// Decide again for the streams waiting on these: a peer's key set was adopted, or the
    /// peer's fetch ended without one.
    pub changed: Vec<ProviderId>,
    /// A peer fetches keys that streams of this VM wait for, or just won the lease: watch
    /// shared data often (`filter::PEER_POLL`) until that fetch ends.
    pub poll: bool,
}

impl Fleet {
    /// The fleet membership of VM `me` for `config`'s remote providers, in plugin `plugin`.
    pub fn new(config: &Config, plugin: &str, me: u64) -> Fleet {
        let providers = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(r) => Some(Member {
                    base: config.share_key_sets.then(|| {
                        format!(
                            "{}/{plugin}/{}/{:016x}",
                            metrics::PREFIX,
                            p.name,
                            fnv1a(&[&r.cluster, &r.target.authority, &r.target.path])
                        )
                    }),
                    timeout: r.timeout,
                }),
                JwksSource::Local(_) => None,
            })
            .collect();
        Fleet { me, providers }
    }

    /// One round of the protocol at `now` for every remote provider (`remote`, indexed by
    /// provider id): adopt what peers published, notice a peer's fetch that ended, and take
    /// the lease for what this VM should fetch.
    pub fn coordinate(
        &self,
        data: &mut impl SharedData,
        remote: &mut [Option<RemoteKeys>],
        local: &Local<'_>,
        now: Millis,
    ) -> Round {
        let mut round = Round::default();
        let me = self.me;
        for (id, member) in self.providers.iter().enumerate() {
            let (Some(member), Some(Some(keys))) = (member, remote.get_mut(id)) else {
                continue;
            };
            let base = member.base.as_deref();
            let own = local.own.contains(&id);
            let waited_for = local.waited.contains(&id);
            // The lease first: its holder publishes the key set before releasing it, so a
            // released lease means a fetch it made is visible below.
            let (lease, cas) = match base {
                Some(base) => read_lease(data, base),
                None => (Lease::default(), None),
            };
            let lease = lease.bounded(now, member.timeout, keys.policy());
            if !own && waited_for && lease.held_by_other(me, now) {
                round.poll = true; // watch for the end of the peer's fetch
            }
            let adopted = base.is_some_and(|base| adopt_from_peers(data, keys, base, now));
            // A key set just adopted answers an earlier request for one.
            let asked = local.requested.contains(&id) && !adopted;
            if adopted {
                round.changed.push(id);
            } else if keys.is_fetching() && !own && !asked && !lease.held_by_other(me, now) {
                // We waited for a peer whose lease ended without a new key set.
                keys.peer_failed(lease.retry_at);
                round.changed.push(id);
            }
            if own || !(asked || keys.wants_fetch(now)) {
                continue;
            }
            if lease.held_by_other(me, now) {
                keys.fetch_started();
                continue;
            }
            if now < lease.retry_at {
                keys.peer_failed(lease.retry_at);
                round.changed.push(id);
                continue;
            }
            let mine = Lease {
                owner: me,
                until: lease_until(now, member.timeout),
                ..lease
            };
            keys.fetch_started();
            let taken = match base {
                Some(base) => data.set(
                    &format!("{base}/lease"),
                    mine.encode().as_bytes(),
                    cas.unwrap_or(0),
                ),
                None => Ok(()),
            };
            match taken {
                // A host that refuses the write shares nothing: this VM fetches for itself,
                // as with `share_key_sets: false`, rather than wait for a lease no one holds.
                Ok(()) | Err(SetError::Host(_)) => round.due.push(id),
                // Another VM won the lease just now: watch for the winner's fetch.
                Err(SetError::CasMismatch) => round.poll = true,
            }
        }
        round
    }

    /// After this VM's own fetch for provider `id` (its keys now `keys`): publish the key set
    /// (`body`, when the fetch succeeded) or the failure and the shared backoff, and release
    /// the lease.
    pub fn publish(
        &self,
        data: &mut impl SharedData,
        id: ProviderId,
        keys: &RemoteKeys,
        body: Option<&[u8]>,
    ) {
        let Some(base) = self
            .providers
            .get(id)
            .and_then(Option::as_ref)
            .and_then(|m| m.base.as_deref())
        else {
            return;
        };
        if let (Some(body), Some(fetched_at)) = (body, keys.fetched_at()) {
            let ttl = keys.ttl().unwrap_or_default();
            let _ = data.set(&format!("{base}/jwks"), body, 0);
            let version = encode_version(fetched_at, ttl);
            let _ = data.set(&format!("{base}/version"), version.as_bytes(), 0);
        }
        let released = Lease {
            owner: self.me,
            until: 0,
            failures: keys.failures(),
            retry_at: keys.retry_at(),
        };
        let _ = data.set(&format!("{base}/lease"), released.encode().as_bytes(), 0);
    }
}

/// Takes a newer key set another VM published under `base`, as far as this VM may believe
/// it: a `version` from the future or past use is ignored, its lifetime is clamped to the
/// provider's policy, and a body over 1 MiB is ignored (`jwks_cache`). Whether taken.
fn adopt_from_peers(
    data: &impl SharedData,
    keys: &mut RemoteKeys,
    base: &str,
    now: Millis,
) -> bool {
    let Some((fetched_at, ttl)) = value(data, &format!("{base}/version"))
        .as_deref()
        .and_then(|record| read_version(record, keys.policy(), now))
    else {
        return false;
    };
    if keys.fetched_at().is_some_and(|at| at >= fetched_at) {
        return false;
    }
    match value(data, &format!("{base}/jwks"))
        .as_deref()
        .and_then(read_shared_key_set)
    {
        Some(parsed) => keys.adopt(fetched_at, Fetched { keys: parsed, ttl }),
        None => false,
    }
}

/// The value of a shared-data key; absent or unreadable: none.
fn value(data: &impl SharedData, key: &str) -> Option<Vec<u8>> {
    data.get(key).ok().flatten().map(|(value, _)| value)
}

/// The lease under `base` and its CAS. Envoy ignores the CAS when writing a key that does not
/// exist yet, so two VMs could both "take" an absent lease: an absent lease is first written
/// (released; harmless if several VMs do it) and read again, so that taking it is a real
/// compare-and-swap. Unreadable: a released lease without CAS.
fn read_lease(data: &mut impl SharedData, base: &str) -> (Lease, Option<u32>) {
    let key = format!("{base}/lease");
    for _ in 0..2 {
        match data.get(&key) {
            Ok(Some((value, cas))) => {
                return (Lease::parse(&value).unwrap_or_default(), Some(cas));
            }
            Ok(None) => {
                let released = Lease::default().encode();
                let _ = data.set(&key, released.as_bytes(), 0);
            }
            Err(_) => break,
        }
    }
    (Lease::default(), None)
}

/// FNV-1a over the parts (separated), for short stable shared-data keys.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests;
