use std::rc::Rc;

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::AuthError;
use crate::jwt::parse;
use crate::mint;
use crate::signature::PureRust;

const NOW: i64 = 1_700_000_000;

fn local_keys(cfg: &Config) -> Option<&crate::jwks::KeySet> {
    match crate::engine::KeyStore::keys(cfg, 0) {
        crate::engine::Availability::Ready(keys) => Some(keys),
        _ => None,
    }
}

/// Verifies `claims` (signed RS256) against a provider built from `extra` settings.
fn check(extra: Value, claims: Value) -> Result<(), AuthError> {
    let mut provider = json!({ "issuer": "i", "local_jwks": { "inline_string": mint::JWKS } });
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    let cfg = Config::from_json(
        json!({ "providers": { "p": provider } })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let token = mint::token("RS256", &claims);
    verify_first(&cfg, &token)
}

/// `token` against the first provider of `cfg`, at `NOW`, with our own crypto.
fn verify_first(cfg: &Config, token: &str) -> Result<(), AuthError> {
    let jwt = Rc::new(parse(token).unwrap());
    super::verify(
        &jwt,
        cfg.providers[0].policy(),
        local_keys(cfg),
        None,
        NOW,
        &PureRust,
    )
    .map(|_| ())
}

#[test]
#[rustfmt::skip]
fn provider_claim_settings() {
    let cases: Vec<(&str, Value, Value, Result<(), AuthError>)> = vec![
        ("skew 1: a second late is fine", json!({ "clock_skew_seconds": 1 }), json!({ "iss": "i", "exp": NOW - 1 }), Ok(())),
        ("skew 1: two seconds late", json!({ "clock_skew_seconds": 1 }), json!({ "iss": "i", "exp": NOW - 2 }), Err(AuthError::Expired)),
        ("skew 0 means the default 60", json!({ "clock_skew_seconds": 0 }), json!({ "iss": "i", "exp": NOW - 60 }), Ok(())),
        ("skew max: far past still fine", json!({ "clock_skew_seconds": 4294967295u32 }), json!({ "iss": "i", "exp": 1 }), Ok(())),
        ("require_expiration", json!({ "require_expiration": true }), json!({ "iss": "i" }), Err(AuthError::ExpirationRequired)),
        ("max_lifetime ok", json!({ "max_lifetime": "3600s" }), json!({ "iss": "i", "exp": NOW + 3600 }), Ok(())),
        ("max_lifetime exceeded", json!({ "max_lifetime": "3600s" }), json!({ "iss": "i", "exp": NOW + 3601 }), Err(AuthError::LifetimeTooLong)),
        ("max_lifetime ignores iat", json!({ "max_lifetime": "60s" }), json!({ "iss": "i", "iat": NOW - 1000, "exp": NOW + 50 }), Ok(())),
        ("max_lifetime needs exp", json!({ "max_lifetime": "60s" }), json!({ "iss": "i" }), Err(AuthError::ExpirationRequired)),
        ("subject prefix ok", json!({ "subjects": { "prefix": "spiffe://" } }), json!({ "iss": "i", "sub": "spiffe://a" }), Ok(())),
        ("subject prefix bad", json!({ "subjects": { "prefix": "spiffe://" } }), json!({ "iss": "i", "sub": "user" }), Err(AuthError::SubjectNotAllowed)),
        ("subject missing", json!({ "subjects": { "exact": "a" } }), json!({ "iss": "i" }), Err(AuthError::SubjectNotAllowed)),
        ("issuer checked before signature", json!({}), json!({ "iss": "other" }), Err(AuthError::UnknownIssuer)),
        ("empty issuer accepts any", json!({ "issuer": "" }), json!({ "iss": "anyone" }), Ok(())),
    ];
    for (name, extra, claims, want) in cases {
        assert_eq!(check(extra, claims), want, "{name}");
    }
}

#[test]
fn signature_is_checked_before_claims() {
    let cfg = Config::from_json(
        json!({ "providers": { "p": { "issuer": "i", "audiences": ["a"],
            "local_jwks": { "inline_string": mint::JWKS } } } })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    // Wrong audience *and* a forged signature: the forgery decides (401, not 403).
    let token = mint::token("RS256", &json!({ "iss": "i", "aud": "other" }));
    let forged = format!("{}AAAA", token.trim_end_matches(|c| c != '.'));
    assert_eq!(
        verify_first(&cfg, &forged),
        Err(AuthError::SignatureInvalid)
    );
    let jwt = Rc::new(parse(&forged).unwrap());
    assert_eq!(
        super::verify(&jwt, cfg.providers[0].policy(), None, None, NOW, &PureRust).map(|_| ()),
        Err(AuthError::KeysUnavailable)
    );
}

#[test]
fn a_cached_token_is_checked_again_at_the_new_time_and_audiences() {
    let cfg = Config::from_json(
        json!({ "providers": { "p": { "issuer": "i", "audiences": ["a"],
            "local_jwks": { "inline_string": mint::JWKS } } } })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let provider = cfg.providers[0].policy();
    let token = mint::token("RS256", &json!({ "iss": "i", "aud": "a", "exp": NOW + 10 }));
    let jwt = Rc::new(parse(&token).unwrap());
    let verified = super::verify(&jwt, provider, local_keys(&cfg), None, NOW, &PureRust).unwrap();
    assert_eq!(verified.claims().exp, Some(NOW + 10));
    assert!(super::recheck(&verified, provider, None, NOW + 5).is_ok());
    let later = super::recheck(&verified, provider, None, NOW + 100).map(|_| ());
    assert_eq!(later, Err(AuthError::Expired));
    let others = ["b".to_owned()];
    let other_aud = super::recheck(&verified, provider, Some(&others), NOW).map(|_| ());
    assert_eq!(other_aud, Err(AuthError::AudienceNotAllowed));
}
