//! Token exchange at the gateway (issue 16, RFC 8693): once a route's requirement is satisfied,
//! the token that satisfied it (the *subject*) is exchanged for one made for the next service,
//! which replaces it upstream. This module owns the per-VM state and every rule of it; the
//! plugin instance owns the callouts, the paused streams and the clock.
//!
//! - **Which exchange, which token** ([`subject_for`]): the matched rule's `token_exchange`,
//!   with the token that satisfied its requirement ([`Subject`]), sent as `subject_token` with the exchange's
//!   `subject_token_type`, and `audience`, `resource`, `scope`, `requested_token_type` as
//!   configured (`oauth::exchange_request`).
//! - **Cache key** ([`ExchangeKey`]): HMAC-SHA-256, under a key the VM draws at start, of the
//!   exchange's name (length-prefixed) and the subject token: the table holds no token text.
//! - **Lifetime** ([`lifetime`]): `min(expires_in − refresh_before, subject exp − now)`; without
//!   `expires_in`, the issued token's own `exp` (only when `verify_with` verified it); else the
//!   token serves the requests that waited for it and is not kept. Never served stale.
//! - **Single-flight**: one exchange per (exchange, subject token) in flight (`lookup::Lookup`);
//!   every request that waits for it gets its outcome ([`Finished`]).
//! - **Actor** (`actor: client_credentials`): the filter's own token, from the client
//!   credentials grant, one per exchange, single-flight too, kept until `refresh_before` its
//!   `expires_in` (60 s when the server gives none); sent as `actor_token`.
//! - **`verify_with`**: the issued token must verify with that provider (its key set, issuer,
//!   audiences, time); one that does not is `exchange_unavailable`, never forwarded.
//! - **Header operations** ([`header_ops`]): the original token is removed from where it was
//!   found, whatever the provider's `forward` says (a header, the query parameter, or the
//!   cookie), and the issued token set in `forward_header`. Identity headers stay the engine's,
//!   made from the verified user token.
//! - **Errors** ([`Failure`]): the server refuses the subject token → 401 `invalid_token`, reason
//!   `exchange_refused`; anything else (no answer, 5xx, not a token, not a bearer token
//!   (`token_type` `N_A` or `DPoP`), our credentials refused,
//!   the actor token not had, `verify_with` failed, the table full) → `exchange_unavailable`,
//!   503 by default (`failure_policy.exchange_unavailable`). Errors are never remembered, and
//!   the original token is never forwarded instead.
//!
//! The shape the instance core calls, per VM one [`Exchanges`] (`Exchanges::new` with 32
//! random bytes drawn at start):
//! 1. the engine's decision is `Allow { ops, verdict }`: [`subject_for`] says whether an
//!    exchange runs and with which token (`None`: forward with `ops` as today);
//! 2. [`Exchanges::begin`] → `Ready` (a cache hit: count `<name>.exchange_cache_hit`),
//!    `Callout` (dispatch `request` to `cluster` with `timeout`, keep `pending` by callout
//!    token, pause the stream), `Wait` (pause; someone else's callout answers) or `Fail`;
//! 3. the callout's answer (status and body; no status on a reset or timeout) goes to
//!    [`Exchanges::finish`] with the asking stream's `subject.exp`, the VM's key store and
//!    signature backend; each stream of `Finished::waiters` is resumed: `Use` → [`header_ops`]
//!    after the engine's `ops`, continue (count `<name>.exchange_success` once); `Fail` →
//!    [`Failure::denial`] (count `<name>.exchange_failed.<reason>`); `Again` → `begin` again;
//! 4. a stream gone → [`Exchanges::forget`]; a tick → [`Exchanges::expire`].

use std::borrow::Cow;
use std::rc::Rc;
use std::time::Duration;

use crate::config::{Actor, Config, ExchangeId, Location, OnFailure, TokenExchange};
use crate::engine::Verdict;
use crate::error::{quoted_string_content, AuthError, Denial};
use crate::extract::{extract, remove_query_param};
use crate::introspection::TokenKeyer;
use crate::jwks_cache::{Availability, Millis};
use crate::keys::KeyStore;
use crate::lookup::{Bounds, Found, Lifetime, Lookup, Settled};
use crate::oauth::{
    self, client_credentials_request, exchange_request, read_token_response, CalloutRequest,
    IssuedToken, Refusal, Secret, TokenOutcome, Unavailable,
};
use crate::propagate::HeaderOp;
use crate::request::RequestHeaders;
use crate::signature::SignatureBackend;

