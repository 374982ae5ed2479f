//! Stat names, in one place. Pure: the wasm glue defines and updates them through the host
//! (`proxy_define_metric`), once per VM; Envoy aggregates counters of all VMs in one scope.
//!
//! Envoy shows them under `wasmcustom.` in `/stats` (for example
//! `wasmcustom.jwt_authn_wasm.okta.jwks_fetch_success`) and without that prefix in
//! `/stats/prometheus`.

/// The first segment of every stat of this filter.
pub const PREFIX: &str = "jwt_authn_wasm";

/// Every `FetchFailure::reason`, so each failure counter exists (at 0) from the start.
pub const FETCH_FAILURE_REASONS: [&str; 7] = [
    "status",
    "dispatch",
    "reset",
    "too_large",
    "not_jwks",
    "no_usable_key",
    "discovery",
];

/// Every `AuthError::reason`, so each denial counter exists (at 0) from the start.
pub const DENY_REASONS: [&str; 20] = [
    "missing",
    "malformed",
    "signature",
    "expired",
    "not_yet_valid",
    "lifetime",
    "subject",
    "issuer",
    "audience",
    "scope",
    "claim",
    "typ",
    "binding",
    "token_kind",
    "peer",
    "keys_unavailable",
    "revoked",
    "revocation_unavailable",
    "inactive",
    "introspection_unavailable",
];

/// Every `ListFailure::reason` (`revocation::fetch`), so each revocation fetch failure counter
/// exists (at 0) from the start.
pub const REVOCATION_FETCH_FAILURE_REASONS: [&str; 11] = [
    "status",
    "dispatch",
    "reset",
    "too_large",
    "not_json",
    "bad_list",
    "too_many_entries",
    "not_signed",
    "bad_signature",
    "older",
    "future",
];

/// Requests whose requirement was satisfied (or that had none): all of them with `None`, those
/// whose token of `provider` verified with `Some`.
pub fn allowed(provider: Option<&str>) -> String {
    format!("{}.allowed", scope(provider))
}

/// Requests whose requirement failed, by `AuthError::reason`: all of them with `None`, those
/// whose failing check was `provider`'s with `Some`. Counted whatever was then done (a 401,
/// 403 or 503, or let through by a failure policy or `report_only`).
pub fn denied(provider: Option<&str>, reason: &str) -> String {
    format!("{}.denied.{reason}", scope(provider))
}

/// Failed requests that were let through: by a failure policy `allow`, or in `report_only`.
pub fn not_enforced() -> String {
    format!("{PREFIX}.not_enforced")
}

fn scope(provider: Option<&str>) -> String {
    match provider {
        Some(p) => format!("{PREFIX}.{}", segment(p)),
        None => PREFIX.to_owned(),
    }
}

/// Remote key set fetches that produced a key set.
pub fn jwks_fetch_success(provider: &str) -> String {
    format!("{PREFIX}.{}.jwks_fetch_success", segment(provider))
}

/// Failed fetches, by `FetchFailure::reason`.
pub fn jwks_fetch_failed(provider: &str, reason: &str) -> String {
    format!("{PREFIX}.{}.jwks_fetch_failed.{reason}", segment(provider))
}

/// Refetches started because a token named a kid the key set lacked.
pub fn jwks_unknown_kid_refetch(provider: &str) -> String {
    format!("{PREFIX}.{}.jwks_unknown_kid_refetch", segment(provider))
}

/// Seconds since the current key set was fetched (a gauge; 0 before the first).
pub fn jwks_age_seconds(provider: &str) -> String {
    format!("{PREFIX}.{}.jwks_age_seconds", segment(provider))
}

/// Revocation list fetches that produced a list in force (a 304 that kept the list counts).
pub fn revocation_fetch_success(provider: &str) -> String {
    format!("{PREFIX}.{}.revocation_fetch_success", segment(provider))
}

/// Failed revocation list fetches, by `ListFailure::reason`; the last good list stays.
pub fn revocation_fetch_failed(provider: &str, reason: &str) -> String {
    format!(
        "{PREFIX}.{}.revocation_fetch_failed.{reason}",
        segment(provider)
    )
}

