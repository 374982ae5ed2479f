//! Key availability: what the request path needs from whoever holds a provider's keys and
//! revocation list, as of the moment of the request (`KeyStore`), and why a request waits for
//! them (`Wait`). A leaf below `authorize` and `engine`: both use it, it uses neither. Local
//! (inline) key sets are served by the configuration itself; remote ones, and revocation
//! lists, by the plugin instance's store.

use crate::config::{Config, JwksSource, ProviderId};
pub use crate::jwks_cache::Availability;

/// Defined beside the lists it tells of.
pub use crate::revocation::fetch::ListAvailability;

/// What the core needs from a key store, as of the moment of the request.
pub trait KeyStore {
    /// The provider's keys: ready, on the way, or not to be had.
    fn keys(&self, provider: ProviderId) -> Availability<'_>;

    /// Whether waiting could make `kid` known for `provider`: a refetch is allowed now or one
    /// is in flight, and this kid was not already looked for in vain. Local key sets: never.
    fn may_learn_kid(&self, _provider: ProviderId, _kid: &str) -> bool {
        false
    }

    /// The provider's revocation list (issue 15), asked after a token of it verified, when its
    /// configuration has `revocation`. The default, for a store that holds no lists, is
    /// `Unavailable`: such a provider's tokens fail closed (`revocation_unavailable`).
    fn revocation(&self, _provider: ProviderId) -> ListAvailability<'_> {
        ListAvailability::Unavailable
    }
}

/// Local (inline) key sets live in the configuration itself; a remote provider has none here
/// (the glue's store holds those).
impl KeyStore for Config {
    fn keys(&self, provider: ProviderId) -> Availability<'_> {
        match self.providers.get(provider).map(|p| &p.jwks) {
            Some(JwksSource::Local(keys)) => Availability::Ready(keys),
            _ => Availability::Unavailable,
        }
    }
}

/// Why a request waits: the provider whose keys (or, with no kid, whose first revocation list)
/// are on the way, and the kid to learn, if any. The instance core resumes a stream waiting
/// for a provider when either of its resources changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub provider: ProviderId,
    pub kid: Option<String>,
}