/// How long an actor token without `expires_in` is used.
pub const ACTOR_DEFAULT_LIFE: Duration = Duration::from_secs(60);

/// The body of a 401 for a refused exchange.
pub const REFUSED_BODY: &str = "Token exchange refused";
/// The body of a 503 (or 401) for an exchange that could not be done.
pub const UNAVAILABLE_BODY: &str = "Token exchange unavailable";

/// The cache key of one (exchange, subject token): a keyed hash, no token text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeKey([u8; 32]);

impl std::fmt::Debug for ExchangeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExchangeKey(..)")
    }
}

/// The key of `subject` for exchange `name` under `keyer`. The name is length-prefixed, so no
/// (name, token) pair can be read as another.
pub fn cache_key(keyer: &TokenKeyer, name: &str, subject: &str) -> ExchangeKey {
    let len = u64::try_from(name.len()).unwrap_or(u64::MAX).to_be_bytes();
    ExchangeKey(keyer.mac(&[
        b"token-exchange\0",
        &len,
        name.as_bytes(),
        subject.as_bytes(),
    ]))
}

/// The token that satisfied the route's requirement: its text (borrowed from the request, or
/// decoded from a query parameter), where it was found, and its verified `exp` (seconds).
#[derive(Clone)]
pub struct Subject<'c, 'h> {
    pub token: Cow<'h, str>,
    pub location: &'c Location,
    pub exp: Option<i64>,
}

/// The exchange a request allowed with `verdict` runs, and with which token: the first rule
/// that matches `headers` (the engine's rule) names an exchange, its requirement was satisfied
/// (`verdict.failure` is `None`: a request let through by a failure policy or `report_only`
/// exchanges nothing), and the provider whose token satisfied it (`verdict.provider`) finds a
/// token at its locations: the first, as every token there verified. `None`: nothing to
/// exchange (no rule, no exchange, no token: `allow_missing` without one).
pub fn subject_for<'c, 'h>(
    config: &'c Config,
    verdict: &Verdict,
    headers: &'h RequestHeaders,
) -> Option<(ExchangeId, Subject<'c, 'h>)> {
    if verdict.failure.is_some() {
        return None;
    }
    let rule = config
        .rules
        .iter()
        .find(|r| r.matcher.matches(headers) == Ok(true))?;
    let id = rule.token_exchange?;
    let provider = config.providers.get(verdict.provider?)?;
    let found = extract(headers, &provider.locations)
        .into_iter()
        .find_map(|f| f.token.ok().map(|token| (f.location, token)))?;
    let (location, token) = found;
    let exp = crate::jwt::parse(&token)
        .ok()
        .and_then(|jwt| jwt.claims.exp);
    Some((
        id,
        Subject {
            token,
            location,
            exp,
        },
    ))
}

impl std::fmt::Debug for Subject<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("location", &self.location)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// An issued token, ready to forward. Its `Debug` does not show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanged {
    pub token: Secret,
}

/// Which question a callout answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// The actor token of this exchange (client credentials).
    Actor(ExchangeId),
    /// The exchange of one subject token.
    Exchange(ExchangeId, ExchangeKey),
}

/// What a request does next about its exchange.
#[derive(Debug)]
pub enum Step {
    /// The issued token is at hand (a cache hit): apply [`header_ops`] and go on.
    Ready(Exchanged),
    /// Dispatch `request` to `cluster` with `timeout`; hand its answer to
    /// [`Exchanges::finish`] with `pending`. The request waits for that answer.
    Callout {
        pending: Pending,
        cluster: String,
        timeout: Duration,
        request: CalloutRequest,
    },
    /// Another request's callout answers this one too: stay paused until `finish` names this
    /// stream.
    Wait,
    /// Deny with [`Failure::denial`].
    Fail(Failure),
}

/// What the waiters of a callout do once it is answered.
#[derive(Debug)]
pub enum Then {
    /// Forward with this token ([`header_ops`]).
    Use(Exchanged),
    /// Deny ([`Failure::denial`]).
    Fail(Failure),
    /// The actor token is at hand now: call [`Exchanges::begin`] again.
    Again,
}

/// A callout's end: the streams it releases (the one that asked among them) and what each does.
#[derive(Debug)]
pub struct Finished {
    pub waiters: Vec<u32>,
    pub then: Then,
}

