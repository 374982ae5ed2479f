//! The core: (configuration, keys, request headers, now) → decision. Sans-I/O: no host calls,
//! no clock, no allocation of configuration; the wasm glue feeds it and applies the result.
//!
//! Flow, in this order for every request:
//! 0. refuse (400) a request that cannot be read: headers the host could not give, no
//!    `:path` or `:method` (and, while matching, an `:authority` a `hosts` rule cannot parse);
//!    never decided on an empty map, never forwarded, whatever the policies say;
//! 1. remove every header the filter can emit (on every route, whatever happens next) that
//!    the request carries: one host call less per absent header, the usual case;
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
//!
//! Steps 0-3 take no time (`open`): `decide_open` stops after them and returns the decision
//! when they made it, so the glue reads the host's clock only for a requirement (issue 13).
//! `decide` runs the same `open` first, so the two cannot decide differently.

use crate::authorize::Evaluation;
use crate::config::{Config, OnFailure, ProviderId, Requirement, OUTCOME_HEADER};
use crate::error::{deny, AuthError, Denial, FailureClass};
use crate::introspection::{Answers, Needed, Unwired};
pub use crate::keys::{Availability, KeyStore, ListAvailability, Wait};
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::signature::{PureRust, SignatureBackend};
use crate::token_cache::TokenCache;
use crate::trace::{Off, Sink, Step};

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

/// The decision on one request; header names are borrowed from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'c> {
    /// Forward the request after applying `ops` in order. `verdict.failure` is set when a
    /// failure policy or `report_only` lets a failed request through.
    Allow {
        ops: Vec<HeaderOp<'c>>,
        verdict: Verdict,
    },
    /// Answer locally.
    Deny { denial: Denial, verdict: Verdict },
    /// Pause the request until the provider's key set changes, then decide again. Only when
    /// the request would otherwise be denied.
    Wait(Wait),
}

/// A decision the glue carries out: `Decision` without `Wait`, which stays in the core (the
/// park/resume loop of `parked::decide` answers it), so the glue never has to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final<'c> {
    /// As `Decision::Allow`.
    Allow {
        ops: Vec<HeaderOp<'c>>,
        verdict: Verdict,
    },
    /// As `Decision::Deny`.
    Deny { denial: Denial, verdict: Verdict },
}

impl<'c> Decision<'c> {
    /// The final decision, or the wait this one asks for.
    pub fn into_final(self) -> Result<Final<'c>, Wait> {
        match self {
            Self::Allow { ops, verdict } => Ok(Final::Allow { ops, verdict }),
            Self::Deny { denial, verdict } => Ok(Final::Deny { denial, verdict }),
            Self::Wait(wait) => Err(wait),
        }
    }
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

/// Where a bench-only module variant stops (`make bench-ablation`, cargo features
/// `bench-stop-after-*`, never in a shipped build), so the bench can tell what each stage of a
/// request costs: at the entry point before any host call (`Entry`), right after the headers
/// are read (`Headers`), after the rule is matched (`Match`), after the decision (`Decide`,
/// neither counted nor logged), after it is counted (`Count`, no header operation applied).
/// Each stop allows the request with no header operation. `Never` in every real build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchStop {
    Entry,
    Headers,
    Match,
    Decide,
    Count,
    Never,
}

/// This build's `BenchStop`.
pub const BENCH_STOP: BenchStop = if cfg!(feature = "bench-stop-after-entry") {
    BenchStop::Entry
} else if cfg!(feature = "bench-stop-after-headers") {
    BenchStop::Headers
} else if cfg!(feature = "bench-stop-after-match") {
    BenchStop::Match
} else if cfg!(feature = "bench-stop-after-decide") {
    BenchStop::Decide
} else if cfg!(feature = "bench-stop-after-count") {
    BenchStop::Count
} else {
    BenchStop::Never
};

/// Room for the operations a token usually adds, so the vector grows once: removing the token,
/// identity headers, the three filter-state values (provider, issuer, subject).
const OPS_CAPACITY: usize = 8;

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
    decide_traced(config, vm, headers, now, &mut Off)
}

/// `decide_in`, telling `trace` every step (`jwt-authn-explain`): the same code, so the steps
/// explain the decision the filter makes. With `trace::Off` nothing is built. Opaque tokens
/// are `introspection_unavailable` here (`introspection::Unwired`): a caller that can ask
/// the authorization server uses `decide_introspecting`.
pub fn decide_traced<'c, S: Sink>(
    config: &'c Config,
    vm: Vm<'_>,
    headers: &RequestHeaders,
    now: i64,
    trace: &mut S,
) -> Decision<'c> {
    decide_with(config, vm, &Unwired, headers, now, trace, &mut Vec::new())
}

