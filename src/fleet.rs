//! The fleet: the VMs of one Envoy (one per worker) sharing one fetch per provider and kind of
//! remote resource (`resource::Resource`: key sets, revocation lists), through proxy-wasm
//! shared data. Owns the protocol and its records: per provider and kind a `lease` (who
//! fetches, until when, and the shared backoff), a `version` (what the published body is: when
//! it was fetched, its lifetime, for a list its `ETag`) and the `body` as fetched. Pure
//! functions over a `SharedData` trait: `host::Shared` implements it over the host seam, tests
//! with an in-memory store that several fake VMs share. It does not fetch, log or set timers;
//! it says what to fetch, which waiting streams to decide again, and whether to poll for a
//! peer's fetch.
//!
//! What is read from shared data is bounded by this VM's own policy before it is believed
//! (`Lease::bounded`, `Resource::read_shared_version`, `Resource::adopt_shared`: not from the
//! future, lifetime clamped, size bounded, a signed list verified by the adopting VM, never an
//! older list): anyone in the `vm_id` namespace can write it. With `share_key_sets: false`
//! shared data is never touched, for key sets and lists alike.
//!
//! Keys: `<prefix>/<plugin>/<provider>/<kind>/<hash of cluster, authority, path>/{lease,
//! version,body}`; one `Fleet` per kind.

use std::time::Duration;

use crate::config::{Config, JwksSource, ProviderId};
use crate::jwt::Alg;
use crate::metrics;
use crate::resource::{lease_until, Lease, Millis, Resource};

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

/// This VM's part in the fleet for one kind of resource: who it is in leases, and per
/// provider what it shares.
#[derive(Debug)]
pub struct Fleet {
    me: u64,
    /// Indexed by provider id; `Some` for providers with this kind of resource.
    providers: Vec<Option<Member>>,
}

#[derive(Debug)]
struct Member {
    /// The shared-data key prefix that VMs of this plugin and this URL share; `None` with
    /// `share_key_sets: false` (this VM then fetches for itself).
    base: Option<String>,
    /// The fetch timeout (a lease lasts that plus a grace).
    timeout: Duration,
}

/// How a fetch of this VM ended, for `Fleet::publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published<'b> {
    /// A new body (as fetched) is in force: publish it and its version.
    Body(&'b [u8]),
    /// The body in force was confirmed (a 304): only its version changes.
    Confirmed,
    /// No new version: publish the failure and the shared backoff.
    Failed,
}

/// A peer's signed body is checked with this: (provider, alg, kid, signing input, signature).
pub type VerifyFor<'a> = &'a dyn Fn(ProviderId, Alg, Option<&str>, &[u8], &[u8]) -> bool;

