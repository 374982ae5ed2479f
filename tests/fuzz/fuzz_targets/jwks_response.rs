//! The JWKS HTTP response handler (`jwks_cache::read_response`) and its neighbours that read
//! peer- or network-supplied bytes: the OIDC discovery document, `Cache-Control`, and the
//! shared-data lease and version records. Input: `status \n cache-control \n body`.
#![no_main]

use jwt_authn_wasm::jwks_cache::{
    max_age, parse_version, read_discovery, read_response, FetchPolicy, Lease,
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
    }
    let _ = parse_version(data);
});
