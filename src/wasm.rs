//! The only module that talks to `proxy_wasm`: root and HTTP contexts, host calls, panic hook.
//!
//! Thin on purpose: it reads the configuration and the request headers from the host, asks
//! `engine::decide`, and applies the answer; for remote key sets it sends the callouts
//! `fleet` and `callouts` ask for, hands `callouts` the raw response, and gives both the
//! host's shared data. Host facts it relies on (measured in Envoy 1.40,
//! `shared/ENVOY-WASM-FACTS.md`):
//! - request headers are read as bytes (the SDK's `String` getters panic on non-UTF-8 values);
//! - header mutations happen before the stream continues, and a local reply is followed by
//!   `Pause`; `on_configure` returning false makes Envoy refuse the plugin;
//! - every JWKS fetch is dispatched from the root context, so its answer comes back to the
//!   root even when the request that wanted it is gone. A stream that needs a fetch asks the
//!   root by setting the root's timer to 1 ms (`set_tick_period` from a stream sets the root's);
//! - setting the timer restarts it (Envoy's `Wasm::setTickPeriod` disarms and re-arms it), so
//!   the period is set only when it changes: a stream of requests must not keep postponing
//!   the tick;
//! - a paused stream is resumed from the root through `proxy_set_effective_context`, which
//!   fails (and we skip the stream) when the stream no longer exists;
//! - callout failures arrive as synthetic 503/504 responses, so only `:status` 200 counts;
//! - the peer's `connection.uri_san_peer_certificate` and
//!   `connection.sha256_peer_certificate_digest` are strings, NotFound on plain text or without
//!   a client certificate; they are read per request only when the configuration needs them;
//! - Envoy's foreign function `verify_signature` (BoringSSL) checks RS* and ES* signatures; it
//!   is probed once per VM at configure time and used only if it answers the probe correctly.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::callouts::{Callouts, Ended, Keys, Next, Request, ResponseParts, Severity};
use crate::config::{Config, JwksSource, PeerReads, ProviderId};
use crate::engine::{Final, Verdict};
use crate::fleet::{Fleet, HostError, Local, SetError, SharedData};
use crate::jwks_cache::{FetchFailure, Millis, RemoteKeys};
use crate::logline::{self, Admit, RateLimit};
use crate::metrics;
use crate::pairs;
use crate::parked::{self, Deciding, Parked, Parking};
use crate::peer::PeerFacts;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::signature::{self, PureRust, SignatureBackend};
use crate::token_cache::TokenCache;