/// For kinds whose bodies are not signed: nothing verifies.
pub fn unsigned(_: ProviderId, _: Alg, _: Option<&str>, _: &[u8], _: &[u8]) -> bool {
    false
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
    /// The key-set fleet membership of VM `me` for `config`'s remote providers, in plugin
    /// `plugin`.
    pub fn new(config: &Config, plugin: &str, me: u64) -> Fleet {
        let members = config.providers.iter().map(|p| match &p.jwks {
            JwksSource::Remote(r) => Some((
                p.name.as_str(),
                [r.cluster.as_str(), &r.target.authority, &r.target.path],
                r.timeout,
            )),
            JwksSource::Local(_) => None,
        });
        Fleet::of(config, plugin, me, "jwks", members)
    }

    /// The revocation-list fleet membership of VM `me` for `config`'s providers with a list.
    pub fn for_lists(config: &Config, plugin: &str, me: u64) -> Fleet {
        let members = config.providers.iter().map(|p| {
            p.revocation.as_ref().map(|r| {
                (
                    p.name.as_str(),
                    [r.cluster.as_str(), &r.target.authority, &r.target.path],
                    r.timeout,
                )
            })
        });
        Fleet::of(config, plugin, me, "revocation", members)
    }

    fn of<'c>(
        config: &Config,
        plugin: &str,
        me: u64,
        kind: &str,
        members: impl Iterator<Item = Option<(&'c str, [&'c str; 3], Duration)>>,
    ) -> Fleet {
        let providers = members
            .map(|member| {
                member.map(|(name, url, timeout)| Member {
                    base: config.share_key_sets.then(|| {
                        format!(
                            "{}/{plugin}/{name}/{kind}/{:016x}",
                            metrics::PREFIX,
                            fnv1a(&url)
                        )
                    }),
                    timeout,
                })
            })
            .collect();
        Fleet { me, providers }
    }

    /// `coordinate_with` for a kind whose bodies are not signed (key sets).
    pub fn coordinate<R: Resource>(
        &self,
        data: &mut impl SharedData,
        remote: &mut [Option<R>],
        local: &Local<'_>,
        now: Millis,
    ) -> Round {
        self.coordinate_with(data, remote, local, now, &unsigned)
    }

    /// One round of the protocol at `now` for every provider's resource of this kind
    /// (`remote`, indexed by provider id): adopt what peers published (a signed body checked
    /// with `verify`), notice a peer's fetch that ended, and take the lease for what this VM
    /// should fetch.
    pub fn coordinate_with<R: Resource>(
        &self,
        data: &mut impl SharedData,
        remote: &mut [Option<R>],
        local: &Local<'_>,
        now: Millis,
        verify: VerifyFor<'_>,
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
            let lease = lease.bounded(now, member.timeout, keys.max_retry_delay());
            let follow = waited_for || (R::FOLLOW_PEERS && keys.is_fetching());
            if !own && follow && lease.held_by_other(me, now) {
                round.poll = true; // watch for the end of the peer's fetch
            }
            let adopted = base.is_some_and(|base| {
                let verify = |alg: Alg, kid: Option<&str>, input: &[u8], signature: &[u8]| {
                    verify(id, alg, kid, input, signature)
                };
                adopt_from_peers(data, keys, base, now, &verify)
            });
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
                round.poll |= R::FOLLOW_PEERS;
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

    /// After this VM's own fetch for provider `id` (its resource now `res`): publish the new
    /// body and its version, or only the version (confirmed), or the failure and the shared
    /// backoff; then release the lease.
    pub fn publish<R: Resource>(
        &self,
        data: &mut impl SharedData,
        id: ProviderId,
        res: &R,
        outcome: Published<'_>,
    ) {
        let Some(base) = self
            .providers
            .get(id)
            .and_then(Option::as_ref)
            .and_then(|m| m.base.as_deref())
        else {
            return;
        };
        if let (Published::Body(body), Some(_)) = (outcome, res.shared_version()) {
            let _ = data.set(&format!("{base}/body"), body, 0);
        }
        if let (Published::Body(_) | Published::Confirmed, Some(version)) =
            (outcome, res.shared_version())
        {
            let _ = data.set(&format!("{base}/version"), version.as_bytes(), 0);
        }
        let released = Lease {
            owner: self.me,
            until: 0,
            failures: res.schedule().failures(),
            retry_at: res.schedule().retry_at(),
        };
        let _ = data.set(&format!("{base}/lease"), released.encode().as_bytes(), 0);
    }
}

/// Takes a newer version another VM published under `base`, as far as this VM may believe
/// it (`Resource::read_shared_version`, then `Resource::adopt_shared` on the body, which is
/// read only for a version worth taking). Whether taken.
fn adopt_from_peers<R: Resource>(
    data: &impl SharedData,
    res: &mut R,
    base: &str,
    now: Millis,
    verify: crate::resource::Verify<'_>,
) -> bool {
    let Some(version) = value(data, &format!("{base}/version"))
        .as_deref()
        .and_then(|record| res.read_shared_version(record, now))
    else {
        return false;
    };
    value(data, &format!("{base}/body"))
        .is_some_and(|body| res.adopt_shared(now, version, &body, verify))
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
