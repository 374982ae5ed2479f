//! The host metric ids one plugin instance defines at configure time, and what it counts with
//! them: key-set fetches per remote provider, and decisions for all requests and per provider.
//! Names come from `metrics`; a metric the host refuses to define is not counted.

use crate::config::{Config, JwksSource};
use crate::engine::Verdict;
use crate::host::{Host, MetricKind};
use crate::introspection::cache::Outcome;
use crate::jwks_cache::FetchFailure;
use crate::metrics;

/// Host metric ids of one remote provider.
pub struct Fetches {
    success: u32,
    /// In `metrics::FETCH_FAILURE_REASONS` order.
    failed: Vec<(&'static str, u32)>,
    pub unknown_kid_refetch: u32,
    pub age_seconds: u32,
}

impl Fetches {
    fn define(host: &impl Host, provider: &str) -> Option<Fetches> {
        let counter = |name: String| host.define_metric(MetricKind::Counter, &name);
        Some(Fetches {
            success: counter(metrics::jwks_fetch_success(provider))?,
            failed: metrics::FETCH_FAILURE_REASONS
                .iter()
                .map(|r| Some((*r, counter(metrics::jwks_fetch_failed(provider, r))?)))
                .collect::<Option<_>>()?,
            unknown_kid_refetch: counter(metrics::jwks_unknown_kid_refetch(provider))?,
            age_seconds: host
                .define_metric(MetricKind::Gauge, &metrics::jwks_age_seconds(provider))?,
        })
    }

    /// Counts one fetch outcome.
    pub fn record(&self, host: &impl Host, failure: Option<&FetchFailure>) {
        match failure {
            None => host.increment(self.success),
            Some(failure) => {
                if let Some((_, id)) = self.failed.iter().find(|(r, _)| *r == failure.reason()) {
                    host.increment(*id);
                }
            }
        }
    }
}

/// Host metric ids of one introspection provider.
pub struct Introspections {
    success: u32,
    /// In `metrics::INTROSPECTION_FAILURE_REASONS` order.
    failed: Vec<(&'static str, u32)>,
    pub failed_in_flight: u32,
    pub cache_hit: u32,
    cache_miss: u32,
    inactive: u32,
}

impl Introspections {
    fn define(host: &impl Host, provider: &str) -> Option<Introspections> {
        let counter = |name: String| host.define_metric(MetricKind::Counter, &name);
        let failed: Vec<(&'static str, u32)> = metrics::INTROSPECTION_FAILURE_REASONS
            .iter()
            .map(|r| Some((*r, counter(metrics::introspection_failed(provider, r))?)))
            .collect::<Option<_>>()?;
        let failed_in_flight = failed
            .iter()
            .find(|(r, _)| *r == "in_flight")
            .map(|(_, id)| *id)?;
        Some(Introspections {
            cache_hit: counter(metrics::introspection_cache_hit(provider))?,
            success: counter(metrics::introspection_success(provider))?,
            failed,
            failed_in_flight,
            cache_miss: counter(metrics::introspection_cache_miss(provider))?,
            inactive: counter(metrics::introspection_inactive(provider))?,
        })
    }

    /// Counts one introspection that ended (`inactive`: its answer said so), and the
    /// `waiters` that missed the cache for it.
    pub fn record(&self, host: &impl Host, outcome: &Outcome, waiters: usize, inactive: bool) {
        for _ in 0..waiters {
            host.increment(self.cache_miss);
        }
        match outcome {
            Outcome::Failed(failure) => {
                if let Some((_, id)) = self.failed.iter().find(|(r, _)| *r == failure.reason()) {
                    host.increment(*id);
                }
            }
            Outcome::Cached | Outcome::Uncached(_) => {
                host.increment(self.success);
                if inactive {
                    host.increment(self.inactive);
                }
            }
        }
    }
}

/// Host metric ids of the decision counters of one scope: all requests, or one provider.
pub struct Decisions {
    allowed: u32,
    /// In `metrics::DENY_REASONS` order.
    denied: Vec<(&'static str, u32)>,
}

impl Decisions {
    fn define(host: &impl Host, provider: Option<&str>) -> Option<Decisions> {
        let counter = |name: String| host.define_metric(MetricKind::Counter, &name);
        Some(Decisions {
            allowed: counter(metrics::allowed(provider))?,
            denied: metrics::DENY_REASONS
                .iter()
                .map(|r| Some((*r, counter(metrics::denied(provider, r))?)))
                .collect::<Option<_>>()?,
        })
    }

