//! The steps of one decision, for `jwt-authn-explain` (feature `explain`): which rule matched,
//! which requirement applied, each token found and where, each check in order with its
//! outcome. The core records them through a `Sink` while it decides (`engine::decide_traced`);
//! the filter's sink is `Off`, whose `record` does nothing and never builds a step, so the
//! request path costs nothing extra and explain can never disagree with the filter: it runs
//! the same code.
//!
//! A step never holds a whole token (a bearer credential): only its length and last
//! characters (`token_hint`). Claims are shown, they are not secret to the token's holder.

use serde_json::Value;

use crate::claim_path::claim;
use crate::claims::{ClaimRule, ClaimTest};
use crate::config::{Config, Location, Provider, ProviderId, Requirement};
use crate::error::AuthError;
use crate::jwks::KeySet;
use crate::jwt::UntrustedJwt;
use crate::propagate::HeaderOp;
use crate::scopes::ScopeRule;
use crate::token_kind::TokenKind;
use crate::verify::Verified;

/// Where the core reports its steps. `record` takes a closure so that nothing is built when
/// no one listens.
pub trait Sink {
    fn record(&mut self, step: impl FnOnce() -> Step);

    /// Several steps at once, in order.
    fn record_all(&mut self, steps: impl FnOnce() -> Vec<Step>) {
        for step in steps() {
            self.record(|| step);
        }
    }
}

/// The filter's sink: records nothing.
pub struct Off;

impl Sink for Off {
    #[inline(always)]
    fn record(&mut self, _step: impl FnOnce() -> Step) {}

    #[inline(always)]
    fn record_all(&mut self, _steps: impl FnOnce() -> Vec<Step>) {}
}

/// Every step, in order.
impl Sink for Vec<Step> {
    fn record(&mut self, step: impl FnOnce() -> Step) {
        self.push(step());
    }
}

/// One check of one token, in the order `verify` and `authorize` run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `iss` names the provider's issuer.
    Issuer,
    /// The provider has keys, and some fit the token's `kid` and `alg`.
    Key,
    /// A fitting key verifies the signature.
    Signature,
    /// `nbf`, `exp` (with clock skew), `require_expiration`, `max_lifetime`.
    Time,
    /// `sub` against `subjects`.
    Subject,
    /// `aud` against the provider's (or the requirement's) audiences.
    Audience,
    /// The requirement's `required_scopes`.
    Scopes,
    /// The requirement's `required_claims`.
    Claims,
    /// The JOSE `typ` against the provider's `allowed_typ`.
    Typ,
    /// The provider's `certificate_bound` (RFC 8705).
    Binding,
    /// The requirement's `token_kind`.
    TokenKind,
    /// The provider's revocation list (issue 15).
    Revocation,
    /// A check this list has no name for: its failure reason says what it is.
    Other,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::Issuer => "issuer",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Time => "time",
            Check::Subject => "subject",
            Check::Audience => "audience",
            Check::Scopes => "scopes",
            Check::Claims => "claims",
            Check::Typ => "typ",
            Check::Binding => "binding",
            Check::TokenKind => "token_kind",
            Check::Revocation => "revocation",
            Check::Other => "check",
        }
    }

    /// The check of `verify::verify` that produced `error`; `Other` for a failure it does not
    /// produce.
    pub fn of_verify_failure(error: AuthError) -> Check {
        match error {
            AuthError::UnknownIssuer => Check::Issuer,
            AuthError::KeysUnavailable | AuthError::NoMatchingKey => Check::Key,
            AuthError::SignatureInvalid => Check::Signature,
            AuthError::NotYetValid
            | AuthError::Expired
            | AuthError::ExpirationRequired
            | AuthError::LifetimeTooLong => Check::Time,
            AuthError::SubjectNotAllowed => Check::Subject,
            AuthError::AudienceNotAllowed => Check::Audience,
            _ => Check::Other,
        }
    }
}