/// Why an exchange could not be done (`exchange_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The token endpoint's answer to the exchange (`oauth::Unavailable`).
    Server(Unavailable),
    /// The actor token could not be had (its client credentials grant failed, or was refused).
    Actor,
    /// The issued token failed `verify_with` (why: `AuthError`; keys not at hand included).
    NotVerified(AuthError),
    /// The table is full of exchanges in flight.
    Full,
}

/// Why a request on an exchange route is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server refused the subject token: the user's answer.
    Refused(Refusal),
    Unavailable(Cause),
}

impl Failure {
    /// The log reason: `exchange_refused` or `exchange_unavailable`.
    pub fn class(self) -> &'static str {
        match self {
            Failure::Refused(_) => "exchange_refused",
            Failure::Unavailable(_) => "exchange_unavailable",
        }
    }

    /// The stat-name segment of `<name>.exchange_failed.<reason>` ([`FAILED_REASONS`]).
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Refused(_) => "refused",
            Failure::Unavailable(Cause::Server(u)) => u.reason(),
            Failure::Unavailable(Cause::Actor) => "actor",
            Failure::Unavailable(Cause::NotVerified(_)) => "not_verified",
            Failure::Unavailable(Cause::Full) => "cache_full",
        }
    }

    /// What the client gets. `realm`: the request URL (client bytes, quoted safely); `strip`:
    /// `strip_failure_response`; `policy`: `failure_policy.exchange_unavailable` (`deny_503` or
    /// `deny_401`; load refuses `allow`, and it is taken as `deny_503` here).
    pub fn denial(self, realm: &str, strip: bool, policy: OnFailure) -> Denial {
        let (status, body) = match self {
            Failure::Refused(_) => (401, REFUSED_BODY),
            Failure::Unavailable(_) if policy == OnFailure::Deny401 => (401, UNAVAILABLE_BODY),
            Failure::Unavailable(_) => (503, UNAVAILABLE_BODY),
        };
        let www_authenticate = (status == 401 && !strip).then(|| {
            format!(
                "Bearer realm=\"{}\", error=\"invalid_token\"",
                quoted_string_content(realm)
            )
        });
        Denial {
            status,
            www_authenticate,
            body: if strip { "" } else { body },
        }
    }
}

/// Every `Failure::reason`, so each `<name>.exchange_failed.<reason>` counter can exist at 0.
pub const FAILED_REASONS: [&str; 11] = [
    "refused",
    "no_response",
    "server_error",
    "client_rejected",
    "status",
    "too_large",
    "not_json",
    "bad_response",
    "actor",
    "not_verified",
    "cache_full",
];

/// `jwt_authn_wasm.<name>.exchange_success`: exchanges done (a callout answered with a token).
pub fn stat_success(name: &str) -> String {
    format!("jwt_authn_wasm.{name}.exchange_success")
}

/// `jwt_authn_wasm.<name>.exchange_failed.<reason>`: requests denied by this exchange.
pub fn stat_failed(name: &str, reason: &str) -> String {
    format!("jwt_authn_wasm.{name}.exchange_failed.{reason}")
}

/// `jwt_authn_wasm.<name>.exchange_cache_hit`: requests served an issued token from the cache.
pub fn stat_cache_hit(name: &str) -> String {
    format!("jwt_authn_wasm.{name}.exchange_cache_hit")
}

/// How long an issued token serves, from `now_ms`: `min(expires_in − refresh_before, subject
/// exp − now)`, with the issued token's own verified `exp` standing in for a missing
/// `expires_in` (less `refresh_before` too). `None`: not to be kept (no bound, or already over).
pub fn lifetime(
    expires_in: Option<u64>,
    refresh_before: Duration,
    subject_exp: Option<i64>,
    issued_exp: Option<i64>,
    now_ms: Millis,
) -> Option<Lifetime> {
    let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let refresh = i64::try_from(refresh_before.as_secs()).unwrap_or(i64::MAX);
    let own = match (expires_in, issued_exp) {
        (Some(e), _) => i64::try_from(e).unwrap_or(i64::MAX).saturating_sub(refresh),
        (None, Some(exp)) => exp.saturating_sub(now_s).saturating_sub(refresh),
        (None, None) => return None,
    };
    let secs = match subject_exp {
        Some(exp) => own.min(exp.saturating_sub(now_s)),
        None => own,
    };
    let secs = u64::try_from(secs).ok().filter(|s| *s > 0)?;
    let until = now_ms.saturating_add(secs.saturating_mul(1000));
    Some(Lifetime {
        fresh_until: until,
        stale_until: until,
    })
}

