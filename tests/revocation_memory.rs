//! What a 100,000-entry revocation list costs (issue 15): the heap it holds once parsed, the
//! peak of the heap while it is read, and the time of one check of a token against it. The
//! list keeps 64-bit fingerprints, never the values, so its size does not grow with the values'
//! length; the document is read as a stream, never as a tree, so the peak stays near what is
//! kept (in a wasm VM the peak is what stays: linear memory never shrinks).
//!
//! Counts live heap bytes, and their high-water mark, with a counting global allocator around
//! `RevocationList::parse`.
//! `cargo test --test revocation_memory -- --nocapture` prints the figures (the README quotes
//! them); the assertions are bounds a regression (values kept as text, a table per value)
//! would break.

// Tests fail by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use std::rc::Rc;

use jwt_authn_wasm::jwks::KeySet;
use jwt_authn_wasm::jwt;
use jwt_authn_wasm::revocation::{Kind, RevocationList, Revoked, MAX_ENTRIES};
use jwt_authn_wasm::signature::PureRust;
use jwt_authn_wasm::verify::{self, Policy, Verified};
use serde_json::{json, Map, Value};

#[path = "common/mint.rs"]
mod mint;

const NOW: i64 = 1_764_601_000;

/// `payload` signed with a fixture key and verified: what the check takes.
fn verified(payload: &Value) -> Verified {
    let jwt = Rc::new(jwt::parse(&mint::token("RS256", payload)).unwrap());
    let keys = KeySet::from_json(mint::JWKS).unwrap();
    let policy = Policy {
        issuer: None,
        audiences: &[],
        subjects: None,
        require_expiration: false,
        max_lifetime: None,
        clock_skew_seconds: 60,
    };
    verify::verify(&jwt, policy, Some(&keys), None, NOW, &PureRust).unwrap()
}

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The highest `LIVE` since it was last reset (`PEAK.store(LIVE)`).
static PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live =
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A list of `MAX_ENTRIES` entries shaped like a real one: mostly `jti`s (UUIDs), then
/// subjects, sessions, clients and per-subject cutoffs.
fn uuid(i: usize) -> String {
    format!("{i:08x}-1f2e-4d3c-8b7a-{:012x}", i * 7919)
}

fn document() -> String {
    let jti: Vec<String> = (0..70_000).map(uuid).collect();
    let sub: Vec<String> = (0..10_000)
        .map(|i| format!("user-{i}@example.com"))
        .collect();
    let sid: Vec<String> = (0..10_000)
        .map(|i| format!("session-{}", uuid(i)))
        .collect();
    let client_id: Vec<String> = (0..4_999).map(|i| format!("service-{i}")).collect();
    let cutoffs: Map<String, Value> = (0..5_000)
        .map(|i| (format!("cutoff-user-{i}"), json!(1_764_600_000 + i)))
        .collect();
    json!({
        "issued_at": 1_764_601_234,
        "jti": jti, "sub": sub, "sid": sid, "client_id": client_id,
        "issued_before": { "*": 1_700_000_000, "sub": cutoffs },
    })
    .to_string()
}

#[test]
fn a_full_list_is_small_and_a_check_is_fast() {
    let doc = document();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = Instant::now();
    let list = RevocationList::parse(doc.as_bytes()).unwrap();
    let parse_ms = started.elapsed().as_secs_f64() * 1e3;
    let held = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert_eq!(list.entries(), MAX_ENTRIES);
    let mib = held as f64 / (1024.0 * 1024.0);
    let peak_mib = peak as f64 / (1024.0 * 1024.0);

    // A token that is not revoked (every claim looked up, the cutoff compared) and one that is.
    let clean = json!({"sub": "alice@example.com", "jti": "e0a1b2c3-0000-4d3c-8b7a-000000000000",
                       "sid": "session-x", "client_id": "web", "iat": 1_764_601_000});
    let clean = verified(&clean);
    let listed = json!({"sub": "bob", "jti": uuid(69_999), "iat": 1_764_601_000});
    let listed = verified(&listed);
    assert_eq!(list.check(&clean), Ok(()));
    assert_eq!(list.check(&listed), Err(Revoked::Listed(Kind::Jti)));
    const ROUNDS: u32 = 200_000;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(list.check(std::hint::black_box(&clean))).ok();
    }
    let check_ns = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    println!(
        "revocation list of {} entries: {mib:.2} MiB held ({held} bytes), peak {peak_mib:.2} MiB \
         while parsing, parsed in {parse_ms:.0} ms from a {} KiB document; check of an unlisted token with 4 claims: {check_ns:.0} ns \
         ({} build)",
        list.entries(),
        doc.len() / 1024,
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
    assert!(mib < 4.0, "a 100,000-entry list holds {mib:.2} MiB");
    // A `Value` tree of the document (about 12 MiB) or tables kept as text would break this.
    assert!(
        peak_mib < 4.0,
        "reading a 100,000-entry list peaks at {peak_mib:.2} MiB"
    );
    // Generous: a debug build on a loaded machine; a list scan would take milliseconds.
    assert!(check_ns < 50_000.0, "one check takes {check_ns:.0} ns");
}
