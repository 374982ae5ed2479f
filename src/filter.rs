//! One plugin instance per VM: configure, tick, a request's headers, a callout's response, a
//! stream gone. It owns the compiled configuration, the remote resources (key sets and
//! revocation lists, `resource::Resource`), the callouts in flight, the paused streams, the
//! verified-token cache, the log budget and the metric ids, and talks to the proxy only
//! through `host::Host`, so all of it runs natively against `host::fake::FakeHost` (several
//! fake VMs sharing one shared-data store).
//!
//! Timer policy: while remote key sets or revocation lists exist the root ticks every `TICK`
//! (refreshes and retries are checked then), or sooner, at the earliest due list fetch, when
//! that comes before the next `TICK` (never below `POKE`): a list due in 300 ms is fetched
//! then, so the revocation latency is `cache_duration` plus the fetch time. A stream that needs a fetch
//! sets it to `POKE` so the root dispatches at once (every fetch goes out from the root, so
//! its answer comes back to the root even when the stream is gone). It polls every
//! `PEER_POLL` while a peer VM fetches keys or a list this VM's streams wait for, and while a
//! peer fetches a revocation list at all (so every VM has the new list at most `PEER_POLL`
//! after the fetching one). Setting the timer restarts it, so it is set only when the period
//! changes. A filter without remote resources ticks only while dropped log lines are left to
//! report.
//!
//! Opaque tokens (issue 14, `filter/opaque.rs`): a decision that needs an introspection
//! answer parks its stream on the lookup (`introspection::cache`); the root dispatches the
//! callout at its next tick (`POKE`), like a key fetch, and the answer resumes every stream
//! that waited for it.
//!
//! What happens between VMs is `fleet` (one per kind: key sets, lists); what a key-set or list
//! callout leads to is `callouts`; which stream waits for what and the decide loop is `parked`;
//! metric ids are `filter::stats`; token exchanges after an allowed decision (pause, callout
//! from the root, resume) are `filter::exchange`.

mod exchange;
mod opaque;
#[cfg(test)]
mod revocation_tests;
mod stats;
#[cfg(test)]
mod test_vm;
#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

use crate::callouts::{key_set, Callouts, Ended, Next, Outcome, Request, Resources, Severity};
use crate::config::{Config, JwksSource, ProviderId};
use crate::engine::{self, BenchStop, Final, BENCH_STOP};
use crate::fleet::{Fleet, Local};
use crate::host::{self, Action, Callout, Host, Level};
use crate::introspection::{Needed, Unwired};
use crate::jwks_cache::{Millis, RemoteKeys};
use crate::jwt::Alg;
use crate::logline::{self, Admit, RateLimit};
use crate::parked::{self, Deciding, Fetching, Parked, Parking};
use crate::peer::PeerFacts;
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::revocation::fetch::{key_set_verifier, ListFailure, ProviderLists};
use crate::signature::{self, PureRust, SignatureBackend};
use crate::token_cache::TokenCache;
use stats::Stats;

/// The timer period while remote key sets exist: refreshes and retries are checked this often.
pub const TICK: Duration = Duration::from_secs(1);
/// The timer period a stream sets to have the root dispatch a fetch right away.
pub const POKE: Duration = Duration::from_millis(1);
/// The timer period while another VM fetches keys or a list this VM's requests wait for, or
/// any revocation list.
pub const PEER_POLL: Duration = Duration::from_millis(50);