/// The token exchanges of one VM: a table of issued tokens per exchange, and the actor tokens.
pub struct Exchanges {
    keyer: TokenKeyer,
    tables: Vec<Lookup<ExchangeKey, Exchanged>>,
    actors: Lookup<ExchangeId, Secret>,
}

/// The bytes an issued token costs in a table: its text and the slot around it.
fn weight(token: &Secret) -> usize {
    token.expose().len().saturating_add(96)
}

impl Exchanges {
    /// The state for `config`'s exchanges; `key`: 32 random bytes the VM draws at start.
    pub fn new(config: &Config, key: &[u8; 32]) -> Exchanges {
        let tables = config
            .token_exchanges
            .iter()
            .map(|ex| {
                Lookup::new(Bounds {
                    max_entries: ex.max_cache_entries,
                    max_bytes: ex
                        .max_cache_entries
                        .saturating_mul(weight(&Secret::new("")).saturating_add(4096))
                        .min(64 << 20),
                    ask_timeout: ask_timeout(ex),
                    retry_interval: 1000,
                })
            })
            .collect();
        let actors = Lookup::new(Bounds {
            max_entries: config.token_exchanges.len().max(1),
            max_bytes: usize::MAX,
            ask_timeout: config
                .token_exchanges
                .iter()
                .map(ask_timeout)
                .max()
                .unwrap_or(1000),
            retry_interval: 1000,
        });
        Exchanges {
            keyer: TokenKeyer::new(key),
            tables,
            actors,
        }
    }

    /// Issued tokens held (and exchanges in flight) for exchange `id`.
    pub fn cached(&self, id: ExchangeId) -> usize {
        self.tables.get(id).map_or(0, Lookup::len)
    }

    /// What stream `stream` does about exchange `id` of `subject` at `now_ms` (after its
    /// requirement was satisfied). On `Callout` and `Wait` the stream is recorded and is among
    /// the waiters a later `finish` returns.
    pub fn begin(
        &mut self,
        config: &Config,
        id: ExchangeId,
        subject: &Subject<'_, '_>,
        stream: u32,
        now_ms: Millis,
    ) -> Step {
        let (Some(ex), Some(table)) = (config.token_exchanges.get(id), self.tables.get_mut(id))
        else {
            // The rule names an exchange of another configuration: nothing to exchange with.
            return Step::Fail(Failure::Unavailable(Cause::Full));
        };
        let actor = match ex.actor {
            Actor::None => None,
            Actor::ClientCredentials => match self.actors.find(&id, stream, now_ms) {
                Found::Answer(secret) => Some(secret.clone()),
                Found::Wait => return Step::Wait,
                Found::Full => return Step::Fail(Failure::Unavailable(Cause::Full)),
                Found::Ask => {
                    return Step::Callout {
                        pending: Pending::Actor(id),
                        cluster: ex.server.cluster.clone(),
                        timeout: ex.server.timeout,
                        request: client_credentials_request(
                            &ex.server.endpoint,
                            &ex.server.client,
                            None,
                            None,
                        ),
                    }
                }
            },
        };
        let key = cache_key(&self.keyer, &ex.name, &subject.token);
        match table.find(&key, stream, now_ms) {
            Found::Answer(issued) => Step::Ready(issued.clone()),
            Found::Wait => Step::Wait,
            Found::Full => Step::Fail(Failure::Unavailable(Cause::Full)),
            Found::Ask => Step::Callout {
                pending: Pending::Exchange(id, key),
                cluster: ex.server.cluster.clone(),
                timeout: ex.server.timeout,
                request: subject_request(ex, &subject.token, actor.as_ref()),
            },
        }
    }

