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
    }
}
