//! The requirement tree: `provider_name`, `provider_and_audiences`, `requires_any`,
//! `requires_all`, `allow_missing`, `allow_missing_or_failed`, evaluated against one request.
//!
//! Semantics are `jwt_authn`'s (`verifier.cc`), with one tightening: every token a provider
//! finds at its locations must verify, not just one of them.
//! - A provider requirement fails with `Missing` when none of its locations holds a token.
//! - `requires_any` succeeds at the first child that succeeds. When all fail, the error is the
//!   last one that is not `Missing` / `UnknownIssuer`, else `UnknownIssuer` if any child saw a
//!   token of another issuer, else `Missing`. `allow_missing` among its children turns a final
//!   `Missing` (only) into success; `allow_missing_or_failed` turns any failure into success.
//! - `requires_all` fails at the first child that fails.
//! - Standalone `allow_missing` / `allow_missing_or_failed` look at every provider's locations
//!   and verify each token with the provider its `iss` names.
//!
//! Header mutations of a failed branch are rolled back, so only identities that satisfied the
//! requirement reach the upstream. When `allow_missing_or_failed` lets a request through after
//! its siblings failed, a token one of them refused (its scope, claim or audience check failed)
//! sets no identity, even if it would verify on its own.
//!
//! A verified token of a provider with a `revocation` list must then not be on it (401
//! `Revoked`; no list to be had: `RevocationUnavailable`, waiting for the first one as for
//! keys), cached tokens included. It must then carry a `typ` its provider's `allowed_typ`
//! lists (401 `TypNotAllowed`) and be bound to the client certificate as its
//! `certificate_bound` says (401 `CertificateBinding`); then grant the requirement's `required_scopes` (403
//! `InsufficientScope`), be of its `token_kind` (403 `TokenKindNotAllowed`) and satisfy its
//! `required_claims` (403 `ClaimMismatch`).
//!
//! A `peer` requirement (issue 17) looks at the connection, not at a token: the peer's
//! SPIFFE ID must fit one of its principals (403 `PeerNotAllowed`). A connection fact the
//! host could not give is `PeerUnreadable` (503), wherever it is needed (a `peer`
//! requirement, `certificate_bound`, an identity header's `peer_field`), never "no peer".
//!
//! Work is done once: a token is parsed at most once per request (however many providers look
//! at it), not at all when a provider's verified-token cache holds it, and its signature is not
//! checked again while the cache vouches for it under the same key set.

use std::borrow::Cow;
use std::rc::Rc;

use crate::binding::{self, Binding, BindingError};
use crate::claims::ClaimRule;
use crate::config::{Config, Location, Provider, ProviderId, Requirement};
use crate::error::AuthError;
use crate::extract::extract;
use crate::introspection::{self, Answer, Answers, Known, Needed};
use crate::jwt::{self, UntrustedJwt};
use crate::keys::{Availability, KeyStore, ListAvailability, Wait};
use crate::oauth;
use crate::peer::{self, PrincipalPattern};
use crate::propagate::{self, HeaderOp};
use crate::request::RequestHeaders;
use crate::scopes::ScopeRule;
use crate::signature::SignatureBackend;
use crate::token_cache::TokenCache;
use crate::token_kind::TokenKind;
use crate::trace::{self, Off, Sink, Step};
use crate::verify::{self, Verified};

/// Everything one evaluation needs; `ops` collects the header mutations of verified tokens,
/// whose names borrow from the configuration (`'c`), which outlives the evaluation (`'e`).
/// `trace` hears every step (`trace::Off` in the filter: nothing is built).
pub struct Evaluation<'c, 'e, S: Sink = Off> {
    pub config: &'c Config,
    pub keys: &'e dyn KeyStore,
    pub signatures: &'e dyn SignatureBackend,
    pub cache: &'e mut TokenCache,
    pub headers: &'e RequestHeaders,
    /// The introspection answers known for this request (`introspection::Unwired`: none).
    pub answers: &'e dyn Answers,
    /// Introspections this request needs before it can be decided (no answer known yet).
    pub needed: Vec<Needed>,
    pub now: i64,
    pub ops: Vec<HeaderOp<'c>>,
    /// Set when a failure could turn out otherwise once a provider's keys arrive.
    pub wait: Option<Wait>,
    /// The scopes a token lacked, for `WWW-Authenticate` (the last `InsufficientScope`).
    pub insufficient_scope: Option<String>,
    /// The first provider whose token verified in the part that was satisfied.
    pub verified: Option<ProviderId>,
    /// The provider whose check produced the failure `check` returned, when one did.
    pub failed: Option<ProviderId>,
    /// Tokens of this request parsed so far.
    pub parsed: Vec<Parsed>,
    /// Tokens a provider requirement refused (signature, claims, scopes, ...) in this
    /// evaluation: `allow_missing_or_failed` lets the request through, but never with their
    /// identity.
    pub rejected: Vec<Rc<str>>,
    /// Where the steps go (`jwt-authn-explain`); `Off` records nothing.
    pub trace: &'e mut S,
}