/// One step of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Headers the filter can emit that the request carried: removed before anything else.
    Stripped(Vec<String>),
    /// The request cannot be read (400, whatever the policies say).
    Unreadable,
    /// A CORS preflight, let through (`bypass_cors_preflight`).
    CorsPreflight,
    /// Rule `index` (0-based, configuration order) is the first whose `match` matches.
    Rule { index: usize, requires: bool },
    /// No rule matches: no token is needed.
    NoRule,
    /// A requirement node is evaluated (`what`: `provider_name: p1`, `requires_any (2)`, ...);
    /// the steps until its `Left` belong to it.
    Entered { what: String },
    /// The node entered last is done.
    Left {
        what: String,
        result: Result<(), AuthError>,
    },
    /// The provider's locations hold no token.
    NoToken {
        provider: String,
        locations: Vec<String>,
    },
    /// Something at a location: a token (`token_hint`) or why it cannot be one.
    Token {
        provider: String,
        location: String,
        token: Result<String, AuthError>,
    },
    /// The token's header and registered claims, or why it does not parse.
    Parsed { result: Result<String, AuthError> },
    /// A token of an issuer no provider has (`allow_missing`, `allow_missing_or_failed`).
    NoProviderForIssuer { issuer: Option<String> },
    /// One check of one token.
    Checked {
        provider: String,
        check: Check,
        result: Result<(), AuthError>,
        detail: String,
    },
    /// The headers a verified token sets or removes.
    Identity {
        provider: String,
        headers: Vec<String>,
    },
    /// The request would wait for the provider's keys (cold start, or a `kid` a refetch may
    /// bring) and be decided again then.
    Wait {
        provider: String,
        kid: Option<String>,
    },
    /// A failure led where the failure policy of its class says.
    Policy {
        failure: AuthError,
        class: &'static str,
        policy: &'static str,
    },
}

/// How a step names a token: its length and last six characters, never the token.
pub fn token_hint(token: &str) -> String {
    let tail: String = {
        let chars: Vec<char> = token.chars().collect();
        let from = chars.len().saturating_sub(6);
        chars.get(from..).unwrap_or_default().iter().collect()
    };
    format!("{} bytes, ending …{tail}", token.len())
}

/// A requirement node as configured: `provider_name: p1`, `requires_any (2)`, ...
pub fn describe(config: &Config, requirement: &Requirement) -> String {
    let name = |id: ProviderId| {
        config
            .providers
            .get(id)
            .map_or("?", |p| p.name.as_str())
            .to_owned()
    };
    match requirement {
        Requirement::Provider {
            provider,
            audiences,
            scopes,
            claims,
            token_kind,
        } => {
            let mut text = match audiences {
                None => format!("provider_name: {}", name(*provider)),
                Some(aud) => format!("provider_and_audiences: {} {aud:?}", name(*provider)),
            };
            if let Some(scopes) = scopes {
                if !scopes.all_of.is_empty() {
                    text.push_str(&format!(", required_scopes all_of {:?}", scopes.all_of));
                }
                if !scopes.any_of.is_empty() {
                    text.push_str(&format!(", required_scopes any_of {:?}", scopes.any_of));
                }
            }
            if !claims.is_empty() {
                text.push_str(&format!(", {} required_claims", claims.len()));
            }
            if let Some(kind) = token_kind {
                text.push_str(&format!(", token_kind {kind:?}"));
            }
            text
        }
        Requirement::Peer(patterns) => format!("peer ({} principals)", patterns.len()),
        Requirement::Any(children) => format!("requires_any ({} requirements)", children.len()),
        Requirement::All(children) => format!("requires_all ({} requirements)", children.len()),
        Requirement::AllowMissing => "allow_missing".to_owned(),
        Requirement::AllowMissingOrFailed => "allow_missing_or_failed".to_owned(),
    }
}

/// Where a provider looks: `header authorization, prefix "Bearer "`, `query parameter jwt`,
/// `cookie session`.
pub fn describe_location(location: &Location) -> String {
    match location {
        Location::Header { name, value_prefix } if value_prefix.is_empty() => {
            format!("header {name}")
        }
        Location::Header { name, value_prefix } => {
            format!("header {name}, prefix {value_prefix:?}")
        }
        Location::Param(name) => format!("query parameter {name}"),
        Location::Cookie(name) => format!("cookie {name}"),
    }
}

/// A parsed token's header and registered claims, on one line.
pub fn describe_jwt(jwt: &UntrustedJwt) -> String {
    let c = &jwt.claims;
    let mut text = format!("alg {}", jwt.alg);
    if let Some(kid) = &jwt.kid {
        text.push_str(&format!(", kid {kid:?}"));
    }
    for (name, value) in [("iss", &c.iss), ("sub", &c.sub)] {
        if let Some(value) = value {
            text.push_str(&format!(", {name} {value:?}"));
        }
    }
    if !c.aud.is_empty() {
        text.push_str(&format!(", aud {:?}", c.aud));
    }
    for (name, value) in [("exp", c.exp), ("nbf", c.nbf), ("iat", c.iat)] {
        if let Some(value) = value {
            text.push_str(&format!(", {name} {value}"));
        }
    }
    text
}

