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
//!    (cold start, or a `kid` a refetch may bring), wait and decide again when it arrives;
//! 6. a failure goes through the `failure_policy` of its class (deny 401, deny 503, or allow
//!    without identity), and in `report_only` every request is allowed and carries the
//!    outcome enforcement would have had in `OUTCOME_HEADER`.
//!
//! Every decision carries its `Verdict` (failure reason and provider) for the glue to count.

use crate::authorize::Evaluation;
use crate::config::{Config, JwksSource, OnFailure, ProviderId, OUTCOME_HEADER};
use crate::error::{deny, AuthError, Denial, FailureClass};
pub use crate::jwks_cache::Availability;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;

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

/// What the requirement check concluded, whatever was then done with the request: the glue
/// counts and logs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: the requirement was satisfied, or there was none; else why it failed.
    pub failure: Option<AuthError>,
    /// On success, the first provider whose token verified; on failure, the provider whose
    /// check failed. `None` when no provider was involved (no rule, a token of an unknown
    /// issuer on an `allow_missing` route).
    pub provider: Option<ProviderId>,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request after applying `ops` in order. `verdict.failure` is set when a
    /// failure policy or `report_only` lets a failed request through.
    Allow {
        ops: Vec<HeaderOp>,
        verdict: Verdict,
    },
    /// Answer locally.
    Deny { denial: Denial, verdict: Verdict },
    /// Pause the request until the provider's key set changes, then decide again. Only when
    /// the request would otherwise be denied.
    Wait(Wait),
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
        return finish(config, ops, Verdict::default(), None);
    }
    let Some(requirement) = config
        .rules
        .iter()
        .find(|rule| rule.matcher.matches(headers))
        .and_then(|rule| rule.requirement.as_ref())
    else {
        return finish(config, ops, Verdict::default(), None);
    };
    let mut evaluation = Evaluation {
        config,
        keys,
        headers,
        now,
        ops: Vec::new(),
        wait: None,
        insufficient_scope: None,
        verified: None,
        failed: None,
    };
    match (evaluation.check(requirement), evaluation.wait) {
        (Ok(()), _) => {
            ops.append(&mut evaluation.ops);
            let verdict = Verdict {
                failure: None,
                provider: evaluation.verified,
            };
            finish(config, ops, verdict, None)
        }
        (Err(_), Some(wait)) => Decision::Wait(wait),
        (Err(reason), None) => {
            let verdict = Verdict {
                failure: Some(reason),
                provider: evaluation.failed,
            };
            let policy = match reason.class() {
                FailureClass::Missing => config.failure_policy.token_missing,
                FailureClass::Invalid => config.failure_policy.token_invalid,
                FailureClass::KeysUnavailable => config.failure_policy.keys_unavailable,
                FailureClass::Forbidden => OnFailure::Deny401, // `deny` makes it a 403
            };
            let denial = (policy != OnFailure::Allow).then(|| {
                deny(
                    reason,
                    &headers.url(),
                    config.strip_failure_response,
                    evaluation.insufficient_scope.as_deref(),
                    policy == OnFailure::Deny503,
                )
            });
            finish(config, ops, verdict, denial)
        }
    }
}

/// The final decision: `denial` unless `report_only`, which allows and tells the upstream.
fn finish(
    config: &Config,
    mut ops: Vec<HeaderOp>,
    verdict: Verdict,
    denial: Option<Denial>,
) -> Decision {
    if config.report_only {
        ops.push(HeaderOp::Set(
            OUTCOME_HEADER.to_owned(),
            outcome(verdict, denial.as_ref()),
        ));
        return Decision::Allow { ops, verdict };
    }
    match denial {
        Some(denial) => Decision::Deny { denial, verdict },
        None => Decision::Allow { ops, verdict },
    }
}

/// The `OUTCOME_HEADER` value, an RFC 8941 structured-field item: `allowed`; `allowed;
/// reason=missing` when a failure policy lets a failure through; `denied; status=401;
/// reason=expired` when enforcement would have answered with that status.
pub fn outcome(verdict: Verdict, denial: Option<&Denial>) -> String {
    match (verdict.failure, denial) {
        (None, _) => "allowed".to_owned(),
        (Some(failure), None) => format!("allowed; reason={}", failure.reason()),
        (Some(failure), Some(denial)) => format!(
            "denied; status={}; reason={}",
            denial.status,
            failure.reason()
        ),
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