/// A token of this request, as text (the cache key) and parsed. Cheap to clone.
#[derive(Clone)]
pub struct Parsed {
    token: Rc<str>,
    jwt: Rc<UntrustedJwt>,
}

/// What a provider requirement asks of its tokens beyond verifying.
#[derive(Default, Clone, Copy)]
struct Needs<'r> {
    /// Overrides the provider's audiences.
    audiences: Option<&'r [String]>,
    scopes: Option<&'r ScopeRule>,
    claims: &'r [ClaimRule],
    token_kind: Option<TokenKind>,
}

impl<'c, S: Sink> Evaluation<'c, '_, S> {
    /// Evaluates `requirement`; on failure, `ops` holds no mutation from the failed part.
    pub fn check(&mut self, requirement: &Requirement) -> Result<(), AuthError> {
        let config = self.config;
        self.trace.record(|| Step::Entered {
            what: trace::describe(config, requirement),
        });
        let (mark, verified) = (self.ops.len(), self.verified);
        let result = match requirement {
            Requirement::Provider {
                provider,
                audiences,
                scopes,
                claims,
                token_kind,
            } => {
                let needs = Needs {
                    audiences: audiences.as_deref(),
                    scopes: scopes.as_ref(),
                    claims,
                    token_kind: *token_kind,
                };
                let result = self.provider(*provider, needs);
                if result.is_err() {
                    self.failed = Some(*provider);
                }
                result
            }
            Requirement::Peer(principals) => {
                let result = self.peer(principals);
                if result.is_err() {
                    self.failed = None;
                }
                result
            }
            Requirement::All(children) => children.iter().try_for_each(|c| self.check(c)),
            Requirement::Any(children) => self.any(children),
            Requirement::AllowMissing => self.any_issuer(false),
            Requirement::AllowMissingOrFailed => self.any_issuer(true),
        };
        if result.is_err() {
            self.ops.truncate(mark);
            self.verified = verified;
        }
        self.trace.record(|| Step::Left {
            what: trace::describe(config, requirement),
            result,
        });
        result
    }

    fn any(&mut self, children: &[Requirement]) -> Result<(), AuthError> {
        let allow_missing = children.contains(&Requirement::AllowMissing);
        let allow_failed = children.contains(&Requirement::AllowMissingOrFailed);
        let verifiers: Vec<&Requirement> = children
            .iter()
            .filter(|c| {
                !matches!(
                    c,
                    Requirement::AllowMissing | Requirement::AllowMissingOrFailed
                )
            })
            .collect();
        if verifiers.is_empty() {
            // Only flags: behave as the most permissive of them standing alone.
            return self.any_issuer(allow_failed);
        }
        // The last "real" failure wins; else a token of another issuer (`UnknownIssuer`)
        // outranks no token at all, so `allow_missing` does not let a stranger's token in.
        let (mut last, mut last_failed) = (AuthError::Missing, None);
        for child in verifiers {
            match self.check(child) {
                Ok(()) => return Ok(()),
                Err(AuthError::Missing) => {}
                Err(AuthError::UnknownIssuer) => {
                    if last == AuthError::Missing {
                        (last, last_failed) = (AuthError::UnknownIssuer, self.failed);
                    }
                }
                Err(e) => (last, last_failed) = (e, self.failed),
            }
        }
        // The provider of the failure that is reported (else of the last `Missing`).
        if last_failed.is_some() {
            self.failed = last_failed;
        }
        if allow_failed {
            // Like Envoy, a good token among the rest still sets its identity headers; a
            // token a sibling refused (a failed scope, claim or audience) does not.
            let _ = self.any_issuer(true);
            return Ok(());
        }
        if allow_missing && last == AuthError::Missing {
            return Ok(());
        }
        Err(last)
    }

    /// `peer`: the connection's SPIFFE ID fits one of `principals`.
    fn peer(&self, principals: &[PrincipalPattern]) -> Result<(), AuthError> {
        let uri_san = self
            .headers
            .peer()
            .uri_san
            .as_ref()
            .map_err(|_| AuthError::PeerUnreadable)?;
        if peer::peer_allowed(principals, uri_san.as_deref()) {
            Ok(())
        } else {
            Err(AuthError::PeerNotAllowed)
        }
    }

    /// `certificate_bound`: the token's `cnf["x5t#S256"]` against the client certificate. The
    /// digest is only needed (and only refused when unreadable) for a bound token.
    fn binding(&self, mode: Binding, token: &Verified) -> Result<(), AuthError> {
        let thumbprint = self.headers.peer().thumbprint();
        let peer = thumbprint.ok().flatten();
        match binding::check_binding(mode, token, peer) {
            Ok(()) => Ok(()),
            Err(BindingError::NoPeerCertificate) if thumbprint.is_err() => {
                Err(AuthError::PeerUnreadable)
            }
            Err(_) => Err(AuthError::CertificateBinding),
        }
    }

    fn provider(&mut self, id: ProviderId, needs: Needs<'_>) -> Result<(), AuthError> {
        let config = self.config;
        let provider = config.providers.get(id).ok_or(AuthError::KeysUnavailable)?;
        let found = extract(self.headers, &provider.locations);
        if found.is_empty() {
            self.trace.record(|| Step::NoToken {
                provider: provider.name.clone(),
                locations: provider
                    .locations
                    .iter()
                    .map(trace::describe_location)
                    .collect(),
            });
            return Err(AuthError::Missing);
        }
        for f in found {
            self.trace.record(|| Step::Token {
                provider: provider.name.clone(),
                location: trace::describe_location(f.location),
                token: f.token.as_deref().map(trace::token_hint).map_err(|e| *e),
            });
            if provider.introspection.is_some() {
                let token = f.token?;
                if self.names_jwt_provider(&token) {
                    // A JWT of a JWT provider's issuer goes there, not to introspection.
                    return Err(AuthError::UnknownIssuer);
                }
                if let Err(e) = self.opaque(id, provider, f.location, &token, needs) {
                    self.rejected.push(Rc::from(&*token));
                    return Err(e);
                }
                continue;
            }
            let parsed = self.parse(&f.token?)?;
            if let Err(e) = self.token(id, provider, f.location, &parsed, needs) {
                self.rejected.push(Rc::clone(&parsed.token));
                return Err(e);
            }
        }
        Ok(())
    }

    /// `allow_missing` (`tolerate_failure` false) and `allow_missing_or_failed` (true): tokens
    /// from every provider's locations, each checked by the provider its issuer names.
    fn any_issuer(&mut self, tolerate_failure: bool) -> Result<(), AuthError> {
        let config = self.config;
        let mut seen: Vec<Cow<'_, str>> = Vec::new();
        for provider in &config.providers {
            for f in extract(self.headers, &provider.locations) {
                self.trace.record(|| Step::Token {
                    provider: provider.name.clone(),
                    location: trace::describe_location(f.location),
                    token: f.token.as_deref().map(trace::token_hint).map_err(|e| *e),
                });
                let outcome = f.token.and_then(|token| {
                    self.failed = None;
                    if seen.contains(&token)
                        || (tolerate_failure && self.rejected.iter().any(|r| **r == *token))
                    {
                        return Ok(());
                    }
                    if let Some((opaque, location)) = self.introspector_for(f.location, &token) {
                        let owner = config
                            .providers
                            .get(opaque)
                            .ok_or(AuthError::UnknownIssuer)?;
                        self.failed = Some(opaque);
                        let result = self.opaque(opaque, owner, location, &token, Needs::default());
                        seen.push(token);
                        return result;
                    }
                    let parsed = self.parse(&token);
                    seen.push(token);
                    let parsed = parsed?;
                    let iss = parsed.jwt.claims.iss.as_deref();
                    let Some(id) = self.provider_for_issuer(iss) else {
                        self.trace.record(|| Step::NoProviderForIssuer {
                            issuer: iss.map(str::to_owned),
                        });
                        return Err(AuthError::UnknownIssuer);
                    };
                    let owner = config.providers.get(id).ok_or(AuthError::UnknownIssuer)?;
                    self.failed = Some(id);
                    self.token(id, owner, f.location, &parsed, Needs::default())
                });
                match outcome {
                    Err(e) if !tolerate_failure => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Records the first reason to wait; later ones wait for the next decision.
    fn wait_for(&mut self, provider: ProviderId, kid: Option<String>) {
        if self.wait.is_none() {
            self.wait = Some(Wait { provider, kid });
        }
    }

    /// The JWT provider a JWT of issuer `iss` goes to (introspection providers take no JWT by
    /// its issuer: see `introspector_for`).
    fn provider_for_issuer(&self, iss: Option<&str>) -> Option<ProviderId> {
        let providers = &self.config.providers;
        let jwt = |p: &Provider| p.introspection.is_none();
        providers
            .iter()
            .position(|p| jwt(p) && p.issuer.is_some() && p.issuer.as_deref() == iss)
            .or_else(|| providers.iter().position(|p| jwt(p) && p.issuer.is_none()))
    }

    /// Whether `token` is a JWT whose `iss` names a JWT provider (one with that `issuer` and
    /// no `introspection`): such a token is never introspected.
    fn names_jwt_provider(&mut self, token: &str) -> bool {
        let Ok(parsed) = self.parse(token) else {
            return false;
        };
        let iss = parsed.jwt.claims.iss.as_deref();
        iss.is_some()
            && self
                .config
                .providers
                .iter()
                .any(|p| p.introspection.is_none() && p.issuer.as_deref() == iss)
    }

    /// The introspection provider that takes `token`, found at `location`: the first one
    /// looking at the same location, unless the token is a JWT of a JWT provider's issuer.
    fn introspector_for(
        &mut self,
        location: &Location,
        token: &str,
    ) -> Option<(ProviderId, &'c Location)> {
        let config = self.config;
        let found = config.providers.iter().enumerate().find_map(|(id, p)| {
            p.introspection.as_ref()?;
            let own = p.locations.iter().find(|l| *l == location)?;
            Some((id, own))
        })?;
        (!self.names_jwt_provider(token)).then_some(found)
    }

    /// One token at introspection provider `id`: its syntax and size (before any callout),
    /// then what the authorization server said about it, then every check a verified JWT
    /// gets. No answer yet: the lookup is recorded in `needed` and the token fails
    /// `IntrospectionUnavailable` until the request is decided again with the answer.
    fn opaque(
        &mut self,
        id: ProviderId,
        provider: &'c Provider,
        location: &'c Location,
        token: &str,
        needs: Needs<'_>,
    ) -> Result<(), AuthError> {
        let introspection = provider
            .introspection
            .as_deref()
            .ok_or(AuthError::IntrospectionUnavailable)?;
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        if !introspection::is_b64token(token) {
            return Err(AuthError::NotB64Token);
        }
        // The answers the caller gave (`introspection::Unwired` when it cannot ask).
        let (now, policy) = (self.now, provider.policy());
        let answers = self.answers;
        let needed = &mut self.needed;
        let key = answers.key(&provider.name, token);
        let verified = match answers.answer(id, &key) {
            Known::Answer(Answer::Active(active)) => verify::introspected(
                &active.claims,
                &active.payload,
                policy,
                needs.audiences,
                now,
            ),
            Known::Answer(Answer::Inactive) => Err(AuthError::Inactive),
            Known::Failed => Err(AuthError::IntrospectionUnavailable),
            Known::Unknown => {
                if !needed.iter().any(|n| n.provider == id && n.key == key) {
                    needed.push(Needed {
                        provider: id,
                        key,
                        request: oauth::introspection_request(
                            &introspection.server.endpoint,
                            &introspection.server.client,
                            token,
                            Some("access_token"),
                        ),
                    });
                }
                Err(AuthError::IntrospectionUnavailable)
            }
        };
        self.accept(id, provider, location, verified?, needs)
    }

    /// `token` parsed: once per request, and not at all when a cache holds it (then its text
    /// is the cache's, not copied).
    fn parse(&mut self, token: &str) -> Result<Parsed, AuthError> {
        if let Some(parsed) = self.parsed.iter().find(|p| *p.token == *token) {
            return Ok(parsed.clone());
        }
        let (token, jwt) = match self.cache.parsed(token) {
            Some(hit) => hit,
            None => {
                let parsed = jwt::parse(token);
                self.trace.record(|| Step::Parsed {
                    result: parsed.as_ref().map(trace::describe_jwt).map_err(|e| *e),
                });
                (Rc::from(token), Rc::new(parsed?))
            }
        };
        let parsed = Parsed { token, jwt };
        self.parsed.push(parsed.clone());
        Ok(parsed)
    }

    /// Verifies one parsed token for one provider and records its identity headers.
    fn token(
        &mut self,
        id: ProviderId,
        provider: &'c Provider,
        location: &'c Location,
        parsed: &Parsed,
        needs: Needs<'_>,
    ) -> Result<(), AuthError> {
        let jwt = &*parsed.jwt;
        // The issuer first: a token of another issuer never waits for this provider's keys.
        // (`verify` checks it again; a string compare.)
        let issuer = verify::check_issuer(jwt, provider.policy());
        self.trace
            .record(|| trace::issuer_step(provider, jwt, issuer));
        issuer?;
        let store = self.keys;
        let keys = match store.keys(id) {
            Availability::Ready(keys) => Some(keys),
            Availability::Pending => {
                self.wait_for(id, None);
                None
            }
            Availability::Unavailable => None,
        };
        // The cache vouches for the signature under these keys; the claims are checked anyway.
        let cached = match (keys, self.cache.provider(id)) {
            (Some(keys), Some(cache)) => cache.get(&parsed.token, keys.version(), self.now),
            _ => None,
        }
        .cloned();
        let result = match &cached {
            Some(hit) => verify::recheck(hit, provider.policy(), needs.audiences, self.now),
            None => verify::verify(
                &parsed.jwt,
                provider.policy(),
                keys,
                needs.audiences,
                self.now,
                self.signatures,
            ),
        };
        let (now, hit, outcome) = (self.now, cached.is_some(), result.as_ref().map(|_| ()));
        let outcome = outcome.map_err(|e| *e);
        self.trace.record_all(|| {
            trace::verify_steps(provider, jwt, keys, needs.audiences, now, hit, outcome)
        });
        if outcome == Err(AuthError::NoMatchingKey) {
            if let Some(kid) = &jwt.kid {
                if self.keys.may_learn_kid(id, kid) {
                    self.wait_for(id, Some(kid.clone()));
                }
            }
        }
        // From here on only the verified token is looked at.
        let token = result?;
        if let (false, Some(keys), Some(cache)) = (hit, keys, self.cache.provider_mut(id)) {
            cache.insert(Rc::clone(&parsed.token), token.clone(), keys.version(), now);
        }
        if provider.revocation.is_some() {
            // On every request, cached tokens too: the cache vouches for the signature only.
            let checked = match store.revocation(id) {
                ListAvailability::Ready(list) => list.check(&token).map_err(|_| AuthError::Revoked),
                ListAvailability::Pending => {
                    self.wait_for(id, None);
                    Err(AuthError::RevocationUnavailable)
                }
                ListAvailability::Unavailable => Err(AuthError::RevocationUnavailable),
            };
            self.trace
                .record(|| trace::revocation_step(provider, checked));
            checked?;
        }
        self.accept(id, provider, location, token, needs)
    }

    /// A verified token (a JWT, or an opaque token the server called active) against the rest
    /// of the provider's and the requirement's checks; then its identity headers.
    fn accept(
        &mut self,
        id: ProviderId,
        provider: &'c Provider,
        location: &'c Location,
        token: Verified,
        needs: Needs<'_>,
    ) -> Result<(), AuthError> {
        if let Some(allowed) = &provider.allowed_typ {
            let result = allowed
                .check(&token)
                .map(|_| ())
                .map_err(|_| AuthError::TypNotAllowed);
            self.trace
                .record(|| trace::typ_step(provider, &token, result));
            result?;
        }
        let bound = self.binding(provider.certificate_bound, &token);
        if provider.certificate_bound != Binding::Off {
            self.trace.record(|| trace::binding_step(provider, bound));
        }
        bound?;
        if let Some(scopes) = needs.scopes {
            let checked = scopes.check(&token);
            self.trace
                .record(|| trace::scopes_step(provider, scopes, &token, &checked));
            if let Err(needed) = checked {
                self.insufficient_scope = Some(needed);
                return Err(AuthError::InsufficientScope);
            }
        }
        if let Some(kind) = needs.token_kind {
            let is = provider.service_test.kind(&token);
            self.trace
                .record(|| trace::token_kind_step(provider, is, kind));
            if is != kind {
                return Err(AuthError::TokenKindNotAllowed);
            }
        }
        if !needs.claims.is_empty() {
            let holds = needs.claims.iter().all(|rule| rule.matches(&token));
            self.trace
                .record(|| trace::claims_step(provider, needs.claims, &token, holds));
            if !holds {
                return Err(AuthError::ClaimMismatch);
            }
        }
        let peer_id = match provider
            .identity_header
            .as_ref()
            .and_then(|i| i.peer_field.as_ref())
        {
            Some(_) => self
                .headers
                .peer()
                .spiffe_id()
                .map_err(|_| AuthError::PeerUnreadable)?,
            None => None,
        };
        let mark = self.ops.len();
        propagate::consume_token(provider, location, self.headers, &mut self.ops);
        propagate::identity(provider, &token, peer_id, &mut self.ops);
        if provider.filter_state {
            propagate::filter_state(provider, &token, peer_id, &mut self.ops);
        }
        let ops = self.ops.get(mark..).unwrap_or_default();
        self.trace.record(|| trace::identity_step(provider, ops));
        self.verified.get_or_insert(id);
        Ok(())
    }
}