/// The issuer check of `provider` on `jwt`.
pub fn issuer_step(provider: &Provider, jwt: &UntrustedJwt, result: Result<(), AuthError>) -> Step {
    let detail = match &provider.issuer {
        None => "the provider accepts any issuer".to_owned(),
        Some(want) => format!(
            "token iss {:?}, provider issuer {want:?}",
            jwt.claims.iss.as_deref().unwrap_or("")
        ),
    };
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Issuer,
        result,
        detail,
    }
}

/// The checks of `verify` after the issuer, from its `result`: the ones before the failing
/// check passed, the failing one failed, the rest did not run. A failure `verify` does not
/// name (`Check::Other`) is shown alone, claiming nothing of the others. `cached`: the
/// verified-token cache vouched for the signature.
pub fn verify_steps(
    provider: &Provider,
    jwt: &UntrustedJwt,
    keys: Option<&KeySet>,
    audiences: Option<&[String]>,
    now: i64,
    cached: bool,
    result: Result<(), AuthError>,
) -> Vec<Step> {
    let step = |check: Check, result: Result<(), AuthError>, detail: String| Step::Checked {
        provider: provider.name.clone(),
        check,
        result,
        detail,
    };
    let failed = result.err().map(Check::of_verify_failure);
    if let (Some(Check::Other), Err(e)) = (failed, result) {
        return vec![step(Check::Other, Err(e), String::new())];
    }
    let mut order = vec![Check::Key, Check::Signature, Check::Time];
    if cached {
        order = vec![Check::Signature, Check::Time];
    }
    if provider.subjects.is_some() {
        order.push(Check::Subject);
    }
    order.push(Check::Audience);
    let mut steps = Vec::new();
    for check in order {
        let outcome = match (failed, result) {
            (Some(f), Err(e)) if f == check => Err(e),
            _ => Ok(()),
        };
        let detail = match check {
            Check::Key => key_detail(jwt, keys),
            Check::Signature if cached => {
                "verified before under this key set (jwt_cache_config)".to_owned()
            }
            Check::Signature => format!("{} over header.payload", jwt.alg),
            Check::Time => time_detail(provider, jwt, now),
            Check::Subject => format!(
                "sub {:?} against the provider's subjects",
                jwt.claims.sub.as_deref().unwrap_or("")
            ),
            Check::Audience => {
                let allowed = audiences.unwrap_or(&provider.audiences);
                if allowed.is_empty() {
                    format!("aud {:?}; any audience is allowed", jwt.claims.aud)
                } else {
                    format!("aud {:?}, allowed {allowed:?}", jwt.claims.aud)
                }
            }
            _ => String::new(),
        };
        steps.push(step(check, outcome, detail));
        if outcome.is_err() {
            break;
        }
    }
    steps
}

/// Which keys fit the token and why: the kid, the algorithm, the key's own `alg`.
fn key_detail(jwt: &UntrustedJwt, keys: Option<&KeySet>) -> String {
    let Some(keys) = keys else {
        return "the provider has no key set (a remote one not fetched, or refused)".to_owned();
    };
    let want = match &jwt.kid {
        Some(kid) => format!("alg {}, kid {kid:?}", jwt.alg),
        None => format!("alg {}, no kid (every key may be tried)", jwt.alg),
    };
    let fitting: Vec<String> = keys
        .keys()
        .iter()
        .filter(|k| k.fits(jwt.alg, jwt.kid.as_deref()))
        .map(|k| match (&k.kid, &jwt.kid) {
            (Some(kid), Some(_)) => format!("kid {kid:?} (same kid)"),
            (Some(kid), None) => format!("kid {kid:?} (token has no kid)"),
            (None, _) => "a key without kid (fits any kid)".to_owned(),
        })
        .collect();
    if fitting.is_empty() {
        format!(
            "{want}: none of the {} keys fits (kid, key type and the key's own alg)",
            keys.len()
        )
    } else {
        format!(
            "{want}: {} of {} keys fit, tried in order: {}",
            fitting.len(),
            keys.len(),
            fitting.join(", ")
        )
    }
}