    /// The answer to the callout of `pending` arrived at `now_ms` (`status` `None`: none came:
    /// reset, timeout, dispatch failure). `subject_exp`: the asking stream's subject's `exp`.
    /// `keys` and `signatures` check the issued token when the exchange has `verify_with`.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        config: &Config,
        pending: Pending,
        status: Option<u32>,
        body: &[u8],
        subject_exp: Option<i64>,
        keys: &dyn KeyStore,
        signatures: &dyn SignatureBackend,
        now_ms: Millis,
    ) -> Finished {
        match pending {
            Pending::Actor(id) => self.finish_actor(config, id, status, body, now_ms),
            Pending::Exchange(id, key) => {
                let (Some(ex), Some(table)) =
                    (config.token_exchanges.get(id), self.tables.get_mut(id))
                else {
                    return Finished {
                        waiters: Vec::new(),
                        then: Then::Fail(Failure::Unavailable(Cause::Full)),
                    };
                };
                let outcome = read_exchange(ex, config, status, body, keys, signatures, now_ms);
                match outcome {
                    Ok((issued, issued_exp)) => {
                        let exchanged = Exchanged {
                            token: issued.access_token,
                        };
                        let settled = match lifetime(
                            issued.expires_in,
                            ex.refresh_before,
                            subject_exp,
                            issued_exp,
                            now_ms,
                        ) {
                            Some(life) => Settled::Answer {
                                value: exchanged.clone(),
                                weight: weight(&exchanged.token),
                                life,
                            },
                            None => Settled::Uncached,
                        };
                        Finished {
                            waiters: table.settle(&key, settled, now_ms),
                            then: Then::Use(exchanged),
                        }
                    }
                    Err(failure) => Finished {
                        waiters: table.settle(&key, Settled::Failed, now_ms),
                        then: Then::Fail(failure),
                    },
                }
            }
        }
    }

    fn finish_actor(
        &mut self,
        config: &Config,
        id: ExchangeId,
        status: Option<u32>,
        body: &[u8],
        now_ms: Millis,
    ) -> Finished {
        let refresh_before = config
            .token_exchanges
            .get(id)
            .map_or(Duration::ZERO, |ex| ex.refresh_before);
        let issued = match read_token_response(status, body) {
            TokenOutcome::Issued(issued) => issued,
            // Refused or not: our own grant failed, the user is not at fault.
            TokenOutcome::Refused(_) | TokenOutcome::Unavailable(_) => {
                return Finished {
                    waiters: self.actors.settle(&id, Settled::Failed, now_ms),
                    then: Then::Fail(Failure::Unavailable(Cause::Actor)),
                }
            }
        };
        let secs = match issued.expires_in {
            Some(e) => e.saturating_sub(refresh_before.as_secs()),
            None => ACTOR_DEFAULT_LIFE.as_secs(),
        };
        if secs == 0 {
            // It would be stale before it is used: asking again would loop.
            return Finished {
                waiters: self.actors.settle(&id, Settled::Failed, now_ms),
                then: Then::Fail(Failure::Unavailable(Cause::Actor)),
            };
        }
        let until = now_ms.saturating_add(secs.saturating_mul(1000));
        let settled = Settled::Answer {
            weight: weight(&issued.access_token),
            value: issued.access_token,
            life: Lifetime {
                fresh_until: until,
                stale_until: until,
            },
        };
        Finished {
            waiters: self.actors.settle(&id, settled, now_ms),
            then: Then::Again,
        }
    }

    /// Stream `stream` went away while it waited: it is not resumed.
    pub fn forget(&mut self, stream: u32) {
        self.actors.forget_waiter(stream);
        for table in &mut self.tables {
            table.forget_waiter(stream);
        }
    }

    /// Drops issued and actor tokens past their life (a tick).
    pub fn expire(&mut self, now_ms: Millis) {
        self.actors.expire(now_ms);
        for table in &mut self.tables {
            table.expire(now_ms);
        }
    }
}

