//! The JWKS HTTP response handler (`jwks_cache::read_response`) and its neighbours that read
//! peer- or network-supplied bytes: the OIDC discovery document, `Cache-Control`, and the
//! shared-data lease and version records. Input: `status \n cache-control \n body`.
#![no_main]

use jwt_authn_wasm::jwks_cache::{
    lease_until, max_age, parse_version, read_discovery, read_response, read_shared_key_set,
    read_version, FetchPolicy, Lease,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let status = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let cache_control = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let body = parts.next().unwrap_or_default();
    let policy = FetchPolicy::default();
    if let Ok(fetched) = read_response(&policy, status, body.len(), body, cache_control) {
        assert!(
            fetched.ttl >= policy.min_cache_duration && fetched.ttl <= policy.max_cache_duration
        );
    }
    let _ = read_response(&policy, status, usize::MAX, body, cache_control);
    let _ = read_discovery(status, body);
    if let Some(cc) = cache_control {
        let _ = max_age(cc);
    }
    if let Some(lease) = Lease::parse(data) {
        let _ = Lease::parse(lease.encode().as_bytes());
        let _ = lease.held_by_other(1, u64::MAX);
        // Bounded, a lease never outlasts a fetch started now, whatever was written.
        for now in [0, 1_700_000_000_000, u64::MAX] {
            let timeout = std::time::Duration::from_secs(5);
            let bounded = lease.bounded(now, timeout, policy.max_retry_delay());
            assert!(bounded.until <= lease_until(now, timeout));
        }
    }
    let _ = parse_version(data);
    for now in [0, 1_700_000_000_000, u64::MAX] {
        if let Some((_, ttl)) = read_version(data, &policy, now) {
            assert!(ttl >= policy.min_cache_duration && ttl <= policy.max_cache_duration);
        }
    }
    let _ = read_shared_key_set(body);
});