    fn record(&self, host: &impl Host, verdict: &Verdict) {
        match verdict.failure {
            None => host.increment(self.allowed),
            Some(failure) => {
                let reason = failure.reason();
                if let Some((_, id)) = self.denied.iter().find(|(r, _)| *r == reason) {
                    host.increment(*id);
                }
            }
        }
    }
}

/// Every metric id of one plugin instance.
pub struct Stats {
    /// Indexed by provider id; `Some` for remote providers whose stats the host defined.
    pub fetches: Vec<Option<Fetches>>,
    /// Decision counters of all requests.
    decisions: Option<Decisions>,
    /// Indexed by provider id.
    provider_decisions: Vec<Option<Decisions>>,
    not_enforced: Option<u32>,
    /// Indexed by provider id; `Some` for introspection providers.
    introspections: Vec<Option<Introspections>>,
}

impl Stats {
    pub fn define(host: &impl Host, config: &Config) -> Stats {
        Stats {
            fetches: config
                .providers
                .iter()
                .map(|p| match &p.jwks {
                    JwksSource::Remote(_) => Fetches::define(host, &p.name),
                    JwksSource::Local(_) => None,
                })
                .collect(),
            decisions: Decisions::define(host, None),
            provider_decisions: config
                .providers
                .iter()
                .map(|p| Decisions::define(host, Some(&p.name)))
                .collect(),
            not_enforced: host.define_metric(MetricKind::Counter, &metrics::not_enforced()),
            introspections: config
                .providers
                .iter()
                .map(|p| {
                    p.introspection.as_ref()?;
                    Introspections::define(host, &p.name)
                })
                .collect(),
        }
    }

    /// The introspection counters of `provider`, if it introspects and they were defined.
    pub fn introspection(&self, provider: usize) -> Option<&Introspections> {
        self.introspections.get(provider).and_then(Option::as_ref)
    }

    /// The fetch counters of `provider`, if it is remote and they were defined.
    pub fn fetches(&self, provider: usize) -> Option<&Fetches> {
        self.fetches.get(provider).and_then(Option::as_ref)
    }

    /// Counts a final decision in all requests' and its provider's counters, and a failure that
    /// was let through in `not_enforced`.
    pub fn record_decision(&self, host: &impl Host, verdict: &Verdict, let_through: bool) {
        let by_provider = verdict
            .provider
            .and_then(|p| self.provider_decisions.get(p))
            .and_then(Option::as_ref);
        for stats in self.decisions.iter().chain(by_provider) {
            stats.record(host, verdict);
        }
        if let (true, Some(_), Some(id)) = (let_through, verdict.failure, self.not_enforced) {
            host.increment(id);
        }
    }
}

/// Host metric ids of one provider's revocation list.
pub struct Lists {
    success: u32,
    /// In `metrics::REVOCATION_FETCH_FAILURE_REASONS` order.
    failed: Vec<(&'static str, u32)>,
    pub age_seconds: u32,
    pub entries: u32,
}

impl Lists {
    pub fn define(host: &impl Host, provider: &str) -> Option<Lists> {
        let counter = |name: String| host.define_metric(MetricKind::Counter, &name);
        let gauge = |name: String| host.define_metric(MetricKind::Gauge, &name);
        Some(Lists {
            success: counter(metrics::revocation_fetch_success(provider))?,
            failed: metrics::REVOCATION_FETCH_FAILURE_REASONS
                .iter()
                .map(|r| Some((*r, counter(metrics::revocation_fetch_failed(provider, r))?)))
                .collect::<Option<_>>()?,
            age_seconds: gauge(metrics::revocation_list_age_seconds(provider))?,
            entries: gauge(metrics::revocation_entries(provider))?,
        })
    }

    /// Counts one list fetch outcome (`None`: success), by its failure's reason.
    pub fn record(&self, host: &impl Host, failure: Option<&'static str>) {
        match failure {
            None => host.increment(self.success),
            Some(reason) => {
                if let Some((_, id)) = self.failed.iter().find(|(r, _)| *r == reason) {
                    host.increment(*id);
                }
            }
        }
    }
}