/// An exchange waits for at most its own timeout (and the actor's before it), plus a margin.
fn ask_timeout(ex: &TokenExchange) -> Millis {
    let ms = u64::try_from(ex.server.timeout.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_mul(2).saturating_add(1000)
}

/// The token exchange request of `subject` (with the actor token, when there is one).
pub fn subject_request(
    ex: &TokenExchange,
    subject: &str,
    actor: Option<&Secret>,
) -> CalloutRequest {
    let mut params = oauth::Exchange::new(subject);
    params.subject_token_type = ex.subject_token_type;
    params.actor_token = actor.map(Secret::expose);
    params.audience = ex.audience.as_deref();
    params.resource = ex.resource.as_deref();
    params.scope = ex.scope.as_deref();
    params.requested_token_type = ex.requested_token_type.as_deref();
    exchange_request(&ex.server.endpoint, &ex.server.client, &params)
}

/// The exchange's answer, read and (with `verify_with`) verified: the issued token and its
/// verified `exp`.
fn read_exchange(
    ex: &TokenExchange,
    config: &Config,
    status: Option<u32>,
    body: &[u8],
    keys: &dyn KeyStore,
    signatures: &dyn SignatureBackend,
    now_ms: Millis,
) -> Result<(IssuedToken, Option<i64>), Failure> {
    let issued = match read_token_response(status, body) {
        TokenOutcome::Issued(issued) => issued,
        TokenOutcome::Refused(refusal) => return Err(Failure::Refused(refusal)),
        TokenOutcome::Unavailable(u) => return Err(Failure::Unavailable(Cause::Server(u))),
    };
    // RFC 8693 §2.2.1: `N_A` when the token is not an access token (an ID token asked for by
    // `requested_token_type`), `DPoP` when it is bound to a key the gateway does not hold:
    // neither can be forwarded as a bearer token.
    if !issued.token_type.eq_ignore_ascii_case("bearer") {
        return Err(Failure::Unavailable(Cause::Server(
            Unavailable::BadResponse,
        )));
    }
    let Some(provider_id) = ex.verify_with else {
        return Ok((issued, None));
    };
    let not_verified = |e| Failure::Unavailable(Cause::NotVerified(e));
    let provider = config
        .providers
        .get(provider_id)
        .ok_or(not_verified(AuthError::KeysUnavailable))?;
    let jwt = crate::jwt::parse(issued.access_token.expose()).map_err(not_verified)?;
    let key_set = match keys.keys(provider_id) {
        Availability::Ready(k) => k,
        Availability::Pending | Availability::Unavailable => {
            return Err(not_verified(AuthError::KeysUnavailable))
        }
    };
    let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let verified = crate::verify::verify(
        &Rc::new(jwt),
        provider.policy(),
        Some(key_set),
        None,
        now_s,
        signatures,
    )
    .map_err(not_verified)?;
    let exp = verified.claims().exp;
    Ok((issued, exp))
}

/// The header operations of an exchange route, after the engine's own (`ops`): the original
/// token removed from `location` (a header, the query parameter, or the cookie), whatever the
/// provider's `forward` says, then the issued token set in `forward_header`.
pub fn header_ops<'c>(
    ex: &'c TokenExchange,
    location: &'c Location,
    headers: &RequestHeaders,
    issued: &Exchanged,
    ops: &mut Vec<HeaderOp<'c>>,
) {
    remove_original(location, headers, ops);
    ops.push(HeaderOp::Set(
        &ex.forward_header,
        format!("{}{}", ex.forward_prefix, issued.token.expose()),
    ));
}

/// Removes the original token from `location` (a header, the query parameter, or the cookie),
/// whatever the provider's `forward` says: what `header_ops` does first, and all that is done
/// when `report_only` lets a failed exchange through (no token reaches the upstream then).
pub fn remove_original<'c>(
    location: &'c Location,
    headers: &RequestHeaders,
    ops: &mut Vec<HeaderOp<'c>>,
) {
    match location {
        Location::Header { name, .. } => ops.push(HeaderOp::Remove(name)),
        Location::Param(name) => {
            let path = headers.path_bytes().unwrap_or_default();
            let stripped = remove_query_param(path, name);
            if stripped.as_bytes() != path {
                ops.push(HeaderOp::Set(":path", stripped));
            }
        }
        Location::Cookie(name) => {
            let kept = without_cookie(headers, name);
            match kept {
                Some(value) if !value.is_empty() => ops.push(HeaderOp::Set("cookie", value)),
                _ => ops.push(HeaderOp::Remove("cookie")),
            }
        }
    }
}

/// The request's cookies (every `cookie` header, joined with `; `) without those named `name`;
/// `None` when a cookie header is not text (then the whole header goes: the token cannot be
/// told apart from the rest).
fn without_cookie(headers: &RequestHeaders, name: &str) -> Option<String> {
    let mut kept = Vec::new();
    for value in headers.get_all("cookie") {
        let text = std::str::from_utf8(value).ok()?;
        for pair in text.split(';') {
            let pair = pair.trim_matches([' ', '\t']);
            let cookie = pair.split_once('=').map_or(pair, |(n, _)| n);
            if !pair.is_empty() && cookie != name {
                kept.push(pair);
            }
        }
    }
    Some(kept.join("; "))
}

#[cfg(test)]
mod tests;