/// A decision on a request that may carry opaque tokens (issue 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspecting<'c> {
    /// Every answer the request needs was in `answers`: decided (possibly a key `Wait`).
    Decided(Decision<'c>),
    /// These introspections must be answered first (each key once): ask them (or join the
    /// question already out, `introspection::cache`), then decide again with the answers.
    Ask(Vec<Needed>),
}

/// Decides one request with what `vm` offers and the introspection answers known for it.
/// When a token's answer is unknown, nothing is decided: the lookups come back, as a `Wait`
/// comes back for keys, and the request is decided again once they are answered (or failed).
pub fn decide_introspecting<'c>(
    config: &'c Config,
    vm: Vm<'_>,
    answers: &dyn Answers,
    headers: &RequestHeaders,
    now: i64,
) -> Introspecting<'c> {
    let (decision, needed) = decide_answered(config, vm, answers, headers, now);
    if needed.is_empty() {
        Introspecting::Decided(decision)
    } else {
        Introspecting::Ask(needed)
    }
}

/// `decide_introspecting` for a decide loop that weighs a key `Wait` before the lookups
/// (`parked::decide`): the decision as made with `answers`, and the lookups it needed (when
/// there are any, the decision is not final: each failed as `introspection_unavailable`).
pub fn decide_answered<'c>(
    config: &'c Config,
    vm: Vm<'_>,
    answers: &dyn Answers,
    headers: &RequestHeaders,
    now: i64,
) -> (Decision<'c>, Vec<Needed>) {
    let mut needed = Vec::new();
    let decision = decide_with(config, vm, answers, headers, now, &mut Off, &mut needed);
    (decision, needed)
}

/// The decision on `headers` when no time can change it (issue 13), else `None`: the request
/// cannot be read, is a CORS preflight let through, or matches no rule or a rule without
/// `requires` (`report_only` marks it as `decide` would). The glue asks this first and reads
/// the clock only on `None`, so a route that needs no token costs no clock read. The same
/// steps as `decide`, in the same code (`open`), so the two cannot differ.
pub fn decide_open<'c>(config: &'c Config, headers: &RequestHeaders) -> Option<Final<'c>> {
    match open(config, headers, &mut Off) {
        Opening::Decided(decision) => decision.into_final().ok(),
        Opening::Check { .. } => None,
    }
}

/// What the steps before the requirement (flow 0-3) concluded.
enum Opening<'c> {
    /// Decided without a token, so without a time.
    Decided(Decision<'c>),
    /// The matched rule's requirement is to be checked, after the removals in `ops`.
    Check {
        ops: Vec<HeaderOp<'c>>,
        requirement: &'c Requirement,
    },
}

/// Flow 0-3: the removals, the readability check, the CORS bypass and the rule. Takes no time:
/// nothing here may depend on one (`decide_open` relies on it).
fn open<'c, S: Sink>(config: &'c Config, headers: &RequestHeaders, trace: &mut S) -> Opening<'c> {
    if BENCH_STOP == BenchStop::Headers {
        return Opening::Decided(finish(config, Vec::new(), Verdict::default(), None));
    }
    // One vector for the whole decision: the removals, then the evaluation's operations.
    let ops: Vec<HeaderOp<'c>> = config
        .emitted_headers
        .iter()
        .filter(|h| headers.get(h).is_some())
        .map(|h| HeaderOp::Remove(h))
        .collect();
    trace.record_all(|| {
        let stripped: Vec<String> = ops.iter().map(crate::trace::describe_op).collect();
        if stripped.is_empty() {
            Vec::new()
        } else {
            vec![Step::Stripped(stripped)]
        }
    });
    if headers.readable().is_err() {
        trace.record(|| Step::Unreadable);
        return Opening::Decided(refuse(config));
    }
    if config.bypass_cors_preflight && is_cors_preflight(headers) {
        trace.record(|| Step::CorsPreflight);
        return Opening::Decided(finish(config, ops, Verdict::default(), None));
    }
    let mut rule = None;
    for (index, candidate) in config.rules.iter().enumerate() {
        match candidate.matcher.matches(headers) {
            Ok(true) => {
                trace.record(|| Step::Rule {
                    index,
                    requires: candidate.requirement.is_some(),
                });
                rule = Some(candidate);
                break;
            }
            Ok(false) => {}
            Err(_) => {
                trace.record(|| Step::Unreadable);
                return Opening::Decided(refuse(config));
            }
        }
    }
    if rule.is_none() {
        trace.record(|| Step::NoRule);
    }
    let Some(requirement) = rule.and_then(|rule| rule.requirement.as_ref()) else {
        return Opening::Decided(finish(config, ops, Verdict::default(), None));
    };
    if BENCH_STOP == BenchStop::Match {
        return Opening::Decided(finish(config, ops, Verdict::default(), None));
    }
    Opening::Check { ops, requirement }
}

