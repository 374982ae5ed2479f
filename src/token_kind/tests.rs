use serde_json::json;

use super::*;
use crate::claims::ClaimTest;

/// A verified token with payload `v`.
fn obj(v: Value) -> Verified {
    Verified::for_test(json!({ "alg": "RS256" }), v)
}

/// A verified token whose header has `typ` (`None`: no `typ` member).
fn typed(typ: Option<&Value>) -> Verified {
    let mut header = json!({ "alg": "RS256" });
    if let Some(typ) = typ {
        header["typ"] = typ.clone();
    }
    Verified::for_test(header, json!({}))
}

#[test]
fn default_service_test_is_sub_equals_client_id() {
    let t = ServiceTest::Default;
    for (claims, want) in [
        (
            json!({"sub": "svc", "client_id": "svc"}),
            TokenKind::Service,
        ),
        (json!({"sub": "alice", "client_id": "svc"}), TokenKind::User),
        (json!({"sub": "svc"}), TokenKind::User),
        (json!({"client_id": "svc"}), TokenKind::User),
        (json!({}), TokenKind::User),
        (json!({"sub": "svc", "client_id": ["svc"]}), TokenKind::User),
        (json!({"sub": "Svc", "client_id": "svc"}), TokenKind::User),
    ] {
        assert_eq!(t.kind(&obj(claims.clone())), want, "{claims}");
    }
}

#[test]
fn resource_owner_claims_mark_user_tokens() {
    let t = ServiceTest::ResourceOwnerClaims(vec!["username".into(), "email".into()]);
    for (claims, want) in [
        (json!({"sub": "x", "client_id": "svc"}), TokenKind::Service),
        (json!({"sub": "x", "username": "alice"}), TokenKind::User),
        (json!({"sub": "x", "email": null}), TokenKind::User),
        (
            json!({"sub": "svc", "client_id": "svc", "username": "svc"}),
            TokenKind::Service,
        ),
    ] {
        assert_eq!(t.kind(&obj(claims.clone())), want, "{claims}");
    }
    // No names: the default test alone.
    let t = ServiceTest::ResourceOwnerClaims(Vec::new());
    assert_eq!(t.kind(&obj(json!({"sub": "x"}))), TokenKind::User);
}

#[test]
fn service_token_rules_replace_the_default() {
    let rule = ClaimRule {
        path: vec!["token_use".into()],
        test: ClaimTest::Equals(json!("service")),
    };
    let t = ServiceTest::Rules(vec![rule]);
    assert_eq!(
        t.kind(&obj(json!({"token_use": "service"}))),
        TokenKind::Service
    );
    // sub == client_id no longer counts.
    assert_eq!(
        t.kind(&obj(json!({"sub": "a", "client_id": "a"}))),
        TokenKind::User
    );
    // No rules is never a service.
    assert_eq!(
        ServiceTest::Rules(Vec::new()).kind(&obj(json!({}))),
        TokenKind::User
    );
}

#[test]
fn kind_names() {
    for k in [TokenKind::Service, TokenKind::User] {
        assert_eq!(TokenKind::from_name(k.name()), Some(k));
    }
    assert_eq!(TokenKind::from_name("Service"), None);
}

#[test]
fn allowed_typ_table() {
    let at = AllowedTyp::new(&["at+jwt".into()]).unwrap();
    let full = AllowedTyp::new(&["application/AT+JWT".into()]).unwrap();
    for (typ, want) in [
        (Some(json!("at+jwt")), Ok(())),
        (Some(json!("AT+JWT")), Ok(())),
        (Some(json!("application/at+jwt")), Ok(())),
        (Some(json!("Application/At+Jwt")), Ok(())),
        (Some(json!("JWT")), Err(TypError::NotAllowed)),
        (Some(json!("jwt")), Err(TypError::NotAllowed)),
        (Some(json!("text/at+jwt")), Err(TypError::NotAllowed)),
        (
            Some(json!("application/application/at+jwt")),
            Err(TypError::NotAllowed),
        ),
        (Some(json!("at+jwt ")), Err(TypError::NotAllowed)),
        (Some(json!("")), Err(TypError::NotAllowed)),
        (Some(json!(["at+jwt"])), Err(TypError::NotAString)),
        (Some(json!(null)), Err(TypError::NotAString)),
        (None, Err(TypError::Missing)),
    ] {
        assert_eq!(at.check(&typed(typ.as_ref())), want, "{typ:?}");
        assert_eq!(
            full.check(&typed(typ.as_ref())),
            want,
            "{typ:?} (configured with prefix)"
        );
    }
}

#[test]
fn allowed_typ_config() {
    assert!(AllowedTyp::new(&[]).is_err());
    assert!(AllowedTyp::new(&["".into()]).is_err());
    assert!(AllowedTyp::new(&["at jwt".into()]).is_err());
    let two = AllowedTyp::new(&["at+jwt".into(), "JWT".into()]).unwrap();
    assert_eq!(two.check(&typed(Some(&json!("jwt")))), Ok(()));
    assert_eq!(two.check(&typed(Some(&json!("application/jwt")))), Ok(()));
}