fn time_detail(provider: &Provider, jwt: &UntrustedJwt, now: i64) -> String {
    let c = &jwt.claims;
    let mut text = format!("now {now}, clock skew {}s", provider.clock_skew_seconds);
    match c.exp {
        Some(exp) => text.push_str(&format!(", exp {exp} ({:+}s from now)", exp - now)),
        None => text.push_str(", no exp"),
    }
    if let Some(nbf) = c.nbf {
        text.push_str(&format!(", nbf {nbf} ({:+}s from now)", nbf - now));
    }
    if provider.require_expiration {
        text.push_str(", require_expiration");
    }
    if let Some(max) = provider.max_lifetime {
        text.push_str(&format!(", max_lifetime {}s", max.as_secs()));
    }
    text
}

/// The `required_scopes` check: what the token grants, what was needed.
pub fn scopes_step(
    provider: &Provider,
    rule: &ScopeRule,
    token: &Verified,
    checked: &Result<(), String>,
) -> Step {
    let granted = rule.granted(token);
    let detail = match checked {
        Ok(()) => format!("granted {granted:?}"),
        Err(needed) => format!("granted {granted:?}, lacking {needed:?}"),
    };
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Scopes,
        result: checked
            .as_ref()
            .map(|_| ())
            .map_err(|_| AuthError::InsufficientScope),
        detail,
    }
}

/// The `required_claims` check, rule by rule.
pub fn claims_step(
    provider: &Provider,
    rules: &[ClaimRule],
    token: &Verified,
    holds: bool,
) -> Step {
    let detail: Vec<String> = rules
        .iter()
        .map(|rule| {
            let name = rule.path.join(".");
            let test = match &rule.test {
                ClaimTest::Equals(v) => format!("equals {v}"),
                ClaimTest::OneOf(v) => format!("one_of {}", Value::from(v.clone())),
                ClaimTest::Contains(v) => format!("contains {v}"),
            };
            let actual =
                claim(token.payload(), &rule.path).map_or("absent".to_owned(), Value::to_string);
            let verdict = if rule.matches(token) {
                "holds"
            } else {
                "fails"
            };
            format!("{name} {test}: {verdict} (is {actual})")
        })
        .collect();
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Claims,
        result: if holds {
            Ok(())
        } else {
            Err(AuthError::ClaimMismatch)
        },
        detail: detail.join("; "),
    }
}

/// The `allowed_typ` check.
pub fn typ_step(provider: &Provider, token: &Verified, result: Result<(), AuthError>) -> Step {
    let typ = token.typ().map_or("none".to_owned(), Value::to_string);
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Typ,
        result,
        detail: format!("typ {typ}, allowed_typ of the provider"),
    }
}

/// The revocation check: `Revoked`, `RevocationUnavailable`, or passed. Never the listed
/// value: the list holds fingerprints only.
pub fn revocation_step(provider: &Provider, result: Result<(), AuthError>) -> Step {
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Revocation,
        result,
        detail: "jti, sub, client_id, sid and iat against the provider's revocation list".into(),
    }
}

/// The `certificate_bound` check.
pub fn binding_step(provider: &Provider, result: Result<(), AuthError>) -> Step {
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::Binding,
        result,
        detail: format!(
            "certificate_bound {}: cnf[\"x5t#S256\"] against the client certificate",
            match provider.certificate_bound {
                crate::binding::Binding::Off => "off",
                crate::binding::Binding::IfPresent => "if_present",
                crate::binding::Binding::Required => "required",
            }
        ),
    }
}

/// The `token_kind` check: the kind the token is, the kind wanted.
pub fn token_kind_step(provider: &Provider, is: TokenKind, wanted: TokenKind) -> Step {
    Step::Checked {
        provider: provider.name.clone(),
        check: Check::TokenKind,
        result: if is == wanted {
            Ok(())
        } else {
            Err(AuthError::TokenKindNotAllowed)
        },
        detail: format!("a {} token, {} wanted", is.name(), wanted.name()),
    }
}

/// The header operations a verified token brought.
pub fn identity_step(provider: &Provider, ops: &[HeaderOp<'_>]) -> Step {
    Step::Identity {
        provider: provider.name.clone(),
        headers: ops.iter().map(describe_op).collect(),
    }
}

/// `set x-jwt-sub: alice`, `remove authorization`.
pub fn describe_op(op: &HeaderOp<'_>) -> String {
    match op {
        HeaderOp::Remove(name) => format!("remove {name}"),
        HeaderOp::Set(name, value) => format!("set {name}: {value}"),
        HeaderOp::FilterState(key, value) => format!("filter state {key}: {value}"),
    }
}