/// Every `oauth::Unavailable::reason` of an introspection, and `in_flight` (refused by the
/// per-VM bound before any callout), so each failure counter exists (at 0) from the start.
pub const INTROSPECTION_FAILURE_REASONS: [&str; 8] = [
    "no_response",
    "server_error",
    "client_rejected",
    "status",
    "too_large",
    "not_json",
    "bad_response",
    "in_flight",
];

/// Introspections answered (active or not) by the authorization server.
pub fn introspection_success(provider: &str) -> String {
    format!("{PREFIX}.{}.introspection_success", segment(provider))
}

/// Introspections that failed, by reason (`INTROSPECTION_FAILURE_REASONS`).
pub fn introspection_failed(provider: &str, reason: &str) -> String {
    format!(
        "{PREFIX}.{}.introspection_failed.{reason}",
        segment(provider)
    )
}

/// Seconds since the list in force was last fetched or confirmed (a gauge; 0 before the
/// first).
pub fn revocation_list_age_seconds(provider: &str) -> String {
    format!("{PREFIX}.{}.revocation_list_age_seconds", segment(provider))
}

/// Values and cutoffs of the list in force (a gauge; 0 before the first).
pub fn revocation_entries(provider: &str) -> String {
    format!("{PREFIX}.{}.revocation_entries", segment(provider))
}

/// Tokens decided from a cached answer (`cache::RequestAnswers::cache_hits`).
pub fn introspection_cache_hit(provider: &str) -> String {
    format!("{PREFIX}.{}.introspection_cache_hit", segment(provider))
}

/// Tokens the cache had no answer for (a `cache::Step::Ask` or `Wait`).
pub fn introspection_cache_miss(provider: &str) -> String {
    format!("{PREFIX}.{}.introspection_cache_miss", segment(provider))
}

/// Answers that said `"active": false`.
pub fn introspection_inactive(provider: &str) -> String {
    format!("{PREFIX}.{}.introspection_inactive", segment(provider))
}

/// A provider name as one stat-name segment: dots and anything unusual become `_`.
fn segment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_segment_per_provider() {
        assert_eq!(
            jwks_fetch_success("okta"),
            "jwt_authn_wasm.okta.jwks_fetch_success"
        );
        assert_eq!(
            jwks_fetch_failed("a.b c", "status"),
            "jwt_authn_wasm.a_b_c.jwks_fetch_failed.status"
        );
        assert_eq!(allowed(None), "jwt_authn_wasm.allowed");
        assert_eq!(allowed(Some("okta")), "jwt_authn_wasm.okta.allowed");
        assert_eq!(
            denied(Some("okta"), "expired"),
            "jwt_authn_wasm.okta.denied.expired"
        );
        assert_eq!(denied(None, "scope"), "jwt_authn_wasm.denied.scope");
        assert_eq!(
            revocation_fetch_failed("a.b", "bad_signature"),
            "jwt_authn_wasm.a_b.revocation_fetch_failed.bad_signature"
        );
        assert_eq!(
            revocation_list_age_seconds("okta"),
            "jwt_authn_wasm.okta.revocation_list_age_seconds"
        );
        assert_eq!(
            revocation_entries("okta"),
            "jwt_authn_wasm.okta.revocation_entries"
        );
        assert_eq!(
            revocation_fetch_success("okta"),
            "jwt_authn_wasm.okta.revocation_fetch_success"
        );
        assert_eq!(
            introspection_failed("op.aque", "client_rejected"),
            "jwt_authn_wasm.op_aque.introspection_failed.client_rejected"
        );
        assert_eq!(
            introspection_cache_hit("opaque"),
            "jwt_authn_wasm.opaque.introspection_cache_hit"
        );
    }

    #[test]
    fn every_introspection_failure_has_its_counter() {
        use crate::oauth::Unavailable::*;
        for e in [
            NoResponse,
            ServerError,
            ClientRejected,
            UnexpectedStatus,
            TooLarge,
            NotJson,
            BadResponse,
        ] {
            assert!(INTROSPECTION_FAILURE_REASONS.contains(&e.reason()), "{e:?}");
        }
    }
}