/// One plugin instance of one VM.
pub struct Filter {
    config: Rc<Config>,
    /// Indexed by provider id; `Some` for remote providers.
    remote: Vec<Option<RemoteKeys>>,
    stats: Stats,
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
    /// The revocation lists of the providers with `revocation` (`revocation::fetch`).
    lists: ProviderLists,
    /// List fetches the root dispatches at its next tick (configure asks for every list).
    lists_requested: Vec<ProviderId>,
    /// This VM's part in the list fetches shared by the VMs of this Envoy (`fleet`).
    list_fleet: Fleet,
    /// Indexed by provider id; `Some` for providers with a list whose stats the host defined.
    list_stats: Vec<Option<stats::Lists>>,
    /// Whether RS* and ES* signatures go to the host's `verify_signature`.
    host_signatures: bool,
    /// The budget of per-request log lines (`logline`).
    log_limit: RateLimit,
    /// This plugin instance's name (Envoy's `plugin_name`), for lines Envoy does not name it in.
    plugin: String,
    /// Token exchanges: issued tokens, callouts queued and in flight (`filter::exchange`).
    exchange: exchange::ExchangeState,
    /// Introspections in flight and to send, and what each waiting stream was told.
    opaque: opaque::Pending,
}

/// The host clock in milliseconds (0 when the host will not say).
fn now_millis(host: &impl Host) -> Millis {
    host.now_nanos().map_or(0, |nanos| nanos / 1_000_000)
}

/// A number in `0..1000` for backoff jitter: the host clock's sub-millisecond digits.
fn jitter(host: &impl Host) -> u32 {
    host.now_nanos().map_or(500, |nanos| {
        u32::try_from(nanos / 1000 % 1000).unwrap_or(500)
    })
}

/// The signature backend: the host's `verify_signature` (`on_host`) when it works, else wasm.
fn backend(on_host: &dyn SignatureBackend, use_host: bool) -> &dyn SignatureBackend {
    if use_host {
        on_host
    } else {
        &PureRust
    }
}

/// Whether the host writes lines at `level` (asked each time: an operator can change Envoy's
/// level at run time); when it cannot say, yes.
fn log_enabled(host: &impl Host, level: Level) -> bool {
    host.log_level().is_none_or(|lowest| level >= lowest)
}

impl Filter {
    /// Configures one instance from the plugin configuration's bytes; `None` (the host then
    /// refuses the plugin) when they are not a valid configuration, after logging why.
    pub fn configure(host: &impl Host, bytes: &[u8]) -> Option<Filter> {
        let config = match Config::from_json(bytes) {
            Ok(config) => config,
            Err(error) => {
                host.log(Level::Error, &format!("jwt-authn-wasm: {error}"));
                return None;
            }
        };
        for warning in config.warnings() {
            host.log(Level::Warn, &format!("jwt-authn-wasm: {warning}"));
        }
        host.log(
            Level::Info,
            &format!(
                "jwt-authn-wasm: configured {} provider(s), {} rule(s)",
                config.providers.len(),
                config.rules.len()
            ),
        );
        let plugin = host
            .property(&["plugin_name"])
            .ok()
            .flatten()
            .and_then(|name| String::from_utf8(name).ok())
            .unwrap_or_default();
        let me = host.now_nanos().unwrap_or(1);
        let host_signatures =
            config.host_signatures && signature::backend_works(&host::Signatures(host));
        host.log(
            Level::Info,
            match (config.host_signatures, host_signatures) {
                (true, true) => {
                    "jwt-authn-wasm: signatures: RS* and ES* by the host (verify_signature)"
                }
                (true, false) => {
                    "jwt-authn-wasm: signatures: all in wasm (the host has no working verify_signature)"
                }
                (false, _) => "jwt-authn-wasm: signatures: all in wasm (host_signatures: false)",
            },
        );
        let remote = config
            .providers
            .iter()
            .map(|p| match &p.jwks {
                JwksSource::Remote(r) => Some(RemoteKeys::new(r.policy.clone())),
                JwksSource::Local(_) => None,
            })
            .collect();
        let list_stats = config
            .providers
            .iter()
            .map(|p| {
                p.revocation
                    .as_ref()
                    .and_then(|_| stats::Lists::define(host, &p.name))
            })
            .collect();
        let opaque = opaque::Pending::new(&config);
        let mut filter = Filter {
            exchange: exchange::ExchangeState::new(host, &config),
            stats: Stats::define(host, &config),
            lists: ProviderLists::new(&config),
            lists_requested: Vec::new(),
            list_fleet: Fleet::for_lists(&config, &plugin, me),
            list_stats,
            callouts: Callouts::new(config.providers.len()),
            cache: config.token_cache(),
            fleet: Fleet::new(&config, &plugin, me),
            config: Rc::new(config),
            remote,
            requested: Vec::new(),
            parked: Parked::default(),
            tick: Duration::ZERO,
            host_signatures,
            log_limit: RateLimit::default(),
            plugin,
            opaque,
        };
        // Keys are on the way from now: a request waits for them. The fetch starts at the
        // first tick, 1 ms from now, not here: Envoy runs this in a short-lived canary VM too,
        // which must not take the lease and die with it.
        for (id, keys) in filter.remote.iter_mut().enumerate() {
            if let Some(keys) = keys {
                keys.fetch_started();
                filter.requested.push(id);
            }
        }
        // Lists likewise: requests wait for the first one.
        for id in 0..filter.config.providers.len() {
            if let Some(list) = filter.lists.get_mut(id) {
                list.fetch_started();
                filter.lists_requested.push(id);
            }
        }
        if filter.has_remote() {
            filter.set_tick(host, POKE);
        }
        Some(filter)
    }