proxy_wasm::main! {{
    // No host call other than logging is allowed here (Envoy restricts `_initialize`).
    // `set_log_level` installs the SDK's panic hook; ours replaces it (see `crash`).
    proxy_wasm::set_log_level(LogLevel::Trace);
    std::panic::set_hook(Box::new(|info| log(LogLevel::Critical, &crate::crash::report(info))));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The timer period while remote key sets exist: refreshes and retries are checked this often.
const TICK: Duration = Duration::from_secs(1);
/// The timer period a stream sets to have the root dispatch a fetch right away.
const POKE: Duration = Duration::from_millis(1);
/// The timer period while another VM fetches keys this VM's requests wait for.
const PEER_POLL: Duration = Duration::from_millis(50);

mod raw;

fn log(level: LogLevel, message: &str) {
    raw::log(level as u32, message);
}

/// Whether the host writes lines at `level` (asked each time: an operator can change Envoy's
/// level at run time); when it cannot say, yes.
fn log_enabled(level: LogLevel) -> bool {
    raw::log_level().map_or(true, |host| level as u32 >= host)
}

fn now_millis() -> Millis {
    raw::now_nanos().map_or(0, |nanos| nanos / 1_000_000)
}

/// A number in `0..1000` for backoff jitter: the host clock's sub-millisecond digits.
fn jitter() -> u32 {
    raw::now_nanos().map_or(500, |nanos| {
        u32::try_from(nanos / 1000 % 1000).unwrap_or(500)
    })
}

/// Host metric ids of one remote provider.
struct Stats {
    success: u32,
    /// In `metrics::FETCH_FAILURE_REASONS` order.
    failed: Vec<(&'static str, u32)>,
    unknown_kid_refetch: u32,
    age_seconds: u32,
}

impl Stats {
    fn define(provider: &str) -> Option<Stats> {
        let counter = |name: String| raw::define_metric(raw::COUNTER, &name).ok();
        Some(Stats {
            success: counter(metrics::jwks_fetch_success(provider))?,
            failed: metrics::FETCH_FAILURE_REASONS
                .iter()
                .map(|r| Some((*r, counter(metrics::jwks_fetch_failed(provider, r))?)))
                .collect::<Option<_>>()?,
            unknown_kid_refetch: counter(metrics::jwks_unknown_kid_refetch(provider))?,
            age_seconds: raw::define_metric(raw::GAUGE, &metrics::jwks_age_seconds(provider))
                .ok()?,
        })
    }
}

/// Host metric ids of the decision counters of one scope: all requests, or one provider.
struct DecisionStats {
    allowed: u32,
    /// In `metrics::DENY_REASONS` order.
    denied: Vec<(&'static str, u32)>,
}

impl DecisionStats {
    fn define(provider: Option<&str>) -> Option<DecisionStats> {
        Some(DecisionStats {
            allowed: counter(&metrics::allowed(provider))?,
            denied: metrics::DENY_REASONS
                .iter()
                .map(|r| Some((*r, counter(&metrics::denied(provider, r))?)))
                .collect::<Option<_>>()?,
        })
    }

    fn record(&self, verdict: &Verdict) {
        match verdict.failure {
            None => count(self.allowed),
            Some(failure) => {
                let reason = failure.reason();
                if let Some((_, id)) = self.denied.iter().find(|(r, _)| *r == reason) {
                    count(*id);
                }
            }
        }
    }
}

fn counter(name: &str) -> Option<u32> {
    raw::define_metric(raw::COUNTER, name).ok()
}

fn count(metric: u32) {
    let _ = raw::increment_metric(metric, 1);
}

/// State one plugin instance shares between its root and its streams (one VM, one thread).
struct Shared {
    config: Rc<Config>,
    /// Indexed by provider id; `Some` for remote providers.
    remote: Vec<Option<RemoteKeys>>,
    /// Indexed by provider id; `Some` for remote providers whose stats the host defined.
    stats: Vec<Option<Stats>>,
    /// Decision counters of all requests, then indexed by provider id.
    decisions: Option<DecisionStats>,
    provider_decisions: Vec<Option<DecisionStats>>,
    not_enforced: Option<u32>,
    /// Fetches a stream asked for; the root dispatches them at its next tick.
    requested: Vec<ProviderId>,
    /// Callouts in flight and what OIDC discovery found (`callouts`).
    callouts: Callouts,
    /// Paused streams and the providers they wait for (`parked`).
    parked: Parked,
    /// The root's timer period as last set (zero: not set yet).
    tick: Duration,
    /// This VM's part in the protocol between the VMs of this Envoy (`fleet`).
    fleet: Fleet,
    /// Verified tokens of the providers with `jwt_cache_config`.
    cache: TokenCache,
    /// Whether RS* and ES* signatures go to the host's `verify_signature`.
    host_signatures: bool,
    /// The budget of per-request log lines (`logline`).
    log_limit: RateLimit,
    /// This plugin instance's name (Envoy's `plugin_name`), for lines Envoy does not name it in.
    plugin: String,
}

impl Shared {
    fn new(config: Rc<Config>, plugin: &str, me: u64, host_signatures: bool) -> Self {
        let remote = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(r) => Some(RemoteKeys::new(r.policy.clone())),
                JwksSource::Local(_) => None,
            })
            .collect();
        let stats = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(_) => Stats::define(&p.name),
                JwksSource::Local(_) => None,
            })
            .collect();
        let provider_decisions = config
            .providers
            .iter()
            .map(|p| DecisionStats::define(Some(&p.name)))
            .collect();
        let config_len = config.providers.len();
        let cache = config.token_cache();
        let fleet = Fleet::new(&config, plugin, me);
        Self {
            config,
            remote,
            stats,
            decisions: DecisionStats::define(None),
            provider_decisions,
            not_enforced: counter(&metrics::not_enforced()),
            requested: Vec::new(),
            callouts: Callouts::new(config_len),
            parked: Parked::default(),
            tick: Duration::ZERO,
            fleet,
            cache,
            host_signatures,
            log_limit: RateLimit::default(),
            plugin: plugin.to_owned(),
        }
    }

    /// Counts a fetch outcome for `provider`.
    fn record(&self, provider: ProviderId, failure: Option<&FetchFailure>) {
        let Some(stats) = self.stats.get(provider).and_then(Option::as_ref) else {
            return;
        };
        match failure {
            None => count(stats.success),
            Some(failure) => {
                if let Some((_, id)) = stats.failed.iter().find(|(r, _)| *r == failure.reason()) {
                    count(*id);
                }
            }
        }
    }

    /// Counts a final decision, and logs a failure that was let through (at info in
    /// `report_only`, where that is the point; at debug for a failure policy `allow`) and a
    /// denial (at debug), through `request_line`.
    fn record_decision(&mut self, decision: &Final, headers: &RequestHeaders, now: Millis) {
        let (verdict, let_through) = match decision {
            Final::Allow { verdict, .. } => (verdict, verdict.failure.is_some()),
            Final::Deny { denial, verdict } => {
                let status = denial.status;
                let message = verdict.failure.map_or("", |f| f.message());
                self.request_line(LogLevel::Debug, now, || {
                    format!(
                        "jwt-authn-wasm: {status} {}: {message}",
                        request_shown(headers)
                    )
                });
                (verdict, false)
            }
        };
        let by_provider = verdict
            .provider
            .and_then(|p| self.provider_decisions.get(p))
            .and_then(Option::as_ref);
        for stats in self.decisions.iter().chain(by_provider) {
            stats.record(verdict);
        }
        if let (true, Some(failure)) = (let_through, verdict.failure) {
            if let Some(id) = self.not_enforced {
                count(id);
            }
            let (level, how) = if self.config.report_only {
                (LogLevel::Info, "report-only, not enforced")
            } else {
                (LogLevel::Debug, "allowed by failure_policy")
            };
            self.request_line(level, now, || {
                format!(
                    "jwt-authn-wasm: {how}: {}: {failure} ({})",
                    request_shown(headers),
                    failure.reason()
                )
            });
        }
    }

    /// Writes one per-request line at `level`, if the host writes that level and the budget
    /// allows; `line` is built only then. The first line after some were dropped says how many
    /// first; without one, the next tick does (a filter without remote keys ticks only while
    /// something is left to say).
    fn request_line(&mut self, level: LogLevel, now: Millis, line: impl FnOnce() -> String) {
        if !log_enabled(level) {
            return;
        }
        match self.log_limit.admit(now) {
            Admit::Write { suppressed } => {
                if suppressed > 0 {
                    log(
                        LogLevel::Info,
                        &logline::suppressed_line(&self.plugin, suppressed),
                    );
                }
                log(level, &line());
            }
            Admit::Drop => {
                if self.log_limit.pending() == 1 && !self.has_remote() {
                    self.set_tick(TICK);
                }
            }
        }
    }

    /// At a tick: reports dropped lines no later line reported; stops the timer of a filter
    /// without remote keys once nothing is left to say.
    fn flush_log(&mut self, now: Millis) {
        if let Some(suppressed) = self.log_limit.flush(now) {
            log(
                LogLevel::Info,
                &logline::suppressed_line(&self.plugin, suppressed),
            );
        }
        if self.log_limit.pending() == 0 && !self.has_remote() {
            self.set_tick(Duration::ZERO);
        }
    }

    /// Sets each remote provider's key-set age gauge.
    fn record_ages(&self, now: Millis) {
        for (keys, stats) in self.remote.iter().zip(&self.stats) {
            if let (Some(keys), Some(stats)) = (keys, stats) {
                let age = keys.age_seconds(now).unwrap_or(0);
                let _ = raw::record_metric(stats.age_seconds, age);
            }
        }
    }

    /// Sets the root's timer to `period` if it is not already (setting it restarts it), and
    /// logs the change at debug; a refusal leaves the previous period.
    fn set_tick(&mut self, period: Duration) {
        if self.tick == period {
            return;
        }
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        if raw::set_tick_period_ms(ms).is_ok() {
            self.tick = period;
            log(LogLevel::Debug, &format!("jwt-authn-wasm: timer {ms}ms"));
        }
    }

    /// One tick of the fetch protocol between the VMs of this Envoy (`fleet`). Returns the
    /// providers to fetch for now (this VM took their lease) and those whose waiting streams
    /// should be decided again. While a peer fetches keys that streams of this VM wait for,
    /// the timer runs every `PEER_POLL`, so its success or failure releases them at once;
    /// otherwise every `TICK` (nothing is polled while nothing waits).
    fn coordinate(&mut self, now: Millis) -> (Vec<ProviderId>, Vec<ProviderId>) {
        let requested = std::mem::take(&mut self.requested);
        let own = self.callouts.providers();
        let waited = self.parked.providers();
        let local = Local {
            requested: &requested,
            own: &own,
            waited: &waited,
        };
        let round = self
            .fleet
            .coordinate(&mut HostShared, &mut self.remote, &local, now);
        self.set_tick(if round.poll { PEER_POLL } else { TICK });
        (round.due, round.changed)
    }

    /// Runs `f` over the callouts and what an ended fetch changes (`callouts::Keys`).
    fn with_keys<T>(
        &mut self,
        now: Millis,
        f: impl FnOnce(&mut Callouts, &mut Keys<'_, HostShared>) -> T,
    ) -> T {
        let mut keys = Keys {
            config: &self.config,
            remote: &mut self.remote,
            fleet: &self.fleet,
            data: &mut HostShared,
            jitter: jitter(),
            now,
        };
        f(&mut self.callouts, &mut keys)
    }

    fn has_remote(&self) -> bool {
        self.remote.iter().any(Option::is_some)
    }

    /// Decides for the request in `headers` (`parked::decide`), parking it when it must wait,
    /// and counts the final decision. `None`: parked. `config` is this instance's
    /// configuration (an `Rc` the caller holds, so the decision may borrow header names from
    /// it).
    fn decide<'c>(
        &mut self,
        config: &'c Config,
        id: u32,
        headers: &RequestHeaders,
        now: Millis,
    ) -> Option<Final<'c>> {
        let signatures: &dyn SignatureBackend = if self.host_signatures {
            &HostSignatures
        } else {
            &PureRust
        };
        let mut parking = Parking::default();
        let Shared {
            remote,
            cache,
            parked,
            requested,
            callouts,
            stats,
            ..
        } = self;
        let vm = Deciding {
            remote,
            signatures,
            cache,
        };
        let decision = parked::decide(config, vm, headers, now, |remote, wait| {
            let in_flight = callouts.in_flight(wait.provider);
            parking = parked.park(id, wait, remote, requested, in_flight, now);
            if parking.refetch {
                if let Some(stats) = stats.get(wait.provider).and_then(Option::as_ref) {
                    count(stats.unknown_kid_refetch);
                }
            }
            parking.parked
        });
        if parking.refetch {
            self.set_tick(POKE);
        } else if parking.peer && self.tick > PEER_POLL {
            self.set_tick(PEER_POLL);
        }
        let decision = decision?;
        self.record_decision(&decision, headers, now);
        Some(decision)
    }
}

