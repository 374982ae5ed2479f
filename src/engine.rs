//! The core: (configuration, keys, request headers, now) → decision. Sans-I/O: no host calls,
//! no clock, no allocation of configuration; the wasm glue feeds it and applies the result.
//!
//! Flow, in this order for every request:
//! 1. remove every header the filter can emit (on every route, whatever happens next);
//! 2. let CORS preflights through when `bypass_cors_preflight` is set;
//! 3. pick the first rule whose `match` matches; none, or one without `requires`: allow;
//! 4. evaluate the requirement (`authorize`), collecting identity headers;
//! 5. allow with those header mutations, or deny with the one HTTP mapping (`error::deny`).

use crate::authorize::Evaluation;
use crate::config::{Config, JwksSource, ProviderId};
use crate::error::{deny, AuthError, Denial};
use crate::jwks::KeySet;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;

/// What the core needs from a key store: a provider's current key set, if it has one.
pub trait KeyStore {
    fn key_set(&self, provider: ProviderId) -> Option<&KeySet>;
}

/// Local (inline) key sets live in the configuration itself.
impl KeyStore for Config {
    fn key_set(&self, provider: ProviderId) -> Option<&KeySet> {
        match &self.providers.get(provider)?.jwks {
            JwksSource::Local(keys) => Some(keys),
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request after applying `ops` in order.
    Allow { ops: Vec<HeaderOp> },
    /// Answer locally; `reason` is for the log line.
    Deny { denial: Denial, reason: AuthError },
}

/// Decides one request. `now` is seconds since the epoch, from the host.
pub fn decide(
    config: &Config,
    keys: &dyn KeyStore,
    headers: &RequestHeaders,
    now: i64,
) -> Decision {
    let mut ops: Vec<HeaderOp> = config
        .emitted_headers
        .iter()
        .map(|h| HeaderOp::Remove(h.clone()))
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
        keys,
        headers,
        now,
        ops: Vec::new(),
    };
    match evaluation.check(requirement) {
        Ok(()) => {
            ops.append(&mut evaluation.ops);
            Decision::Allow { ops }
        }
        Err(reason) => Decision::Deny {
            denial: deny(reason, &headers.url(), config.strip_failure_response),
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