    /// The root's timer fired: the fleet round (fetches due, peers' key sets adopted), gauges,
    /// and log lines left to report.
    pub fn on_tick(&mut self, host: &impl Host) {
        let now = now_millis(host);
        self.send_introspections(host, now);
        let (due, lists, changed) = self.coordinate(host, now);
        for provider in changed {
            self.resume_waiting(host, provider, now);
        }
        for provider in due {
            if let Some(request) = self.callouts.request(&self.config, provider) {
                self.send(host, &request, now);
            }
        }
        for provider in lists {
            let etag = self.lists.get(provider).and_then(|l| l.etag());
            if let Some(request) = self.callouts.list_request(&self.config, provider, etag) {
                self.send(host, &request, now);
            }
        }
        self.send_exchanges(host, now);
        self.record_ages(host, now);
        self.flush_log(host, now);
    }

    /// A stream's request headers arrived: decide, park, or answer.
    pub fn on_request_headers(&mut self, host: &impl Host, id: u32) -> Action {
        if BENCH_STOP == BenchStop::Entry {
            return Action::Continue;
        }
        let config = Rc::clone(&self.config);
        let headers = request_headers(host, &config);
        // A decision no time can change reads no clock (issue 13): open routes, the common case.
        let decided = match self.decide_open(host, &config, id, &headers) {
            Some(decision) => Some(decision),
            None => {
                let now = now_millis(host);
                self.decide(host, &config, id, &headers, now)
                    .and_then(|d| self.exchange(host, &config, id, &headers, d, now))
            }
        };
        match decided {
            // Bench variants that stop before applying (`BenchStop`).
            Some(_) if matches!(BENCH_STOP, BenchStop::Decide | BenchStop::Count) => {
                Action::Continue
            }
            Some(decision) => apply(host, &decision),
            None => Action::Pause,
        }
    }

    /// The answer to callout `token` arrived at the root (`headers` headers, a body of
    /// `body_size` bytes; no headers: the call failed).
    pub fn on_callout_response(
        &mut self,
        host: &impl Host,
        token: u32,
        headers: usize,
        body_size: usize,
    ) {
        if self.exchange_response(host, token, headers, body_size) {
            return;
        }
        let now = now_millis(host);
        if self.introspection_answered(host, token, headers, body_size, now) {
            return;
        }
        let next = self.with_resources(host, now, |callouts, keys| {
            callouts.on_response(token, headers, body_size, &host::Response(host), keys)
        });
        match next {
            Next::Ignored => {}
            Next::Send(request) => self.send(host, &request, now),
            Next::Ended(ended) => self.fetch_ended(host, ended, now),
        }
    }

    /// Stream `id` went away: it is never resumed.
    pub fn on_stream_gone(&mut self, id: u32) {
        self.parked.gone(id);
        self.exchange.gone(id);
        self.introspection_stream_gone(id);
    }

