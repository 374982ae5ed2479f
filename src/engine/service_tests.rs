//! Service-to-service identity decided natively (issue 17): the `peer` requirement, token
//! kinds, `allowed_typ` and certificate-bound tokens, with the connection facts as the glue
//! hands them over (`PeerFacts`), including facts the host could not give.

use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::mint;
use crate::peer::{PeerFacts, Thumbprint, Unreadable};

/// The fixed "now" of every test: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const ROGUE: &str = "spiffe://cluster.local/ns/shop/sa/rogue";

/// The digest Envoy gives for the "frontend" and "other" certificates (hex of their SHA-256).
fn digest(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
const FRONTEND_DER: &[u8] = b"frontend certificate DER";
const OTHER_DER: &[u8] = b"another certificate DER";

fn config_json() -> Value {
    let provider = |extra: Value| {
        let mut p = json!({ "issuer": "https://example.com", "audiences": ["api"],
                            "local_jwks": { "inline_string": mint::JWKS } });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    json!({
        "providers": {
            "idp": provider(json!({ "identity_header": { "header_name": "x-identity",
                "claims": { "user": "sub" }, "peer_field": "peer" } })),
            "typed": provider(json!({ "allowed_typ": ["at+jwt"], "from_headers": [{ "name": "x-typed" }] })),
            "bound": provider(json!({ "certificate_bound": "if_present", "from_headers": [{ "name": "x-bound" }] })),
            "strict": provider(json!({ "certificate_bound": "required", "from_headers": [{ "name": "x-strict" }] })),
            "rules": provider(json!({ "service_token": [{ "name": "gty", "equals": "client-credentials" }],
                                      "from_headers": [{ "name": "x-rules" }] })),
            "owners": provider(json!({ "resource_owner_claims": ["email"], "from_headers": [{ "name": "x-owners" }] }))
        },
        "rules": [
            { "match": { "prefix": "/internal" }, "requires": { "requires_all": { "requirements": [
                { "peer": { "principals": [FRONTEND, "cluster.local/ns/batch/sa/cron"] } },
                { "provider_name": "idp", "token_kind": "user" } ] } } },
            { "match": { "prefix": "/mesh-only" }, "requires": { "peer": { "principals": ["*/sa/frontend"] } } },
            { "match": { "prefix": "/peer-or-token" }, "requires": { "requires_any": { "requirements": [
                { "peer": { "principals": ["cluster.local/ns/shop/*"] } }, { "provider_name": "idp" } ] } } },
            { "match": { "prefix": "/service" }, "requires": { "provider_name": "idp", "token_kind": "service" } },
            { "match": { "prefix": "/rules-service" }, "requires": { "provider_name": "rules", "token_kind": "service" } },
            { "match": { "prefix": "/owners-service" }, "requires": { "provider_name": "owners", "token_kind": "service" } },
            { "match": { "prefix": "/user" }, "requires": { "provider_and_audiences": {
                "provider_name": "idp", "audiences": ["api"] }, "token_kind": "user" } },
            { "match": { "prefix": "/typed" }, "requires": { "provider_name": "typed" } },
            { "match": { "prefix": "/bound" }, "requires": { "provider_name": "bound" } },
            { "match": { "prefix": "/strict" }, "requires": { "provider_name": "strict" } },
            { "match": { "prefix": "/" }, "requires": { "provider_name": "idp" } }
        ]
    })
}

fn config() -> Config {
    Config::from_json(config_json().to_string().as_bytes()).unwrap()
}

/// A user's token: sub alice, no client_id.
fn user_claims() -> Value {
    json!({ "iss": "https://example.com", "aud": "api", "sub": "alice", "exp": NOW + 3600,
            "email": "alice@example.com" })
}

/// A client-credentials token: sub == client_id.
fn service_claims() -> Value {
    json!({ "iss": "https://example.com", "aud": "api", "sub": "batch", "client_id": "batch",
            "exp": NOW + 3600 })
}

fn token(claims: &Value) -> String {
    mint::token("RS256", claims)
}

/// RS256 with the fixture key, `typ` as given (`Value::Null`: no `typ`).
fn typed(typ: Value) -> String {
    let mut header = json!({ "alg": "RS256", "kid": "rsa-a" });
    if !typ.is_null() {
        header["typ"] = typ;
    }
    mint::sign(&header, &user_claims(), "RS256", mint::Key::RsaA)
}

/// A user token bound to the certificate `der` (`cnf["x5t#S256"]`).
fn bound_to(der: &[u8]) -> String {
    let mut claims = user_claims();
    claims["cnf"] = json!({ "x5t#S256": Thumbprint::of_der(der).to_b64url() });
    token(&claims)
}

fn peer(uri: Option<&str>, der: Option<&[u8]>) -> PeerFacts {
    PeerFacts {
        uri_san: Ok(uri.map(|u| u.as_bytes().to_vec())),
        digest: Ok(der.map(|d| digest(d).into_bytes())),
    }
}

fn request(path: &str, headers: &[(&str, &str)], facts: PeerFacts) -> RequestHeaders {
    let mut pairs = vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.test".to_vec()),
        (":scheme".to_owned(), b"https".to_vec()),
    ];
    pairs.extend(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    RequestHeaders::new(pairs).with_peer(facts)
}

/// (status, `WWW-Authenticate`, the verdict's reason).
fn outcome_of(d: &Decision) -> (u32, Option<String>, Option<&'static str>) {
    match d {
        Decision::Allow { verdict, .. } => (200, None, verdict.failure.map(|f| f.reason())),
        Decision::Deny { denial, verdict } => (
            denial.status,
            denial.www_authenticate.clone(),
            verdict.failure.map(|f| f.reason()),
        ),
        Decision::Wait(_) => (0, None, None),
    }
}

fn identity_of(d: &Decision) -> Option<Value> {
    let Decision::Allow { ops, .. } = d else {
        return None;
    };
    ops.iter().find_map(|op| match op {
        crate::propagate::HeaderOp::Set("x-identity", v) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
            Some(serde_json::from_slice(&bytes).unwrap())
        }
        _ => None,
    })
}

const INVALID: &str = "Bearer realm=\"https://api.test{path}\", error=\"invalid_token\"";
const INSUFFICIENT: &str = "Bearer realm=\"https://api.test{path}\", error=\"insufficient_scope\"";

#[test]
#[rustfmt::skip]
fn decisions() {
    let cfg = config();
    let user = token(&user_claims());
    let service = token(&service_claims());
    let gty = token(&json!({ "iss": "https://example.com", "aud": "api", "sub": "svc", "gty": "client-credentials", "exp": NOW + 3600 }));
    let unreadable = || PeerFacts { uri_san: Err(Unreadable), digest: Err(Unreadable) };
    let b = |t: &str| format!("Bearer {t}");
    // (name, path, header, value, peer, status, challenge, reason)
    let cases: Vec<(&str, &str, &str, String, PeerFacts, u32, Option<&str>, Option<&str>)> = vec![
        // `peer` (403, no challenge), with a user token beside it.
        ("frontend with a user token", "/internal", "authorization", b(&user), peer(Some(FRONTEND), None), 200, None, None),
        ("Istio form of the principal", "/internal", "authorization", b(&user), peer(Some("spiffe://cluster.local/ns/batch/sa/cron"), None), 200, None, None),
        ("rogue with the same token", "/internal", "authorization", b(&user), peer(Some(ROGUE), None), 403, None, Some("peer")),
        ("no client certificate", "/internal", "authorization", b(&user), PeerFacts::none(), 403, None, Some("peer")),
        ("URI SAN that is not SPIFFE", "/mesh-only", "x", String::new(), peer(Some("https://evil.example/sa/frontend"), None), 403, None, Some("peer")),
        ("URI SAN not UTF-8 is no principal", "/mesh-only", "x", String::new(), PeerFacts { uri_san: Ok(Some(b"spiffe://a/\xff/sa/frontend".to_vec())), digest: Ok(None) }, 403, None, Some("peer")),
        ("peer unreadable: 503, never no peer", "/internal", "authorization", b(&user), unreadable(), 503, None, Some("peer")),
        ("peer unread (default facts) is unreadable", "/mesh-only", "x", String::new(), PeerFacts::default(), 503, None, Some("peer")),
        ("peer alone needs no token", "/mesh-only", "x", String::new(), peer(Some(FRONTEND), None), 200, None, None),
        ("frontend but no token", "/internal", "x", String::new(), peer(Some(FRONTEND), None), 401, Some("Bearer realm=\"https://api.test/internal\""), Some("missing")),
        ("frontend with a service token on a user route", "/internal", "authorization", b(&service), peer(Some(FRONTEND), None), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("requires_any: the peer is enough", "/peer-or-token", "x", String::new(), peer(Some(ROGUE), None), 200, None, None),
        ("requires_any: or the token", "/peer-or-token", "authorization", b(&user), peer(Some("spiffe://other.domain/ns/shop/sa/x"), None), 200, None, None),
        ("requires_any: neither", "/peer-or-token", "x", String::new(), peer(Some("spiffe://other.domain/ns/shop/sa/x"), None), 403, None, Some("peer")),
        // `token_kind` (403 insufficient_scope).
        ("service token on a service route", "/service", "authorization", b(&service), PeerFacts::none(), 200, None, None),
        ("user token on a service route", "/service", "authorization", b(&user), PeerFacts::none(), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("sub != client_id is a user's", "/service", "authorization", b(&token(&json!({ "iss": "https://example.com", "aud": "api", "sub": "alice", "client_id": "web", "exp": NOW + 60 }))), PeerFacts::none(), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("user token on a user route", "/user", "authorization", b(&user), PeerFacts::none(), 200, None, None),
        ("service token on a user route", "/user", "authorization", b(&service), PeerFacts::none(), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("service_token rules: gty", "/rules-service", "x-rules", gty.clone(), PeerFacts::none(), 200, None, None),
        ("service_token rules replace sub == client_id", "/rules-service", "x-rules", service.clone(), PeerFacts::none(), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("resource_owner_claims: none of them", "/owners-service", "x-owners", gty.clone(), PeerFacts::none(), 200, None, None),
        ("resource_owner_claims: has email", "/owners-service", "x-owners", user.clone(), PeerFacts::none(), 403, Some(INSUFFICIENT), Some("token_kind")),
        ("resource_owner_claims: sub == client_id still", "/owners-service", "x-owners", token(&with(service_claims(), "email", json!("b@x"))), PeerFacts::none(), 200, None, None),
        // `allowed_typ` (401 invalid_token).
        ("typ at+jwt", "/typed", "x-typed", typed(json!("at+jwt")), PeerFacts::none(), 200, None, None),
        ("typ application/AT+JWT", "/typed", "x-typed", typed(json!("application/AT+JWT")), PeerFacts::none(), 200, None, None),
        ("typ JWT", "/typed", "x-typed", typed(json!("JWT")), PeerFacts::none(), 401, Some(INVALID), Some("typ")),
        ("no typ", "/typed", "x-typed", typed(Value::Null), PeerFacts::none(), 401, Some(INVALID), Some("typ")),
        ("typ not a string", "/typed", "x-typed", typed(json!(["at+jwt"])), PeerFacts::none(), 401, Some(INVALID), Some("typ")),
        ("no allowed_typ: JWT as today", "/", "authorization", b(&typed(json!("JWT"))), PeerFacts::none(), 200, None, None),
        ("no allowed_typ: no typ as today", "/", "authorization", b(&typed(Value::Null)), PeerFacts::none(), 200, None, None),
        // `certificate_bound` (401 invalid_token).
        ("bound, over its certificate", "/bound", "x-bound", bound_to(FRONTEND_DER), peer(None, Some(FRONTEND_DER)), 200, None, None),
        ("bound, over another", "/bound", "x-bound", bound_to(FRONTEND_DER), peer(None, Some(OTHER_DER)), 401, Some(INVALID), Some("binding")),
        ("bound, no certificate", "/bound", "x-bound", bound_to(FRONTEND_DER), PeerFacts::none(), 401, Some(INVALID), Some("binding")),
        ("bound, digest unreadable", "/bound", "x-bound", bound_to(FRONTEND_DER), unreadable(), 503, None, Some("peer")),
        ("bound, digest not hex", "/bound", "x-bound", bound_to(FRONTEND_DER), PeerFacts { uri_san: Ok(None), digest: Ok(Some(b"zz".to_vec())) }, 503, None, Some("peer")),
        ("if_present: unbound passes", "/bound", "x-bound", user.clone(), peer(None, Some(OTHER_DER)), 200, None, None),
        ("if_present: unbound needs no digest", "/bound", "x-bound", user.clone(), unreadable(), 200, None, None),
        ("malformed cnf", "/bound", "x-bound", token(&with(user_claims(), "cnf", json!({ "x5t#S256": "not base64!" }))), peer(None, Some(FRONTEND_DER)), 401, Some(INVALID), Some("binding")),
        ("cnf not an object", "/bound", "x-bound", token(&with(user_claims(), "cnf", json!("x"))), peer(None, Some(FRONTEND_DER)), 401, Some(INVALID), Some("binding")),
        ("required: unbound", "/strict", "x-strict", user.clone(), peer(None, Some(FRONTEND_DER)), 401, Some(INVALID), Some("binding")),
        ("required: bound, over its certificate", "/strict", "x-strict", bound_to(FRONTEND_DER), peer(None, Some(FRONTEND_DER)), 200, None, None),
        ("off: a bound token over another certificate", "/", "authorization", b(&bound_to(FRONTEND_DER)), peer(None, Some(OTHER_DER)), 200, None, None),
    ];
    for (name, path, header, value, facts, status, challenge, reason) in cases {
        let d = decide(&cfg, &cfg, &request(path, &[(header, &value)], facts), NOW);
        let challenge = challenge.map(|c| c.replace("{path}", path));
        assert_eq!(outcome_of(&d), (status, challenge, reason), "{name}: {d:?}");
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[test]
fn identity_header_carries_the_user_and_the_calling_service() {
    let cfg = config();
    let auth = format!("Bearer {}", token(&user_claims()));
    let d = decide(
        &cfg,
        &cfg,
        &request(
            "/internal",
            &[("authorization", &auth)],
            peer(Some(FRONTEND), None),
        ),
        NOW,
    );
    assert_eq!(
        identity_of(&d),
        Some(json!({ "user": "alice", "peer": FRONTEND }))
    );
    // Without a certificate the field is left out, not invented.
    let d = decide(
        &cfg,
        &cfg,
        &request("/", &[("authorization", &auth)], PeerFacts::none()),
        NOW,
    );
    assert_eq!(identity_of(&d), Some(json!({ "user": "alice" })));
    // A URI SAN that is not a SPIFFE ID is no principal.
    let d = decide(
        &cfg,
        &cfg,
        &request(
            "/",
            &[("authorization", &auth)],
            peer(Some("https://evil.example/sa/frontend"), None),
        ),
        NOW,
    );
    assert_eq!(identity_of(&d), Some(json!({ "user": "alice" })));
    // The peer_field needs the URI SAN: unreadable refuses (503), never "no peer".
    let d = decide(
        &cfg,
        &cfg,
        &request("/", &[("authorization", &auth)], PeerFacts::default()),
        NOW,
    );
    assert_eq!(outcome_of(&d), (503, None, Some("peer")));
    // A client's own identity header is removed first.
    let d = decide(
        &cfg,
        &cfg,
        &request(
            "/mesh-only",
            &[("x-identity", "eyJwZWVyIjoieCJ9")],
            peer(Some(FRONTEND), None),
        ),
        NOW,
    );
    assert_eq!(identity_of(&d), None);
    let Decision::Allow { ops, .. } = &d else {
        panic!("{d:?}")
    };
    assert!(ops.contains(&crate::propagate::HeaderOp::Remove("x-identity")));
}

#[test]
fn a_cached_token_is_checked_against_each_connections_certificate() {
    let mut json = config_json();
    json["providers"]["bound"]["jwt_cache_config"] = json!({ "jwt_cache_size": 4 });
    let cfg = Config::from_json(json.to_string().as_bytes()).unwrap();
    let mut cache = cfg.token_cache();
    let token = bound_to(FRONTEND_DER);
    for (der, want) in [(FRONTEND_DER, 200), (OTHER_DER, 401), (FRONTEND_DER, 200)] {
        let vm = Vm {
            keys: &cfg,
            signatures: &PureRust,
            cache: &mut cache,
        };
        let d = decide_in(
            &cfg,
            vm,
            &request("/bound", &[("x-bound", &token)], peer(None, Some(der))),
            NOW,
        );
        assert_eq!(outcome_of(&d).0, want);
    }
}

#[test]
fn report_only_tells_the_upstream_the_new_reasons() {
    let mut json = config_json();
    json["report_only"] = json!(true);
    let cfg = Config::from_json(json.to_string().as_bytes()).unwrap();
    let auth = format!("Bearer {}", token(&user_claims()));
    for (path, facts, want) in [
        (
            "/internal",
            peer(Some(ROGUE), None),
            "denied; status=403; reason=peer",
        ),
        (
            "/service",
            PeerFacts::none(),
            "denied; status=403; reason=token_kind",
        ),
        (
            "/internal",
            PeerFacts::default(),
            "denied; status=503; reason=peer",
        ),
    ] {
        let d = decide(
            &cfg,
            &cfg,
            &request(path, &[("authorization", &auth)], facts),
            NOW,
        );
        let Decision::Allow { ops, .. } = &d else {
            panic!("{d:?}")
        };
        assert!(
            ops.contains(&crate::propagate::HeaderOp::Set(
                OUTCOME_HEADER,
                want.to_owned()
            )),
            "{path}: {ops:?}"
        );
    }
}

#[test]
fn a_failure_policy_never_lets_a_refused_peer_through() {
    let mut json = config_json();
    json["failure_policy"] = json!({ "token_missing": "allow", "token_invalid": "allow" });
    let cfg = Config::from_json(json.to_string().as_bytes()).unwrap();
    for facts in [peer(Some(ROGUE), None), PeerFacts::none()] {
        let d = decide(&cfg, &cfg, &request("/mesh-only", &[], facts), NOW);
        assert_eq!(outcome_of(&d).0, 403);
    }
    let d = decide(
        &cfg,
        &cfg,
        &request("/mesh-only", &[], PeerFacts::default()),
        NOW,
    );
    assert_eq!(outcome_of(&d).0, 503);
}
