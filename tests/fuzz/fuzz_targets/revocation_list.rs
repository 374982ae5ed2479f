//! The revocation list reader (`revocation::RevocationList`) and one provider's fetch state
//! (`revocation::fetch::ListFetch`) on network bytes. Input: `status \n cache-control \n etag
//! \n body`. The body is read as a list, as a signed list whose signature "verifies" (so the
//! payload reader is reached), and as a fetch response after a good list is in force.
#![no_main]

use jwt_authn_wasm::revocation::fetch::{ListFetch, ListPolicy, ListResponse, MIN_CACHE_DURATION};
use jwt_authn_wasm::revocation::{RevocationList, MAX_ENTRIES};
use libfuzzer_sys::fuzz_target;

/// 2030-01-01 in milliseconds: fixed, so a crash reproduces whatever the date.
const NOW: u64 = 1_893_456_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let status = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let cache_control = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let etag = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let body = parts.next().unwrap_or_default();
    for list in [
        RevocationList::parse(body),
        RevocationList::parse_signed(body, |_, _, _, _| true),
    ]
    .into_iter()
    .flatten()
    {
        assert!(list.entries() <= MAX_ENTRIES);
    }
    let policy = ListPolicy::default();
    let ttl = policy.ttl(cache_control);
    assert!(ttl >= MIN_CACHE_DURATION && ttl <= policy.cache_duration);
    for require_signed in [false, true] {
        let mut fetch = ListFetch::new(ListPolicy {
            require_signed,
            ..ListPolicy::default()
        });
        let good = br#"{"issued_at": 1893455000, "jti": ["a"]}"#;
        let first = ListResponse {
            status: Some("200"),
            body_size: good.len(),
            body: good,
            etag: Some("\"v1\""),
            cache_control: None,
        };
        let _ = fetch.fetch_done(NOW, first, |_, _, _, _| true, 0);
        let before = (fetch.list().map(RevocationList::issued_at), fetch.entries());
        let response = ListResponse {
            status,
            body_size: body.len(),
            body,
            etag,
            cache_control,
        };
        match fetch.fetch_done(NOW + 1000, response, |_, _, _, _| true, 500) {
            // A failed fetch keeps the list in force.
            Err(_) => assert_eq!(
                (fetch.list().map(RevocationList::issued_at), fetch.entries()),
                before
            ),
            // Never an older list.
            Ok(_) => assert!(fetch.list().map(RevocationList::issued_at) >= before.0),
        }
        assert!(fetch.entries() <= MAX_ENTRIES);
    }
});
