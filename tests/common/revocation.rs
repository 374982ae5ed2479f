//! The revocation-list fixture of the end-to-end tests (tests/revocation_e2e.rs,
//! tests/revocation_fleet.rs): one provider `idp` with the fixture keys inline and a
//! `revocation` list fetched through cluster [`CLUSTER`], the list documents a stand-in server
//! (`common::idp`) serves, and the provider's tokens.

use serde_json::{json, Value};

use super::mint;

/// The provider's issuer.
pub const ISS: &str = "https://idp.example";
/// The provider's name (its stats are `wasmcustom.jwt_authn_wasm.idp.*`).
pub const PROVIDER: &str = "idp";
/// The cluster the list is fetched through.
pub const CLUSTER: &str = "revocations";

/// A list document: `issued_at` plus the members given (`jti`, `sub`, `issued_before`, ...).
pub fn list(issued_at: i64, members: Value) -> String {
    let mut doc = json!({ "issued_at": issued_at });
    if let (Some(doc), Value::Object(members)) = (doc.as_object_mut(), members) {
        doc.extend(members);
    }
    doc.to_string()
}

/// The one provider, its `revocation` at [`CLUSTER`] (`cache_duration` 1 s, `max_staleness`
/// 30 s); `extra` members are added to the provider (`jwt_cache_config`), `revocation`
/// members to its list settings.
pub fn config(revocation: Value, extra: Value) -> Value {
    let mut settings = json!({
        "http_uri": { "uri": "http://lists.example/revocations.json",
                      "cluster": CLUSTER, "timeout": "1s" },
        "cache_duration": "1s",
        "max_staleness": "30s",
    });
    if let (Some(settings), Value::Object(more)) = (settings.as_object_mut(), revocation) {
        settings.extend(more);
    }
    let mut provider = json!({
        "issuer": ISS,
        "local_jwks": { "inline_string": mint::JWKS },
        "revocation": settings,
    });
    if let (Some(provider), Value::Object(more)) = (provider.as_object_mut(), extra) {
        provider.extend(more);
    }
    json!({
        "providers": { PROVIDER: provider },
        "rules": [{ "match": { "prefix": "/" }, "requires": { "provider_name": PROVIDER } }],
    })
}

/// An RS256 token of the provider, valid for an hour, with these claims besides `iss`/`exp`.
pub fn token(claims: Value) -> String {
    let mut payload = json!({ "iss": ISS, "exp": super::now() + 3600 });
    if let (Some(payload), Value::Object(claims)) = (payload.as_object_mut(), claims) {
        payload.extend(claims);
    }
    mint::token("RS256", &payload)
}