    /// One tick of the fetch protocol between the VMs of this Envoy (`fleet`), for key sets
    /// and then revocation lists (a peer's signed list is verified with the key set as it is
    /// after that). Returns the providers whose keys and whose lists to fetch now (this VM
    /// took their lease), and those whose waiting streams should be decided again. Then the
    /// timer: every `PEER_POLL` while a peer fetches what streams of this VM wait for (so its
    /// end releases them at once), or a list a peer fetches (so the new one is in force here
    /// at most `PEER_POLL` after it is there); else at the earliest due list fetch when that is
    /// sooner than `TICK` (never below `POKE`); else every `TICK`.
    fn coordinate(
        &mut self,
        host: &impl Host,
        now: Millis,
    ) -> (Vec<ProviderId>, Vec<ProviderId>, Vec<ProviderId>) {
        let requested = std::mem::take(&mut self.requested);
        let lists_requested = std::mem::take(&mut self.lists_requested);
        let (own, own_lists) = (self.callouts.providers(), self.callouts.list_providers());
        let waited = self.parked.providers();
        let mut data = host::Shared(host);
        let local = Local {
            requested: &requested,
            own: &own,
            waited: &waited,
        };
        let keys = self
            .fleet
            .coordinate(&mut data, &mut self.remote, &local, now);
        let local = Local {
            requested: &lists_requested,
            own: &own_lists,
            waited: &waited,
        };
        let host_signatures = host::Signatures(host);
        let signatures = backend(&host_signatures, self.host_signatures);
        let (config, remote) = (&self.config, &self.remote);
        let verify =
            |provider: ProviderId, alg: Alg, kid: Option<&str>, input: &[u8], sig: &[u8]| {
                let keys = key_set(config, remote, provider, now);
                key_set_verifier(keys, signatures)(alg, kid, input, sig)
            };
        let lists = self.list_fleet.coordinate_with(
            &mut data,
            self.lists.as_mut_slice(),
            &local,
            now,
            &verify,
        );
        if self.has_remote() {
            let period = if keys.poll || lists.poll {
                PEER_POLL
            } else {
                self.until_due(now)
            };
            self.set_tick(host, period);
        }
        let mut changed = keys.changed;
        changed.extend(lists.changed);
        changed.sort_unstable();
        changed.dedup();
        (keys.due, lists.due, changed)
    }

    /// The timer period to the earliest list fetch due, within `POKE ..= TICK`: a list due in
    /// 300 ms is fetched then, not at the next whole tick. Key sets keep the whole tick: their
    /// refresh is early (at 4/5 of the lifetime) anyway, and the VM whose tick comes first after
    /// a refresh is due is the one that fetched last, which knows the discovered `jwks_uri`
    /// (were every VM woken at the due time, any could win the lease and discover again).
    fn until_due(&self, now: Millis) -> Duration {
        self.lists.next_fetch_at().map_or(TICK, |at| {
            Duration::from_millis(at.saturating_sub(now)).clamp(POKE, TICK)
        })
    }

    /// Sends a key-set or list request, and hands `callouts` whether the host took it.
    fn send(&mut self, host: &impl Host, request: &Request, now: Millis) {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let sent = host.dispatch(&Callout {
            cluster: &request.cluster,
            headers: &headers,
            body: &[],
            timeout: request.timeout,
        });
        let ended = self.with_resources(host, now, |callouts, keys| {
            callouts.sent(request, sent, keys)
        });
        if let Some(ended) = ended {
            self.fetch_ended(host, ended, now);
        }
    }