fn decide_with<'c, S: Sink>(
    config: &'c Config,
    vm: Vm<'_>,
    answers: &dyn Answers,
    headers: &RequestHeaders,
    now: i64,
    trace: &mut S,
    needed: &mut Vec<Needed>,
) -> Decision<'c> {
    let (mut ops, requirement) = match open(config, headers, trace) {
        Opening::Decided(decision) => return decision,
        Opening::Check { ops, requirement } => (ops, requirement),
    };
    ops.reserve(OPS_CAPACITY);
    let mut evaluation = Evaluation {
        config,
        keys: vm.keys,
        signatures: vm.signatures,
        cache: vm.cache,
        headers,
        answers,
        needed: Vec::new(),
        now,
        // After the removals; `check` rolls back only what a failed part added.
        ops,
        wait: None,
        insufficient_scope: None,
        parsed: Vec::new(),
        verified: None,
        failed: None,
        rejected: Vec::new(),
        trace: &mut *trace,
    };
    let checked = evaluation.check(requirement);
    needed.append(&mut evaluation.needed);
    match (checked, evaluation.wait) {
        (Ok(()), _) => {
            let ops = std::mem::take(&mut evaluation.ops);
            let verdict = Verdict {
                failure: None,
                provider: evaluation.verified,
            };
            finish(config, ops, verdict, None)
        }
        (Err(_), Some(wait)) => {
            evaluation.trace.record(|| Step::Wait {
                provider: config
                    .providers
                    .get(wait.provider)
                    .map_or_else(String::new, |p| p.name.clone()),
                kid: wait.kid.clone(),
            });
            Decision::Wait(wait)
        }
        (Err(reason), None) => {
            let verdict = Verdict {
                failure: Some(reason),
                provider: evaluation.failed,
            };
            let (class, policy) = match reason.class() {
                FailureClass::Missing => ("token_missing", config.failure_policy.token_missing),
                FailureClass::Invalid => ("token_invalid", config.failure_policy.token_invalid),
                FailureClass::KeysUnavailable => {
                    ("keys_unavailable", config.failure_policy.keys_unavailable)
                }
                FailureClass::RevocationUnavailable => (
                    "revocation_unavailable",
                    config.failure_policy.revocation_unavailable,
                ),
                FailureClass::IntrospectionUnavailable => (
                    "introspection_unavailable",
                    config.failure_policy.introspection_unavailable,
                ),
                // `deny` makes it a 403.
                FailureClass::Forbidden => ("forbidden (always 403)", OnFailure::Deny401),
            };
            evaluation.trace.record(|| Step::Policy {
                failure: reason,
                class,
                policy: match policy {
                    OnFailure::Deny401 => "deny_401",
                    OnFailure::Deny503 => "deny_503",
                    OnFailure::Allow => "allow",
                },
            });
            // The removals alone: a failed requirement leaves no operation of its own.
            let ops = std::mem::take(&mut evaluation.ops);
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

/// A request that cannot be read (`RequestHeaders::readable`, or a part a rule must look at):
/// 400, whatever the failure policy, and in `report_only` too. Deciding on what could be read
/// would be deciding on "nothing", and "nothing matched" means "no token needed"; a 401 would
/// tell the client to bring a token, which would not make the request readable. (Envoy itself
/// answers 400 to a request without `:path` or with an invalid `:authority`.)
fn refuse<'c>(config: &Config) -> Decision<'c> {
    let reason = AuthError::UnreadableRequest;
    Decision::Deny {
        denial: deny(reason, "", config.strip_failure_response, None, false),
        verdict: Verdict {
            failure: Some(reason),
            provider: None,
        },
    }
}

/// The final decision: `denial` unless `report_only`, which allows and tells the upstream.
fn finish<'c>(
    config: &'c Config,
    mut ops: Vec<HeaderOp<'c>>,
    verdict: Verdict,
    denial: Option<Denial>,
) -> Decision<'c> {
    if config.report_only {
        ops.push(HeaderOp::Set(
            OUTCOME_HEADER,
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
mod bench_tests;
#[cfg(test)]
mod introspection_tests;
#[cfg(test)]
mod revocation_tests;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;
