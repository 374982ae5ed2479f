//! The core: (configuration, keys, request headers, now) → decision. Sans-I/O: no host calls,
//! no clock, no allocation of configuration; the wasm glue feeds it and applies the result.
//!
//! Flow, in this order for every request:
//! 1. remove every header the filter can emit (on every route, whatever happens next);
//! 2. let CORS preflights through when `bypass_cors_preflight` is set;
//! 3. pick the first rule whose `match` matches; none, or one without `requires`: allow;
//! 4. evaluate the requirement (`authorize`), collecting identity headers;
//! 5. allow with those header mutations, or deny with the one HTTP mapping (`error::deny`),
//!    or, when a denial could still turn out otherwise because a remote key set is on its way
//!    (cold start, or a `kid` a refetch may bring), wait and decide again when it arrives.

use crate::authorize::Evaluation;
use crate::config::{Config, JwksSource, ProviderId};
use crate::error::{deny, AuthError, Denial};
pub use crate::jwks_cache::Availability;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::signature::{PureRust, SignatureBackend};
use crate::token_cache::TokenCache;

/// What the core needs from a key store, as of the moment of the request.
pub trait KeyStore {
    /// The provider's keys: ready, on the way, or not to be had.
    fn keys(&self, provider: ProviderId) -> Availability<'_>;

    /// Whether waiting could make `kid` known for `provider`: a refetch is allowed now or one
    /// is in flight, and this kid was not already looked for in vain. Local key sets: never.
    fn may_learn_kid(&self, _provider: ProviderId, _kid: &str) -> bool {
        false
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

/// Why a request waits: the provider whose keys are on the way, and the kid to learn, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub provider: ProviderId,
    pub kid: Option<String>,
}

/// The verdict on one request; header names are borrowed from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'c> {
    /// Forward the request after applying `ops` in order.
    Allow { ops: Vec<HeaderOp<'c>> },
    /// Answer locally; `reason` is for the log line.
    Deny { denial: Denial, reason: AuthError },
    /// Pause the request until the provider's key set changes, then decide again. Only when
    /// the request would otherwise be denied.
    Wait(Wait),
}

/// What one VM brings to a decision besides the configuration and the request.
pub struct Vm<'a> {
    /// The providers' current keys.
    pub keys: &'a dyn KeyStore,
    /// Native signature checks where the host has them, else `PureRust`.
    pub signatures: &'a dyn SignatureBackend,
    /// Verified tokens (`jwt_cache_config`).
    pub cache: &'a mut TokenCache,
}

/// Decides one request with our own crypto and no token cache. `now` is seconds since the
/// epoch, from the host.
pub fn decide<'c>(
    config: &'c Config,
    keys: &dyn KeyStore,
    headers: &RequestHeaders,
    now: i64,
) -> Decision<'c> {
    let vm = Vm {
        keys,
        signatures: &PureRust,
        cache: &mut TokenCache::disabled(),
    };
    decide_in(config, vm, headers, now)
}

/// Decides one request with what `vm` offers. `now` is seconds since the epoch, from the host.
pub fn decide_in<'c>(
    config: &'c Config,
    vm: Vm<'_>,
    headers: &RequestHeaders,
    now: i64,
) -> Decision<'c> {
    let mut ops: Vec<HeaderOp<'c>> = config
        .emitted_headers
        .iter()
        .map(|h| HeaderOp::Remove(h))
        .collect();
    if config.bypass_cors_preflight && is_cors_preflight(headers) {
        return Decision::Allow { ops };
    }
    let Some(requirement) = config
        .rules
        .iter()
        .find(|rule| rule.matcher.matches(headers))
        .and_then(|rule| rule.requirement.as_ref())
    else {
        return Decision::Allow { ops };
    };
    let mut evaluation = Evaluation {
        config,
        keys: vm.keys,
        signatures: vm.signatures,
        cache: vm.cache,
        headers,
        now,
        ops: Vec::new(),
        wait: None,
        insufficient_scope: None,
        parsed: Vec::new(),
    };
    match (evaluation.check(requirement), evaluation.wait) {
        (Ok(()), _) => {
            ops.append(&mut evaluation.ops);
            Decision::Allow { ops }
        }
        (Err(_), Some(wait)) => Decision::Wait(wait),
        (Err(reason), None) => Decision::Deny {
            denial: deny(
                reason,
                &headers.url(),
                config.strip_failure_response,
                evaluation.insufficient_scope.as_deref(),
            ),
            reason,
        },
    }
}

/// An `OPTIONS` request with `Origin` and `Access-Control-Request-Method`, as Envoy's CORS
/// filter recognises a preflight.
fn is_cors_preflight(headers: &RequestHeaders) -> bool {
    headers.method() == "OPTIONS"
        && headers.get("origin").is_some_and(|v| !v.is_empty())
        && headers
            .get("access-control-request-method")
            .is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