    /// Runs `f` over the callouts and what an ended fetch changes (`callouts::Resources`).
    fn with_resources<'h, H: Host, T>(
        &mut self,
        host: &'h H,
        now: Millis,
        f: impl FnOnce(&mut Callouts, &mut Resources<'_, host::Shared<'h, H>>) -> T,
    ) -> T {
        let mut data = host::Shared(host);
        let host_signatures = host::Signatures(host);
        let signatures = backend(&host_signatures, self.host_signatures);
        let mut keys = Resources {
            config: &self.config,
            remote: &mut self.remote,
            fleet: &self.fleet,
            lists: &mut self.lists,
            list_fleet: &self.list_fleet,
            signatures,
            data: &mut data,
            jitter: jitter(host),
            now,
        };
        f(&mut self.callouts, &mut keys)
    }

    /// A fetch of a provider's keys or list ended (`callouts` kept or backed off, and
    /// published): log, count, and decide again for the streams that waited.
    fn fetch_ended(&mut self, host: &impl Host, ended: Ended, now: Millis) {
        for (severity, line) in &ended.lines {
            let level = match severity {
                Severity::Info => Level::Info,
                Severity::Warn => Level::Warn,
            };
            host.log(level, line);
        }
        match &ended.outcome {
            Outcome::Keys(failure) => {
                if let Some(stats) = self.stats.fetches(ended.provider) {
                    stats.record(host, failure.as_ref());
                }
            }
            Outcome::List(failure) => {
                if let Some(stats) = self.list_stats.get(ended.provider).and_then(Option::as_ref) {
                    stats.record(host, failure.as_ref().map(ListFailure::reason));
                }
            }
        }
        self.resume_waiting(host, ended.provider, now);
    }

    /// Decides again for every stream waiting on `provider`, from the root, through the
    /// host's effective context. Streams that are gone are skipped.
    fn resume_waiting(&mut self, host: &impl Host, provider: ProviderId, now: Millis) {
        for id in self.parked.take(provider) {
            if !host.set_effective_context(id) {
                continue;
            }
            let config = Rc::clone(&self.config);
            let headers = request_headers(host, &config);
            let decided = self
                .decide(host, &config, id, &headers, now)
                .and_then(|d| self.exchange(host, &config, id, &headers, d, now));
            if let Some(decision) = decided {
                if apply(host, &decision) == Action::Continue {
                    host.continue_request();
                }
            }
        }
    }

    /// Whether anything is fetched: remote key sets or revocation lists (the timer runs).
    fn has_remote(&self) -> bool {
        self.remote.iter().any(Option::is_some)
            || self.config.providers.iter().any(|p| p.revocation.is_some())
    }

    /// Decides for the request in `headers`, parking it while a key set or an introspection
    /// it needs is on the way, and counts the final decision. `None`: parked.
    fn decide<'c>(
        &mut self,
        host: &impl Host,
        config: &'c Config,
        id: u32,
        headers: &RequestHeaders,
        now: Millis,
    ) -> Option<Final<'c>> {
        // Each round either parks or learns an answer (or a failure) for every lookup it
        // needed; the last one takes every lookup still unknown as failed.
        for round in 0..=opaque::ROUNDS {
            let (decision, needed, hits) =
                self.decide_keys(host, config, id, headers, now, round == opaque::ROUNDS)?;
            if needed.is_empty() || round == opaque::ROUNDS {
                self.opaque.own.remove(&id);
                if BENCH_STOP == BenchStop::Decide {
                    return Some(decision);
                }
                self.count_hits(host, id, &hits);
                self.record_decision(host, &decision, headers, Some(now));
                return Some(decision);
            }
            if self.ask_introspections(host, id, needed, now) {
                return None;
            }
        }
        None
    }

    /// The decision when no time can change it (`engine::decide_open`: unreadable, a CORS
    /// preflight let through, no rule or one without `requires`), counted and logged as
    /// `decide` counts and logs it; `None`: a requirement is to be checked, with the clock.
    /// Such a decision names no provider, so no token exchange follows it
    /// (`exchange::subject_for` needs a verified one).
    fn decide_open<'c>(
        &mut self,
        host: &impl Host,
        config: &'c Config,
        id: u32,
        headers: &RequestHeaders,
    ) -> Option<Final<'c>> {
        let decision = engine::decide_open(config, headers)?;
        self.opaque.own.remove(&id);
        if BENCH_STOP == BenchStop::Decide {
            return Some(decision);
        }
        self.count_hits(host, id, &[]);
        self.record_decision(host, &decision, headers, None);
        Some(decision)
    }

    /// `parked::decide` with the introspection answers stream `id` has (`last_round`: what is
    /// unknown counts as failed): decides, parking the stream while keys it needs are on the
    /// way. The decision, the introspections it needed and the providers whose answer it read
    /// from the cache; `None`: parked.
    fn decide_keys<'c>(
        &mut self,
        host: &impl Host,
        config: &'c Config,
        id: u32,
        headers: &RequestHeaders,
        now: Millis,
        last_round: bool,
    ) -> Option<(Final<'c>, Vec<Needed>, Vec<ProviderId>)> {
        let host_signatures = host::Signatures(host);
        let signatures = backend(&host_signatures, self.host_signatures);
        let mut parking = Parking::default();
        let Filter {
            remote,
            lists,
            cache,
            parked,
            requested,
            lists_requested,
            callouts,
            stats,
            opaque,
            ..
        } = self;
        let answers = opaque.answers(id, now, last_round);
        let mut needed = Vec::new();
        let vm = Deciding {
            remote,
            lists,
            signatures,
            cache,
            answers: match &answers {
                Some(answers) => answers,
                None => &Unwired,
            },
            needed: &mut needed,
        };
        let decision = parked::decide(config, vm, headers, now, |remote, wait| {
            let fetching = Fetching {
                keys_in_flight: callouts.in_flight(wait.provider),
                list: lists.get(wait.provider).is_some_and(|l| l.is_fetching()),
                list_is_ours: callouts.list_in_flight(wait.provider)
                    || lists_requested.contains(&wait.provider),
            };
            parking = parked.park(id, wait, remote, requested, fetching, now);
            if parking.refetch {
                if let Some(fetches) = stats.fetches(wait.provider) {
                    host.increment(fetches.unknown_kid_refetch);
                }
            }
            parking.parked
        });
        let hits = answers.map(|a| a.cache_hits()).unwrap_or_default();
        if parking.refetch {
            self.set_tick(host, POKE);
        } else if parking.peer && self.tick > PEER_POLL {
            self.set_tick(host, PEER_POLL);
        }
        decision.map(|decision| (decision, needed, hits))
    }

    /// Counts a final decision, and logs a failure that was let through (at info in
    /// `report_only`, where that is the point; at debug for a failure policy `allow`) and a
    /// denial (at debug), through `request_line`. `now`: the time the decision was made at,
    /// `None` when none was read (a line then reads the clock itself).
    fn record_decision(
        &mut self,
        host: &impl Host,
        decision: &Final,
        headers: &RequestHeaders,
        now: Option<Millis>,
    ) {
        let (verdict, let_through) = match decision {
            Final::Allow { verdict, .. } => (verdict, verdict.failure.is_some()),
            Final::Deny { denial, verdict } => {
                let status = denial.status;
                let message = verdict.failure.map_or("", |f| f.message());
                self.request_line(host, Level::Debug, now, || {
                    format!(
                        "jwt-authn-wasm: {status} {}: {message}",
                        request_shown(headers)
                    )
                });
                (verdict, false)
            }
        };
        self.stats.record_decision(host, verdict, let_through);
        if let (true, Some(failure)) = (let_through, verdict.failure) {
            let (level, how) = if self.config.report_only {
                (Level::Info, "report-only, not enforced")
            } else {
                (Level::Debug, "allowed by failure_policy")
            };
            self.request_line(host, level, now, || {
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
    /// something is left to say). `now` `None`: the clock is read here, only when the level is
    /// written.
    fn request_line(
        &mut self,
        host: &impl Host,
        level: Level,
        now: Option<Millis>,
        line: impl FnOnce() -> String,
    ) {
        if !log_enabled(host, level) {
            return;
        }
        let now = now.unwrap_or_else(|| now_millis(host));
        match self.log_limit.admit(now) {
            Admit::Write { suppressed } => {
                if suppressed > 0 {
                    host.log(
                        Level::Info,
                        &logline::suppressed_line(&self.plugin, suppressed),
                    );
                }
                host.log(level, &line());
            }
            Admit::Drop => {
                if self.log_limit.pending() == 1 && !self.has_remote() {
                    self.set_tick(host, TICK);
                }
            }
        }
    }

    /// At a tick: reports dropped lines no later line reported; stops the timer of a filter
    /// without remote keys once nothing is left to say.
    fn flush_log(&mut self, host: &impl Host, now: Millis) {
        if let Some(suppressed) = self.log_limit.flush(now) {
            host.log(
                Level::Info,
                &logline::suppressed_line(&self.plugin, suppressed),
            );
        }
        if self.log_limit.pending() == 0 && !self.has_remote() && self.opaque.idle() {
            self.set_tick(host, Duration::ZERO);
        }
    }

    /// Sets each remote provider's key-set age gauge, and each list's age and entries.
    fn record_ages(&self, host: &impl Host, now: Millis) {
        for (keys, stats) in self.remote.iter().zip(&self.stats.fetches) {
            if let (Some(keys), Some(stats)) = (keys, stats) {
                host.record(stats.age_seconds, keys.age_seconds(now).unwrap_or(0));
            }
        }
        for (provider, stats) in self.list_stats.iter().enumerate() {
            if let (Some(list), Some(stats)) = (self.lists.get(provider), stats) {
                host.record(stats.age_seconds, list.age_seconds(now).unwrap_or(0));
                let entries = u64::try_from(list.entries()).unwrap_or(u64::MAX);
                host.record(stats.entries, entries);
            }
        }
    }

    /// Sets the root's timer to `period` if it is not already (setting it restarts it), and
    /// logs the change at debug; a refusal leaves the previous period.
    fn set_tick(&mut self, host: &impl Host, period: Duration) {
        if self.tick == period {
            return;
        }
        if host.set_tick(period).is_ok() {
            self.tick = period;
            host.log(
                Level::Debug,
                &format!("jwt-authn-wasm: timer {}ms", period.as_millis()),
            );
        }
    }
}

/// The current stream's request headers, read raw (with the host's status) and indexed in
/// place by our own pairs parser (`RequestHeaders::from_map`: one buffer, no copy per header),
/// which keeps names that are not UTF-8 as bytes. A map the host cannot give, or one that does
/// not parse, is unreadable: the engine refuses the request (400).
///
/// With them, the connection properties the configuration needs, each read with its status:
/// NotFound (plain text, no client certificate) is "none", any other failure unreadable
/// (`PeerFacts::read`). A configuration without peer rules reads none.
fn request_headers(host: &impl Host, config: &Config) -> RequestHeaders {
    let reads = config.peer_reads;
    RequestHeaders::from_map(host.request_header_pairs()).with_peer(PeerFacts::read(
        reads.uri_san,
        reads.digest,
        |path| host.property(path),
    ))
}

/// The request as a log line may show it (`logline::request`: bounded, escaped, no query).
fn request_shown(headers: &RequestHeaders) -> String {
    logline::request(
        headers.get(":method").unwrap_or_default(),
        headers.path_bytes().unwrap_or_default(),
    )
}

/// Carries out a final decision on the current (effective) stream.
fn apply(host: &impl Host, decision: &Final) -> Action {
    match decision {
        Final::Allow { ops, .. } => {
            for op in ops {
                match op {
                    HeaderOp::Remove(name) => host.remove_request_header(name),
                    HeaderOp::Set(name, value) => host.set_request_header(name, value),
                    // Envoy prefixes what a wasm filter sets with `wasm.` itself.
                    HeaderOp::FilterState(key, value) => {
                        host.set_property(key.strip_prefix("wasm.").unwrap_or(key), value);
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
            host.send_local_response(denial.status, &extra, denial.body.as_bytes());
            Action::Pause
        }
    }
}