/// Envoy's shared data through raw calls: NotFound is "no key", CasMismatch its own error.
struct HostShared;

impl SharedData for HostShared {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        match raw::shared_get(key) {
            Ok((Some(value), Some(cas))) => Ok(Some((value, cas))),
            Ok(_) => Ok(None),
            Err(status) => Err(HostError(status)),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        raw::shared_set(key, value, cas).map_err(|status| match status {
            raw::CAS_MISMATCH => SetError::CasMismatch,
            other => SetError::Host(HostError(other)),
        })
    }
}

/// Envoy's BoringSSL, through the foreign function `verify_signature`. `None` (our own code
/// decides) when the call is refused or its answer unreadable.
struct HostSignatures;

impl SignatureBackend for HostSignatures {
    fn verify(&self, hash: &str, spki: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
        let arguments = signature::encode_arguments(hash, spki, signature, message);
        let result = raw::call_foreign_function(signature::VERIFY_SIGNATURE, &arguments)
            .ok()
            .flatten()?;
        signature::decode_result(&result)
    }
}

/// One per plugin instance per VM: owns the compiled configuration and the remote key sets.
#[derive(Default)]
struct Root {
    shared: Option<Rc<RefCell<Shared>>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = now_millis();
        let next = shared.borrow_mut().with_keys(now, |callouts, keys| {
            callouts.on_response(token, headers, body_size, &HostResponse, keys)
        });
        match next {
            Next::Ignored => {}
            Next::Send(request) => self.send(&shared, &request, now),
            Next::Ended(ended) => fetch_ended(&shared, ended, now),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        // No configuration (NotFound) is an empty one, which `Config::from_json` refuses; a
        // buffer the host will not give is refused the same way.
        let bytes = raw::buffer_bytes(raw::PLUGIN_CONFIGURATION, 0, plugin_configuration_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(config) => {
                for warning in config.warnings() {
                    log(LogLevel::Warn, &format!("jwt-authn-wasm: {warning}"));
                }
                log(
                    LogLevel::Info,
                    &format!(
                        "jwt-authn-wasm: configured {} provider(s), {} rule(s)",
                        config.providers.len(),
                        config.rules.len()
                    ),
                );
                let plugin = raw::property(&["plugin_name"])
                    .ok()
                    .flatten()
                    .and_then(|name| String::from_utf8(name).ok())
                    .unwrap_or_default();
                let me = raw::now_nanos().unwrap_or(1);
                let host_signatures =
                    config.host_signatures && signature::backend_works(&HostSignatures);
                log(
                    LogLevel::Info,
                    match (config.host_signatures, host_signatures) {
                        (true, true) => "jwt-authn-wasm: signatures: RS* and ES* by the host (verify_signature)",
                        (true, false) => "jwt-authn-wasm: signatures: all in wasm (the host has no working verify_signature)",
                        (false, _) => "jwt-authn-wasm: signatures: all in wasm (host_signatures: false)",
                    },
                );
                let mut shared = Shared::new(Rc::new(config), &plugin, me, host_signatures);
                // Keys are on the way from now: a request waits for them. The fetch starts at
                // the first tick, 1 ms from now, not here: Envoy runs this in a short-lived
                // canary VM too, which must not take the lease and die with it.
                for (id, keys) in shared.remote.iter_mut().enumerate() {
                    if let Some(keys) = keys {
                        keys.fetch_started();
                        shared.requested.push(id);
                    }
                }
                if shared.has_remote() {
                    shared.set_tick(POKE);
                }
                self.shared = Some(Rc::new(RefCell::new(shared)));
                true
            }
            Err(error) => {
                log(LogLevel::Error, &format!("jwt-authn-wasm: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.dispatch_due();
        if let Some(shared) = &self.shared {
            let now = now_millis();
            let mut state = shared.borrow_mut();
            state.record_ages(now);
            state.flush_log(now);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            id: context_id,
            shared: self.shared.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    /// Dispatches every fetch that is requested or due.
    fn dispatch_due(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = now_millis();
        let (due, changed) = shared.borrow_mut().coordinate(now);
        for provider in changed {
            resume_waiting(&shared, provider, now);
        }
        for provider in due {
            self.dispatch(&shared, provider, now);
        }
    }

    /// Sends provider's next request (`Callouts::request`), with no state borrowed.
    fn dispatch(&self, shared: &Rc<RefCell<Shared>>, provider: ProviderId, now: Millis) {
        let request = {
            let state = shared.borrow();
            state.callouts.request(&state.config, provider)
        };
        if let Some(request) = request {
            self.send(shared, &request, now);
        }
    }

    fn send(&self, shared: &Rc<RefCell<Shared>>, request: &Request, now: Millis) {
        let headers = request
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let sent = self
            .dispatch_http_call(&request.cluster, headers, None, vec![], request.timeout)
            .map_err(|status| HostError(status as u32));
        let ended = shared
            .borrow_mut()
            .with_keys(now, |callouts, keys| callouts.sent(request, sent, keys));
        if let Some(ended) = ended {
            fetch_ended(shared, ended, now);
        }
    }
}

/// The response of the current callout, read raw.
struct HostResponse;

impl ResponseParts for HostResponse {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        raw::header_value(raw::HTTP_CALL_RESPONSE_HEADERS, name)
            .ok()
            .flatten()
    }

    fn body(&self, size: usize) -> Option<Vec<u8>> {
        raw::buffer_bytes(raw::HTTP_CALL_RESPONSE_BODY, 0, size)
            .ok()
            .flatten()
    }
}

/// A fetch of provider's keys ended (`Callouts` kept or backed off, and published): log,
/// count, and decide again for the streams that waited.
fn fetch_ended(shared: &Rc<RefCell<Shared>>, ended: Ended, now: Millis) {
    for (severity, line) in &ended.lines {
        let level = match severity {
            Severity::Info => LogLevel::Info,
            Severity::Warn => LogLevel::Warn,
        };
        log(level, line);
    }
    shared
        .borrow()
        .record(ended.provider, ended.failure.as_ref());
    resume_waiting(shared, ended.provider, now);
}

/// Decides again for every stream waiting on `provider`, from the root, through the host's
/// effective context. Streams that are gone are skipped.
fn resume_waiting(shared: &Rc<RefCell<Shared>>, provider: ProviderId, now: Millis) {
    let ids: Vec<u32> = { shared.borrow_mut().parked.take(provider) };
    for id in ids {
        if raw::set_effective_context(id).is_err() {
            continue;
        }
        let config = Rc::clone(&shared.borrow().config);
        let headers = request_headers(config.peer_reads);
        let decision = shared.borrow_mut().decide(&config, id, &headers, now);
        if let Some(decision) = decision {
            if apply(&decision) == Action::Continue {
                let _ = raw::continue_request();
            }
        }
    }
}

/// The current stream's request headers, read raw (`raw::header_pairs`, with the host's status)
/// and parsed by our own pairs parser, which keeps names that are not UTF-8 as bytes (the SDK's
/// map helper traps on them). A map the host cannot give, or
/// one that does not parse, is unreadable: the engine refuses the request (400).
///
/// With them, the connection properties the configuration needs (`reads`), each read raw with
/// its status: NotFound (plain text, no client certificate) is "none", any other failure
/// unreadable (`PeerFacts::read`). A configuration without peer rules reads none.
fn request_headers(reads: PeerReads) -> RequestHeaders {
    RequestHeaders::from_host(
        raw::header_pairs(raw::REQUEST_HEADERS)
            .ok()
            .flatten()
            .and_then(|bytes| pairs::parse(&bytes)),
    )
    .with_peer(PeerFacts::read(reads.uri_san, reads.digest, raw::property))
}

/// The request as a log line may show it (`logline::request`: bounded, escaped, no query).
fn request_shown(headers: &RequestHeaders) -> String {
    logline::request(
        headers.get(":method").unwrap_or_default(),
        headers.path_bytes().unwrap_or_default(),
    )
}

/// Carries out a final decision on the current (effective) stream.
fn apply(decision: &Final) -> Action {
    match decision {
        Final::Allow { ops, .. } => {
            for op in ops {
                match op {
                    // A refusal means the stream is gone or already answered.
                    HeaderOp::Remove(name) => {
                        let _ = raw::remove_request_header(name);
                    }
                    HeaderOp::Set(name, value) => {
                        let _ = raw::set_request_header(name, value);
                    }
                    // Envoy prefixes what a wasm filter sets with `wasm.` itself.
                    HeaderOp::FilterState(key, value) => {
                        let path = key.strip_prefix("wasm.").unwrap_or(key);
                        let _ = raw::set_property(path, value);
                    }
                }
            }
            Action::Continue
        }
        Final::Deny { denial, .. } => {
            let extra: Vec<(&str, &str)> = match &denial.www_authenticate {
                Some(value) => vec![("www-authenticate", value.as_str())],
                None => vec![],
            };
            let _ = raw::send_local_response(denial.status, &extra, denial.body.as_bytes());
            Action::Pause
        }
    }
}

/// One per HTTP stream.
struct Stream {
    id: u32,
    /// `None` only if the host created a stream without a successful `on_configure`, which
    /// Envoy never does; such a stream is refused rather than let through.
    shared: Option<Rc<RefCell<Shared>>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            log(
                LogLevel::Error,
                "jwt-authn-wasm: no configuration; refusing request",
            );
            let _ = raw::send_local_response(500, &[], b"");
            return Action::Pause;
        };
        let config = Rc::clone(&shared.borrow().config);
        let headers = request_headers(config.peer_reads);
        let decision = shared
            .borrow_mut()
            .decide(&config, self.id, &headers, now_millis());
        match decision {
            Some(decision) => apply(&decision),
            None => Action::Pause,
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            if let Ok(mut state) = shared.try_borrow_mut() {
                state.parked.gone(self.id);
            }
        }
    }
}
